"""Shared fixtures. One real `tritonserver` serves the whole test session, on a copy of the repository
(weights hard-linked) so that publish/rollback tests never touch the working tree's versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from export.repository import ModelRepository
from export.specs import SERVED_MODELS
from gateway.local_stack import copy_repository
from gateway.settings import get_settings
from gateway.triton.launcher import TritonServer

@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = get_settings().data_dir
    if not any(path.glob("*.flac")):
        pytest.fail(f"no LibriSpeech FLAC files in {path}; set UNIVOICE_DATA_DIR to ../shared/data/...")
    return path


@pytest.fixture(scope="session")
def utterances(data_dir) -> list[tuple[str, np.ndarray]]:
    """The first eight real 16 kHz utterances, as (speaker id, waveform)."""
    out = []
    for path in sorted(data_dir.glob("*.flac"))[:8]:
        wav, rate = soundfile.read(path, dtype="float32")
        assert rate == 16_000
        out.append((path.stem.split("-")[0], wav))
    return out


@dataclass
class TritonFixture:
    server: TritonServer
    repository: ModelRepository

    def http(self):
        import tritonclient.http as httpclient

        return httpclient.InferenceServerClient(self.server.http_url, network_timeout=300.0)

    def grpc(self):
        import tritonclient.grpc as grpcclient

        return grpcclient.InferenceServerClient(self.server.grpc_url)


@pytest.fixture(scope="session")
def triton(tmp_path_factory) -> TritonFixture:
    source = get_settings().model_repository
    if ModelRepository(source).latest("speaker_encoder") is None:
        pytest.fail("model_repository/ is not materialised: run `make models`")
    root = copy_repository(source, tmp_path_factory.mktemp("triton") / "model_repository")
    server = TritonServer(repository=root, log_path=root.parent / "tritonserver.log")
    with server:
        server.load(SERVED_MODELS)
        yield TritonFixture(server, ModelRepository(root))
