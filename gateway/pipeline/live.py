"""One session's live translation: audio in; events and translated speech out. No sockets here.

Ingress (`push`) runs the streaming VAD; each finished utterance goes on a bounded queue that one
worker drains in order: final transcript -> streamed translation -> clause-by-clause synthesis. The
translation's pieces go through a `ClauseStream`, so the first clause is synthesised (and its audio
sent) while the rest of the translation is still being generated. Each final transcript is translated
with the session's previous one or two utterances as context (`ConversationContext`). While someone speaks and the worker is idle, partial
transcripts of the utterance so far are produced. A failing utterance (Triton down, say) yields an
`UtteranceFailed` event; the session and the next utterance carry on.

Latency: the final transcript is started speculatively as soon as the speaker pauses
(`speculate_after_ms` of silence), while the VAD still waits to be sure the utterance ended; if
speech resumes the guess is dropped. The first clause of the translation is kept short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import soxr

from gateway.cpu import run_cpu
from gateway.observability import log_event
from gateway.pipeline import events
from gateway.pipeline.interfaces import SpeechSynthesizer, Transcriber, Translator, Voice
from gateway.pipeline.translate import ConversationContext
from gateway.pipeline.vad import StreamingVad
from univoice_core.audio import MODEL_RATE, OUTPUT_RATE
from univoice_core.errors import UniVoiceError
from univoice_core.text import ClauseStream

log = logging.getLogger("univoice.pipeline")

CHUNK_SAMPLES = OUTPUT_RATE // 5  # 200 ms of audio per binary message
# Saving an utterance holds back its audio_end: a store that hangs (a partitioned Redis) costs that long at most,
# then the utterance is `history_not_saved`.
SAVE_TIMEOUT_S = 5.0


EmitEvent = Callable[[events.PipelineEvent], Awaitable[None]]
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
    partial_interval_s: float  # seconds of new speech between partial transcripts (Settings.stream_partial_interval_s)
    speed: float = 1.0
    max_pending_utterances: int = 4
    # Whisper cannot be interrupted, so a guess made in a pause that speech then resumes still holds it ~1 s. At
    # 300 ms (the VAD ends at 400) one-phrase NTREX readings made 0.3 stale guesses per phrase; at 200 ms, 1.2.
    speculate_after_ms: float = 300.0
    context_utterances: int = 2  # previous (transcript, translation) pairs the translator sees
    input_rate: int = MODEL_RATE  # the client's audio; resampled to MODEL_RATE for the VAD and Whisper


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
        self._context = ConversationContext(settings.context_utterances)
        self._resampler = (None if settings.input_rate == MODEL_RATE
                           else soxr.ResampleStream(settings.input_rate, MODEL_RATE, 1, dtype="float32"))
        self._worker = asyncio.create_task(self._work(), name="live-translation-worker")

    # --- ingress -------------------------------------------------------------------------------
    async def push(self, samples: np.ndarray) -> None:
        """Audio at `settings.input_rate`; resampling and the VAD run in the CPU pool, off the event loop."""
        for event in await run_cpu(self._ingest, samples):
            await self._on_vad(event)
        self._maybe_speculate()
        self._maybe_partial()

    def _ingest(self, samples: np.ndarray):
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self.vad.feed(samples)

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
        seconds = round(event.sample / MODEL_RATE, 3)
        if event.kind == "start":
            self._current_id = f"ut_{uuid.uuid4().hex[:12]}"
            self._last_partial_samples = 0
            await self.emit(events.SpeechStarted(self._current_id, seconds))
            return
        utterance = Utterance(self._current_id, event.audio, self.clock(), event.sample, self._speculation)
        self._speculation = None
        await self.emit(events.SpeechEnded(utterance.id, seconds))
        if self.queue.full():
            await self.emit(events.UtteranceFailed(utterance.id, "overloaded",
                                            "too many utterances are waiting to be translated; this one was skipped"))
            return
        self.queue.put_nowait(utterance)

    def _maybe_partial(self) -> None:
        # Partials are best effort: never queue one where a final (this stream's or another's) would wait.
        if (not self.vad.speaking or self.vad.silence_ms > 0 or self._busy or self.transcriber.busy
                or (self._partial and not self._partial.done())):
            return
        audio = self.vad.current_utterance()
        if len(audio) - self._last_partial_samples < self.settings.partial_interval_s * MODEL_RATE:
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
            await self.emit(events.PartialTranscript(utterance_id, text))

    # --- the worker ------------------------------------------------------------------------------
    async def _work(self) -> None:
        while (utterance := await self.queue.get()) is not None:
            self._busy = True
            try:
                if self._partial and not self._partial.done():
                    self._partial.cancel()
                await self._answer(utterance)
            except UniVoiceError as error:
                await self.emit(events.UtteranceFailed(utterance.id, error.code, error.message))
            except Exception:
                log.exception("utterance %s failed", utterance.id)
                await self.emit(events.UtteranceFailed(utterance.id, "internal_error",
                                                "translating this utterance failed; the session goes on"))
            finally:
                self._busy = False

    async def _answer(self, utterance: Utterance) -> None:
        """Transcribe, translate and speak one utterance, then save it to the session's history."""
        s = self.settings
        marks = {"vad_end": utterance.ended_at}
        pending = utterance.transcript or self.transcriber.transcribe(utterance.audio, s.source_language)
        transcript = (await pending).strip()
        marks["transcript"] = self.clock()
        await self.emit(events.FinalTranscript(utterance.id, transcript))
        if not transcript:
            await self.emit(events.UtteranceMetrics(utterance.id, self._timings(marks)))
            return
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        audio = {"sent": 0, "dropped": 0, "samples": 0}
        speaker = asyncio.create_task(self._speak(utterance.id, clauses, marks, audio))
        try:
            translation, fallback = await self._stream_translation(transcript, clauses, marks, speaker)
            await clauses.put(None)
            await self.emit(events.TranslationDone(utterance.id, translation,
                                            engine=fallback.engine if fallback else self.translator.engine,
                                            fallback_reason=fallback.fallback_reason if fallback else None))
            await speaker  # raises what failed synthesis
        except BaseException:
            speaker.cancel()
            await asyncio.gather(speaker, return_exceptions=True)
            if "first_audio" in marks:  # the client saw audio_start: close the utterance's audio
                await self._audio_end(utterance.id, audio)
            raise
        marks["audio_end"] = self.clock()
        timings = self._timings(marks)
        self._context.add(transcript, translation)
        try:  # before audio_end: an utterance the client saw answered is in the history, whatever happens next
            async with asyncio.timeout(SAVE_TIMEOUT_S):
                await self.on_utterance(transcript, translation, timings)
        except Exception as error:  # (a timeout too) the listener has heard it: not an error, a gap in its history
            log_event(log, "utterance not saved", level=logging.ERROR, utterance_id=utterance.id, error=repr(error))
            await self.emit(events.UtteranceWarning(
                utterance.id, "history_not_saved",
                "this utterance was translated but could not be saved to the session's history"))
        if "first_audio" in marks:
            await self._audio_end(utterance.id, audio)
        if audio["dropped"]:
            await self.emit(events.UtteranceWarning(
                utterance.id, "audio_dropped", chunks=audio["dropped"],
                message=f"{audio['dropped']} audio chunk(s) were dropped because the client reads too slowly"))
        await self.emit(events.UtteranceMetrics(utterance.id, timings))

    async def _audio_end(self, utterance_id: str, audio: dict) -> None:
        await self.emit(events.AudioEnded(utterance_id, audio["sent"], round(audio["samples"] / OUTPUT_RATE, 3)))

    async def _stream_translation(self, transcript: str, clauses: asyncio.Queue, marks: dict, speaker: asyncio.Task):
        """Feed the translation's pieces to the clause splitter; returns the whole text and the fallback piece.
        Stops early (closing the stream, so the model stops too) when synthesis has failed."""
        s = self.settings
        splitter, translation, fallback = ClauseStream(), "", None
        pieces = self.translator.stream(transcript, s.source_language, s.target_language, self._context())
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                if speaker.done():
                    break
                marks.setdefault("translation_first_piece", self.clock())
                if piece.fallback_reason:
                    fallback = piece
                if piece.replaces:  # the primary engine's text is withdrawn: what was not spoken yet is dropped
                    while not clauses.empty():
                        clauses.get_nowait()
                    splitter, translation = ClauseStream(), ""
                translation += piece.text
                for clause in splitter.feed(piece.text):
                    await clauses.put(clause)
        for clause in splitter.finish():
            await clauses.put(clause)
        marks["translation"] = self.clock()
        return translation.strip(), fallback

    async def _speak(self, utterance_id: str, clauses: asyncio.Queue, marks: dict, audio: dict) -> None:
        s = self.settings
        while (text := await clauses.get()) is not None:
            spoken = self.synthesizer.speak(text, s.target_language, s.voice, s.speed, shorten_first=False)
            async with contextlib.aclosing(spoken):
                async for clause in spoken:
                    if "first_audio" not in marks:
                        marks["first_audio"] = self.clock()
                        await self.emit(events.AudioStarted(utterance_id, OUTPUT_RATE))
                    for start in range(0, len(clause.audio24k), CHUNK_SAMPLES):
                        chunk = clause.audio24k[start : start + CHUNK_SAMPLES]
                        if await self.emit_audio(chunk):
                            audio["sent"] += 1
                            audio["samples"] += len(chunk)
                        else:
                            audio["dropped"] += 1

    @staticmethod
    def _timings(marks: dict[str, float]) -> dict[str, float]:
        """Milliseconds from the VAD's end of speech to each stage, plus each stage's own duration."""
        start = marks["vad_end"]
        out = {f"{name}_after_end_ms": round(1000 * (t - start), 1) for name, t in marks.items() if name != "vad_end"}
        if "transcript" in marks:
            out["stt_ms"] = out["transcript_after_end_ms"]
        if "translation_first_piece" in marks:
            out["translation_first_piece_ms"] = round(1000 * (marks["translation_first_piece"] - marks["transcript"]), 1)
        if "translation" in marks:
            out["translation_ms"] = round(1000 * (marks["translation"] - marks["transcript"]), 1)
        if "first_audio" in marks:
            # From the first piece of translation: synthesis overlaps the rest of the translation.
            after = marks.get("translation_first_piece", marks["transcript"])
            out["first_clause_synthesis_ms"] = round(1000 * (marks["first_audio"] - after), 1)
        return out
