"""Whisper base: what a shorter window (`chunk_length`) saves per call, and what it changes in the text.

There are no reference transcripts for the LibriSpeech clips here, so the reference is Whisper base's own
output with faster-whisper's default 30 s window and timestamp tokens on; WER is measured against that
(the change a setting makes, not absolute accuracy). Every row decodes like `WhisperTranscriber` (int8,
beam 1, no temperature fallback, language "en"), with timestamp tokens on ("ts") or text only ("text").
Three kinds of window:

* `chunk_length N` — what `WhisperTranscriber(chunk_length=N)` does: faster-whisper cuts the audio into
  windows of N s, but pads each one back to 30 s of features before the encoder;
* `encoder cut to N s` — the same, with the encoder input really cut to N s (CTranslate2 accepts it);
* `encoder cut to audio + N s` — no windows under 30 s; the encoder input cut to the clip plus N s.

Two clip sets: whole utterances (final transcripts) and their first 5 s (a live partial).

    python -m benchmarks.stt_chunk_length [--utterances 20] [--threads 2]

Prints a table and writes benchmarks/results/<date>/stt_chunk_length.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table

from benchmarks.quality import normalise_words, word_errors
from gateway.pipeline.stt import WhisperTranscriber
from gateway.settings import get_settings
from univoice_core.audio import MODEL_RATE
from univoice_core.whisper import whisper_model_dir

RESULTS = Path(__file__).resolve().parent / "results"
PARTIAL_SECONDS = 5.0
FRAMES_PER_SECOND = 100  # Whisper's mel hop is 10 ms
console = Console(width=120)


class CutEncoderTranscriber(WhisperTranscriber):
    """Cuts the 30 s of features faster-whisper gives the encoder: to chunk_length, or to the clip + pad_s."""

    def __init__(self, model_dir: Path, *, cpu_threads: int, chunk_length: int, without_timestamps: bool,
                 pad_s: float | None = None):
        super().__init__(model_dir, cpu_threads=cpu_threads, chunk_length=chunk_length,
                         without_timestamps=without_timestamps)
        self.pad_s = pad_s
        self._frames = chunk_length * FRAMES_PER_SECOND
        encode = self._model.encode
        self._model.encode = lambda features: encode(features[..., : self._frames])

    def _transcribe(self, samples: np.ndarray, language: str) -> str:
        if self.pad_s is not None:
            seconds = min(self.chunk_length, len(samples) / MODEL_RATE + self.pad_s)
            self._frames = 2 * math.ceil(seconds * FRAMES_PER_SECOND / 2)  # the encoder's conv has stride 2
        return super()._transcribe(samples, language)


def run(transcriber: WhisperTranscriber, clips: list[np.ndarray]) -> tuple[list[str], list[float]]:
    async def go() -> tuple[list[str], list[float]]:
        await transcriber.transcribe(clips[0], "en")  # warm-up: first-call allocations
        texts, seconds = [], []
        for clip in clips:
            started = time.perf_counter()
            texts.append(await transcriber.transcribe(clip, "en"))
            seconds.append(time.perf_counter() - started)
        return texts, seconds

    return asyncio.run(go())


# (window, chunk_length, text only, encoder cut: None, "window" or padding in seconds, clip sets).
# A clip shorter than chunk_length decodes exactly as at 30, so those rows skip the 5 s clips.
CONFIGS = [
    ("chunk_length 30", 30, False, None, ("utterance", "partial")),  # the reference
    ("chunk_length 15", 15, False, None, ("utterance",)),
    ("chunk_length 10", 10, False, None, ("utterance",)),
    ("chunk_length 30", 30, True, None, ("utterance", "partial")),
    ("encoder cut to 15 s", 15, False, "window", ("utterance", "partial")),
    ("encoder cut to audio + 3 s", 30, False, 3.0, ("utterance", "partial")),
]


def _label(window: str, text_only: bool) -> str:
    return f"{'text only' if text_only else 'timestamps'}, {window}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)

    paths = sorted(get_settings().data_dir.glob("*.flac"))[: args.utterances]
    full = [soundfile.read(path, dtype="float32")[0] for path in paths]
    clip_sets = {"utterance": full, "partial": [w[: int(PARTIAL_SECONDS * MODEL_RATE)] for w in full]}
    model_dir = whisper_model_dir("base", get_settings().build_dir)

    rows, texts = [], {}
    reference_label = _label(CONFIGS[0][0], CONFIGS[0][2])
    for window, chunk, text_only, cut, sets in CONFIGS:
        label = _label(window, text_only)
        options = {"cpu_threads": args.threads, "chunk_length": chunk, "without_timestamps": text_only}
        if cut is None:
            transcriber = WhisperTranscriber(model_dir, **options)
        else:
            transcriber = CutEncoderTranscriber(model_dir, **options, pad_s=None if cut == "window" else cut)
        for clip_set in sets:
            out, seconds = run(transcriber, clip_sets[clip_set])
            texts[f"{clip_set} / {label}"] = out
            reference = texts[f"{clip_set} / {reference_label}"]
            errors = np.sum([word_errors(r, h) for r, h in zip(reference, out)], axis=0)
            rows.append({
                "clips": clip_set, "config": label, "wer_vs_reference": float(errors[0] / errors[1]),
                "clips_losing_over_half_the_words": sum(len(normalise_words(h)) < len(normalise_words(r)) / 2
                                                        for r, h in zip(reference, out)),
                "mean_s": float(np.mean(seconds)), "p95_s": float(np.percentile(seconds, 95)),
                "max_s": float(np.max(seconds)),
            })

    durations = [len(w) / MODEL_RATE for w in full]
    result = {
        "benchmark": "stt_chunk_length",
        "model": "whisper base int8 (CTranslate2), beam 1, temperature 0, language en",
        "reference": reference_label,
        "machine": {"cpus": os.cpu_count(), "threads": args.threads},
        "utterances": [p.name for p in paths],
        "partial_seconds": PARTIAL_SECONDS,
        "utterance_seconds": {"min": min(durations), "mean": float(np.mean(durations)), "max": max(durations),
                              "over_10_s": sum(d > 10 for d in durations), "over_15_s": sum(d > 15 for d in durations)},
        "rows": rows,
        "texts": texts,
    }

    table = Table("clips", "decoding, window", "WER vs ref", "clips < 1/2 words", "s / call", "p95 s", "max s",
                  title=f"Whisper base, {len(paths)} LibriSpeech utterances, {args.threads} threads")
    for r in rows:
        wer = "reference" if r["config"] == reference_label else f"{100 * r['wer_vs_reference']:.1f} %"
        clips = "utterance" if r["clips"] == "utterance" else f"first {PARTIAL_SECONDS:g} s"
        table.add_row(clips, r["config"], wer, str(r["clips_losing_over_half_the_words"]), f"{r['mean_s']:.2f}",
                      f"{r['p95_s']:.2f}", f"{r['max_s']:.2f}")
    console.print(table)
    stats = result["utterance_seconds"]
    console.print(f"utterances {stats['min']:.1f}-{stats['max']:.1f} s (mean {stats['mean']:.1f}); "
                  f"{stats['over_10_s']} over 10 s, {stats['over_15_s']} over 15 s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stt_chunk_length.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"saved {args.out / 'stt_chunk_length.json'}")
    return result


if __name__ == "__main__":
    main()
