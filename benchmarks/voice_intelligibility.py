"""How intelligible each Kokoro preset voice is: Whisper-base WER of English it reads aloud.

The texts are Whisper's own transcripts of the first N LibriSpeech utterances (real sentences with
names and rare words); each preset reads them through the Triton `synthesizer`, and Whisper base
transcribes the result. Picks the default voice (gateway/pipeline/voices.py).

    python -m benchmarks.voice_intelligibility [--utterances 6]

Prints a table and writes benchmarks/results/<date>/voice_intelligibility.{json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from benchmarks.quality import word_error_rate
from gateway.embedded import private_triton
from gateway.pipeline.stt import WhisperTranscriber
from gateway.pipeline.synthesis import KokoroSynthesizer
from gateway.pipeline.voices import load_presets
from gateway.settings import get_settings
from gateway.triton.client import TritonClient
from univoice_core.audio import to_model_rate
from univoice_core.whisper import whisper_model_dir

RESULTS = Path(__file__).resolve().parent / "results"


async def measure(grpc_url: str, count: int) -> dict[str, list[float]]:
    settings = get_settings()
    transcriber = WhisperTranscriber(whisper_model_dir("base", settings.build_dir))
    synthesizer = KokoroSynthesizer(TritonClient(grpc_url, timeout_s=120))
    texts = []
    for path in sorted(settings.data_dir.glob("*.flac"))[:count]:
        wav, _ = soundfile.read(path, dtype="float32")
        texts.append(await transcriber.transcribe(wav, "en"))
    scores: dict[str, list[float]] = {}
    presets = load_presets()
    for name, voice in tqdm(presets.items(), desc="presets"):
        for text in texts:
            audio = np.concatenate([c.audio24k async for c in synthesizer.speak(text, "en", voice)])
            heard = await transcriber.transcribe(to_model_rate(audio), "en")
            scores.setdefault(name, []).append(word_error_rate(text, heard))
    return scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=6)
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    settings = get_settings()
    with private_triton(settings.model_repository, ["synthesizer"]) as server:
        scores = asyncio.run(measure(server.grpc_url, args.utterances))
    means = {name: float(np.mean(values)) for name, values in scores.items()}
    table = Table("preset", "mean WER", "per utterance", title="Whisper-base WER of English read by each preset")
    for name in sorted(means, key=means.get):
        table.add_row(name, f"{100 * means[name]:.1f} %", " ".join(f"{v:.2f}" for v in scores[name]))
    Console().print(table)
    result = {"benchmark": "voice_intelligibility", "utterances": args.utterances, "wer": scores, "mean_wer": means,
              "most_intelligible": min(means, key=means.get)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "voice_intelligibility.json").write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = sorted(means, key=means.get)
    ax.bar(names, [100 * means[n] for n in names], color="tab:blue")
    ax.set_ylabel("WER (%)")
    ax.set_title("Intelligibility of the preset voices (Whisper base)")
    fig.tight_layout()
    fig.savefig(args.out / "voice_intelligibility.png", dpi=120)
    Console().print(f"saved {args.out / 'voice_intelligibility.json'} and .png")
    return result


if __name__ == "__main__":
    main()
