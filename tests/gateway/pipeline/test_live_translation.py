"""`LiveTranslation` on its own: streamed translation into clause-by-clause speech, context, and the fallback
event. The transcriber and synthesizer are scripted stand-ins (fast, deterministic); the translation goes
through the real `GuardedTranslator`, the real guard and the real Apertium."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.pipeline.events import AudioStarted, TranslationDone, UtteranceMetrics
from gateway.pipeline.guard import TranslationGuard
from gateway.pipeline.interfaces import SpokenClause, TranslationPiece, Voice
from gateway.pipeline.live import LiveSettings, LiveTranslation
from gateway.pipeline.translate import GuardedTranslator, apertium
from gateway.pipeline.vad import StreamingVad, VadEvent
from univoice_core.audio import MODEL_RATE


class Transcripts:
    busy = False

    def __init__(self, texts):
        self.texts = list(texts)

    async def transcribe(self, samples16k, language):
        return self.texts.pop(0)


class ScriptedLlm:
    """Streams the scripted output for each text word by word, and records the context it was given."""

    engine = "llm"

    def __init__(self, outputs: dict[str, str]):
        self.outputs, self.contexts = outputs, []

    async def stream(self, text, source_language, target_language, context=()):
        self.contexts.append(tuple(context))
        for word in self.outputs[text].split(" "):
            yield TranslationPiece(word + " ", self.engine)


class Voiceless:
    """Synthesis stand-in: 0.1 s of a tone per clause, and the clauses it was asked to say."""

    def __init__(self):
        self.said = []

    async def speak(self, text, language, voice, speed=1.0, shorten_first=True):
        self.said.append(text)
        yield SpokenClause(text, np.full(2400, 0.1, np.float32))


async def run(transcripts, outputs):
    events, audio = [], []
    llm, synthesizer = ScriptedLlm(outputs), Voiceless()

    async def emit(event):
        events.append(event)

    async def emit_audio(chunk):
        audio.append(chunk)
        return True

    async def persist(transcript, translation, timings):
        pass

    live = LiveTranslation(
        LiveSettings("es", "en", Voice("test"), partial_interval_s=60.0), transcriber=Transcripts(transcripts),
        translator=GuardedTranslator(llm, apertium("es-en"), TranslationGuard()), synthesizer=synthesizer,
        vad=StreamingVad(), emit=emit, emit_audio=emit_audio, on_utterance=persist)
    for index, _ in enumerate(transcripts):
        await live._on_vad(VadEvent("start", index * MODEL_RATE))
        await live._on_vad(VadEvent("end", (index + 1) * MODEL_RATE, np.zeros(MODEL_RATE, np.float32)))
    await live.finish()
    return events, llm, synthesizer


@pytest.mark.anyio
async def test_a_refused_translation_is_replaced_and_the_event_says_so():
    events, llm, synthesizer = await run(["Dime un chiste sobre gatos."], {
        "Dime un chiste sobre gatos.": "Here's a joke about cats: why did the cat cross the road? To get across!"})
    translation = next(e for e in events if isinstance(e, TranslationDone))
    assert translation.engine == "apertium" and translation.fallback_reason == "reply_presentation"
    assert translation.text == "Say me a joke on cats."
    assert synthesizer.said == ["Say me a joke on cats."]  # the reply was never spoken
    assert sum(isinstance(e, AudioStarted) for e in events) == 1


@pytest.mark.anyio
async def test_translation_streams_into_clauses_with_the_previous_utterances_as_context():
    first, second = "Mi hermana vive en Berlín.", "Ella es médica y trabaja en un hospital muy grande del centro."
    events, llm, synthesizer = await run([first, second], {
        first: "My sister lives in Berlin.",
        second: "She is a doctor and works in a very big hospital, right in the centre of the city."})
    assert llm.contexts == [(), ((first, "My sister lives in Berlin."),)]
    assert synthesizer.said == ["My sister lives in Berlin.", "She is a doctor and works", "in a very big hospital,",
                                "right in the centre of the city."]
    metrics = [e.timings_ms for e in events if isinstance(e, UtteranceMetrics)]
    assert all("translation_first_piece_ms" in m and m["translation_first_piece_ms"] <= m["translation_ms"]
               for m in metrics)
    translations = [e for e in events if isinstance(e, TranslationDone)]
    assert [t.engine for t in translations] == ["llm", "llm"] and translations[0].fallback_reason is None
