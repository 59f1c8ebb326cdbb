"""Train the voice converter: `make train-voice` (full) or `python -m training.voice_converter.train --quick`.

1. split the speakers of ../shared/data (train / validation / test by id, see `data.split`);
2. read a fixed passage with every Kokoro preset: their embeddings pick the nearest preset, their
   statistics normalise its envelope;
3. make parallel data for train + validation speakers (Whisper -> Kokoro -> DTW; cached);
4. train the converter (L1 on aligned envelopes, in the target speaker's normalised units), keeping the
   step with the lowest validation loss;
5. write the checkpoint (weights + preset table) and a report (JSON + loss curve PNG).

Fixed seeds throughout; progress bars for every long step. The full run took 47 min on 2 cores
(parallel data 30.5 min, training 16 min; the cached data makes a rerun ~16 min).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.voice_converter import data
from univoice_core import config, served
from univoice_core import voice_features as vf
from univoice_core.presets import PresetTable, load_styles
from univoice_core.whisper import whisper_model_dir

CHECKPOINT_DIR, CHECKPOINT = config.VOICE_CONVERTER_CHECKPOINT.parent, config.VOICE_CONVERTER_CHECKPOINT.name
SEED = 20261129
CHUNK_FRAMES = 160


def synthesizer_onnx() -> Path:
    """Kokoro's ONNX file as `make models` materialised it (the newest synthesizer version)."""
    return served.latest_version(config.model_repository() / served.SYNTHESIZER) / "model.onnx"


def prepare(quick: bool, train_speakers: int | None, workers: int, build_dir: Path) -> tuple[list, list, PresetTable]:
    parts = data.split(data.speakers(config.data_dir()))
    train, validation = parts["train"], parts["validation"]
    if quick:  # a few of each gender: proves the pipeline, not the quality
        train = _per_gender(train, 3)
        validation = _per_gender(validation, 1)
    elif train_speakers:
        train = _per_gender(train, train_speakers // 2)
    work = build_dir / "voice_converter"
    work.mkdir(parents=True, exist_ok=True)
    onnx, whisper = synthesizer_onnx(), whisper_model_dir("base", build_dir)
    table_path = work / "presets.npz"
    if not table_path.exists():
        print("reading the passage with every preset (embeddings + statistics) ...", flush=True)
        table = data.preset_table(data.Toolkit(onnx, whisper, threads=2), load_styles())
        table.save(table_path)
    table = PresetTable.load(table_path)
    cache = work / f"examples-v{data.EXAMPLE_FORMAT}-{_digest(table_path)}"
    chosen = train + validation
    built = data.examples(chosen, cache, onnx, whisper, table_path, workers, tqdm)
    return built[: len(train)], built[len(train) :], table


def _per_gender(group: list, count: int) -> list:
    return [s for g in "FM" for s in [x for x in group if x.gender == g][:count]]


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def train(examples: list[dict], validation: list[dict], table: PresetTable, steps: int, batch: int,
          seed: int) -> tuple[object, dict]:
    import torch

    from training.voice_converter.model import VoiceConverter

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.set_num_threads(2)
    model = VoiceConverter()
    statistics = np.stack([e["statistics"] for e in examples] + [s for s in table.statistics])
    model.statistics_mean.copy_(torch.from_numpy(statistics.mean(axis=0)))
    model.statistics_scale.copy_(torch.from_numpy(statistics.std(axis=0) + 1e-3))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    lengths = np.array([len(e["source"]) for e in examples], dtype=np.float64)
    history = {"step": [], "train_l1": [], "validation_l1": []}
    baseline = validation_l1(model, validation, table, residual=False)
    best, best_state, running = float("inf"), None, []
    evaluate_every = max(steps // 20, 10)
    bar = tqdm(range(1, steps + 1), desc="training the converter", unit="step")
    for step in bar:
        model.train()
        loss = _loss(model, *_batch(examples, table, lengths, batch, rng))
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        running.append(loss.item())
        if step % evaluate_every == 0 or step == steps:
            score = validation_l1(model, validation, table)
            history["step"].append(step)
            history["train_l1"].append(float(np.mean(running)))
            history["validation_l1"].append(score)
            running = []
            if score < best:
                best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
            bar.set_postfix(val=f"{score:.4f}", baseline=f"{baseline:.4f}")
    model.load_state_dict(best_state)
    return model.eval(), {"validation_l1_statistics_mapping": baseline, "validation_l1_best": best, "history": history}


def _tensors(examples: list[dict], table: PresetTable, pieces: list[tuple[int, int, int]]):
    """Chunks (example, start, stop) of equal length -> model inputs, targets and masks as tensors."""
    import torch

    source = np.stack([examples[i]["source"][a:b] for i, a, b in pieces])
    target = np.stack([examples[i]["target"][a:b] for i, a, b in pieces])
    mask = np.stack([examples[i]["mask"][a:b] for i, a, b in pieces]).astype(np.float32)
    source_stats = np.stack([table.statistics[int(examples[i]["preset"])] for i, _, _ in pieces])
    target_stats = np.stack([examples[i]["statistics"] for i, _, _ in pieces])
    embedding = np.stack([examples[i]["embedding"] for i, _, _ in pieces])
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return tuple(map(as_tensor, (source, source_stats, target_stats, embedding, target, mask)))


def _batch(examples, table, lengths, batch, rng):
    chosen = rng.choice(len(examples), size=batch, p=lengths / lengths.sum())
    pieces = []
    for i in chosen:
        length = len(examples[i]["source"])
        start = int(rng.integers(0, max(length - CHUNK_FRAMES, 0) + 1))
        pieces.append((int(i), start, start + min(CHUNK_FRAMES, length)))
    shortest = min(b - a for _, a, b in pieces)
    return _tensors(examples, table, [(i, a, a + shortest) for i, a, _ in pieces])


def _loss(model, source, source_stats, target_stats, embedding, target, mask, residual: bool = True):
    """Mean |error| over speech frames, in units of the target speaker's envelope std."""
    if residual:
        predicted = model(source, source_stats, target_stats, embedding)
    else:  # the statistics mapping alone: what the untrained converter does
        predicted = model.denormalise(model.normalise(source, source_stats), target_stats)
    error = (model.normalise(predicted, target_stats) - model.normalise(target, target_stats)).abs().mean(dim=-1)
    return (error * mask).sum() / mask.sum().clamp(min=1.0)


def validation_l1(model, validation: list[dict], table: PresetTable, residual: bool = True) -> float:
    import torch

    model.eval()
    total, frames = 0.0, 0.0
    with torch.no_grad():
        for i, example in enumerate(validation):
            tensors = _tensors(validation, table, [(i, 0, len(example["source"]))])
            weight = float(tensors[-1].sum())
            total += float(_loss(model, *tensors, residual=residual)) * weight
            frames += weight
    return total / max(frames, 1.0)


def plot(history: dict, baseline: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(history["step"], history["train_l1"], label="train")
    axis.plot(history["step"], history["validation_l1"], label="validation")
    axis.axhline(baseline, color="grey", linestyle="--", label="statistics mapping (untrained)")
    axis.set_xlabel("step")
    axis.set_ylabel("L1, target-normalised envelope")
    axis.set_title("Voice converter training")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 speakers, 60 steps: checks the pipeline (CI)")
    parser.add_argument("--train-speakers", type=int, default=None, help="cap on training speakers (both genders)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="processes making parallel data")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"checkpoint folder (default {CHECKPOINT_DIR.relative_to(config.REPO_ROOT)}; "
                             "--quick: .build)")
    args = parser.parse_args(argv)
    build_dir = config.build_dir()
    out = args.out or (build_dir / "voice_converter" / "quick" if args.quick else CHECKPOINT_DIR)
    steps = args.steps or (60 if args.quick else 2500)
    started = time.time()
    examples, validation, table = prepare(args.quick, args.train_speakers, args.workers, build_dir)
    prepared = time.time()
    model, figures = train(examples, validation, table, steps, args.batch, SEED)
    out.mkdir(parents=True, exist_ok=True)
    from training.voice_converter.model import save

    save(model, out / CHECKPOINT, {"presets": {"names": table.names, "embeddings": table.embeddings,
                                               "statistics": table.statistics}})
    report = {
        "command": "python -m training.voice_converter.train" + (" --quick" if args.quick else ""),
        "seed": SEED,
        "train_speakers": [e["speaker"].item() for e in examples],
        "validation_speakers": [e["speaker"].item() for e in validation],
        "train_frames": int(sum(e["mask"].sum() for e in examples)),
        "steps": steps,
        "data_minutes": round((prepared - started) / 60, 2),
        "training_minutes": round((time.time() - prepared) / 60, 2),
        "envelope_dim": vf.ENVELOPE_DIM,
        **{k: v for k, v in figures.items() if k != "history"},
        "history": figures["history"],
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(figures["history"], figures["validation_l1_statistics_mapping"], out / "training_loss.png")
    print(f"validation L1: {figures['validation_l1_best']:.4f} trained vs "
          f"{figures['validation_l1_statistics_mapping']:.4f} statistics mapping; checkpoint: {out / CHECKPOINT}")
    return report


if __name__ == "__main__":
    main()
