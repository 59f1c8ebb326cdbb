"""WORLD voice features (univoice_core.voice_features) and voice_clone's pure helpers, on real speech and as properties."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from export.repository import ModelRepository
from export.specs import VOICE_CLONE, VOICE_CONVERTER
from gateway.settings import get_settings
from training.voice_converter.data import speakers
from training.voice_converter.model import VoiceConverter
from univoice_core import served
from univoice_core import voice_features as vf
from univoice_core.audio import MODEL_RATE

clone = ModelRepository(get_settings().model_repository).python_module("voice_clone")
WINDOW = clone.CHUNK_FRAMES + 2 * clone.CONTEXT_FRAMES


def pitch_hz(statistics: np.ndarray) -> float:
    return float(np.exp(statistics[0]))


# --- chunking: what lets Triton batch the clauses of concurrent streams --------------------------------


@settings(max_examples=150, deadline=None)
@given(frames=st.integers(1, 3 * clone.CHUNK_FRAMES + 7), dim=st.integers(1, 48), seed=st.integers(0, 2**16))
def test_unchunk_restores_any_envelope_exactly(frames, dim, seed):
    envelope = np.random.default_rng(seed).normal(size=(frames, dim)).astype(np.float32)
    windows = clone.chunk(envelope)
    assert np.array_equal(clone.unchunk(windows, frames), envelope)


@settings(max_examples=150, deadline=None)
@given(frames=st.integers(1, 4 * clone.CHUNK_FRAMES + 3), dim=st.integers(1, 48))
def test_every_window_has_the_same_shape_whatever_the_clause_length(frames, dim):
    windows = clone.chunk(np.zeros((frames, dim), np.float32))
    assert windows.shape == (-(-frames // clone.CHUNK_FRAMES), WINDOW, dim)


@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 3 * clone.CHUNK_FRAMES + 7), seed=st.integers(0, 2**16))
def test_windows_carry_their_neighbours_as_context(frames, seed):
    """Each window's context is the real neighbouring frames (edge values beyond the clause)."""
    envelope = np.random.default_rng(seed).normal(size=(frames, 3)).astype(np.float32)
    padded = np.pad(envelope, ((clone.CONTEXT_FRAMES, WINDOW), (0, 0)), mode="edge")
    for i, window in enumerate(clone.chunk(envelope)):
        start = i * clone.CHUNK_FRAMES
        assert np.array_equal(window, padded[start : start + WINDOW])


def test_context_is_wider_than_what_the_converter_sees():
    assert VoiceConverter().receptive_frames < clone.CONTEXT_FRAMES


@pytest.mark.parametrize("frames", [1, 37, clone.CHUNK_FRAMES, clone.CHUNK_FRAMES + 1, 3 * clone.CHUNK_FRAMES - 5])
def test_converting_in_chunks_equals_converting_the_whole_clause(frames):
    torch.manual_seed(frames)
    model = VoiceConverter().eval()
    torch.nn.init.normal_(model.out.weight, std=0.2)  # a trained converter is not the statistics mapping
    torch.nn.init.normal_(model.out.bias, std=0.2)
    rng = np.random.default_rng(frames)
    envelope = rng.normal(size=(frames, vf.ENVELOPE_DIM)).astype(np.float32)
    source, target = (np.concatenate([rng.normal(5.0, 0.3, 2), rng.normal(0, 1, 40), rng.uniform(0.2, 1.0, 40)])
                      .astype(np.float32) for _ in range(2))
    embedding = rng.normal(size=256).astype(np.float32)

    def convert(batch: np.ndarray) -> np.ndarray:
        count = len(batch)
        with torch.no_grad():
            return model(*(torch.from_numpy(np.ascontiguousarray(a)) for a in (
                batch, np.repeat(source[None], count, 0), np.repeat(target[None], count, 0),
                np.repeat(embedding[None], count, 0)))).numpy()

    stitched = clone.unchunk(convert(clone.chunk(envelope)), frames)
    context = clone.CONTEXT_FRAMES
    padded = np.pad(envelope, ((context, context), (0, 0)), mode="edge")
    whole = convert(padded[None])[0, context : context + frames]
    statistics_mapping = (envelope - source[2:42]) / source[42:] * target[42:] + target[2:42]
    assert np.abs(whole - statistics_mapping).max() > 0.1  # the network does contribute
    np.testing.assert_allclose(stitched, whole, atol=1e-4)


def test_served_shapes_match_the_features():
    by_name = {t.name: t.dims for t in VOICE_CONVERTER.inputs}
    assert by_name["envelope"] == (-1, vf.ENVELOPE_DIM)
    assert by_name["source_statistics"] == by_name["target_statistics"] == (vf.STATISTICS_DIM,)
    assert by_name["embedding"] == (served.EMBEDDING_DIM,)
    assert VOICE_CONVERTER.outputs[0].dims == (-1, vf.ENVELOPE_DIM)
    clone_inputs = {t.name: t.dims for t in VOICE_CLONE.inputs}
    assert clone_inputs["statistics"] == (vf.STATISTICS_DIM,)
    assert clone_inputs["embedding"] == (served.EMBEDDING_DIM,)
    assert (vf.ENVELOPE_DIM, vf.STATISTICS_DIM) == (40, 82)


# --- F0 mapping --------------------------------------------------------------------------------------

log_f0 = st.floats(np.log(70.0), np.log(350.0))
log_std = st.floats(0.05, 0.4)


@settings(max_examples=200, deadline=None)
@given(
    contour=st.lists(st.one_of(st.just(0.0), st.floats(60.0, 500.0)), min_size=1, max_size=200),
    source=st.tuples(log_f0, log_std), target=st.tuples(log_f0, log_std),
)
def test_map_f0_keeps_unvoiced_frames_silent_and_voiced_ones_voiced(contour, source, target):
    f0 = np.array(contour)
    mapped = vf.map_f0(f0, np.array(source), np.array(target))
    assert mapped.shape == f0.shape
    assert np.all(mapped[f0 == 0] == 0)
    assert np.all(mapped[f0 > 0] > 0)
    assert np.all(mapped <= vf.F0_CEIL * 1.5)


@settings(max_examples=200, deadline=None)
@given(source=st.tuples(log_f0, log_std), target=st.tuples(log_f0, log_std), offset=st.floats(-1.5, 1.5))
def test_map_f0_moves_the_source_mean_to_the_target_mean_and_keeps_the_contour_shape(source, target, offset):
    f0 = np.array([0.0, np.exp(source[0]), np.exp(source[0] + offset * source[1]), 0.0])
    mapped = vf.map_f0(f0, np.array(source), np.array(target))
    assert mapped[1] == pytest.approx(np.exp(target[0]), rel=1e-9)
    # a frame `offset` source stds above the mean lands `offset` target stds above the target mean
    assert np.log(mapped[2]) == pytest.approx(target[0] + offset * target[1], abs=1e-9)


# --- statistics of real speech --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def by_gender(data_dir):
    """Two female and two male speakers (SPEAKERS.TXT), one LibriSpeech recording of 8 s or more each."""
    chosen = {"F": [], "M": []}
    for speaker in speakers(data_dir):
        wav = soundfile.read(speaker.path, dtype="float32")[0]
        if len(chosen[speaker.gender]) < 2 and len(wav) >= 8 * MODEL_RATE:
            chosen[speaker.gender].append(wav)
    return chosen


def test_statistics_of_real_speech_are_well_formed(utterances):
    statistics = vf.voice_statistics(utterances[0][1])
    assert statistics.shape == (vf.STATISTICS_DIM,) and statistics.dtype == np.float32
    assert np.isfinite(statistics).all()
    assert statistics[1] > 0 and np.all(statistics[2 + vf.ENVELOPE_DIM :] > 0)  # the stds
    assert 60 <= pitch_hz(statistics) <= 400
    assert clone.validate(np.array([[0, 5, 0]]), np.ones(256, np.float32), statistics,
                          np.array([1.0], np.float32)) is None


def test_women_come_out_higher_pitched_than_men(by_gender):
    pitches = {g: [pitch_hz(vf.voice_statistics(wav)) for wav in wavs] for g, wavs in by_gender.items()}
    print("mean F0 (Hz):", {g: [round(p, 1) for p in ps] for g, ps in pitches.items()})
    assert all(140 <= p <= 300 for p in pitches["F"]), pitches
    assert all(75 <= p <= 170 for p in pitches["M"]), pitches
    assert min(pitches["F"]) > 1.25 * max(pitches["M"]), pitches


@pytest.mark.parametrize("speaker", ["103", "1116", "4297"])
def test_a_womans_pitch_survives_mains_hum(data_dir, speaker):
    """Women (~190-200 Hz) recorded with hum that DIO, at its 60 Hz floor, took for a 65-70 Hz voice."""
    wav = soundfile.read(next(data_dir.glob(f"{speaker}-*.flac")), dtype="float32")[0]
    assert 150 <= pitch_hz(vf.voice_statistics(wav)) <= 260


def test_half_a_recording_still_tells_women_from_men(by_gender):
    """Enrolment on ~5 s of speech: pitch moves with intonation (halves of one recording differ by up to
    ~25 %), but every woman's half stays well above every man's."""
    halves = {g: [(vf.voice_statistics(w[: len(w) // 2]), vf.voice_statistics(w[len(w) // 2 :])) for w in wavs]
              for g, wavs in by_gender.items()}
    pitches = {g: [round(pitch_hz(s), 1) for pair in pairs for s in pair] for g, pairs in halves.items()}
    print("mean F0 of each half (Hz):", pitches)
    assert min(pitches["F"]) > 1.2 * max(pitches["M"]), pitches


def test_analysis_and_resynthesis_keep_length_and_loudness(utterances):
    wav = utterances[1][1][: 3 * MODEL_RATE]
    features = vf.analyse(wav)
    frames = len(features.f0)
    assert features.envelope.shape == (frames, vf.ENVELOPE_DIM)
    assert features.aperiodicity.shape == (frames, vf.FFT_SIZE // 2 + 1)
    audio = vf.synthesise(features.f0, features.envelope, features.aperiodicity)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    frame = int(MODEL_RATE * vf.FRAME_PERIOD_MS / 1000)
    assert abs(len(audio) - len(wav)) <= frame
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert 0.5 <= rms(audio) / rms(wav) <= 2.0
    again = vf.analyse(audio, with_aperiodicity=False)  # the resynthesis has the original's pitch
    voiced = (features.f0 > 0) & (again.f0[:frames] > 0)
    assert voiced.mean() > 0.3
    assert np.median(np.abs(np.log(again.f0[:frames][voiced] / features.f0[voiced]))) < 0.03


@pytest.mark.parametrize(("samples", "message"), [
    (lambda wav: np.zeros(2 * MODEL_RATE, np.float32), "too little voiced speech"),
    (lambda wav: wav[: MODEL_RATE // 10], "too little voiced speech"),
    (lambda wav: wav[: MODEL_RATE // 40], "too short to analyse"),
])
def test_too_little_speech_is_refused_with_a_clear_message(utterances, samples, message):
    with pytest.raises(ValueError, match=message):
        vf.voice_statistics(samples(utterances[1][1]))


def test_an_unknown_f0_estimator_is_refused(utterances):
    with pytest.raises(ValueError, match="unknown F0 estimator"):
        vf.analyse(utterances[1][1][:8000], f0_method="yin")


# --- voice_clone's request checks and loudness ------------------------------------------------------------


def _good():
    statistics = np.concatenate([[5.3, 0.2], np.zeros(40), np.ones(40)]).astype(np.float32)
    tokens, speed = np.array([[0, 12, 40, 7, 0]], np.int64), np.array([1.0], np.float32)
    return tokens, np.full(256, 0.0625, np.float32), statistics, speed


def _with(index, change):
    values = list(_good())
    values[index] = change(values[index])
    return values


def _set(array, position, value):
    array = array.copy()
    array[position] = value
    return array


@pytest.mark.parametrize(("inputs", "message"), [
    (_with(0, lambda t: t[0]), "tokens must have shape [1, T]"),
    (_with(0, lambda t: np.concatenate([t, t])), "tokens must have shape [1, T]"),
    (_with(0, lambda t: t[:, :2]), "1..510 phoneme ids"),
    (_with(0, lambda t: np.zeros((1, 513), np.int64)), "1..510 phoneme ids"),
    (_with(1, lambda e: e[:255]), "embedding must be 256"),
    (_with(1, lambda e: np.zeros_like(e)), "not all zero"),
    (_with(1, lambda e: _set(e, 3, np.nan)), "embedding must be 256 finite"),
    (_with(2, lambda s: s[:81]), "statistics must be 82"),
    (_with(2, lambda s: _set(s, 10, np.inf)), "statistics must be 82 finite"),
    (_with(2, lambda s: _set(s, 1, 0.0)), "non-positive standard deviations"),
    (_with(2, lambda s: _set(s, 60, -0.5)), "non-positive standard deviations"),
    (_with(3, lambda v: np.array([3.0], np.float32)), "speed must be one value in 0.5..2.0"),
    (_with(3, lambda v: np.array([1.0, 1.0], np.float32)), "speed must be one value"),
])
def test_validate_refuses_bad_requests_with_a_clear_message(inputs, message):
    problem = clone.validate(*inputs)
    assert problem is not None and message in problem, problem


def test_validate_accepts_a_good_request():
    assert clone.validate(*_good()) is None


@settings(max_examples=100, deadline=None)
@given(gain=st.floats(1e-3, 20.0), reference_gain=st.floats(1e-3, 2.0), seed=st.integers(0, 2**16))
def test_match_loudness_matches_the_reference_without_clipping(gain, reference_gain, seed):
    rng = np.random.default_rng(seed)
    audio = (rng.normal(size=4000) * gain).astype(np.float32)
    reference = (np.sin(np.arange(4000) / 7.0) * reference_gain).astype(np.float32)
    out = clone.match_loudness(audio, reference)
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))  # noqa: E731
    assert np.abs(out).max() <= 0.99 + 1e-6
    if rms(reference) * np.abs(audio).max() / rms(audio) <= 0.99:  # no need to hold back for the peak
        assert rms(out) == pytest.approx(rms(reference), rel=1e-4)
    else:
        assert np.abs(out).max() == pytest.approx(0.99, rel=1e-4)


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_dtw_finds_the_cheapest_monotonic_path(rows, cols, seed):
    """The parallel data's alignment: a path from the first to the last frame pair, one step at a time,
    whose cost is the minimum over all such paths (checked against a plain dynamic programme)."""
    from training.voice_converter.data import dtw_path

    cost = np.random.default_rng(seed).random((rows, cols))
    path = dtw_path(cost)
    assert path[0] == (0, 0) and path[-1] == (rows - 1, cols - 1)
    assert all((i2 - i1, j2 - j1) in {(1, 1), (0, 1), (1, 0)} for (i1, j1), (i2, j2) in zip(path, path[1:]))
    best = {}
    for i in range(rows):
        for j in range(cols):
            before = [best[p] for p in ((i - 1, j - 1), (i - 1, j), (i, j - 1)) if p in best]
            best[(i, j)] = cost[i, j] + (min(before) if before else 0.0)
    assert np.isclose(sum(cost[i, j] for i, j in path), best[(rows - 1, cols - 1)])
