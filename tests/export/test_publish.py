"""Publishing and rolling back model versions on the live server while clients keep calling it."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
import torch
import tritonclient.http as httpclient

from export.contract import ParityError
from export.models.speaker_encoder import SpeakerEncoderExport, smoke_inputs, speaker_encoder_source
from export.publish import PublishError, publish, ready_versions, rollback
from export.sources import TorchExport


class Traffic:
    """Keeps sending voice_embedding requests from a background thread and records every outcome."""

    def __init__(self, triton, wav):
        self.client = httpclient.InferenceServerClient(triton.server.http_url, network_timeout=120.0)
        self.wav = wav
        self.successes = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        tensor = httpclient.InferInput("waveform", [1, len(self.wav)], "FP32")
        tensor.set_data_from_numpy(self.wav[None, :])
        while not self._stop.is_set():
            try:
                out = self.client.infer("voice_embedding", [tensor]).as_numpy("embedding")
                assert out.shape == (1, 256)
                self.successes += 1
            except Exception as error:  # recorded, asserted on below
                self.failures.append(repr(error))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_and_expected(client, version: int) -> tuple[np.ndarray, np.ndarray]:
    """speaker_encoder's embeddings of a mel batch of a shape the parity gate does not try, from `version` on
    the server and from resemblyzer's PyTorch module."""
    mel = np.random.default_rng(5).gamma(0.5, 2.0, (5, 97, 40)).astype(np.float32)
    tensor = httpclient.InferInput("mel", list(mel.shape), "FP32")
    tensor.set_data_from_numpy(mel)
    served = client.infer("speaker_encoder", [tensor], model_version=str(version)).as_numpy("embedding")
    with torch.no_grad():
        expected = SpeakerEncoderExport().module()(torch.from_numpy(mel)).numpy()
    return served, expected


def test_publish_new_version_then_roll_back_without_failed_requests(triton, utterances):
    repo, client = triton.repository, triton.http()
    before = repo.versions("speaker_encoder")
    serving = before[-1]
    assert ready_versions(client, "speaker_encoder") == [serving]
    with Traffic(triton, utterances[1][1][: 3 * 16_000]) as traffic:
        info = publish(repo, speaker_encoder_source(), client)
        assert info.version == serving + 1
        assert ready_versions(client, "speaker_encoder") == [serving + 1]
        # What the server now answers, from the new version, is what the PyTorch module computes.
        served, expected = served_and_expected(client, info.version)
        assert np.abs(served - expected).max() <= info.manifest["gate"]["onnx"]["tolerance"]
        assert rollback(repo, "speaker_encoder", client) == serving
        assert ready_versions(client, "speaker_encoder") == [serving]
    assert repo.versions("speaker_encoder") == before
    assert traffic.failures == []
    assert traffic.successes > 5


class _DriftsWhenExported(torch.nn.Module):
    """A bug that only exists in the exported graph: its outputs are scaled by 1 %."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, mel):
        out = self.inner(mel)
        return out * 1.01 if torch.onnx.is_in_onnx_export() else out


class BrokenSpeakerEncoder(SpeakerEncoderExport):
    def module(self):
        return _DriftsWhenExported(super().module())


def test_export_violating_tolerance_is_refused_and_serving_version_untouched(triton, utterances):
    repo, client = triton.repository, triton.http()
    versions = repo.versions("speaker_encoder")
    served = repo.info("speaker_encoder", versions[-1]).path / "model.onnx"
    before = _digest(served)
    with pytest.raises(ParityError, match="refused.*tolerance"):
        publish(repo, TorchExport(BrokenSpeakerEncoder(), smoke_inputs), client)
    assert repo.versions("speaker_encoder") == versions
    assert not (repo.root / ".staging").exists()
    assert _digest(served) == before
    assert ready_versions(client, "speaker_encoder") == [versions[-1]]


class RenamedInputEncoder(SpeakerEncoderExport):
    """Numerically perfect, but its graph input no longer matches the served contract (`mel`)."""

    input_names = ("features",)
    dynamic_axes = {"features": {0: "batch", 1: "time"}, "embedding": {0: "batch"}}


def test_version_that_fails_on_the_server_is_rolled_back(triton, utterances):
    repo, client = triton.repository, triton.http()
    versions = repo.versions("speaker_encoder")
    with Traffic(triton, utterances[2][1][: 3 * 16_000]) as traffic:
        with pytest.raises(PublishError, match=f"rolled back to v{versions[-1]}"):
            publish(repo, TorchExport(RenamedInputEncoder(), smoke_inputs), client)
        assert ready_versions(client, "speaker_encoder") == [versions[-1]]
    # Health checks (compose, a load balancer) keep seeing a ready server: the previous version serves.
    assert client.is_server_ready() and client.is_model_ready("speaker_encoder")
    assert repo.versions("speaker_encoder") == versions
    assert any((repo.root / ".retired" / "speaker_encoder").iterdir())
    assert traffic.failures == []
    mel = np.random.default_rng(3).gamma(0.5, 2.0, (1, 160, 40)).astype(np.float32)
    tensor = httpclient.InferInput("mel", list(mel.shape), "FP32")
    tensor.set_data_from_numpy(mel)
    assert client.infer("speaker_encoder", [tensor]).as_numpy("embedding").shape == (1, 256)
