"""What a request to Kokoro (Triton's `synthesizer`) is: the one definition the gateway, `voice_clone`,
training and export share.

Token convention, everywhere: `tokens` are one clause's phoneme ids *without* the two 0 pads. The pads are
added only when a request is built (`request`), as Kokoro's own model does with the ids it is given.
"""

from __future__ import annotations

import numpy as np

# Kokoro's context is 512 ids with the two pads, and its style tables have one row per length up to 510.
MAX_TOKENS = 510
STYLE_DIM = 256  # one row of a preset's [MAX_TOKENS, STYLE_DIM] style table
MIN_SPEED, MAX_SPEED = 0.5, 2.0  # Kokoro was only tried within this range here


def style_row(token_count: int) -> int:
    """The style-table row for a clause of `token_count` phoneme ids (pads not counted): `token_count - 1`.

    As Kokoro's reference pipeline (hexgrad/kokoro, kokoro/pipeline.py `KPipeline.infer`) calls
    `model(ps, pack[len(ps)-1], speed)` for the phoneme string `ps`, and `KModel.forward` (kokoro/model.py)
    only then wraps the ids as `[[0, *input_ids, 0]]`. Our phoneme strings hold vocabulary symbols only, so
    len(ps) is the number of ids.
    """
    if not 1 <= token_count <= MAX_TOKENS:
        raise ValueError(f"a Kokoro request holds 1..{MAX_TOKENS} phoneme ids, not {token_count}")
    return token_count - 1


def request(tokens: np.ndarray, speed: float | np.ndarray = 1.0,
            style: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The synthesizer's inputs for one clause: `tokens` [T] between two 0 pads as [1, T + 2] int64, `speed`
    as [1] float32 and, for a preset, its `style` row as [1, STYLE_DIM] float32. Without `style` it is
    `voice_clone`'s request (the model picks the preset itself)."""
    ids = np.asarray(tokens, dtype=np.int64).ravel()
    inputs = {
        "tokens": np.concatenate([[0], ids, [0]]).astype(np.int64)[None, :],
        "speed": np.full(1, speed, dtype=np.float32),
    }
    if style is not None:
        inputs["style"] = np.asarray(style, dtype=np.float32).reshape(1, STYLE_DIM)
    return inputs
