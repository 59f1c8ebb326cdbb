"""KokoroSynthesizer's clause loop with a fake Triton (real espeak-ng): order, style rows, skipping,
halving over-long clauses, refusals and trimming. The real model is exercised in test_synthesis.py."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import BadRequest
from gateway.pipeline.phonemes import MAX_TOKENS, Phonemizer
from gateway.pipeline.synthesis import KokoroSynthesizer, trim_silence
from gateway.pipeline.text import split_clauses
from gateway.pipeline.voices import load_presets

pytestmark = pytest.mark.anyio
SILENCE, TONE = np.zeros(2_400, np.float32), 0.5 * np.ones(12_000, np.float32)  # 0.1 s quiet, 0.5 s loud


class FakeTriton:
    def __init__(self):
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    async def synthesize(self, tokens, style, speed=1.0):
        self.calls.append((tokens, style))
        return np.concatenate([SILENCE, TONE, SILENCE])


@pytest.fixture(scope="module")
def voice():
    return load_presets()["jf_alpha"]


@pytest.fixture
def triton() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
def synthesizer(triton) -> KokoroSynthesizer:
    return KokoroSynthesizer(triton, Phonemizer())


async def test_each_clause_is_spoken_in_order_with_the_style_row_for_its_length(synthesizer, triton, voice):
    text = "Good morning, everyone. Today we will talk about trains; then we will have lunch together."
    spoken = [clause async for clause in synthesizer.speak(text, "en", voice)]
    assert [clause.text for clause in spoken] == split_clauses(text)
    for tokens, style in triton.calls:
        np.testing.assert_array_equal(style, voice.styles[len(tokens) - 1])


async def test_a_clause_with_nothing_to_pronounce_is_skipped(synthesizer, voice):
    text = "Hello there, my good friend. ?!?!?!?!?!?!?! Good morning to you all."
    spoken = [clause.text async for clause in synthesizer.speak(text, "en", voice)]
    assert spoken == ["Hello there,", "my good friend.", "Good morning to you all."]


async def test_a_clause_over_510_tokens_is_halved_until_it_fits(synthesizer, triton, voice):
    text = ("77 " * 53).strip()  # 158 characters, read "siebenundsiebzig" 53 times: about 1000 tokens
    spoken = [clause.text async for clause in synthesizer.speak(text, "de", voice)]
    assert len(spoken) > 1 and " ".join(spoken) == text
    assert all(len(tokens) <= MAX_TOKENS for tokens, _ in triton.calls)


@pytest.mark.parametrize(
    ("language", "speed", "code"), [("xx", 1.0, "unsupported_language"), ("en", 3.0, "invalid_speed")]
)
async def test_a_bad_request_is_raised_before_any_synthesis(synthesizer, triton, voice, language, speed, code):
    with pytest.raises(BadRequest) as raised:
        async for _ in synthesizer.speak("Hello there, my friend.", language, voice, speed):
            pass
    assert raised.value.code == code and triton.calls == []


async def test_leading_and_trailing_silence_is_trimmed_to_30_ms(synthesizer, voice):
    spoken = [clause async for clause in synthesizer.speak("Hello there, my friend.", "en", voice)]
    assert len(spoken[0].audio24k) == len(TONE) + 2 * 720


def test_audio_with_nothing_loud_is_kept_as_it_is():
    quiet = np.full(1_000, 0.005, np.float32)
    np.testing.assert_array_equal(trim_silence(quiet), quiet)
