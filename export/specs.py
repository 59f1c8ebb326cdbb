"""The one source of truth for every model Triton serves.

Each `ModelSpec` describes a model's tensors, batching and instances once; `export.configs`
renders it through one template into both flavours of `config.pbtxt`:

* ``cpu`` (``<model>/config.pbtxt``): the bundled Triton from the ``nvidia-pytriton`` wheel, which has
  only the python backend, so ONNX models run in `export/onnx_backend.py` on onnxruntime;
* ``gpu`` (``<model>/configs/gpu.pbtxt``, selected with ``tritonserver --model-config-name=gpu``): the
  stock NGC image, where ONNX models use the native ``onnxruntime`` backend (TensorRT accelerated) or a
  ``tensorrt_plan`` when `export` built one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from univoice_core import served
from univoice_core.kokoro import STYLE_DIM
from univoice_core.voice_features import ENVELOPE_DIM, STATISTICS_DIM

Kind = Literal["onnx", "python", "gguf"]
Flavour = Literal["cpu", "gpu"]
FLAVOURS: tuple[Flavour, ...] = ("cpu", "gpu")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # Triton type without the TYPE_ prefix: FP32, INT64, ...
    dims: tuple[int, ...]  # without the batch dimension when max_batch_size > 0
    ragged: bool = False  # requests of different lengths may share one batch (python models only)
    optional: bool = False  # a request may leave it out


@dataclass(frozen=True)
class DynamicBatching:
    max_queue_delay_us: int
    preferred_batch_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: Kind
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int = 0
    dynamic_batching: DynamicBatching | None = None
    cpu_instances: int = 1
    gpu_instances: int = 1
    # onnxruntime intra-op threads per CPU instance (python-backend runner only).
    cpu_threads: int = 1
    description: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    # One request, many responses (streamed over gRPC): the translator sends its text piece by piece.
    decoupled: bool = False
    # The GPU flavour's comment: how this model is served on a GPU fleet when it is not by this config.
    gpu_note: str = ""


SPEAKER_ENCODER = ModelSpec(
    name=served.SPEAKER_ENCODER,
    kind="onnx",
    description="resemblyzer GE2E (3xLSTM-256): mel partials [B,T,40] -> L2-normalised d-vectors [B,256]",
    inputs=(TensorSpec("mel", "FP32", (-1, served.MEL_CHANNELS)),),
    outputs=(TensorSpec("embedding", "FP32", (served.EMBEDDING_DIM,)),),
    # One utterance sends all its partials as one batch (60 s of speech is ~78 partials).
    max_batch_size=128,
    # Callers (voice_embedding's BLS) already send whole batches: merge what is queued, never wait.
    dynamic_batching=DynamicBatching(max_queue_delay_us=0),
    cpu_instances=1,
    cpu_threads=2,
)

VOICE_EMBEDDING = ModelSpec(
    name=served.VOICE_EMBEDDING,
    kind="python",
    description="16 kHz waveforms [B,N] -> utterance embeddings [B,256] (resemblyzer embed_utterance; BLS)",
    inputs=(TensorSpec("waveform", "FP32", (-1,), ragged=True),),
    outputs=(TensorSpec("embedding", "FP32", (served.EMBEDDING_DIM,)),),
    max_batch_size=64,
    # Wait at most 1 ms for other utterances: one python round trip then serves them all.
    dynamic_batching=DynamicBatching(max_queue_delay_us=1_000),
    cpu_instances=1,
)

SYNTHESIZER = ModelSpec(
    name=served.SYNTHESIZER,
    kind="onnx",
    description="Kokoro-82M int8: phoneme ids [1,T] + style [1,256] + speed [1] -> 24 kHz waveform [N]",
    inputs=(
        TensorSpec("tokens", "INT64", (1, -1)),
        TensorSpec("style", "FP32", (1, STYLE_DIM)),
        TensorSpec("speed", "FP32", (1,)),
    ),
    outputs=(TensorSpec("audio", "FP32", (-1,)),),
    # The ONNX graph is fixed at batch 1: concurrency comes from parallel instances instead. Each may
    # use both cores: a lone listener's first clause then comes ~2x sooner (threads do not spin).
    max_batch_size=0,
    cpu_instances=2,
    gpu_instances=2,
    cpu_threads=2,
)

# The converter's per-item shape is fixed by its caller (voice_clone cuts every utterance into chunks of
# CONVERTER_CHUNK_FRAMES), so chunks of concurrent requests batch together.
VOICE_CONVERTER = ModelSpec(
    name=served.VOICE_CONVERTER,
    kind="onnx",
    description="trained voice converter: preset envelope chunks [B,T,40] + statistics + embedding -> speaker's envelope",
    inputs=(
        TensorSpec("envelope", "FP32", (-1, ENVELOPE_DIM)),
        TensorSpec("source_statistics", "FP32", (STATISTICS_DIM,)),
        TensorSpec("target_statistics", "FP32", (STATISTICS_DIM,)),
        TensorSpec("embedding", "FP32", (served.EMBEDDING_DIM,)),
    ),
    outputs=(TensorSpec("converted", "FP32", (-1, ENVELOPE_DIM)),),
    max_batch_size=64,
    # A clause sends all its chunks at once; wait 2 ms for other streams' chunks to share the call.
    dynamic_batching=DynamicBatching(max_queue_delay_us=2_000),
    cpu_instances=1,
    cpu_threads=2,
)

VOICE_CLONE = ModelSpec(
    name=served.VOICE_CLONE,
    kind="python",
    description="phoneme ids + speaker embedding + voice statistics + speed -> 24 kHz speech in that voice (BLS: "
    "nearest preset on synthesizer, WORLD analysis, voice_converter, F0 mapping, WORLD synthesis)",
    inputs=(
        TensorSpec("tokens", "INT64", (1, -1)),
        TensorSpec("embedding", "FP32", (served.EMBEDDING_DIM,)),
        TensorSpec("statistics", "FP32", (STATISTICS_DIM,)),
        TensorSpec("speed", "FP32", (1,)),
    ),
    outputs=(TensorSpec("audio", "FP32", (-1,)),),
    # Like the synthesizer it drives: one clause per request, concurrency from instances.
    max_batch_size=0,
    cpu_instances=2,
    gpu_instances=2,
)

TRANSLATOR = ModelSpec(
    name=served.TRANSLATOR,
    kind="gguf",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M on llama.cpp: text + languages (+ previous utterances) -> "
    "the translation, streamed piece by piece (decoupled)",
    inputs=(
        TensorSpec("text", "STRING", (1,)),
        TensorSpec("source_language", "STRING", (1,)),
        TensorSpec("target_language", "STRING", (1,)),
        # The session's previous utterances, flattened: [source 1, translation 1, source 2, translation 2].
        TensorSpec("context", "STRING", (-1,), optional=True),
        TensorSpec("style", "STRING", (1,), optional=True),  # "plain": the benchmark's single-sentence baseline
    ),
    outputs=(TensorSpec("piece", "STRING", (1,)),),
    max_batch_size=0,
    decoupled=True,
    # One llama.cpp context per instance, serving one request at a time on both cores (1.8 GB RAM each).
    cpu_instances=1,
    gpu_instances=1,
    # warm_pairs: the instruction prefixes evaluated at load (~2 s each), so the first request is not slower.
    # nice: llama.cpp runs at a lower CPU priority than Whisper and Kokoro (see llm_backend.lower_priority).
    parameters={"n_ctx": "2048", "n_threads": "2", "max_tokens": "256", "warm_pairs": "es-en,en-es", "nice": "10"},
    gpu_note="On a GPU fleet, serve the same model (Qwen2.5-Coder-1.5B-Instruct, Apache-2.0; its safetensors or GGUF) with Triton's vLLM backend "
    "(backend: \"vllm\", a model.json naming the weights, decoupled) or TensorRT-LLM (an engine built by "
    "trtllm-build, the tensorrtllm backend behind the ensemble from tensorrtllm_backend); the gateway's "
    "request (text, languages, context -> streamed pieces) stays the same. This config keeps llama.cpp on the "
    "host CPU, which serves a GPU host unchanged.",
)

# Every served model (univoice_core.served.SERVED_MODELS), in load order.
SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (SPEAKER_ENCODER, VOICE_EMBEDDING, SYNTHESIZER, VOICE_CONVERTER, VOICE_CLONE, TRANSLATOR)
}


def spec(name: str) -> ModelSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(SPECS))}") from None
