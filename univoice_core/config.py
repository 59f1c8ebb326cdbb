"""Where things are, for the code that runs without the gateway's settings (training, export, the Triton models):
the source tree's defaults, moved by the same `UNIVOICE_*` environment variables the gateway's `Settings` read
(its defaults come from here). Only the environment is read here, not `.env` or AWS: export them to move these.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"
BUILD_DIR = REPO_ROOT / ".build"  # assembled model files (Whisper base) and caches
# Real speech for export parity gates, training, tests and benchmarks (LibriSpeech, CC BY 4.0).
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "librispeech-train-clean-100"
# The trained converter `make train-voice` writes and `univoice models export` exports.
VOICE_CONVERTER_CHECKPOINT = REPO_ROOT / "training" / "voice_converter" / "checkpoint" / "voice_converter.pt"
TRITON_HOST = "127.0.0.1"
TRITON_HTTP_PORT = 8000


def _environment(name: str) -> str | None:
    return os.environ.get(f"UNIVOICE_{name}") or None  # an empty value means the default, as in `.env.example`


def model_repository() -> Path:
    return Path(_environment("MODEL_REPOSITORY") or MODEL_REPOSITORY)


def build_dir() -> Path:
    return Path(_environment("BUILD_DIR") or BUILD_DIR)


def data_dir() -> Path:
    return Path(_environment("DATA_DIR") or DATA_DIR)


def voice_converter_checkpoint() -> Path:
    return Path(_environment("VOICE_CONVERTER_CHECKPOINT") or VOICE_CONVERTER_CHECKPOINT)


def triton_http_url() -> str:
    return f"{_environment('TRITON_HOST') or TRITON_HOST}:{_environment('TRITON_HTTP_PORT') or TRITON_HTTP_PORT}"
