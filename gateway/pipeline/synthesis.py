"""Kokoro over Triton, clause by clause: the first clause is played while the next ones are made."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from gateway.pipeline.interfaces import SpokenClause, Voice
from gateway.triton.client import TritonClient
from univoice_core.audio import OUTPUT_RATE
from univoice_core.errors import BadRequest
from univoice_core.kokoro import MAX_SPEED, MIN_SPEED, style_row
from univoice_core.phonemes import Phonemizer, espeak_voice
from univoice_core.text import FIRST_CLAUSE_CHARS, MAX_CLAUSE_CHARS, MIN_CLAUSE_CHARS, split_clauses


class KokoroSynthesizer:
    """`SpeechSynthesizer` on Triton, with espeak-ng phonemes: the `synthesizer` model for a preset voice,
    `voice_clone` for an enrolled speaker."""

    def __init__(
        self, triton: TritonClient, phonemizer: Phonemizer | None = None, max_chars: int = MAX_CLAUSE_CHARS,
        min_chars: int = MIN_CLAUSE_CHARS, first_max_chars: int = FIRST_CLAUSE_CHARS,
    ):
        self.triton = triton
        self.phonemizer = phonemizer or Phonemizer()
        self.max_chars = max_chars
        self.min_chars = min_chars
        self.first_max_chars = first_max_chars

    async def speak(self, text: str, language: str, voice: Voice, speed: float = 1.0,
                    shorten_first: bool = True) -> AsyncIterator[SpokenClause]:
        """One SpokenClause per clause of `split_clauses`, in order; a clause with nothing to pronounce is
        skipped. espeak runs in a thread, phonemizing the next clause while Triton synthesizes this one.
        `shorten_first=False`: `text` is not the start of what the listener hears (a later clause)."""
        espeak_voice(language)  # refuse an unsupported language before anything is yielded
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise BadRequest(f"speed {speed} is outside {MIN_SPEED}..{MAX_SPEED}", code="invalid_speed")
        clauses = deque(split_clauses(text, self.max_chars, self.min_chars))
        if shorten_first and clauses and len(clauses[0]) > self.first_max_chars:
            # The listener waits for the first clause alone: keep it short, the rest follows while it plays.
            clauses.extendleft(reversed(split_clauses(clauses.popleft(), self.first_max_chars, self.min_chars)))
        ahead = self._phonemize_next(clauses, language)
        try:
            while clauses:
                clause = clauses.popleft()
                try:
                    tokens = await ahead
                except ValueError:  # over 510 tokens (long numbers read out digit by digit): halve and retry
                    if len(clause) < 2:
                        raise
                    clauses.extendleft(reversed(split_clauses(clause, max(1, len(clause) // 2), 0)))
                    ahead = self._phonemize_next(clauses, language)
                    continue
                ahead = self._phonemize_next(clauses, language)
                if len(tokens) == 0:
                    continue
                if voice.cloned:
                    audio = await self.triton.synthesize_cloned(tokens, voice.embedding, voice.statistics, speed)
                else:
                    audio = await self.triton.synthesize(tokens, voice.styles[style_row(len(tokens))], speed)
                yield SpokenClause(clause, trim_silence(audio))
        finally:
            if ahead is not None:  # the listener stopped early or a call failed: drop the work ahead
                ahead.cancel()

    def _phonemize_next(self, clauses: deque[str], language: str) -> asyncio.Task | None:
        """Start phonemizing the next clause in a thread, so it overlaps the current synthesis."""
        if not clauses:
            return None
        return asyncio.create_task(asyncio.to_thread(self.phonemizer.tokens, clauses[0], language))


def trim_silence(audio: np.ndarray, threshold: float = 0.003, pad_s: float = 0.03) -> np.ndarray:
    """Cut leading and trailing samples quieter than `threshold` (-50 dBFS), keeping `pad_s` around the sound so
    onsets and decays are not clipped. Audio with nothing above the threshold is returned as it is.

    -50 dBFS, not -40: the release of a final plosive is quieter than -40 dBFS in Kokoro's speech, and cutting
    there took it off ("...by a brook." was heard as "...by a bro." by Whisper; measured 2026-12-01)."""
    audio = np.asarray(audio, dtype=np.float32).ravel()
    loud = np.flatnonzero(np.abs(audio) >= threshold)
    if len(loud) == 0:
        return audio
    pad = int(pad_s * OUTPUT_RATE)
    return audio[max(0, loud[0] - pad) : loud[-1] + 1 + pad]
