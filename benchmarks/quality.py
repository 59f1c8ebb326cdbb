"""Quality measures shared by the benchmarks and the tests, so a number in a report and a test's threshold
mean the same thing."""

from __future__ import annotations

from functools import cache

from whisper_normalizer.english import EnglishTextNormalizer


@cache
def _english() -> EnglishTextNormalizer:
    return EnglishTextNormalizer()


def normalise_words(text: str) -> list[str]:
    """English words as Whisper's own WER evaluations normalise them (openai/whisper `EnglishTextNormalizer`,
    ported by whisper-normalizer): lowercase, no punctuation, contractions expanded, numbers as digits
    ("twenty one" -> "21"), titles spelled out ("Mrs." -> "missus"), British spellings made American, dashes
    between words as spaces. So a WER counts wording, not the way Whisper happens to write it.
    """
    return _english()(text).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after `normalise_words`: summed over clips,
    their ratio is a corpus WER."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    previous = list(range(len(hyp) + 1))  # edit distance from ref[:0] to each prefix of hyp
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word errors over reference words. An empty reference counts every hypothesis word as an error over a
    denominator of one, so the rate stays defined: 0.0 for two empty texts."""
    errors, words = word_errors(reference, hypothesis)
    return errors / max(1, words)
