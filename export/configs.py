"""Render every model's `config.pbtxt` (CPU and GPU flavours) from `export/specs.py` and one template."""

from __future__ import annotations

from pathlib import Path

import jinja2

from export.specs import FLAVOURS, SPECS, Flavour, ModelSpec
from univoice_core import served

_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("export", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
).get_template("config.pbtxt.j2")

GPU_CONFIG_NAME = "gpu"  # tritonserver --model-config-name=gpu picks <model>/configs/gpu.pbtxt


def render(spec: ModelSpec, flavour: Flavour) -> str:
    on_gpu = flavour == "gpu"
    onnx_native = spec.kind == "onnx" and on_gpu
    parameters = dict(spec.parameters)
    if spec.kind == "onnx" and not on_gpu:
        parameters["intra_op_threads"] = str(spec.cpu_threads)
    return _TEMPLATE.render(
        spec=spec,
        flavour=flavour,
        backend="onnxruntime" if onnx_native else "python",
        # Python-backend models (front end, pooling) run on CPU threads even on a GPU host.
        instance_kind="KIND_GPU" if onnx_native else "KIND_CPU",
        instances=spec.gpu_instances if on_gpu else spec.cpu_instances,
        # int8 Kokoro has no TensorRT kernels; float models get TensorRT FP16 inside onnxruntime.
        tensorrt=onnx_native and spec.name != served.SYNTHESIZER,
        parameters=parameters,
    ).rstrip() + "\n"


def config_path(repository: Path, name: str, flavour: Flavour) -> Path:
    if flavour == "cpu":
        return repository / name / "config.pbtxt"
    return repository / name / "configs" / f"{GPU_CONFIG_NAME}.pbtxt"


def write_all(repository: Path) -> list[Path]:
    """Write every config; returns the files whose content changed."""
    changed = []
    for spec in SPECS.values():
        for flavour in FLAVOURS:
            path = config_path(repository, spec.name, flavour)
            text = render(spec, flavour)
            if not path.exists() or path.read_text() != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                changed.append(path)
    return changed


def stale(repository: Path) -> list[Path]:
    """Configs on disk that differ from what the specs render (drift check for CI)."""
    return [
        config_path(repository, spec.name, flavour)
        for spec in SPECS.values()
        for flavour in FLAVOURS
        if not config_path(repository, spec.name, flavour).exists()
        or config_path(repository, spec.name, flavour).read_text() != render(spec, flavour)
    ]
