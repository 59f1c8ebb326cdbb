"""Embeddings per second through Triton's `voice_embedding` model, dynamic batching on vs off.

Each request is a 1.5 s real-speech clip, which the front end turns into exactly one partial, so one
request = one encoder row = one embedding. Clients are asyncio gRPC coroutines (one per concurrent
stream). "off" reloads both `voice_embedding` and `speaker_encoder` without their dynamic batchers.
Two ceilings, both in this process with the same thread budget and no serving at all:
* encoder only: the same ONNX file in onnxruntime at batch 1 and 32 (the issue's ceiling);
* whole path: voice_embedding's own front end + the encoder at batch 32 + pooling, i.e. exactly the
  work Triton does per embedding. Triton / whole path is the cost of serving itself.

    python -m benchmarks.embedding_throughput [--seconds 8] [--concurrency 1 8 32 64]

Prints a table and writes benchmarks/results/<date>/embedding_throughput.{json,png}.
Targets (issue 2): >= 3x gain from batching at concurrency 64, and >= 85 % of the batch-32 ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from export.repository import ModelRepository
from export.specs import SPEAKER_ENCODER
from gateway.embedded import private_triton
from gateway.settings import get_settings
from univoice_core.audio import MODEL_RATE

CLIP_SECONDS = 1.5  # one 160-frame partial per request
RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def _clip() -> np.ndarray:
    path = sorted(get_settings().data_dir.glob("*.flac"))[0]
    wav, _ = soundfile.read(path, dtype="float32")
    return wav[MODEL_RATE : MODEL_RATE + int(CLIP_SECONDS * MODEL_RATE)]


def _encoder_stats(client) -> tuple[int, int]:
    stats = client.get_inference_statistics("speaker_encoder", as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


async def _drive(url: str, wav: np.ndarray, concurrency: int, seconds: float) -> tuple[int, float, list[float]]:
    import tritonclient.grpc.aio as grpcaio
    from tritonclient.grpc import InferInput

    client = grpcaio.InferenceServerClient(url)
    tensor = InferInput("waveform", [1, len(wav)], "FP32")
    tensor.set_data_from_numpy(wav[None, :])
    latencies: list[float] = []
    done = 0
    deadline = 0.0

    async def stream():
        nonlocal done
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await client.infer("voice_embedding", [tensor])
            latencies.append(time.perf_counter() - start)
            done += 1

    # Warm up (fills the batcher and the stubs), then measure a fixed window.
    deadline = time.perf_counter() + 1.0
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    done, latencies[:] = 0, []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.close()
    return done, elapsed, latencies


BATCHED_MODELS = ("speaker_encoder", "voice_embedding")


def _set_batching(client, enabled: bool, originals: dict[str, dict]) -> None:
    for name in BATCHED_MODELS:
        if enabled:
            client.load_model(name)  # back to config.pbtxt
        else:
            config = {k: v for k, v in originals[name].items() if k != "dynamic_batching"}
            client.load_model(name, config=json.dumps(config))


def triton_throughput(url: str, concurrencies: list[int], seconds: float) -> list[dict]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    original = {name: client.get_model_config(name, as_json=True)["config"] for name in BATCHED_MODELS}
    wav = _clip()
    rows = []
    runs = [(b, c) for b in (True, False) for c in concurrencies]
    for batching, concurrency in tqdm(runs, desc="triton runs"):
        if concurrency == concurrencies[0]:
            _set_batching(client, batching, original)
        before = _encoder_stats(client)
        done, elapsed, latencies = asyncio.run(_drive(url, wav, concurrency, seconds))
        after = _encoder_stats(client)
        executions = max(1, after[1] - before[1])
        rows.append({
            "dynamic_batching": batching,
            "concurrency": concurrency,
            "embeddings_per_s": done / elapsed,
            "requests": done,
            "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p95_ms": 1000 * float(np.percentile(latencies, 95)),
            "mean_batch": (after[0] - before[0]) / executions,
        })
    _set_batching(client, True, original)
    return rows


def _rate(step, per_call: int, seconds: float) -> float:
    step()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += per_call
    return count / (time.perf_counter() - started)


def in_process_ceiling(repo: ModelRepository, threads: int, seconds: float) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    onnx_path = repo.info("speaker_encoder", repo.latest("speaker_encoder")).path / "model.onnx"
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    mels = {b: np.random.default_rng(0).gamma(0.5, 2.0, (b, 160, 40)).astype(np.float32) for b in (1, 32)}
    ceiling = {f"encoder_batch_{b}": _rate(lambda m=m: session.run(None, {"mel": m}), b, seconds) for b, m in mels.items()}

    frontend = repo.python_module("voice_embedding")
    clips = [_clip()] * 32

    def whole_path():
        parts = [frontend.partials(c) for c in clips]
        encoded = session.run(None, {"mel": np.concatenate(parts)})[0]
        return [frontend.pool(e[None, :]) for e in encoded]

    ceiling["path_batch_32"] = _rate(whole_path, 32, seconds)
    return ceiling


def plot(rows: list[dict], ceiling: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for batching, style in ((True, "o-"), (False, "s--")):
        points = [r for r in rows if r["dynamic_batching"] == batching]
        ax.plot([r["concurrency"] for r in points], [r["embeddings_per_s"] for r in points], style,
                label=f"Triton, dynamic batching {'on' if batching else 'off'}")
    styles = {"encoder_batch_1": ":", "encoder_batch_32": "-.", "path_batch_32": "--"}
    for key, value in ceiling.items():
        ax.axhline(value, color="grey", linestyle=styles[key], label=f"in-process {key.replace('_', ' ')}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("embeddings / s")
    ax.set_title("voice_embedding throughput (1.5 s clips, CPU)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per point")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--url", help="gRPC host:port of a running Triton (default: start a private one)")
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)

    settings = get_settings()
    repo = ModelRepository(settings.model_repository)
    if repo.latest("speaker_encoder") is None:
        raise SystemExit("model_repository/ is not materialised: run `make models`")
    threads = SPEAKER_ENCODER.cpu_threads  # the same thread budget the Triton instance gets

    if args.url:
        rows = triton_throughput(args.url, args.concurrency, args.seconds)
    else:
        # A private copy of the repository: the benchmark reloads speaker_encoder with other configs.
        with private_triton(settings.model_repository, BATCHED_MODELS) as server:
            rows = triton_throughput(server.grpc_url, args.concurrency, args.seconds)
    ceiling = in_process_ceiling(repo, threads, args.seconds)

    top = max(args.concurrency)
    on = next(r for r in rows if r["dynamic_batching"] and r["concurrency"] == top)["embeddings_per_s"]
    off = next(r for r in rows if not r["dynamic_batching"] and r["concurrency"] == top)["embeddings_per_s"]
    summary = {
        "concurrency": top,
        "batching_gain": on / off,
        "fraction_of_batch32_ceiling": on / ceiling["encoder_batch_32"],
        "fraction_of_in_process_path": on / ceiling["path_batch_32"],
        "targets": {"batching_gain": 3.0, "fraction_of_batch32_ceiling": 0.85, "fraction_of_in_process_path": 0.85},
    }
    summary["met"] = {k: summary[k] >= v for k, v in summary["targets"].items()}
    result = {
        "benchmark": "embedding_throughput",
        "clip_seconds": CLIP_SECONDS,
        "window_seconds": args.seconds,
        "machine": {"cpus": os.cpu_count()},
        "triton": rows,
        "in_process": ceiling,
        "ort_threads": threads,
        "summary": summary,
    }

    table = Table("batching", "clients", "emb/s", "p50 ms", "p95 ms", "mean batch", title="voice_embedding via Triton")
    for r in rows:
        table.add_row("on" if r["dynamic_batching"] else "off", str(r["concurrency"]), f"{r['embeddings_per_s']:.1f}",
                      f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}", f"{r['mean_batch']:.1f}")
    console.print(table)
    console.print(
        f"in-process, {threads} threads: encoder batch 1 {ceiling['encoder_batch_1']:.1f}/s, "
        f"encoder batch 32 {ceiling['encoder_batch_32']:.1f}/s, whole path batch 32 {ceiling['path_batch_32']:.1f}/s"
    )
    for key, target in summary["targets"].items():
        mark = "[green]met[/]" if summary["met"][key] else "[red]not met[/]"
        console.print(f"{key} at {top} clients: {summary[key]:.2f} (target >= {target}) {mark}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedding_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, ceiling, args.out / "embedding_throughput.png")
    console.print(f"saved {args.out / 'embedding_throughput.json'} and .png")
    return result


if __name__ == "__main__":
    main()
