"""Unit tests of `LiveTranslation`'s scheduling, with fakes for the VAD, transcriber, translator and synthesizer
(fast and deterministic; each fake can be held at a gate to make the pipeline busy): the speculative transcript
of the closing pause, partial transcripts held back while a final transcript is due, `overloaded` when the queue
is full, and `audio_dropped` when the client reads too slowly. The real models run in test_live_translation.py
(real translator and guard), test_vad.py (real Silero) and tests/gateway/api/test_stream.py (everything, over a
WebSocket)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from gateway.pipeline import events, live
from gateway.pipeline.interfaces import SpokenClause, TranslationPiece, Voice
from gateway.pipeline.live import CHUNK_SAMPLES, LiveSettings, LiveTranslation
from gateway.pipeline.vad import VadEvent
from univoice_core.audio import MODEL_RATE

pytestmark = pytest.mark.anyio


class Vad:
    """Says what the test makes it say: whether someone speaks, for how long they have paused, the utterance so
    far, and the events the next `feed` returns."""

    def __init__(self):
        self.speaking, self.silence_ms = False, 0.0
        self.utterance = np.zeros(0, np.float32)
        self.events: list[VadEvent] = []

    def feed(self, samples):
        events, self.events = self.events, []
        return events

    def flush(self):
        return []

    def current_utterance(self):
        return self.utterance if self.speaking else np.zeros(0, np.float32)


class Gate:
    """Where a fake waits until the test opens it; `reached` is set when a call arrives."""

    def __init__(self, is_open: bool = True):
        self.opened, self.reached = asyncio.Event(), asyncio.Event()
        if is_open:
            self.opened.set()

    async def passing(self):
        self.reached.set()
        await self.opened.wait()


class Transcriber:
    """Answers with the length of what it heard, so a transcript tells which audio it came from."""

    def __init__(self):
        self.busy = False
        self.heard: list[int] = []
        self.cancelled: list[int] = []
        self.gate = Gate()

    async def transcribe(self, samples16k, language):
        self.heard.append(len(samples16k))
        try:
            await self.gate.passing()
        except asyncio.CancelledError:
            self.cancelled.append(len(samples16k))
            raise
        return heard(len(samples16k))


def heard(samples: int) -> str:
    return f"{samples} samples"


def translated(text: str) -> str:
    return f"Translated {text}."


class Translator:
    engine = "fake"

    def __init__(self, reply=translated):
        self.texts: list[str] = []
        self.reply = reply
        self.gate = Gate()

    async def stream(self, text, source_language, target_language, context=()):
        self.texts.append(text)
        await self.gate.passing()
        yield TranslationPiece(self.reply(text), self.engine)


class Synthesizer:
    """0.5 s of audio per clause: 3 chunks of CHUNK_SAMPLES (200 ms), the last one short."""

    def __init__(self):
        self.said: list[str] = []

    async def speak(self, text, language, voice, speed=1.0, shorten_first=True):
        self.said.append(text)
        yield SpokenClause(text, np.full(12_000, 0.1, np.float32))


class Session:
    """One LiveTranslation on the fakes, with everything it emits."""

    def __init__(self, *, max_pending=4, partial_interval_s=60.0, audio_accepted=None, reply=translated):
        self.vad, self.transcriber, self.translator = Vad(), Transcriber(), Translator(reply)
        self.synthesizer = Synthesizer()
        self.events, self.persisted = [], []
        self.audio_accepted = audio_accepted  # a list of bools for successive chunks; None: all accepted
        self.live = LiveTranslation(
            LiveSettings("en", "es", Voice("test"), partial_interval_s=partial_interval_s,
                         max_pending_utterances=max_pending, speculate_after_ms=200.0),
            transcriber=self.transcriber, translator=self.translator, synthesizer=self.synthesizer,
            vad=self.vad, emit=self._emit, emit_audio=self._emit_audio, on_utterance=self._persist)
        self.position = 0
        self.utterance_ids: list[str] = []

    async def _emit(self, event):
        self.events.append(event)
        if isinstance(event, events.SpeechStarted):
            self.utterance_ids.append(event.utterance_id)

    async def _emit_audio(self, chunk):
        return self.audio_accepted.pop(0) if self.audio_accepted else True

    async def _persist(self, transcript, translation, timings):
        self.persisted.append((transcript, translation))

    async def push(self, **vad_state):
        for name, value in vad_state.items():
            setattr(self.vad, name, value)
        await self.live.push(np.zeros(320, np.float32))
        await settle()

    async def start(self):
        self.vad.events = [VadEvent("start", self.position)]
        await self.push(speaking=True, silence_ms=0.0, utterance=seconds(0.1))

    async def talk(self, duration: float, pause_ms: float = 0.0):
        await self.push(utterance=seconds(duration), silence_ms=pause_ms)

    async def end(self, duration: float):
        self.position += int(duration * MODEL_RATE)
        self.vad.events = [VadEvent("end", self.position, seconds(duration))]
        await self.push(speaking=False, silence_ms=0.0)

    async def utterance(self, duration: float):
        await self.start()
        await self.end(duration)

    def of_type(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    async def finish(self):
        self.transcriber.gate.opened.set()
        self.translator.gate.opened.set()
        await asyncio.wait_for(self.live.finish(), 10)


def seconds(duration: float) -> np.ndarray:
    return np.zeros(int(duration * MODEL_RATE), np.float32)


async def settle():
    """Let every task that can run, run (the fakes never sleep)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def until(condition, steps: int = 1000):
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the pipeline never got there")


# --- speculation --------------------------------------------------------------------------------------


async def test_the_transcript_started_in_the_closing_pause_is_the_final_one():
    session = Session()
    await session.start()
    await session.talk(1.5)
    await session.talk(1.6, pause_ms=150)  # a pause, but shorter than speculate_after_ms
    assert session.transcriber.heard == []
    await session.talk(1.7, pause_ms=250)  # the speaker has paused long enough: transcribe what they said
    assert session.transcriber.heard == [int(1.7 * MODEL_RATE)]
    await session.talk(1.7, pause_ms=300)  # once per pause
    await session.end(2.0)  # the VAD's utterance, with its pads, is longer than the speculative one
    await session.finish()
    assert session.transcriber.heard == [int(1.7 * MODEL_RATE)]  # no second transcription
    assert [t.text for t in session.of_type(events.FinalTranscript)] == [heard(int(1.7 * MODEL_RATE))]
    assert session.persisted == [(heard(int(1.7 * MODEL_RATE)), translated(heard(int(1.7 * MODEL_RATE))))]


async def test_a_guess_is_dropped_when_speech_resumes_and_the_whole_utterance_is_transcribed():
    session = Session()
    session.transcriber.gate = Gate(is_open=False)  # the guess is still running when the speaker goes on
    await session.start()
    await session.talk(1.0, pause_ms=250)
    assert session.transcriber.heard == [MODEL_RATE]
    await session.talk(1.5, pause_ms=0.0)  # speech resumed
    assert session.transcriber.cancelled == [MODEL_RATE]
    session.transcriber.gate.opened.set()
    await session.end(2.5)
    await session.finish()
    assert session.transcriber.heard == [MODEL_RATE, int(2.5 * MODEL_RATE)]
    assert [t.text for t in session.of_type(events.FinalTranscript)] == [heard(int(2.5 * MODEL_RATE))]


async def test_a_new_pause_after_a_dropped_guess_makes_a_new_guess():
    session = Session()
    await session.start()
    await session.talk(1.0, pause_ms=250)
    await session.talk(1.5, pause_ms=0.0)
    await session.talk(2.0, pause_ms=250)
    await session.end(2.3)
    await session.finish()
    assert session.transcriber.heard == [MODEL_RATE, 2 * MODEL_RATE]
    assert [t.text for t in session.of_type(events.FinalTranscript)] == [heard(2 * MODEL_RATE)]


# --- partial transcripts --------------------------------------------------------------------------------


async def test_partials_come_every_interval_while_someone_speaks():
    session = Session(partial_interval_s=1.0)
    await session.start()
    await session.talk(0.5)
    await session.talk(1.2)
    await session.talk(1.8)  # under a second more than the last partial
    await session.talk(2.4)
    await session.talk(2.6, pause_ms=100)  # paused: no partial
    assert session.transcriber.heard == [int(1.2 * MODEL_RATE), int(2.4 * MODEL_RATE)]
    partials = session.of_type(events.PartialTranscript)
    assert [p.text for p in partials] == [heard(int(1.2 * MODEL_RATE)), heard(int(2.4 * MODEL_RATE))]
    assert {p.utterance_id for p in partials} == {session.utterance_ids[0]}
    await session.finish()


async def test_no_partial_is_asked_for_while_a_final_transcript_is_being_translated():
    session = Session(partial_interval_s=1.0)
    session.translator.gate = Gate(is_open=False)
    await session.utterance(1.0)
    await asyncio.wait_for(session.translator.gate.reached.wait(), 5)  # the worker is busy with utterance 1
    final_transcripts = len(session.transcriber.heard)
    await session.start()
    await session.talk(1.5)
    await session.talk(3.0)
    assert len(session.transcriber.heard) == final_transcripts  # no partial while the worker is busy
    session.translator.gate.opened.set()
    await until(lambda: session.persisted)  # utterance 1 is answered: the worker is idle again
    await session.talk(4.5)
    assert session.transcriber.heard[final_transcripts:] == [int(4.5 * MODEL_RATE)]
    assert [p.text for p in session.of_type(events.PartialTranscript)] == [heard(int(4.5 * MODEL_RATE))]
    await session.finish()


async def test_no_partial_is_asked_for_while_the_transcriber_is_busy_with_other_work():
    session = Session(partial_interval_s=1.0)
    session.transcriber.busy = True  # another stream's final transcript, say
    await session.start()
    await session.talk(1.5)
    await session.talk(3.0)
    assert session.transcriber.heard == []
    session.transcriber.busy = False
    await session.talk(3.2)
    assert session.transcriber.heard == [int(3.2 * MODEL_RATE)]
    await session.finish()


async def test_a_partial_still_running_when_the_utterance_ends_is_never_sent():
    session = Session(partial_interval_s=1.0)
    session.transcriber.gate = Gate(is_open=False)
    await session.start()
    await session.talk(1.2)
    assert session.transcriber.heard == [int(1.2 * MODEL_RATE)]
    await session.end(1.5)  # the worker cancels the partial before it transcribes the whole utterance
    session.transcriber.gate.opened.set()
    await session.finish()
    assert session.of_type(events.PartialTranscript) == []
    assert [t.text for t in session.of_type(events.FinalTranscript)] == [heard(int(1.5 * MODEL_RATE))]


# --- overload and slow readers --------------------------------------------------------------------------


async def test_an_utterance_beyond_the_queue_is_skipped_with_overloaded_and_the_others_are_answered():
    session = Session(max_pending=1)
    session.translator.gate = Gate(is_open=False)
    await session.utterance(1.0)
    await asyncio.wait_for(session.translator.gate.reached.wait(), 5)  # the worker holds utterance 1
    await session.utterance(1.1)  # waits in the queue (its one place)
    assert session.of_type(events.UtteranceFailed) == []
    await session.utterance(1.2)  # no room: skipped
    first, second, third = session.utterance_ids
    errors = session.of_type(events.UtteranceFailed)
    assert [(e.code, e.utterance_id) for e in errors] == [("overloaded", third)]
    await session.finish()
    assert [t.utterance_id for t in session.of_type(events.TranslationDone)] == [first, second]
    heard_texts = [t.text for t in session.of_type(events.FinalTranscript)]
    assert heard_texts == [heard(MODEL_RATE), heard(int(1.1 * MODEL_RATE))]


async def test_chunks_the_client_could_not_take_are_counted_in_an_audio_dropped_warning():
    # One clause: 0.5 s at 24 kHz, 3 chunks of 200 ms (the last one short); the client takes only the first.
    session = Session(audio_accepted=[True, False, False], reply=lambda text: "Vale.")
    await session.utterance(1.0)
    await session.finish()
    (warning,) = session.of_type(events.UtteranceWarning)
    assert warning.code == "audio_dropped" and warning.chunks == 2
    assert warning.utterance_id == session.utterance_ids[0]
    (end,) = session.of_type(events.AudioEnded)
    assert end.chunks == 1 and end.seconds == CHUNK_SAMPLES / 24_000 and session.synthesizer.said == ["Vale."]
    types = [type(e) for e in session.events]
    assert types.index(events.AudioEnded) < types.index(events.UtteranceWarning) < types.index(events.UtteranceMetrics)


async def test_no_warning_when_the_client_takes_every_chunk():
    session = Session(reply=lambda text: "Vale.")
    await session.utterance(1.0)
    await session.finish()
    assert session.of_type(events.UtteranceWarning) == [] and session.of_type(events.UtteranceFailed) == []
    (end,) = session.of_type(events.AudioEnded)
    assert end.chunks == 3 and end.seconds == 0.5 and session.synthesizer.said == ["Vale."]


async def test_an_answered_utterance_the_store_could_not_save_is_a_warning_and_the_next_is_answered():
    session = Session()
    failures = iter([RuntimeError("store down")])

    async def flaky_persist(transcript, translation, timings):
        if (failure := next(failures, None)) is not None:
            raise failure
        session.persisted.append((transcript, translation))

    session.live.on_utterance = flaky_persist
    await session.utterance(1.0)
    await session.utterance(1.0)
    await session.finish()
    assert [w.code for w in session.of_type(events.UtteranceWarning)] == ["history_not_saved"]
    assert session.of_type(events.UtteranceWarning)[0].utterance_id == session.utterance_ids[0]
    assert not session.of_type(events.UtteranceFailed) and len(session.of_type(events.AudioEnded)) == 2
    assert len(session.persisted) == 1


async def test_an_utterance_is_saved_before_its_audio_end_is_sent():
    """A client that saw `audio_end` finds the utterance in the history, even if the gateway dies right after."""
    session = Session()
    order = []

    async def persist(transcript, translation, timings):
        order.append("saved")

    async def emit(event):
        order.append(type(event).__name__)

    session.live.on_utterance, session.live.emit = persist, emit
    await session.utterance(1.0)
    await session.finish()
    assert order.index("saved") < order.index("AudioEnded")


async def test_a_store_that_hangs_delays_audio_end_by_the_save_timeout_at_most(monkeypatch):
    monkeypatch.setattr(live, "SAVE_TIMEOUT_S", 0.05)
    session = Session()

    async def hanging(transcript, translation, timings):
        await asyncio.Event().wait()

    session.live.on_utterance = hanging
    await session.utterance(1.0)
    await session.finish()
    assert [w.code for w in session.of_type(events.UtteranceWarning)] == ["history_not_saved"]
    assert len(session.of_type(events.AudioEnded)) == 1
