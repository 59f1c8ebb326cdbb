"""Optional TensorRT FP16 plan with its own parity gate: runs where a CUDA GPU and `tensorrt` exist.

Elsewhere (this CPU machine, CI) the step is skipped with a message saying why; the GPU flavour of
the configs still serves the same ONNX file through onnxruntime's TensorRT execution provider.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from export.contract import Exportable, ParityCase, ParityError, ParityReport

log = logging.getLogger(__name__)


def unavailable_reason() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the `tensorrt` package is not installed (GPU hosts: pip install tensorrt)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return None


def build_plan(model: Exportable, onnx_path: Path, plan_path: Path, progress=None) -> ParityReport | None:
    """Build `plan_path` from `onnx_path` and gate it against PyTorch; None when skipped."""
    reason = unavailable_reason() or (None if model.trt_profile() else "the model declares no TensorRT profile")
    if reason:
        log.warning("TensorRT plan for %s skipped: %s", model.name, reason)
        return None
    import tensorrt as trt
    import torch

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in model.trt_profile().items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build a plan for {model.name}")
    plan_path.write_bytes(bytes(serialized))

    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    module = model.module().eval()
    limits = model.trt_profile()
    report = ParityReport(runtime="tensorrt-fp16", tolerance=model.trt_tolerance)
    cases = [*model.random_inputs(np.random.default_rng(0)), *model.real_inputs()]
    for label, inputs in progress(cases, desc=f"{model.name}: TensorRT parity") if progress else cases:
        if not all(_fits(a.shape, limits[n]) for n, a in zip(model.input_names, inputs)):
            continue
        stream = torch.cuda.current_stream()
        for name, array in zip(model.input_names, inputs):
            tensor = torch.from_numpy(array).cuda().contiguous()
            context.set_input_shape(name, tuple(array.shape))
            context.set_tensor_address(name, tensor.data_ptr())
            setattr(context, f"_keep_{name}", tensor)  # keep alive until the run finishes
        outputs = []
        for name in model.output_names:
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
            context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        with torch.no_grad():
            expected = module(*(torch.from_numpy(a) for a in inputs))
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        error = max(float((e - o.cpu()).abs().max()) for e, o in zip(expected, outputs))
        report.cases.append(ParityCase(label, tuple(a.shape for a in inputs), error))
    if not report.passed:
        plan_path.unlink(missing_ok=True)
        raise ParityError(f"TensorRT plan of {model.name} refused: {report.summary()}")
    return report


def _fits(shape, limits) -> bool:
    low, _, high = limits
    return len(shape) == len(low) and all(lo <= s <= hi for s, lo, hi in zip(shape, low, high))
