"""split_clauses: what it keeps, how long its clauses are, and that splitting a clause again changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from univoice_core.text import split_clauses

# Text made mostly of words, spaces and the punctuation the splitter reacts to, plus arbitrary characters.
words = st.text(alphabet=st.sampled_from("abcdeéñ xyz 日本  \n\t.,;:!?…¿¡。、！？，"), max_size=600)
anything = st.text(max_size=400)
texts = st.one_of(words, anything)
limits = st.integers(min_value=0, max_value=20).flatmap(
    lambda low: st.tuples(st.integers(min_value=2 * low + 1, max_value=2 * low + 200), st.just(low))
)


def non_space(text: str) -> str:
    return "".join(text.split())


@settings(max_examples=300, deadline=None)
@given(texts, limits)
def test_every_non_space_character_is_kept_in_order(text, limits):
    max_chars, min_chars = limits
    assert non_space("".join(split_clauses(text, max_chars, min_chars))) == non_space(text)


@settings(max_examples=300, deadline=None)
@given(texts, limits)
def test_clauses_are_normalised_and_within_the_length_limits(text, limits):
    max_chars, min_chars = limits
    clauses = split_clauses(text, max_chars, min_chars)
    for clause in clauses:
        assert clause == " ".join(clause.split()) and clause
        assert len(clause) <= max_chars
        assert len(clause) >= min_chars or clauses == [clause]


@settings(max_examples=300, deadline=None)
@given(texts, limits)
def test_clauses_tile_the_normalised_text_separated_by_one_space_or_nothing(text, limits):
    """Nothing is added, dropped or reordered: only whitespace runs shrink to one space (or, between two
    clauses, to nothing: after CJK punctuation or a cut inside a word)."""
    normalised = " ".join(text.split())
    position = 0
    for clause in split_clauses(text, *limits):
        if normalised.startswith(" ", position):
            position += 1
        assert normalised.startswith(clause, position)
        position += len(clause)
    assert position == len(normalised)


@settings(max_examples=300, deadline=None)
@given(texts, limits)
def test_splitting_a_clause_again_gives_it_back(text, limits):
    for clause in split_clauses(text, *limits):
        assert split_clauses(clause, *limits) == [clause]


def test_a_short_first_clause_joins_the_next():
    assert split_clauses("Hola, ¿cómo estás? Muy bien.", min_chars=6) == ["Hola, ¿cómo estás?", "Muy bien."]


def test_spanish_opening_marks_start_their_clause():
    assert split_clauses("Hola, ¿cómo estás? Muy bien.", min_chars=3) == ["Hola,", "¿cómo estás?", "Muy bien."]


def test_short_sentences_are_one_clause_with_the_default_limits():
    assert split_clauses("Hola, ¿cómo estás? Muy bien.") == ["Hola, ¿cómo estás? Muy bien."]


def test_sentences_and_clauses_end_at_their_punctuation():
    text = "I would like a coffee, please. Where is the station? Turn left; then walk on!"
    assert split_clauses(text) == [
        "I would like a coffee,",
        "please. Where is the station?",
        "Turn left; then walk on!",
    ]


def test_decimal_points_and_abbreviation_dots_inside_words_do_not_split():
    clauses = split_clauses("The value is 3.14159 exactly, i.e.not more.")
    assert clauses == ["The value is 3.14159 exactly,", "i.e.not more."]


def test_cjk_punctuation_splits_without_spaces():
    assert split_clauses("今日はとても良い天気ですね。散歩に行きましょうか？", min_chars=5) == [
        "今日はとても良い天気ですね。",
        "散歩に行きましょうか？",
    ]


def test_a_long_clause_is_cut_at_the_last_space_before_the_limit():
    text = " ".join(["word"] * 50)  # 249 characters, no punctuation
    clauses = split_clauses(text, max_chars=100)
    assert clauses == [" ".join(["word"] * 20)] * 2 + [" ".join(["word"] * 10)]


def test_a_word_longer_than_the_limit_is_cut_inside():
    assert split_clauses("x" * 250, max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]


def test_empty_and_blank_text_give_no_clauses():
    assert split_clauses("") == [] and split_clauses(" \n\t ") == []


def test_limits_that_cannot_be_met_are_refused():
    with pytest.raises(ValueError, match="max_chars"):
        split_clauses("text", max_chars=20, min_chars=10)
