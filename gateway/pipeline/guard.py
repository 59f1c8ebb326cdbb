"""Is this LLM output a translation? One function per rule; each returns why not, or None.

The failure modes seen with the 1.5B model as a translator: it answers a question or carries out a
request instead of translating it ("Here's a joke about cats: ..."), refuses a garbled transcript
("I'm sorry, but I can't assist with that."), or wraps the translation in notes or markup. The rules:

* opening: the output starts like a refusal, an apology, an assent or a presentation ("Sure", "Here
  is", "Lo siento", ...) and the source does not start the same way;
* markup: chat-template tokens, code fences, headings, bold, line breaks, "Translation:" labels;
* length: characters out / characters in beyond what translation between these languages does;
* language: the output is not in the target language (lingua, restricted to our languages and their
  near neighbours, on outputs of four words or more);
* question: the source asks, the output does not;
* echo: a long source came back unchanged.
"""

from __future__ import annotations

import asyncio
import re
import threading
import unicodedata

# Openings that mark a reply rather than a translation, by class; each class lists its words in en/es/de/fr.
_OPENINGS = {
    "apology": r"(i'?m|i am) sorry|sorry|my apologies|apologi\w*|excuse me|lo siento|perd[oó]n\w*|disculp\w*|"
               r"es tut mir leid|entschuldig\w*|d[ée]sol[ée]e?|pardon\w*",
    "inability": r"i (can ?not|can't|cannot)|i('m| am) unable|as an (ai|artificial)|no (puedo|es posible)|"
                 r"como (un )?modelo|ich kann (nicht|leider)|als (ki|sprachmodell)|je ne peux|"
                 r"en tant qu'(ia|intelligence|assistant)",
    "assent": r"sure|certainly|of course|absolutely|naturally|gladly|clearly|obviously|claro|por supuesto|"
              r"desde luego|con gusto|natürlich|selbstverständlich|gerne?|klar|bien s[uû]r|certainement|volontiers|"
              r"[ée]videmment|naturellement",
    "presentation": r"here('s| is| are| you go)|aqu[ií] (tienes|tiene|est[aá]n?|va)|hier (ist|sind|bitte)|voici|"
                    r"voil[aà]",
}
_OPENING = {name: re.compile(rf"^\W*({words})\b", re.IGNORECASE) for name, words in _OPENINGS.items()}
_MARKUP = re.compile(r"<\|?(im_start|im_end|endoftext|system|user|assistant)|\|>|```|^#+ |\*\*|\n|"
                     r"^\W*(translation|traducci[oó]n|[üu]bersetzung|traduction|english|spanish|german|french|"
                     r"ingl[eé]s|espa[nñ]ol|translate into)\s*:", re.IGNORECASE | re.MULTILINE)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_RATIO, MIN_RATIO = 2.2, 0.35  # characters out / characters in (NTREX en<->es/de/fr stays within 0.6-1.6)
LENGTH_SLACK = 20  # characters: short texts vary more (names, "OK" -> "De acuerdo")
MIN_WORDS_FOR_LANGUAGE = 4
MIN_WORDS_AT_RELEASE = 5
MIN_TARGET_CONFIDENCE = 0.2  # lingua's confidence that the output is in the target language


def opening(source: str, output: str) -> str | None:
    for name, pattern in _OPENING.items():
        if pattern.search(output) and not pattern.search(source):
            return f"reply_{name}"
    return None


def markup(output: str) -> str | None:
    return "markup" if _MARKUP.search(output.strip()) else None


def too_long(source: str, output: str) -> str | None:
    return "too_long" if len(output.strip()) > MAX_RATIO * len(source.strip()) + LENGTH_SLACK else None


def too_short(source: str, output: str) -> str | None:
    if not output.strip():
        return "empty"
    long_source = len(source.strip()) >= 2 * LENGTH_SLACK  # "Sí, claro." -> "Yes." is fine
    return "too_short" if long_source and len(output.strip()) < MIN_RATIO * len(source.strip()) else None


def unanswered_question(source: str, output: str) -> str | None:
    asks = source.rstrip().endswith("?") or "¿" in source
    return "question_not_kept" if asks and "?" not in output else None


def echo(source: str, output: str, source_language: str, target_language: str) -> str | None:
    def words(text: str) -> list[str]:
        return _WORD.findall(unicodedata.normalize("NFKC", text).lower())

    same = source_language == target_language
    return "untranslated" if not same and len(words(source)) >= 4 and words(source) == words(output) else None


class TranslationGuard:
    """The checks, grouped by when they can run: on a growing prefix, on the first released clause, at the end."""

    def __init__(self, languages: tuple[str, ...] = ("en", "es", "de", "fr")):
        self.languages = languages
        self._detector = None
        self._lock = threading.Lock()

    def check_prefix(self, source: str, output: str, target_language: str) -> str | None:
        return opening(source, output) or markup(output) or too_long(source, output)

    async def check_release_async(self, output: str, source_language: str, target_language: str) -> str | None:
        """`check_release` off the event loop (the first call loads lingua's models, ~2 s)."""
        return await asyncio.to_thread(self.check_release, output, source_language, target_language)

    async def check_final_async(self, source: str, output: str, source_language: str, target_language: str):
        return await asyncio.to_thread(self.check_final, source, output, source_language, target_language)

    def check_release(self, output: str, source_language: str, target_language: str) -> str | None:
        """On the first clause: only the clear case, the source language echoed back. A few words with names
        in them are too little to judge the target language (German news opening with English names)."""
        if len(_WORD.findall(output)) < MIN_WORDS_AT_RELEASE:
            return None
        reason = self.check_language(output, source_language, target_language)
        return reason if reason == f"wrong_language_{source_language}" else None

    def check_language(self, output: str, source_language: str, target_language: str) -> str | None:
        if source_language == target_language or len(_WORD.findall(output)) < MIN_WORDS_FOR_LANGUAGE:
            return None
        detected = self.language_of(output)
        if detected in (None, target_language) or self.confidence(output, target_language) >= MIN_TARGET_CONFIDENCE:
            return None  # e.g. German news full of English names: English first, German still likely
        return f"wrong_language_{detected}"

    def check_final(self, source: str, output: str, source_language: str, target_language: str) -> str | None:
        return (self.check_prefix(source, output, target_language) or too_short(source, output)
                or self.check_language(output, source_language, target_language)
                or unanswered_question(source, output) or echo(source, output, source_language, target_language))

    def language_of(self, text: str) -> str | None:
        """ISO 639-1 code of the most likely language, among ours and their neighbours; None when unsure."""
        detector = self._load()
        language = detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language is not None else None

    def confidence(self, text: str, language: str) -> float:
        return self._load().compute_language_confidence(text, _lingua(language))

    def _load(self):
        with self._lock:
            if self._detector is None:
                from lingua import LanguageDetectorBuilder

                # Neighbours too, so Portuguese- or Italian-looking output is not forced into Spanish or French.
                codes = {*self.languages, "pt", "it", "ca", "nl"}
                self._detector = (LanguageDetectorBuilder.from_languages(*map(_lingua, codes))
                                  .with_minimum_relative_distance(0.1).build())
            return self._detector


def _lingua(code: str):
    """lingua's Language for an ISO 639-1 code."""
    from lingua import IsoCode639_1, Language

    return Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper()))
