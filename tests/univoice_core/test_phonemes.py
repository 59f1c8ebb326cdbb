"""Phonemizer: espeak-ng output rewritten into Kokoro's vocabulary, for any text a translation could hold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from univoice_core.errors import BadRequest
from univoice_core.kokoro import MAX_TOKENS
from univoice_core.phonemes import ESPEAK_VOICES, Phonemizer, load_vocab


@pytest.fixture(scope="module")
def phonemizer() -> Phonemizer:
    return Phonemizer()


# Any code point (lone surrogates included, as JSON can carry them), or words among the marks we handle.
any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=300),
    st.text(alphabet=st.sampled_from("ab cdé.,;:?!¿¡…。、！？—–-'\"()[]{}<>\n\t\x00\u200d😀9"), max_size=300),
)


@settings(max_examples=150, deadline=None)
@given(text=any_text, language=st.sampled_from([*ESPEAK_VOICES, "en-GB", "pt_PT"]))
def test_any_text_gives_valid_ids_or_a_too_long_error(phonemizer, text, language):
    try:
        ids = phonemizer.tokens(text, language)
    except ValueError as error:
        assert "split_clauses" in str(error)
        return
    assert ids.dtype == "int64" and ids.ndim == 1 and len(ids) <= MAX_TOKENS
    assert set(ids.tolist()) <= set(load_vocab().values())


@settings(max_examples=20, deadline=None)
@given(text=st.text(max_size=50), language=st.sampled_from(["ja", "xx", "", "english"]))
def test_an_unknown_language_is_a_bad_request_naming_the_supported_ones(phonemizer, text, language):
    with pytest.raises(BadRequest, match="de, en, es, fr, it, pt") as raised:
        phonemizer.tokens(text, language)
    assert raised.value.code == "unsupported_language"


def test_english_is_rewritten_to_kokoro_symbols_with_its_punctuation(phonemizer):
    assert phonemizer.phonemes("Hello, world! How are you today?", "en") == "həlˈO, wˈɜɹld! hˌW ɑɹ ju tədˈA?"


def test_spanish_opening_marks_are_dropped_and_closing_marks_kept(phonemizer):
    assert phonemizer.phonemes("Hola, ¿cómo estás? ¡Muy bien!", "es") == "ˈola, kˈomo estˈas? mˈuj βjˈen!"


def test_the_final_punctuation_is_the_last_token(phonemizer):
    vocab = load_vocab()
    assert phonemizer.tokens("Is it raining", "en")[-1] != vocab["?"]
    assert phonemizer.tokens("Is it raining?", "en")[-1] == vocab["?"]


def test_punctuation_alone_has_nothing_to_pronounce(phonemizer):
    assert len(phonemizer.tokens(" ... ¿!", "es")) == 0
    assert len(phonemizer.tokens("", "en")) == 0


def test_shell_syntax_is_read_as_text_not_run(phonemizer, tmp_path):
    target = tmp_path / "pwned"
    phonemizer.tokens(f"$(touch {target}) `touch {target}`; touch {target} | cat", "en")
    assert not target.exists()


def test_a_segment_espeak_cuts_on_its_own_keeps_its_words_and_final_mark(phonemizer):
    text = " ".join(["word"] * 300) + "?"  # espeak splits this into several lines; no inner marks to place
    phonemes = phonemizer.phonemes(text, "en")
    assert phonemes.count("wˈɜɹd") == 300 and phonemes.endswith("?")


def test_more_than_510_tokens_asks_to_split_clauses_first(phonemizer):
    with pytest.raises(ValueError, match="split_clauses"):
        phonemizer.tokens(" ".join(["word"] * 300), "en")
