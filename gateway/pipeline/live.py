"""One session's live translation: audio in; events and translated speech out. No sockets here.

Ingress (`push`) runs the streaming VAD; each finished utterance goes on a bounded queue that one
worker drains in order: final transcript -> translation -> clause-by-clause synthesis, sending the
first clause's audio as soon as it exists. While someone speaks and the worker is idle, partial
transcripts of the utterance so far are produced. A failing utterance (Triton down, say) yields an
`error` event for that utterance; the session and the next utterance carry on.

Latency: the final transcript is started speculatively as soon as the speaker pauses
(`speculate_after_ms` of silence), while the VAD still waits to be sure the utterance ended; if
speech resumes the guess is dropped. The first clause of the translation is kept short.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from gateway.errors import ApiError
from gateway.observability import log_event
from gateway.pipeline.interfaces import OUTPUT_RATE, SpeechSynthesizer, Transcriber, Translator, Voice
from gateway.pipeline.vad import RATE, StreamingVad

log = logging.getLogger("univoice.pipeline")

CHUNK_SAMPLES = OUTPUT_RATE // 5  # 200 ms of audio per binary message


@dataclass(frozen=True)
class Event:
    """A JSON event for the client: {"type": ..., **fields}."""

    type: str
    fields: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"type": self.type, **self.fields}


EmitEvent = Callable[[Event], Awaitable[None]]
EmitAudio = Callable[[np.ndarray], Awaitable[bool]]  # float32 24 kHz chunk -> False when it was dropped
OnUtterance = Callable[[str, str, dict], Awaitable[None]]  # transcript, translation, timings -> persist


@dataclass
class Utterance:
    id: str
    audio: np.ndarray
    ended_at: float  # monotonic time the VAD declared the end
    end_sample: int
    transcript: asyncio.Task | None = None  # started speculatively during the closing pause


@dataclass
class LiveSettings:
    source_language: str
    target_language: str
    voice: Voice
    speed: float = 1.0
    partial_interval_s: float = 1.0
    max_pending_utterances: int = 4
    speculate_after_ms: float = 200.0


class LiveTranslation:
    def __init__(self, settings: LiveSettings, *, transcriber: Transcriber, translator: Translator,
                 synthesizer: SpeechSynthesizer, vad: StreamingVad, emit: EmitEvent, emit_audio: EmitAudio,
                 on_utterance: OnUtterance, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.transcriber, self.translator, self.synthesizer, self.vad = transcriber, translator, synthesizer, vad
        self.emit, self.emit_audio, self.on_utterance = emit, emit_audio, on_utterance
        self.clock = clock
        self.queue: asyncio.Queue[Utterance | None] = asyncio.Queue(settings.max_pending_utterances)
        self._busy = False
        self._partial: asyncio.Task | None = None
        self._last_partial_samples = 0
        self._current_id = ""
        self._speculation: asyncio.Task | None = None
        self._worker = asyncio.create_task(self._work(), name="live-translation-worker")

    # --- ingress -------------------------------------------------------------------------------
    async def push(self, samples16k: np.ndarray) -> None:
        for event in self.vad.feed(samples16k):
            await self._on_vad(event)
        self._maybe_speculate()
        self._maybe_partial()

    def _maybe_speculate(self) -> None:
        if not self.vad.speaking:
            return
        if self.vad.silence_ms == 0:
            if self._speculation is not None:  # speech resumed: the guess is stale (and dropped if not started)
                self._speculation.cancel()
                self._speculation = None
        elif self.vad.silence_ms >= self.settings.speculate_after_ms and self._speculation is None:
            audio = self.vad.current_utterance()
            self._speculation = asyncio.ensure_future(self.transcriber.transcribe(audio, self.settings.source_language))

    async def flush(self) -> None:
        for event in self.vad.flush():
            await self._on_vad(event)

    async def finish(self) -> None:
        """Flush, then wait until every queued utterance has been answered."""
        await self.flush()
        await self.queue.put(None)
        await self._worker

    async def cancel(self) -> None:
        for task in (self._worker, self._partial, self._speculation):
            if task and not task.done():
                task.cancel()
        await asyncio.gather(*(t for t in (self._worker, self._partial, self._speculation) if t),
                             return_exceptions=True)

    async def _on_vad(self, event) -> None:
        seconds = round(event.sample / RATE, 3)
        if event.kind == "start":
            self._current_id = f"ut_{uuid.uuid4().hex[:12]}"
            self._last_partial_samples = 0
            await self.emit(Event("vad", {"state": "start", "utterance_id": self._current_id, "stream_seconds": seconds}))
            return
        utterance = Utterance(self._current_id, event.audio, self.clock(), event.sample, self._speculation)
        self._speculation = None
        await self.emit(Event("vad", {"state": "end", "utterance_id": utterance.id, "stream_seconds": seconds}))
        if self.queue.full():
            await self.emit(Event("error", {
                "code": "overloaded", "utterance_id": utterance.id,
                "message": "too many utterances are waiting to be translated; this one was skipped",
            }))
            return
        self.queue.put_nowait(utterance)

    def _maybe_partial(self) -> None:
        # Partials are best effort: never queue one where a final (this stream's or another's) would wait.
        if (not self.vad.speaking or self.vad.silence_ms > 0 or self._busy or self.transcriber.busy
                or (self._partial and not self._partial.done())):
            return
        audio = self.vad.current_utterance()
        if len(audio) - self._last_partial_samples < self.settings.partial_interval_s * RATE:
            return
        self._last_partial_samples = len(audio)
        self._partial = asyncio.create_task(self._emit_partial(self._current_id, audio))

    async def _emit_partial(self, utterance_id: str, audio: np.ndarray) -> None:
        try:
            text = await self.transcriber.transcribe(audio, self.settings.source_language)
        except Exception as error:  # partials are best effort; the final transcript reports errors
            log_event(log, "partial transcript failed", level=logging.WARNING, error=repr(error))
            return
        if text and utterance_id == self._current_id and self.vad.speaking:
            await self.emit(Event("partial_transcript", {"utterance_id": utterance_id, "text": text}))

    # --- the worker ------------------------------------------------------------------------------
    async def _work(self) -> None:
        while (utterance := await self.queue.get()) is not None:
            self._busy = True
            try:
                if self._partial and not self._partial.done():
                    self._partial.cancel()
                await self._translate(utterance)
            except ApiError as error:
                await self.emit(Event("error", {"code": error.code, "message": error.message,
                                                "utterance_id": utterance.id}))
            except Exception:
                log.exception("utterance %s failed", utterance.id)
                await self.emit(Event("error", {"code": "internal_error", "utterance_id": utterance.id,
                                                "message": "translating this utterance failed; the session goes on"}))
            finally:
                self._busy = False

    async def _translate(self, utterance: Utterance) -> None:
        s = self.settings
        marks = {"vad_end": utterance.ended_at}
        pending = utterance.transcript or self.transcriber.transcribe(utterance.audio, s.source_language)
        transcript = (await pending).strip()
        marks["transcript"] = self.clock()
        await self.emit(Event("transcript", {"utterance_id": utterance.id, "text": transcript}))
        if not transcript:
            await self.emit(Event("metrics", {"utterance_id": utterance.id, "timings_ms": self._timings(marks)}))
            return
        translation = (await self.translator.translate(transcript, s.source_language, s.target_language)).strip()
        marks["translation"] = self.clock()
        await self.emit(Event("translation", {"utterance_id": utterance.id, "text": translation}))

        sent = dropped = 0
        samples = 0
        async for clause in self.synthesizer.speak(translation, s.target_language, s.voice, s.speed):
            if "first_audio" not in marks:
                marks["first_audio"] = self.clock()
                await self.emit(Event("audio_start", {"utterance_id": utterance.id, "sample_rate": OUTPUT_RATE,
                                                      "encoding": "pcm16", "channels": 1}))
            for start in range(0, len(clause.audio24k), CHUNK_SAMPLES):
                chunk = clause.audio24k[start : start + CHUNK_SAMPLES]
                if await self.emit_audio(chunk):
                    sent += 1
                    samples += len(chunk)
                else:
                    dropped += 1
        marks["audio_end"] = self.clock()
        if "first_audio" in marks:
            await self.emit(Event("audio_end", {"utterance_id": utterance.id, "chunks": sent,
                                                "seconds": round(samples / OUTPUT_RATE, 3)}))
        if dropped:
            await self.emit(Event("warning", {
                "code": "audio_dropped", "utterance_id": utterance.id, "chunks": dropped,
                "message": f"{dropped} audio chunk(s) were dropped because the client reads too slowly",
            }))
        timings = self._timings(marks)
        await self.emit(Event("metrics", {"utterance_id": utterance.id, "timings_ms": timings}))
        await self.on_utterance(transcript, translation, timings)

    @staticmethod
    def _timings(marks: dict[str, float]) -> dict[str, float]:
        """Milliseconds from the VAD's end of speech to each stage, plus each stage's own duration."""
        start = marks["vad_end"]
        out = {f"{name}_after_end_ms": round(1000 * (t - start), 1) for name, t in marks.items() if name != "vad_end"}
        if "transcript" in marks:
            out["stt_ms"] = out["transcript_after_end_ms"]
        if "translation" in marks:
            out["translation_ms"] = round(1000 * (marks["translation"] - marks["transcript"]), 1)
        if "first_audio" in marks:
            out["first_clause_synthesis_ms"] = round(1000 * (marks["first_audio"] - marks["translation"]), 1)
        return out
