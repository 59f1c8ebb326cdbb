"""voice_embedding's numpy front end and pooling against resemblyzer/librosa, with property-based checks."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from resemblyzer import VoiceEncoder, audio

from export.repository import ModelRepository
from gateway.settings import get_settings

frontend = ModelRepository(get_settings().model_repository).python_module("voice_embedding")


def test_filterbank_matches_librosa():
    expected = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=40)
    np.testing.assert_allclose(frontend.mel_filterbank(), expected, atol=1e-7)


def test_mel_spectrogram_matches_resemblyzer_on_real_speech(utterances):
    for _, wav in utterances[:3]:
        ours, theirs = frontend.mel_spectrogram(wav), audio.wav_to_mel_spectrogram(wav)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=90 * 16_000))
def test_partial_slices_match_resemblyzer_for_any_length(n_samples):
    _, expected = VoiceEncoder.compute_partial_slices(n_samples, rate=1.3, min_coverage=0.75)
    assert frontend.partial_slices(n_samples) == [(s.start, s.stop) for s in expected]


@settings(max_examples=40, deadline=None)
@given(
    n_samples=st.integers(min_value=frontend.MIN_SAMPLES, max_value=8 * 16_000),
    gain=st.floats(min_value=1e-3, max_value=1.0),
    seed=st.integers(0, 2**16),
)
def test_partials_have_the_shape_the_encoder_expects(n_samples, gain, seed):
    wav = (np.random.default_rng(seed).standard_normal(n_samples) * gain).astype(np.float32)
    assert frontend.validate(wav) is None
    parts = frontend.partials(wav)
    assert parts.dtype == np.float32
    assert parts.shape[1:] == (160, 40)
    assert 1 <= parts.shape[0] <= 128
    assert np.isfinite(parts).all()


def test_quiet_speech_is_raised_but_loud_speech_is_not_lowered(utterances):
    wav = utterances[0][1]
    quiet = wav * 0.01
    raised = frontend.normalize_volume(quiet)
    assert 10 * np.log10(np.mean(raised.astype(np.float64) ** 2)) == pytest.approx(-30, abs=0.01)
    loud = wav / np.abs(wav).max()
    assert frontend.normalize_volume(loud) is loud


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (np.zeros(10, np.float32), "at least"),
        (np.zeros(16_000, np.float32), "silence"),
        (np.array([np.inf] * 16_000, np.float32), "NaN or infinite"),
    ],
)
def test_validate_explains_what_is_wrong(wav, message):
    assert message in frontend.validate(wav)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=frontend.ENCODER_MAX_BATCH), max_size=80))
def test_encoder_batches_cover_every_utterance_in_order_within_the_batch_limit(counts):
    groups = list(frontend.encoder_batches(counts))
    assert [i for g in groups for i in g] == list(range(len(counts)))
    assert all(sum(counts[i] for i in g) <= frontend.ENCODER_MAX_BATCH for g in groups)


def test_pooling_is_the_normalised_mean():
    partial = np.random.default_rng(0).random((5, 256)).astype(np.float32)
    pooled = frontend.pool(partial)
    assert np.linalg.norm(pooled) == pytest.approx(1.0, abs=1e-6)
    expected = partial.mean(axis=0)
    np.testing.assert_allclose(pooled, expected / np.linalg.norm(expected), atol=1e-6)
