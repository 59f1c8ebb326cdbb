"""gateway.audio on real LibriSpeech speech: decoding, resampling, PCM16 framing, VAD, enrolment checks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gateway import audio as audio_module
from gateway.audio import (
    Audio,
    ClipVad,
    check_enrolment,
    decode,
    float_to_pcm16,
    pcm16_to_float,
    resample,
    rms_dbfs,
)
from tests.gateway.api_support import flac
from univoice_core.errors import InvalidAudio, PayloadTooLarge

RATES = [8000, 16000, 22050, 24000, 32000, 44100, 48000]
MIN_S, MAX_S = 3.0, 60.0
LIMITS = {"max_bytes": 20 << 20, "max_seconds": 120.0}


@pytest.fixture(scope="module")
def detector() -> ClipVad:
    return ClipVad()


@pytest.fixture(scope="module")
def speech(data_dir: Path) -> np.ndarray:
    """One real 16 kHz utterance (10-20 s)."""
    wav, rate = soundfile.read(sorted(data_dir.glob("*.flac"))[0], dtype="float32")
    assert rate == 16000
    return wav


def _encode(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _code(exc_info: pytest.ExceptionInfo) -> str:
    return exc_info.value.code


# --- decode -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_round_trip(speech, fmt, subtype, rate, channels):
    clip = resample(speech[: 3 * 16000], 16000, rate)
    data = clip if channels == 1 else np.stack([clip, 0.5 * clip], axis=1)
    audio = decode(_encode(data, rate, fmt, subtype), **LIMITS)
    assert audio.sample_rate == rate
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert len(audio.samples) == len(clip)
    expected = clip if channels == 1 else 0.75 * clip
    tolerance = 2e-4 if fmt != "OGG" else 0.1  # PCM16 quantisation vs lossy Vorbis
    assert np.sqrt(np.mean((audio.samples - expected) ** 2)) < tolerance


@pytest.mark.parametrize(
    "data",
    [np.random.default_rng(0).bytes(4096), b"speaker: hello\nthis is a text file, not audio\n" * 20, b""],
    ids=["random", "text", "empty"],
)
def test_decode_rejects_non_audio(data):
    with pytest.raises(InvalidAudio) as exc_info:
        decode(data, **LIMITS)
    assert _code(exc_info) == "unsupported_audio"
    assert "WAV" in exc_info.value.message and "FLAC" in exc_info.value.message


def test_decode_rejects_other_container_formats(speech):
    with pytest.raises(InvalidAudio) as exc_info:
        decode(_encode(speech[:16000], 16000, "AIFF", "PCM_16"), **LIMITS)
    assert _code(exc_info) == "unsupported_audio"


def test_decode_limits(speech):
    data = _encode(speech, 16000, "FLAC", "PCM_16")
    with pytest.raises(PayloadTooLarge):
        decode(data, max_bytes=len(data) - 1, max_seconds=30)
    with pytest.raises(PayloadTooLarge) as exc_info:
        decode(data, max_bytes=len(data), max_seconds=len(speech) / 16000 - 1)
    assert _code(exc_info) == "audio_too_long"
    assert len(decode(data, max_bytes=len(data), max_seconds=30).samples) == len(speech)


@pytest.mark.parametrize(("rate", "channels", "seconds", "code"), [
    (192_000, 8, 10.0, "unsupported_sample_rate"),  # the bomb, shortened: refused by its header
    (96_000, 1, 1.0, "unsupported_sample_rate"),
    (16_000, 3, 1.0, "too_many_channels"),
    (16_000, 1, 121.0, "audio_too_long"),
])
def test_a_header_that_asks_too_much_is_refused_before_decoding(rate, channels, seconds, code):
    data = flac(np.zeros((int(rate * seconds), channels), np.int16), rate)
    with pytest.raises((InvalidAudio, PayloadTooLarge)) as exc_info:
        decode(data, **LIMITS)
    assert _code(exc_info) == code


def test_audio_running_past_what_its_header_declared_stops_at_the_limit(monkeypatch):
    """A header may leave the length out (or lie): decoding stops once the audio passes the limit."""
    data = flac(np.zeros((48_000, 1), np.int16), 16_000)
    monkeypatch.setattr(audio_module, "_check_header", lambda f, max_seconds: None)  # as if no length were declared
    with pytest.raises(PayloadTooLarge) as exc_info:
        decode(data, max_bytes=len(data), max_seconds=2.0)
    assert _code(exc_info) == "audio_too_long"


# --- resample and PCM16 (properties) --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(RATES), st.sampled_from(RATES), st.integers(0, 20000))
def test_resample_preserves_duration(from_rate, to_rate, n):
    x = np.random.default_rng(n).uniform(-0.5, 0.5, n).astype(np.float32)
    y = resample(x, from_rate, to_rate)
    assert y.dtype == np.float32
    assert abs(len(y) - n * to_rate / from_rate) <= 1


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(RATES), st.sampled_from(RATES))
def test_resample_keeps_frequency(from_rate, to_rate):
    t = np.arange(from_rate) / from_rate  # 1 s: 1 Hz FFT bins
    y = resample((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), from_rate, to_rate)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spectrum) * to_rate / len(y) - 440) < 3


def test_resample_identity_and_rate_limits():
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    assert np.array_equal(resample(x, 16000, 16000), x)
    for bad in (4000, 384000):
        with pytest.raises(InvalidAudio) as exc_info:
            resample(x, bad)
        assert _code(exc_info) == "unsupported_sample_rate"


@given(arrays(np.float32, st.integers(0, 2000), elements=st.floats(-1, 1, width=32)))
def test_pcm16_round_trip(x):
    data = float_to_pcm16(x)
    assert len(data) == 2 * len(x)
    assert np.all(np.abs(pcm16_to_float(data) - x) <= 1 / 32767)


@given(st.binary(max_size=1001).filter(lambda b: len(b) % 2 == 1))
def test_pcm16_odd_length(data):
    with pytest.raises(InvalidAudio) as exc_info:
        pcm16_to_float(data)
    assert _code(exc_info) == "odd_length_pcm"


@given(st.binary(max_size=2000).map(lambda b: b[: len(b) // 2 * 2]))
def test_pcm16_arbitrary_bytes(data):
    x = pcm16_to_float(data)
    assert x.dtype == np.float32 and len(x) == len(data) // 2
    assert np.all((x >= -1) & (x <= 1))


def test_float_to_pcm16_clips():
    assert pcm16_to_float(float_to_pcm16(np.array([2.0, -2.0, np.nan], dtype=np.float32))).tolist() == [
        32767 / 32768, -1.0, 0.0
    ]


# --- VAD --------------------------------------------------------------------------------------------


def _white_noise(dbfs: float, seconds: float = 10.0) -> np.ndarray:
    return (np.random.default_rng(1).standard_normal(int(seconds * 16000)) * 10 ** (dbfs / 20)).astype(np.float32)


def test_vad_on_real_speech(detector, speech):
    seconds = detector.speech_seconds(speech)
    assert 0.6 * len(speech) / 16000 <= seconds <= len(speech) / 16000
    segments = detector.speech_segments(speech)
    assert all(0 <= start < end <= len(speech) for start, end in segments)
    assert len(detector.speech_only(speech)) == round(seconds * 16000)


@pytest.mark.parametrize("samples", [_white_noise(-30), np.zeros(160000, np.float32)], ids=["noise", "silence"])
def test_vad_no_speech(detector, samples):
    assert detector.speech_seconds(samples) < 0.5
    assert detector.speech_seconds(samples[:0]) == 0.0


# --- enrolment ----------------------------------------------------------------------------------------


def _check(detector, samples: np.ndarray, rate: int = 16000):
    return check_enrolment(Audio(samples.astype(np.float32), rate), MIN_S, MAX_S, detector)


def _rejected(detector, samples: np.ndarray) -> InvalidAudio:
    with pytest.raises(InvalidAudio) as exc_info:
        _check(detector, samples)
    return exc_info.value


def test_enrolment_accepts_real_speech(detector, speech):
    report = _check(detector, speech)
    assert MIN_S <= report.speech_seconds <= MAX_S
    assert report.total_seconds == pytest.approx(len(speech) / 16000)
    assert len(report.samples16k) == round(report.speech_seconds * 16000)
    assert report.clipping_ratio < 0.01
    assert -40 < report.rms_dbfs < -10
    assert report.snr_db is not None and report.snr_db > 10


def test_enrolment_resamples_to_16k(detector, speech):
    report = _check(detector, resample(speech, 16000, 44100), rate=44100)
    assert report.speech_seconds == pytest.approx(detector.speech_seconds(speech), abs=0.5)


def test_enrolment_too_little_speech(detector, speech):
    start = detector.speech_segments(speech)[0][0]
    error = _rejected(detector, speech[start : start + 2 * 16000])
    assert error.code == "too_little_speech"
    assert "3 s" in error.message


def test_enrolment_no_speech(detector):
    assert _rejected(detector, _white_noise(-30)).code == "no_speech"
    assert _rejected(detector, np.zeros(160000)).code == "no_speech"


def test_enrolment_clipped(detector, speech):
    error = _rejected(detector, np.clip(speech * 20, -1, 1))
    assert error.code == "clipped" and "gain" in error.message


def test_enrolment_too_quiet(detector, speech):
    quiet = speech * 10 ** ((-60 - rms_dbfs(speech)) / 20)
    error = _rejected(detector, quiet)
    assert error.code == "too_quiet" and "-50 dBFS" in error.message


def test_enrolment_too_much_speech(detector, data_dir):
    longest = sorted(data_dir.glob("*.flac"), key=lambda p: soundfile.info(p).frames)[-5:]
    samples = np.concatenate([soundfile.read(p, dtype="float32")[0] for p in longest])
    error = _rejected(detector, samples)
    assert error.code == "too_much_speech" and "60 s" in error.message
