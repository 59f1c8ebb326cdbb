"""The Kokoro request rules every caller shares (univoice_core.kokoro)."""

from __future__ import annotations

import numpy as np
import pytest

from univoice_core import kokoro
from univoice_core.presets import load_styles


def test_the_style_row_is_the_phoneme_count_minus_one_as_in_kokoros_pipeline():
    """KPipeline.infer reads pack[len(ps) - 1] for a clause of len(ps) phonemes, before the pads are added."""
    assert [kokoro.style_row(count) for count in (1, 17, kokoro.MAX_TOKENS)] == [0, 16, 509]


@pytest.mark.parametrize("count", [0, kokoro.MAX_TOKENS + 1])
def test_a_clause_outside_the_style_table_is_refused(count):
    with pytest.raises(ValueError, match="1..510 phoneme ids"):
        kokoro.style_row(count)


def test_every_style_table_has_a_row_for_every_allowed_length():
    assert {styles.shape for styles in load_styles().values()} == {(kokoro.MAX_TOKENS, kokoro.STYLE_DIM)}


def test_a_request_puts_the_ids_between_two_zero_pads_with_the_style_row_and_the_speed():
    styles = load_styles()["jf_alpha"]
    tokens = np.array([50, 83, 54])
    inputs = kokoro.request(tokens, 1.25, styles[kokoro.style_row(len(tokens))])
    assert inputs["tokens"].tolist() == [[0, 50, 83, 54, 0]] and inputs["tokens"].dtype == np.int64
    np.testing.assert_array_equal(inputs["style"], styles[2][None, :])
    assert inputs["style"].dtype == np.float32
    assert inputs["speed"].tolist() == [1.25] and inputs["speed"].dtype == np.float32


def test_voice_clones_request_carries_no_style_and_takes_the_speed_as_served():
    inputs = kokoro.request(np.array([7]), np.array([0.75], np.float32))
    assert sorted(inputs) == ["speed", "tokens"]
    assert inputs["speed"].shape == (1,) and inputs["tokens"].shape == (1, 3)
