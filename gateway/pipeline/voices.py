"""Kokoro's preset voices as the gateway speaks with them, and the once-per-machine cache of their embeddings.

Choosing the preset nearest to a speaker is `univoice_core.presets`: it mostly gets the gender right, which
is most of what the five presets can offer (see ../shared/NOTES.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from gateway.pipeline.interfaces import Voice
from gateway.triton.client import TritonClient
from univoice_core import kokoro
from univoice_core import presets as core_presets
from univoice_core.atomic import atomic_write
from univoice_core.audio import to_model_rate
from univoice_core.phonemes import Phonemizer

# Without a voice profile: the most intelligible preset. Whisper-base WER of English read by each preset
# (6 LibriSpeech transcripts, `python -m benchmarks.voice_intelligibility`, 2026-11-29): jf_gongitsune
# 4.0 %, jm_kumo 4.2 %, jf_nezumi 4.6 %, jf_tebukuro 10.3 %, jf_alpha 13.2 %.
DEFAULT_VOICE = "jf_gongitsune"


def load_presets() -> dict[str, Voice]:
    """The five voices shipped with Kokoro's Japanese model, as Voices with [510, 256] style tables."""
    return {name: Voice(name, styles) for name, styles in core_presets.load_styles().items()}


async def preset_embeddings(
    triton: TritonClient, presets: dict[str, Voice], cache_path: Path, phonemizer: Phonemizer | None = None
) -> dict[str, np.ndarray]:
    """Each preset's L2-normalised speaker embedding, reading PASSAGE.

    A synthesis takes seconds on CPU, so results are kept in `cache_path` (JSON: name -> {key, embedding}),
    keyed by a hash of the phonemes and the style table: computed once per machine, and again only for a
    preset whose style or passage changed.
    """
    tokens = (phonemizer or Phonemizer()).tokens(core_presets.PASSAGE, "en")
    cached = _read_cache(cache_path)
    keys = {name: _cache_key(tokens, voice) for name, voice in presets.items()}
    missing = [name for name in presets if cached.get(name, {}).get("key") != keys[name]]
    for name in missing:  # one at a time: queued behind each other, five ~4 s calls could pass the client timeout
        embedding = await _embed_preset(triton, tokens, presets[name])
        cached[name] = {"key": keys[name], "embedding": embedding.tolist()}
    if missing:  # concurrent workers may compute the same cache
        atomic_write(cache_path, json.dumps(cached).encode())
    return {name: np.asarray(cached[name]["embedding"], dtype=np.float32) for name in presets}


def nearest_preset(embedding: np.ndarray, preset_embeddings: dict[str, np.ndarray], presets: dict[str, Voice]) -> Voice:
    """The preset whose embedding has the highest cosine similarity to the speaker's."""
    if not preset_embeddings:
        raise ValueError("no preset embeddings to compare with: compute them with preset_embeddings() first")
    names = list(preset_embeddings)
    return presets[names[core_presets.nearest(embedding, np.stack([preset_embeddings[n] for n in names]))]]


def preset_scores(embedding: np.ndarray, preset_embeddings: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine similarity of the speaker to each preset, for reporting."""
    names = list(preset_embeddings)
    scores = core_presets.cosine_scores(embedding, np.stack([preset_embeddings[n] for n in names]))
    return {name: float(score) for name, score in zip(names, scores)}


async def _embed_preset(triton: TritonClient, tokens: np.ndarray, voice: Voice) -> np.ndarray:
    audio = await triton.synthesize(tokens, voice.styles[kokoro.style_row(len(tokens))])
    return core_presets.unit(np.ravel(await triton.embed(to_model_rate(audio))))


def _cache_key(tokens: np.ndarray, voice: Voice) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(tokens, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(voice.styles, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _read_cache(path: Path) -> dict:
    """An unreadable or foreign file is treated as empty: it is only a cache, rewritten below."""
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(cached, dict):
        return {}
    return {name: entry for name, entry in cached.items() if isinstance(entry, dict)}
