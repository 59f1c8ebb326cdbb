"""The small interfaces the pipeline is built from; each provider is one file implementing one of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Transcriber(Protocol):
    """Speech -> text in a known language. Called on a growing buffer for partials, then on the whole utterance."""

    async def transcribe(self, samples16k: np.ndarray, language: str) -> str: ...

    @property
    def busy(self) -> bool:
        """True while calls are queued or running: best-effort work (partials) should then wait its turn."""


Context = Sequence[tuple[str, str]]  # a session's previous utterances: (transcript, translation), oldest first


@dataclass(frozen=True)
class TranslationPiece:
    """Some translated text, as it is generated. `engine` made it; a fallback's first piece says why the primary
    engine's output was refused, and `replaces` when text from the primary was already passed on."""

    text: str
    engine: str
    fallback_reason: str | None = None
    replaces: bool = False


class Translator(Protocol):
    engine: str

    def stream(self, text: str, source_language: str, target_language: str,
               context: Context = ()) -> AsyncIterator[TranslationPiece]:
        """The translation of `text` piece by piece (a provider without streaming yields one piece). `context`
        helps with pronouns and terminology; it is not translated again."""


@dataclass(frozen=True)
class Voice:
    """What the synthesizer is conditioned on: a Kokoro preset (a style table), or an enrolled speaker to
    clone (the profile's speaker embedding and voice statistics, for Triton's `voice_clone`)."""

    name: str
    styles: np.ndarray | None = None  # preset: [510, 256], the row by univoice_core.kokoro.style_row
    embedding: np.ndarray | None = None  # clone: [256]
    statistics: np.ndarray | None = None  # clone: univoice_core.voice_features.STATISTICS_DIM values

    @property
    def cloned(self) -> bool:
        return self.statistics is not None


@dataclass(frozen=True)
class SpokenClause:
    text: str
    audio24k: np.ndarray  # float32 at univoice_core.audio.OUTPUT_RATE


class SpeechSynthesizer(Protocol):
    def speak(self, text: str, language: str, voice: Voice, speed: float = 1.0,
              shorten_first: bool = True) -> AsyncIterator[SpokenClause]:
        """Yield the audio clause by clause, so the first clause can be played while the rest is made.
        `shorten_first`: cut the first clause short (the listener waits for it alone)."""
