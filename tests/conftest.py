"""Shared fixtures and the markers. One real `tritonserver` serves the whole test session, on a copy of the
repository (weights hard-linked) so that publish/rollback tests never touch the working tree's versions.

The markers follow from what a test needs, here and nowhere else (`pytest_collection_modifyitems`), so a new
test cannot forget them: `triton` for a test that requests the `triton` fixture, directly or through another
fixture (the gateway fixtures of tests/gateway/api_support.py all do); `browser` for one that requests the
`browser` fixture (chromium); `training` for tests/training/ (they run a training job); `slow` for those and for
what `SLOW_FIXTURES` and `SLOW` name, each over ~3 s on 2 cores. `make test-fast` deselects all four and stays
under a minute without Triton."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile

from export.repository import ModelRepository
from gateway.embedded import copy_repository
from gateway.settings import get_settings
from gateway.triton.launcher import TritonServer
from univoice_core.served import SERVED_MODELS

# What makes a test take more than ~3 s on 2 cores: a fixture it requests, or its node id (from the repository
# root) starting with one of these. Tests under tests/training/ are slow without being listed.
SLOW_FIXTURES = {
    "browser": "drives chromium through the /demo page",
    "whisper_base": "Whisper base on real speech",
}
SLOW = {
    "tests/benchmarks/test_eval_voice.py": "clones speech for every voice and judges it",
    "tests/benchmarks/test_soak.py": "30 s of Locust traffic against a gateway process, then the streams finish",
    "tests/export/test_export.py::test_build_writes_first_versions_then_is_a_no_op": "exports and gates every model",
    "tests/export/test_publish.py": "each test exports the speaker encoder with its parity gate",
    "tests/export/test_translator_weights.py::test_a_broken_gguf": "hashes the 1.1 GB translator",
    "tests/gateway/api/test_api_fuzz.py": "Schemathesis over the whole API",
    "tests/gateway/api/test_stream.py::test_speak_cli": "a whole translated utterance",
    "tests/gateway/api/test_stream.py::test_streamed_speech_comes_back": "STT, MT, TTS, then Whisper again",
    "tests/faults/": "kills and restarts Triton, Redis or the gateway under a live stream",
    "tests/fuzz/test_fuzz.py::test_a_coverage_guided_run": "5 s of Atheris per target",
    "tests/gateway/api/test_stream_voice_clone.py": "cloned speech, then Whisper",
    "tests/gateway/blobs/test_blob_stores.py::test_s3_delete_prefix_pages": "1,001 objects through moto",
    "tests/gateway/pipeline/test_synthesis.py": "Kokoro and Whisper on real sentences",
    "tests/gateway/pipeline/test_translator_llm.py": "the real LLM translator",
    "tests/gateway/stores/test_record_stores.py::test_ttl_expiry": "waits out a 2 s TTL on each store",
    "tests/model_repository/test_voice_clone_model.py": "voice_clone synthesis of several sentences",
    "tests/univoice_core/test_voice_features.py::test_a_womans_pitch": "Harvest on a 14 s recording, 3 times",
    "tests/univoice_core/test_voice_features.py::test_half_a_recording": "Harvest on eight halves",
    "tests/univoice_core/test_voice_features.py::test_statistics_of_real_speech": "Harvest on a 14 s recording",
    "tests/univoice_core/test_voice_features.py::test_women_come_out": "Harvest on four 8 s recordings",
}


def pytest_ignore_collect(collection_path, config):
    """Where slow tests are deselected (`make test-fast`), a file or folder SLOW names whole is not even imported."""
    if "not slow" not in (config.option.markexpr or "") or not collection_path.is_relative_to(config.rootpath):
        return None
    path = collection_path.relative_to(config.rootpath).as_posix() + ("/" if collection_path.is_dir() else "")
    return True if path.startswith("tests/training/") or path in SLOW else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        needs = set(item.fixturenames)  # every fixture the test needs, through other fixtures too
        if "triton" in needs:
            item.add_marker(pytest.mark.triton)
        if "browser" in needs:
            item.add_marker(pytest.mark.browser)
        training = item.nodeid.startswith("tests/training/")
        if training:
            item.add_marker(pytest.mark.training)
        if training or needs & SLOW_FIXTURES.keys() or any(item.nodeid.startswith(prefix) for prefix in SLOW):
            item.add_marker(pytest.mark.slow)


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
