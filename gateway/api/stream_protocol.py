"""The streaming protocol (see docs/protocol.md): client messages, validated once at the edge, and every message
the server sends, written here and nowhere else."""

from __future__ import annotations

import json
import struct
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.audio import float_to_pcm16, pcm16_to_float
from gateway.pipeline import events
from gateway.schemas import AudioFormat, LanguageCode
from univoice_core.errors import BadRequest, UniVoiceError

PROTOCOL_VERSION = 1
AUDIO_HEADER = struct.Struct(">I")  # server -> client binary frames: uint32 sequence number, then PCM16 LE


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigMessage(_Message):
    type: Literal["config"]
    protocol: Literal[1] = PROTOCOL_VERSION
    token: str | None = Field(default=None, max_length=4096, description="Bearer token, when no header was sent")
    audio: AudioFormat | None = None
    source_language: LanguageCode | None = None
    target_language: LanguageCode | None = None
    voice_profile_id: str | None = Field(default=None, max_length=64)


class AuthMessage(_Message):
    """A fresh access token before the current one expires (the stream is closed when it does)."""

    type: Literal["auth"]
    token: str = Field(max_length=4096)


class FlushMessage(_Message):
    """End the current utterance now instead of waiting for silence."""

    type: Literal["flush"]


class StopMessage(_Message):
    """Finish: answer every utterance already heard, then close."""

    type: Literal["stop"]


class PingMessage(_Message):
    type: Literal["ping"]
    id: int | str | None = None


ClientMessage = Annotated[
    ConfigMessage | AuthMessage | FlushMessage | StopMessage | PingMessage, Field(discriminator="type")
]
_ADAPTER = TypeAdapter(ClientMessage)


def parse_client_message(text: str) -> ClientMessage:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: not JSON, or a number of more than 4300 digits
        raise BadRequest("the message is not valid JSON", code="malformed_message") from None
    if not isinstance(data, dict) or "type" not in data:
        raise BadRequest('every JSON message is an object with a "type"', code="malformed_message")
    known = ("config", "auth", "flush", "stop", "ping")
    if data["type"] not in known:
        shown = repr(data["type"])  # a stranger's text, shortened: an error does not echo a whole input back
        raise BadRequest(f"unknown message type {shown[:40] + '...' if len(shown) > 40 else shown}; expected one of "
                         f"{', '.join(known)}", code="unknown_message_type")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors()[:3])
        raise BadRequest(f"invalid {data['type']} message: {problems}", code="invalid_message") from None


# --- server -> client ------------------------------------------------------------------------------

def event_message(event: events.PipelineEvent) -> dict:
    """The JSON message for a pipeline event."""
    match event:
        case events.SpeechStarted() | events.SpeechEnded():
            state = "start" if isinstance(event, events.SpeechStarted) else "end"
            return {"type": "vad", "state": state, "utterance_id": event.utterance_id,
                    "stream_seconds": event.stream_seconds}
        case events.PartialTranscript():
            return {"type": "partial_transcript", "utterance_id": event.utterance_id, "text": event.text}
        case events.FinalTranscript():
            return {"type": "transcript", "utterance_id": event.utterance_id, "text": event.text}
        case events.TranslationDone():
            message = {"type": "translation", "utterance_id": event.utterance_id, "text": event.text,
                       "engine": event.engine}
            if event.fallback_reason:
                message |= {"translation_fallback": event.engine, "fallback_reason": event.fallback_reason}
            return message
        case events.AudioStarted():
            return {"type": "audio_start", "utterance_id": event.utterance_id, "sample_rate": event.sample_rate,
                    "encoding": "pcm16", "channels": 1}
        case events.AudioEnded():
            return {"type": "audio_end", "utterance_id": event.utterance_id, "chunks": event.chunks,
                    "seconds": event.seconds}
        case events.UtteranceMetrics():
            return {"type": "metrics", "utterance_id": event.utterance_id, "timings_ms": event.timings_ms}
        case events.UtteranceWarning():
            chunks = {} if event.chunks is None else {"chunks": event.chunks}
            return {"type": "warning", "code": event.code, "utterance_id": event.utterance_id, **chunks,
                    "message": event.message}
        case events.UtteranceFailed():
            return {"type": "error", "code": event.code, "utterance_id": event.utterance_id, "message": event.message}
    raise TypeError(f"not a pipeline event: {event!r}")


def error_message(error: UniVoiceError) -> dict:
    """An error of the stream itself (a bad message, credentials, limits), not of one utterance."""
    return {"type": "error", "code": error.code, "message": error.message}


def ready_message(*, session_id: str, source_language: str, target_language: str, voice: str, input_rate: int,
                  output_rate: int, max_frame_bytes: int, max_session_seconds: float) -> dict:
    return {
        "type": "ready", "protocol": PROTOCOL_VERSION, "session_id": session_id,
        "source_language": source_language, "target_language": target_language, "voice": voice,
        "input": {"encoding": "pcm16", "sample_rate": input_rate, "channels": 1},
        "output": {"encoding": "pcm16", "sample_rate": output_rate, "channels": 1,
                   "header": "uint32 sequence, big-endian"},
        "limits": {"max_frame_bytes": max_frame_bytes, "max_session_seconds": max_session_seconds},
    }


def stopped_message(session_id: str) -> dict:
    return {"type": "stopped", "session_id": session_id}


def pong_message(ping_id: int | str | None) -> dict:
    return {"type": "pong", "id": ping_id}


def auth_ok_message(expires_in: int | None) -> dict:
    return {"type": "auth_ok", "expires_in": expires_in}


def audio_frame(sequence: int, samples: np.ndarray) -> bytes:
    """Server -> client audio: 4-byte big-endian sequence number + PCM16 little-endian mono samples."""
    return AUDIO_HEADER.pack(sequence & 0xFFFFFFFF) + float_to_pcm16(samples)


def parse_audio_frame(frame: bytes) -> tuple[int, np.ndarray]:
    """Client-side helper (CLI, benchmarks, tests): the inverse of `audio_frame`."""
    (sequence,) = AUDIO_HEADER.unpack_from(frame)
    return sequence, pcm16_to_float(frame[AUDIO_HEADER.size:])
