"""config.pbtxt files: generated from one source, in sync, and wired consistently."""

from __future__ import annotations

import ast
import re

import pytest

from export import configs
from export.specs import SPECS
from gateway.settings import get_settings
from univoice_core import served
from univoice_core.served import SERVED_MODELS


def test_committed_configs_match_the_specs():
    assert configs.stale(get_settings().model_repository) == [], "run `univoice models configs` and commit"


def models_called_by(name: str) -> set[str]:
    """The served models a python model's code names (`served.SYNTHESIZER`, a name imported from
    univoice_core.served, or the name as a string): the models it calls over BLS or reads from."""
    tree = ast.parse((get_settings().model_repository / name / "1" / "model.py").read_text())
    constants = {key: value for key, value in vars(served).items() if value in SERVED_MODELS}
    imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "univoice_core.served" for alias in node.names}
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "served":
            named.add(constants.get(node.attr))
        elif isinstance(node, ast.Name) and node.id in imported:
            named.add(constants.get(node.id))
        elif isinstance(node, ast.Constant) and node.value in SERVED_MODELS:
            named.add(node.value)
    return named - {None, name}


def test_served_models_are_the_specs_in_dependency_order():
    """Triton loads SERVED_MODELS in order, and a BLS model's `initialize` may call or read the models it
    depends on: each of those must come before it."""
    assert set(SERVED_MODELS) == set(SPECS)
    dependencies = {name: models_called_by(name) for name, spec in SPECS.items() if spec.kind == "python"}
    assert dependencies["voice_embedding"] == {"speaker_encoder"}  # the reader sees what the models call
    assert dependencies["voice_clone"] == {"synthesizer", "voice_converter"}
    for name, needs in dependencies.items():
        for dependency in needs:
            assert SERVED_MODELS.index(dependency) < SERVED_MODELS.index(name), (dependency, name, SERVED_MODELS)


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
