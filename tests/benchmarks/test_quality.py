"""word_error_rate: the shared WER the synthesis tests and benchmarks report."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.quality import normalise_words, word_error_rate

words = st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "Mat,", "dog!", "¿qué?"])
sentences = st.lists(words, max_size=12).map(" ".join)


@given(st.one_of(st.text(max_size=80), sentences))
def test_a_text_has_no_errors_against_itself(text):
    assert word_error_rate(text, text) == 0.0


@given(sentences, sentences)
def test_the_rate_is_non_negative_and_at_most_the_longer_length_over_the_reference(reference, hypothesis):
    rate = word_error_rate(reference, hypothesis)
    assert 0.0 <= rate <= max(len(normalise_words(reference)), len(normalise_words(hypothesis))) / max(
        1, len(normalise_words(reference))
    )


def test_case_and_punctuation_do_not_count():
    assert word_error_rate("Hello, world! Don't go.", "hello world do not go") == 0.0


def test_numbers_titles_and_spelling_are_written_one_way():
    assert word_error_rate("Mrs. Lind paid twenty-one pounds for the colour",
                           "Missus Lind paid 21 pounds for the color") == 0.0


def test_substitution_deletion_and_insertion_each_count_one():
    assert word_error_rate("the cat sat on the mat", "the cat sit on mat") == 2 / 6
    assert word_error_rate("the cat sat", "the big cat sat") == 1 / 3


def test_an_empty_reference_counts_every_hypothesis_word():
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "two words") == 2.0


def test_hyphenation_is_typography_not_wording():
    assert word_error_rate("ladies-eardrops by the brook", "ladies eardrops by the brook") == 0.0
