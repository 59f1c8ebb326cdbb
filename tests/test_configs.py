"""config.pbtxt files: generated from one source, in sync, and wired consistently."""

from __future__ import annotations

import re

import pytest

from export import configs
from export.specs import SERVED_MODELS, SPECS
from gateway.settings import get_settings


def test_committed_configs_match_the_specs():
    assert configs.stale(get_settings().model_repository) == [], "run `univoice models configs` and commit"


def test_served_models_are_the_specs_in_dependency_order():
    assert set(SERVED_MODELS) == set(SPECS)
    assert SERVED_MODELS.index("speaker_encoder") < SERVED_MODELS.index("voice_embedding")


@pytest.mark.parametrize("name", [n for n, s in SPECS.items() if s.kind == "python"])
def test_python_models_have_committed_code(name):
    assert (get_settings().model_repository / name / "1" / "model.py").exists()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_cpu_and_gpu_flavours_differ_only_in_placement(name):
    spec = SPECS[name]
    cpu, gpu = configs.render(spec, "cpu"), configs.render(spec, "gpu")

    def tensors(text):
        return re.findall(r'\{ name: "[^"]+", data_type: TYPE_\w+, dims: \[[^\]]*\] \}', text)

    assert tensors(cpu) == tensors(gpu)
    assert f"max_batch_size: {spec.max_batch_size}" in cpu and f"max_batch_size: {spec.max_batch_size}" in gpu
    if spec.kind == "onnx":
        assert 'backend: "python"' in cpu and "KIND_CPU" in cpu
        assert 'backend: "onnxruntime"' in gpu and "KIND_GPU" in gpu
    if spec.dynamic_batching:
        assert "dynamic_batching" in cpu and "dynamic_batching" in gpu


def test_gpu_configs_live_where_model_config_name_finds_them():
    root = get_settings().model_repository
    for name in SPECS:
        assert (root / name / "configs" / "gpu.pbtxt").exists()
