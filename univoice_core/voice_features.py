"""WORLD vocoder features of a voice: analysis, resynthesis, and the per-profile statistics cloning needs.

One module for the three places that must agree bit for bit: enrolment (the gateway stores a profile's
statistics), training (`training/voice_converter`: parallel data and the converter's targets) and serving
(the Triton `voice_clone` model converts and resynthesizes). Everything runs at 16 kHz (MODEL_RATE), the
rate of the enrolment audio the target envelope is learnt from; numpy + pyworld only.

A voice is described frame by frame (5 ms) by F0, a 40-coefficient coded spectral envelope (WORLD's
mel-cepstrum-like coding: the timbre a converter changes) and aperiodicity (kept from the source).

F0 comes from one of two estimators. DIO is fast (~0.02 s per s) and right on Kokoro's clean speech, so it
analyses synthetic speech (serving, the presets, the converter's sources). Real recordings (enrolment, the
converter's targets) go through Harvest (~0.15 s per s): DIO locks onto mains hum at its 60 Hz floor in
about one LibriSpeech recording in ten (speaker 103, a woman at ~200 Hz, came out at 70 Hz).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from univoice_core.audio import MODEL_RATE

with warnings.catch_warnings():  # pyworld imports pkg_resources
    warnings.simplefilter("ignore")
    import pyworld

FRAME_PERIOD_MS = 5.0
ENVELOPE_DIM = 40
F0_FLOOR, F0_CEIL = 60.0, 500.0
FFT_SIZE = pyworld.get_cheaptrick_fft_size(MODEL_RATE, F0_FLOOR)
# A profile's statistics: log-F0 mean and std over voiced frames, then the envelope's mean and std (per
# coefficient) over speech frames.
STATISTICS_DIM = 2 + 2 * ENVELOPE_DIM
ENVELOPE_MEANS = slice(2, 2 + ENVELOPE_DIM)
ENVELOPE_STDS = slice(2 + ENVELOPE_DIM, STATISTICS_DIM)
SPEECH_RANGE = 4.0  # natural-log units of c0 (~35 dB) below the loud frames still count as speech
MIN_SPEECH_FRAMES = 40  # 0.2 s
STATISTICS_MAX_S = 20.0


@dataclass(frozen=True)
class WorldFeatures:
    f0: np.ndarray  # [T] Hz, 0 where unvoiced
    envelope: np.ndarray  # [T, ENVELOPE_DIM] coded spectral envelope
    aperiodicity: np.ndarray | None  # [T, FFT_SIZE // 2 + 1], None when analysed for statistics only


def analyse(samples16k: np.ndarray, with_aperiodicity: bool = True, f0_method: str = "dio") -> WorldFeatures:
    """16 kHz mono float audio -> WORLD features (F0 by DIO + StoneMask or by Harvest, CheapTrick envelope,
    D4C aperiodicity). `f0_method="harvest"` for real recordings (see the module docstring)."""
    x = np.ascontiguousarray(samples16k, dtype=np.float64).ravel()
    if len(x) < MODEL_RATE // 20:
        raise ValueError(f"{len(x)} samples is too short to analyse: need at least 50 ms at 16 kHz")
    if f0_method == "harvest":
        f0, times = pyworld.harvest(x, MODEL_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    elif f0_method == "dio":
        f0, times = pyworld.dio(x, MODEL_RATE, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, times, MODEL_RATE)
    else:
        raise ValueError(f"unknown F0 estimator {f0_method!r}: 'dio' or 'harvest'")
    spectrum = pyworld.cheaptrick(x, f0, times, MODEL_RATE, fft_size=FFT_SIZE)
    envelope = pyworld.code_spectral_envelope(spectrum, MODEL_RATE, ENVELOPE_DIM)
    aperiodicity = pyworld.d4c(x, f0, times, MODEL_RATE, fft_size=FFT_SIZE) if with_aperiodicity else None
    return WorldFeatures(f0, envelope, aperiodicity)


def synthesise(f0: np.ndarray, envelope: np.ndarray, aperiodicity: np.ndarray) -> np.ndarray:
    """WORLD features -> 16 kHz float32 audio."""
    spectrum = pyworld.decode_spectral_envelope(np.ascontiguousarray(envelope, dtype=np.float64), MODEL_RATE, FFT_SIZE)
    audio = pyworld.synthesize(
        np.ascontiguousarray(f0, dtype=np.float64), spectrum, np.ascontiguousarray(aperiodicity, dtype=np.float64),
        MODEL_RATE, FRAME_PERIOD_MS,
    )
    return audio.astype(np.float32)


def speech_frames(envelope: np.ndarray) -> np.ndarray:
    """Frames loud enough to be speech: c0 within SPEECH_RANGE of the loud (95th percentile) frames."""
    energy = envelope[:, 0]
    return energy >= np.percentile(energy, 95) - SPEECH_RANGE


def statistics(features: WorldFeatures) -> np.ndarray:
    """The profile statistics [STATISTICS_DIM] of one speaker's audio (see the layout above)."""
    voiced = features.f0 > 0
    speech = speech_frames(features.envelope)
    if voiced.sum() < MIN_SPEECH_FRAMES or speech.sum() < MIN_SPEECH_FRAMES:
        raise ValueError("too little voiced speech to describe the voice: enrol at least a few seconds of speech")
    log_f0 = np.log(features.f0[voiced])
    envelope = features.envelope[speech]
    return np.concatenate(
        [[log_f0.mean(), max(log_f0.std(), 0.02)], envelope.mean(axis=0), np.maximum(envelope.std(axis=0), 1e-3)]
    ).astype(np.float32)


def voice_statistics(samples16k: np.ndarray, f0_method: str = "harvest") -> np.ndarray:
    """Statistics of a speaker from their audio: what a voice profile stores at enrolment. Real recordings
    need Harvest; pass `f0_method="dio"` for Kokoro's speech, which serving analyses with DIO. Only the
    first STATISTICS_MAX_S are analysed: the moments have settled by then, and Harvest is slow enough
    (~0.25 s per s) that a 60 s enrolment would otherwise wait 15 s for them."""
    samples = np.asarray(samples16k).ravel()[: int(STATISTICS_MAX_S * MODEL_RATE)]
    return statistics(analyse(samples, with_aperiodicity=False, f0_method=f0_method))


def map_f0(f0: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Move voiced F0 from the source's log-F0 mean/std to the target's; unvoiced frames stay 0."""
    voiced = f0 > 0
    mapped = np.zeros_like(f0, dtype=np.float64)
    log_f0 = np.log(f0[voiced])
    mapped[voiced] = np.exp((log_f0 - source[0]) / source[1] * target[1] + target[0])
    return np.clip(mapped, 0.0, F0_CEIL * 1.5) * voiced
