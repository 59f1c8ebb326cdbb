"""voice_clone and voice_converter on the real tritonserver: real phonemes, real speakers' profiles."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soxr
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from gateway.pipeline.voices import load_presets
from univoice_core import voice_features as vf
from univoice_core.audio import MODEL_RATE
from univoice_core.phonemes import Phonemizer

RATE = 24_000
TEXT = "The weather was lovely this morning, so we walked down to the market together."


def _input(name: str, array: np.ndarray):
    tensor = httpclient.InferInput(name, list(array.shape), {"float32": "FP32", "int64": "INT64"}[str(array.dtype)])
    tensor.set_data_from_numpy(np.ascontiguousarray(array))
    return tensor


def infer(client, model: str, output: str, **inputs) -> np.ndarray:
    return client.infer(model, [_input(k, v) for k, v in inputs.items()]).as_numpy(output)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


@pytest.fixture(scope="module")
def tokens() -> np.ndarray:
    """TEXT as Kokoro's phoneme ids between two 0 pads, [1, T + 2] (what TritonClient sends)."""
    ids = Phonemizer().tokens(TEXT, "en")
    return np.concatenate([[0], ids, [0]]).astype(np.int64)[None, :]


@pytest.fixture(scope="module")
def presets(triton):
    """The preset table served beside the converter: names, embeddings, statistics."""
    version = triton.repository.latest("voice_converter")
    with np.load(triton.repository.info("voice_converter", version).path / "presets.npz") as table:
        return [str(n) for n in table["names"]], table["embeddings"], table["statistics"]


@pytest.fixture(scope="module")
def profiles(triton, utterances):
    """Profiles enrolled from the first half of two real recordings (a woman and a man), as the gateway
    enrols them; the second half is the speaker's held-out voice."""
    client = triton.http()
    chosen = {}
    for speaker, wav in utterances:
        if speaker in ("103", "1040"):  # F and M (SPEAKERS.TXT), 14 s each
            enrol, held_out = wav[: len(wav) // 2], wav[len(wav) // 2 :]
            chosen[speaker] = {
                "embedding": infer(client, "voice_embedding", "embedding", waveform=enrol[None])[0],
                "statistics": vf.voice_statistics(enrol),
                "held_out": held_out,
            }
    assert set(chosen) == {"103", "1040"}
    return chosen


def clone(client, tokens, profile, speed=1.0) -> np.ndarray:
    return infer(client, "voice_clone", "audio", tokens=tokens, embedding=profile["embedding"].astype(np.float32),
                 statistics=profile["statistics"].astype(np.float32), speed=np.array([speed], np.float32))


def preset_speech(client, tokens, name: str, speed=1.0) -> np.ndarray:
    style = load_presets()[name].styles[tokens.shape[1] - 3][None, :]
    return infer(client, "synthesizer", "audio", tokens=tokens, style=style.astype(np.float32),
                 speed=np.array([speed], np.float32))


def nearest(presets, embedding) -> int:
    return int(np.argmax(presets[1] @ (embedding / np.linalg.norm(embedding))))


@pytest.fixture(scope="module")
def cloned(triton, tokens, profiles):
    client = triton.http()
    return {speaker: clone(client, tokens, profile) for speaker, profile in profiles.items()}


def test_cloned_speech_is_24khz_audio_of_a_plausible_length(triton, tokens, profiles, presets, cloned):
    client = triton.http()
    for speaker, audio in cloned.items():
        reference = preset_speech(client, tokens, presets[0][nearest(presets, profiles[speaker]["embedding"])])
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert np.isfinite(audio).all()
        assert np.abs(audio).max() <= 1.0
        assert 0.5 * len(reference) <= len(audio) <= 3.0 * len(reference), (len(audio), len(reference))
        assert rms(audio) > 0.3 * rms(reference), (rms(audio), rms(reference))  # speech, not near-silence


def test_cloned_speech_has_the_speakers_pitch(profiles, cloned):
    """Re-analysed, the clone speaks near the enrolled speaker's typical pitch (not the preset's)."""
    for speaker, audio in cloned.items():
        heard = vf.voice_statistics(soxr.resample(audio, RATE, MODEL_RATE), f0_method="dio")
        wanted = profiles[speaker]["statistics"]
        print(f"{speaker} pitch: enrolled {np.exp(wanted[0]):.1f} Hz, cloned {np.exp(heard[0]):.1f} Hz")
        assert abs(heard[0] - wanted[0]) < 0.15  # within ~16 %; the woman and the man are ~0.6 apart
    gap = vf.voice_statistics(soxr.resample(cloned["103"], RATE, MODEL_RATE), f0_method="dio")[0] - \
        vf.voice_statistics(soxr.resample(cloned["1040"], RATE, MODEL_RATE), f0_method="dio")[0]
    assert gap > 0.3


def test_faster_speed_gives_shorter_speech(triton, tokens, profiles, cloned):
    fast = clone(triton.http(), tokens, profiles["1040"], speed=2.0)
    assert len(fast) < 0.75 * len(cloned["1040"]), (len(fast), len(cloned["1040"]))
    assert rms(fast) > 0.01


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: {**p, "statistics": p["statistics"][:81]}, "(?i)statistics.*(shape|dims|82)|unexpected shape"),
    (lambda p: {**p, "embedding": np.zeros(256, np.float32)}, "not all zero"),
    (lambda p: {**p, "statistics": np.concatenate([p["statistics"][:1], [0.0], p["statistics"][2:]])},
     "non-positive standard deviations"),
], ids=["short-statistics", "zero-embedding", "zero-pitch-std"])
def test_bad_requests_get_a_clear_error_and_the_model_keeps_serving(triton, tokens, profiles, change, message):
    client = triton.http()
    with pytest.raises(InferenceServerException, match=message):
        clone(client, tokens, change(profiles["103"]))
    with pytest.raises(InferenceServerException, match="speed must be one value in 0.5..2.0"):
        clone(client, tokens, profiles["103"], speed=4.0)
    short = np.concatenate([tokens[:, :11], [[0]]], axis=1)  # a short clause, still between 0 pads
    assert len(clone(client, short, profiles["103"])) > 0


# --- voice_converter: batched chunks ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunks(triton, tokens, presets, profiles):
    """A preset's speech, analysed and chunked as voice_clone does, with its profile's conditioning."""
    from export.repository import ModelRepository
    from gateway.settings import get_settings

    module = ModelRepository(get_settings().model_repository).python_module("voice_clone")
    profile = profiles["1040"]
    index = nearest(presets, profile["embedding"])
    audio = preset_speech(triton.http(), tokens, presets[0][index])
    features = vf.analyse(soxr.resample(audio, RATE, MODEL_RATE), with_aperiodicity=False)
    windows = module.chunk(features.envelope.astype(np.float32))
    count = len(windows)
    return {
        "envelope": windows,
        "source_statistics": np.repeat(presets[2][index][None], count, 0).astype(np.float32),
        "target_statistics": np.repeat(profile["statistics"][None], count, 0).astype(np.float32),
        "embedding": np.repeat(profile["embedding"][None], count, 0).astype(np.float32),
        "speech": vf.speech_frames(features.envelope),
        "frames": len(features.envelope),
        "unchunk": module.unchunk,
    }


def _converter_inputs(chunks, rows):
    return {k: chunks[k][rows] for k in ("envelope", "source_statistics", "target_statistics", "embedding")}


def test_converter_moves_the_envelope_to_the_target_voice(triton, chunks):
    converted = infer(triton.http(), "voice_converter", "converted", **_converter_inputs(chunks, slice(None)))
    assert converted.shape == chunks["envelope"].shape and np.isfinite(converted).all()
    frames, speech = chunks["frames"], chunks["speech"]
    source = chunks["unchunk"](chunks["envelope"], frames)[speech].mean(axis=0)
    result = chunks["unchunk"](converted, frames)[speech].mean(axis=0)
    target = chunks["target_statistics"][0, 2 : 2 + vf.ENVELOPE_DIM]
    before, after = np.linalg.norm(source - target), np.linalg.norm(result - target)
    print(f"envelope mean distance to the target: {before:.3f} before, {after:.3f} after")
    assert after < 0.5 * before


def test_converter_batches_concurrent_requests_without_mixing_them(triton, chunks):
    count = len(chunks["envelope"])
    assert count >= 2
    client = triton.http()
    alone = [infer(client, "voice_converter", "converted", **_converter_inputs(chunks, slice(i, i + 1)))[0]
             for i in range(count)]

    def stats():
        model = client.get_inference_statistics("voice_converter")["model_stats"][0]
        return int(model["inference_count"]), int(model["execution_count"])

    requests = [slice(i % count, i % count + 1) for i in range(12)] + [slice(0, count)] * 4
    before = stats()
    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(lambda rows: infer(
            triton.http(), "voice_converter", "converted", **_converter_inputs(chunks, rows)), requests))
    inferences, executions = (a - b for a, b in zip(stats(), before))
    for rows, result in zip(requests, results):
        expected = np.stack(alone[rows])
        assert result.shape == expected.shape
        np.testing.assert_allclose(result, expected, atol=1e-4)
    print(f"voice_converter: {inferences} chunks in {executions} executions")
    assert inferences == 12 + 4 * count
    assert executions < len(requests)  # the dynamic batcher merged requests


# --- does it sound like the speaker? ------------------------------------------------------------------------


def test_cloned_speech_sounds_more_like_the_speaker_than_the_preset_it_started_from(triton, tokens, presets, data_dir):
    """The first woman and the first man of the held-out test speakers (never seen in training), enrolled on
    the first half of their recording, judged by the served speaker embedding against the second half."""
    import soundfile

    from training.voice_converter.data import speakers, split

    client = triton.http()

    def embed(wav16k):
        return infer(client, "voice_embedding", "embedding", waveform=wav16k.astype(np.float32)[None])[0]

    test_speakers = split(speakers(data_dir))["test"]
    for speaker in [next(s for s in test_speakers if s.gender == gender) for gender in "FM"]:
        wav = soundfile.read(speaker.path, dtype="float32")[0]
        enrol, held_out = wav[: len(wav) // 2], wav[len(wav) // 2 :]
        profile = {"embedding": embed(enrol), "statistics": vf.voice_statistics(enrol)}
        reference = embed(held_out)
        name = presets[0][nearest(presets, profile["embedding"])]
        preset = float(embed(soxr.resample(preset_speech(client, tokens, name), RATE, MODEL_RATE)) @ reference)
        cloned = float(embed(soxr.resample(clone(client, tokens, profile), RATE, MODEL_RATE)) @ reference)
        print(f"{speaker.id} ({speaker.gender}): cosine to the held-out speaker: preset {name} {preset:.3f}, "
              f"clone {cloned:.3f}")
        assert cloned > preset + 0.05, (speaker.id, name, preset, cloned)
