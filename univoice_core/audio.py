"""The two sample rates, and the resampling and file reading that more than one package does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

MODEL_RATE = 16_000  # what the models hear: Whisper, the VAD, the speaker encoder, WORLD analysis
OUTPUT_RATE = 24_000  # what the synthesizer (Kokoro) produces; the stream sends it unchanged


def to_model_rate(samples: np.ndarray, rate: int = OUTPUT_RATE) -> np.ndarray:
    """Mono float32 audio at MODEL_RATE (soxr HQ); by default from the synthesizer's OUTPUT_RATE."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate == MODEL_RATE:
        return samples
    return soxr.resample(samples, rate, MODEL_RATE).astype(np.float32, copy=False)


def read_16k(path: Path) -> np.ndarray:
    """A mono recording (LibriSpeech FLAC) as float32 at MODEL_RATE."""
    import soundfile  # here, not above: the Triton models import this module and their image has no soundfile

    samples, rate = soundfile.read(path, dtype="float32")
    return to_model_rate(samples, rate)
