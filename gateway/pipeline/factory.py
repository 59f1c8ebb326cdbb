"""Assembling one stream's `LiveTranslation` from its session: the route hands over what the client asked for
and gets a running pipeline back; it never builds one.

The session must be open (`SessionService.get_open`); the voice is the profile's (cloned, or its nearest preset)
or the default; the translator is the pair's engine; each answered utterance is appended to the session's history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.pipeline.interfaces import Transcriber
from gateway.pipeline.live import EmitAudio, EmitEvent, LiveSettings, LiveTranslation
from gateway.pipeline.providers import SpeechProviders
from gateway.pipeline.vad import StreamingVad
from gateway.profiles import ProfileService
from gateway.sessions import SessionService
from gateway.settings import Settings


@dataclass(frozen=True)
class StreamRequest:
    """What the client's config message asks for; None: the session's own choice."""

    owner: str
    session_id: str
    voice_profile_id: str | None = None
    source_language: str | None = None
    target_language: str | None = None
    input_rate: int | None = None


async def start_live_translation(request: StreamRequest, *, settings: Settings, sessions: SessionService,
                                 profiles: ProfileService, speech: SpeechProviders, emit: EmitEvent,
                                 emit_audio: EmitAudio) -> LiveTranslation:
    owner, session_id = request.owner, request.session_id
    session = await sessions.get_open(owner, session_id)
    profile_id = request.voice_profile_id or session.voice_profile_id
    embedding, statistics = await profiles.voice(owner, profile_id, session_id) if profile_id else (None, None)
    source = request.source_language or session.source_language
    target = request.target_language or session.target_language
    translator = speech.translator(source, target)  # an unsupported pair is refused before anything starts
    voice = await speech.voice_for(embedding, statistics)

    async def persist(transcript: str, translation: str, timings: dict) -> None:
        await sessions.append_utterance(owner, session_id, transcript, translation, timings)

    # Whisper and Silero load once per process and take seconds (the first stream's): never on the event loop.
    transcriber, vad = await asyncio.to_thread(_load_models, speech, settings)
    await sessions.activate(owner, session_id)  # before the pipeline's worker starts: nothing to clean up if it fails
    pipeline = LiveTranslation(
        LiveSettings(source, target, voice, partial_interval_s=settings.stream_partial_interval_s,
                     input_rate=request.input_rate or session.audio_format.sample_rate),
        transcriber=transcriber, translator=translator, synthesizer=speech.synthesizer, vad=vad,
        emit=emit, emit_audio=emit_audio, on_utterance=persist,
    )
    return pipeline


def _load_models(speech: SpeechProviders, settings: Settings) -> tuple[Transcriber, StreamingVad]:
    return speech.transcriber, StreamingVad(min_silence_ms=settings.vad_min_silence_ms,
                                            max_utterance_s=settings.stream_max_utterance_s)
