"""Preset voices: loading, choosing the nearest, and the once-per-machine cache of their embeddings.
Triton is replaced by a fake here; tests/gateway/pipeline/test_synthesis.py runs the real models."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from gateway.pipeline.interfaces import Voice
from gateway.pipeline.voices import DEFAULT_VOICE, load_presets, nearest_preset, preset_embeddings


class FakeTriton:
    """Audio and embedding derived from the style, so different presets get different, repeatable vectors."""

    def __init__(self):
        self.synthesized = 0

    async def synthesize(self, tokens, style, speed=1.0):
        self.synthesized += 1
        return np.random.default_rng(int(abs(style.sum()) * 1e6)).normal(size=24_000).astype(np.float32)

    async def embed(self, samples16k):
        assert len(samples16k) == 16_000  # resampled from 24 kHz
        return 3.0 * samples16k[:256]  # deliberately not unit length


@pytest.fixture(scope="module")
def presets() -> dict[str, Voice]:
    return load_presets()


def test_the_five_presets_are_510_by_256_style_tables(presets):
    assert sorted(presets) == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert DEFAULT_VOICE in presets
    for name, voice in presets.items():
        assert voice.name == name and voice.styles.shape == (510, 256) and voice.styles.dtype == np.float32


def test_the_nearest_preset_has_the_highest_cosine(presets):
    table = {name: np.eye(256)[i] for i, name in enumerate(presets)}
    speaker = 5.0 * table["jm_kumo"] + 2.0 * table["jf_alpha"]  # length does not matter, direction does
    assert nearest_preset(speaker, table, presets).name == "jm_kumo"


def test_choosing_without_preset_embeddings_says_how_to_get_them(presets):
    with pytest.raises(ValueError, match="preset_embeddings"):
        nearest_preset(np.ones(256), {}, presets)


@pytest.mark.anyio
async def test_preset_embeddings_are_unit_vectors_computed_once_per_cache(presets, tmp_path):
    cache = tmp_path / "presets.json"
    first = await preset_embeddings(FakeTriton(), presets, cache)
    again = FakeTriton()
    second = await preset_embeddings(again, presets, cache)
    assert again.synthesized == 0
    for name in presets:
        assert np.linalg.norm(first[name]) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_array_equal(first[name], second[name])


@pytest.mark.anyio
async def test_only_a_changed_preset_is_embedded_again(presets, tmp_path):
    cache = tmp_path / "presets.json"
    before = await preset_embeddings(FakeTriton(), presets, cache)
    changed = {**presets, "jf_alpha": replace(presets["jf_alpha"], styles=presets["jf_alpha"].styles * 0.5)}
    triton = FakeTriton()
    after = await preset_embeddings(triton, changed, cache)
    assert triton.synthesized == 1
    assert not np.allclose(before["jf_alpha"], after["jf_alpha"])


@pytest.mark.anyio
async def test_an_unreadable_cache_is_rebuilt(presets, tmp_path):
    cache = tmp_path / "presets.json"
    cache.write_text("{not json")
    triton = FakeTriton()
    await preset_embeddings(triton, presets, cache)
    assert triton.synthesized == len(presets)
    assert sorted(json.loads(cache.read_text())) == sorted(presets)
