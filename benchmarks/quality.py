"""Quality measures shared by the benchmarks and the tests, so a number in a report and a test's threshold
mean the same thing."""

from __future__ import annotations

import unicodedata


def normalise_words(text: str) -> list[str]:
    """Lowercase words with punctuation removed ("Don't!" -> "dont"), so WER counts wording, not typography.

    Dashes separate words ("ladies-eardrops" -> "ladies eardrops"): whether a transcriber hyphenates a
    compound is typography too.
    """
    kept = "".join(
        " " if unicodedata.category(char) == "Pd" else char
        for char in text.lower()
        if unicodedata.category(char) == "Pd" or not unicodedata.category(char).startswith("P")
    )
    return kept.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after `normalise_words`.

    An empty reference counts every hypothesis word as an error over a denominator of one, so the rate
    stays defined: 0.0 for two empty texts.
    """
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    previous = list(range(len(hyp) + 1))  # edit distance from ref[:0] to each prefix of hyp
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1] / max(1, len(ref))
