"""The one export contract every PyTorch model we serve goes through (after NeMo's `Exportable`).

A model supplies its module, tensor names, dynamic axes, example inputs (random shapes and real
data) and a tolerance; `export_onnx` writes ONNX with dynamic batch/time axes and `check_parity`
runs the ONNX graph against the PyTorch module on every example, failing loudly above tolerance.
"""

from __future__ import annotations

import hashlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Inputs = tuple[np.ndarray, ...]


class ParityError(RuntimeError):
    """The exported graph disagrees with the PyTorch module beyond tolerance: the export is refused."""


@dataclass(frozen=True)
class ParityCase:
    label: str
    shapes: tuple[tuple[int, ...], ...]
    max_abs_error: float


@dataclass
class ParityReport:
    runtime: str
    tolerance: float
    cases: list[ParityCase] = field(default_factory=list)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.cases), default=float("nan"))

    @property
    def passed(self) -> bool:
        return bool(self.cases) and self.max_abs_error <= self.tolerance

    def as_dict(self) -> dict:
        return {
            "runtime": self.runtime,
            "tolerance": self.tolerance,
            "max_abs_error": self.max_abs_error,
            "cases": [
                {"label": c.label, "shapes": [list(s) for s in c.shapes], "max_abs_error": c.max_abs_error}
                for c in self.cases
            ],
        }

    def summary(self) -> str:
        if not self.cases:
            return f"{self.runtime} parity: no inputs were checked"
        worst = max(self.cases, key=lambda c: c.max_abs_error)
        return (
            f"{self.runtime} parity over {len(self.cases)} inputs: max |error| {self.max_abs_error:.3g} "
            f"(tolerance {self.tolerance:g}; worst: {worst.label} {list(map(list, worst.shapes))})"
        )


class Exportable(ABC):
    """Implement this once per PyTorch model; `export.sources.TorchExport` does the rest."""

    name: str  # the Triton model this export feeds
    input_names: Sequence[str]
    output_names: Sequence[str]
    dynamic_axes: dict[str, dict[int, str]]
    tolerance: float = 1e-4
    trt_tolerance: float = 1e-2  # the TensorRT plan is built in FP16
    opset: int = 17

    @abstractmethod
    def module(self):
        """The PyTorch module in eval mode, on CPU."""

    @abstractmethod
    def random_inputs(self, rng: np.random.Generator) -> Iterable[tuple[str, Inputs]]:
        """Labelled inputs of varied batch/time shapes; the first one is also the tracing example."""

    @abstractmethod
    def real_inputs(self) -> Iterable[tuple[str, Inputs]]:
        """Labelled inputs made from real data."""

    @abstractmethod
    def source_files(self) -> Sequence[Path]:
        """Files (checkpoints, code) whose content decides the exported graph."""

    def trt_profile(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """Min/opt/max shapes per input for a TensorRT plan; empty means no plan for this model."""
        return {}

    def write_extras(self, directory: Path) -> None:
        """Files a version needs beside the graph (tables the serving code reads); none by default."""

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in [*self.source_files(), Path(__file__)]:
            digest.update(Path(path).name.encode())
            digest.update(_file_sha256(Path(path)).encode())
        digest.update(repr((self.opset, tuple(self.input_names), tuple(self.output_names), self.dynamic_axes)).encode())
        return digest.hexdigest()


def export_onnx(model: Exportable, path: Path, rng: np.random.Generator) -> None:
    import torch

    _, example = next(iter(model.random_inputs(rng)))
    module = model.module().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(a) for a in example),
            str(path),
            dynamo=False,
            input_names=list(model.input_names),
            output_names=list(model.output_names),
            dynamic_axes=model.dynamic_axes,
            opset_version=model.opset,
            do_constant_folding=True,
        )
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def check_parity(model: Exportable, onnx_path: Path, rng: np.random.Generator, progress=None) -> ParityReport:
    """Run the ONNX graph (onnxruntime, CPU) against the PyTorch module; raise ParityError above tolerance."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    module = model.module().eval()
    report = ParityReport(runtime="onnxruntime", tolerance=model.tolerance)
    cases = [*model.random_inputs(rng), *model.real_inputs()]
    for label, inputs in progress(cases, desc=f"{model.name}: parity") if progress else cases:
        with torch.no_grad():
            expected = module(*(torch.from_numpy(a) for a in inputs))
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        actual = session.run(list(model.output_names), dict(zip(model.input_names, inputs)))
        error = max(float(np.max(np.abs(e.numpy() - a))) for e, a in zip(expected, actual))
        report.cases.append(ParityCase(label, tuple(a.shape for a in inputs), error))
    if not report.passed:
        raise ParityError(f"export of {model.name} refused: {report.summary()}")
    return report


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
