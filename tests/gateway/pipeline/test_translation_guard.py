"""The guard rails on the LLM's output, rule by rule, and `GuardedTranslator`'s release and fallback logic.

The primary engine here is a scripted stand-in that streams a given output (what the 1.5B model was seen
to produce); the fallback is the real Apertium. `tests/gateway/pipeline/test_translator_llm.py` runs the real LLM.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline.guard import TranslationGuard
from gateway.pipeline.interfaces import TranslationPiece
from gateway.pipeline.translate import GuardedTranslator, apertium, translate_all
from univoice_core.errors import Unavailable
from univoice_core.text import ClauseStream, split_clauses


@pytest.fixture(scope="module")
def guard() -> TranslationGuard:
    return TranslationGuard()


@pytest.mark.parametrize("source, output, reason", [
    ("Dime un chiste sobre gatos.", "Here's a joke about cats: Why did the cat cross the road?", "reply_presentation"),
    ("asdf qwerty zxcv jkl", "I'm sorry, but I can't assist with that.", "reply_apology"),
    ("¿Me ayudas con esto?", "Sure, I can help with that.", "reply_assent"),
    ("Escribe un programa.", "As an AI, I cannot write programs.", "reply_inability"),
    ("¿Cuál es la capital de Francia?", "The capital of France is Paris.", "question_not_kept"),
    ("Hola, me llamo Juan y vivo en Madrid.", "Hola, me llamo Juan y vivo en Madrid.", "wrong_language_es"),
    ("Hola.", "Translation: Hello.", "markup"),
    ("Hola.", "Hello.\nNote: this is informal.", "markup"),
    ("Hola.", "<|im_start|>Hello", "markup"),
    ("Sí.", "Yes. " + "And then the model kept talking about something else entirely. " * 2, "too_long"),
    ("Creo que mañana lloverá en toda la región del norte del país.", "I think.", "too_short"),
])
def test_each_failure_mode_is_caught(guard, source, output, reason):
    assert guard.check_final(source, output, "es", "en") == reason


@pytest.mark.parametrize("source, output", [
    ("Lo siento, llego tarde.", "Sorry, I'm late."),  # an apology translated is not a refusal
    ("¿Cuál es la capital de Francia?", "What is the capital of France?"),
    ("Claro que sí, nos vemos mañana.", "Of course, see you tomorrow."),
    ("Creo que mañana lloverá en toda la región.", "I think it will rain across the region tomorrow."),
    ("Juan García.", "Juan García."),  # names alone: too short to judge the language
    ("Aquí están tus llaves.", "Here are your keys."),
    ("Disculpa, ¿dónde está el baño?", "Excuse me, where is the bathroom?"),
])
def test_real_translations_pass(guard, source, output):
    assert guard.check_final(source, output, "es", "en") is None


@pytest.mark.parametrize("source, output", [
    ("I'm not sure we can make it tonight.", "Je ne suis pas sûr que nous puissions venir ce soir."),
    ("As an engineer, I disagree with that plan.", "En tant qu'ingénieur, je ne suis pas d'accord avec ce plan."),
    ("Naturally, we will pay for the damage.", "Naturellement, nous paierons les dégâts."),
    ("Gladly, I will help you move tomorrow.", "Volontiers, je t'aiderai à déménager demain."),
])
def test_openings_that_the_source_has_too_pass(guard, source, output):
    assert guard.check_final(source, output, "en", "fr") is None


@pytest.mark.parametrize("source, output", [
    ("Erzähl mir einen Witz.", "Disculpa, no puedo hacer eso."),
    ("Erzähl mir einen Witz.", "Entschuldigung, das kann ich nicht."),
])
def test_apology_stems_are_caught(guard, source, output):
    assert guard.check_prefix(source, output, "es") == "reply_apology"


class Scripted:
    """A stand-in primary engine that streams a fixed output word by word."""

    engine = "llm"

    def __init__(self, output: str):
        self.output, self.closed = output, False

    async def stream(self, text, source_language, target_language, context=()):
        try:
            for word in self.output.split(" "):
                yield TranslationPiece(word + " ", self.engine)
        finally:
            self.closed = True


@pytest.mark.anyio
async def test_a_refusal_is_never_passed_on_and_apertium_translates_instead(guard):
    primary = Scripted("Here's a joke about cats: why did the cat cross the road? To get to the other side!")
    pieces = [p async for p in GuardedTranslator(primary, apertium("es-en"), guard).stream(
        "Dime un chiste sobre gatos.", "es", "en")]
    assert all(p.engine == "apertium" for p in pieces)  # not one piece of the reply got through
    assert pieces[0].fallback_reason == "reply_presentation" and not pieces[0].replaces
    assert "".join(p.text for p in pieces) == "Say me a joke on cats."  # Apertium: gist, but a translation
    assert primary.closed  # the LLM was stopped


@pytest.mark.anyio
async def test_a_good_translation_streams_after_the_first_clause(guard):
    output = "I think we should leave now, because it is getting dark and the road is long."
    pieces = [p async for p in GuardedTranslator(Scripted(output), apertium("es-en"), guard).stream(
        "Creo que deberíamos irnos ya, porque está oscureciendo y el camino es largo.", "es", "en")]
    assert len(pieces) > 3 and all(p.engine == "llm" and p.fallback_reason is None for p in pieces)
    assert len(pieces[0].text) >= 24  # held back until the language and opening could be judged
    assert "".join(p.text for p in pieces).strip() == output


@pytest.mark.anyio
async def test_a_late_failure_replaces_the_text_with_apertiums(guard):
    output = "We will meet at the station at noon,\nNote: this translation is informal and may vary."
    text, fallback = await translate_all(GuardedTranslator(Scripted(output), apertium("es-en"), guard),
                                         "Nos vemos en la estación a mediodía.", "es", "en")
    assert fallback is not None and fallback.replaces and fallback.fallback_reason == "markup"
    assert text == await apertium("es-en").translate("Nos vemos en la estación a mediodía.", "es", "en")


class Unreachable:
    engine = "llm"

    async def stream(self, text, source_language, target_language, context=()):
        raise Unavailable("the inference server is unreachable (translator); retry shortly", code="triton_unavailable")
        yield


@pytest.mark.anyio
async def test_an_unreachable_llm_falls_back_to_apertium(guard):
    text, fallback = await translate_all(GuardedTranslator(Unreachable(), apertium("es-en"), guard),
                                         "El perro come pan.", "es", "en")
    assert text == "The dog eats bread." and fallback.fallback_reason == "llm_unavailable"


@pytest.mark.anyio
async def test_without_a_fallback_the_utterance_fails_with_a_clear_code(guard):
    with pytest.raises(Unavailable) as error:
        await translate_all(GuardedTranslator(Scripted("I'm sorry, I can't help with that."), None, guard),
                            "Erzähl mir einen Witz.", "de", "en")
    assert error.value.code == "translation_rejected" and "no fallback" in error.value.message


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("abc ,.?¿!")), max_size=200),
       cuts=st.lists(st.integers(1, 8), max_size=60))
def test_clause_stream_releases_the_text_in_order_and_whole(text, cuts):
    """Whatever the pieces, the released clauses are the text's words in order and none over its limit (the
    first: first_max_chars, or first_max_chars + min_chars when that is the whole text)."""
    stream, out, position = ClauseStream(max_chars=40, min_chars=5, first_max_chars=16), [], 0
    for size in cuts:
        out += stream.feed(text[position : position + size])
        position += size
    out += stream.feed(text[position:]) + stream.finish()
    assert " ".join(out).split() == text.split() or "".join(" ".join(out).split()) == "".join(text.split())
    assert all(len(c) <= 40 for c in out) and all(len(c) <= (16 if len(out) > 1 else 21) for c in out[:1])


def test_clause_stream_matches_the_batch_split_on_a_sentence():
    text = "Hello, how are you? My name is Juan and I have lived in Madrid for ten years, and I like it a lot."
    stream, released = ClauseStream(), []
    for word in text.split(" "):
        released += stream.feed(word + " ")
    released += stream.finish()
    assert released[0] == "Hello, how are you?"  # out before the rest was generated
    assert released == split_clauses(text, 160, 12)
