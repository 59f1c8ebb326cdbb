"""`WhisperTranscriber` on real speech (LibriSpeech), with Whisper base assembled from its PyPI parts.

There are no reference transcripts, so the checks are what must hold for any usable transcriber:
English words come out, two utterances played back to back give both texts in order, silence gives
(almost) nothing, and languages the model cannot do are refused.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quality import normalise_words
from gateway.pipeline.stt import WhisperTranscriber
from gateway.settings import get_settings
from univoice_core.audio import MODEL_RATE
from univoice_core.errors import BadRequest
from univoice_core.whisper import whisper_base_is_assembled, whisper_base_parts, whisper_model_dir


@pytest.fixture(scope="session")
def transcripts(whisper_base, utterances) -> list[str]:
    """The first three utterances, transcribed one by one."""
    async def run() -> list[str]:
        return [await whisper_base.transcribe(wav, "en") for _, wav in utterances[:3]]

    return asyncio.run(run())


def test_whisper_base_is_assembled_once(tmp_path: Path):
    parts = whisper_base_parts()
    target = whisper_model_dir("base", tmp_path)
    model = target / "model.bin"
    assert model.stat().st_size == sum(p.stat().st_size for p in parts)
    with model.open("rb") as joined, parts[1].open("rb") as second:
        joined.seek(parts[0].stat().st_size)
        assert joined.read(4096) == second.read(4096)
    assert {p.name for p in target.iterdir()} == {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}
    stamp = model.stat().st_mtime_ns
    assert whisper_model_dir("base", tmp_path) == target and model.stat().st_mtime_ns == stamp

    with model.open("r+b") as handle:  # an interrupted copy is noticed and redone
        handle.truncate(1000)
    assert not whisper_base_is_assembled(tmp_path)
    whisper_model_dir("base", tmp_path)
    assert whisper_base_is_assembled(tmp_path)


def test_tiny_en_ships_ready():
    assert (whisper_model_dir("tiny.en", Path("/nonexistent")) / "model.bin").is_file()


def test_transcribes_real_english_speech(transcripts: list[str]):
    """Each utterance comes out as English text; most come out whole. Not all: greedy int8 decoding can stop
    early, and where depends on the CPU's kernels: on an AVX2-only AMD EPYC (2026-11-29) 1034-121119-0000
    (7.9 s) gave only "Chapter 99, THE LONG." (float32: "... THE LAW. We have seen how quietly.")."""
    for text in transcripts:
        letters = [c for c in text if c.isalpha()]
        assert letters and sum(c.isascii() for c in letters) / len(letters) > 0.95, text
    assert sum(len(normalise_words(text)) > 5 for text in transcripts) >= len(transcripts) - 1, transcripts


@pytest.mark.anyio
async def test_two_utterances_back_to_back_give_both_texts(whisper_base, utterances, transcripts):
    first, second = utterances[0][1], utterances[1][1]
    assert (len(first) + len(second)) / MODEL_RATE < 29  # one window
    joined = await whisper_base.transcribe(np.concatenate([first, second]), "en")
    expected = normalise_words(transcripts[0]) + normalise_words(transcripts[1])
    assert difflib.SequenceMatcher(None, expected, normalise_words(joined)).ratio() > 0.8, (expected, joined)


@pytest.mark.anyio
async def test_silence_and_tiny_input_give_next_to_nothing(whisper_base):
    assert len(normalise_words(await whisper_base.transcribe(np.zeros(3 * MODEL_RATE, np.float32), "en"))) <= 2
    assert await whisper_base.transcribe(np.zeros(MODEL_RATE // 20, np.float32), "en") == ""
    assert await whisper_base.transcribe(np.zeros(0, np.float32), "en") == ""


@pytest.mark.anyio
async def test_languages_the_model_cannot_do_are_refused(whisper_tiny_en, whisper_base, utterances):
    with pytest.raises(BadRequest) as error:
        await whisper_tiny_en.transcribe(utterances[0][1], "es")
    assert error.value.code == "unsupported_language" and "English-only" in error.value.message
    with pytest.raises(BadRequest) as error:
        await whisper_base.transcribe(utterances[0][1], "xx")
    assert error.value.code == "unsupported_language"
    assert "es" in whisper_base.languages


@pytest.mark.anyio
async def test_calls_run_one_at_a_time_even_when_one_is_cancelled(monkeypatch):
    """The lock is held until the worker thread ends, also for a cancelled call (a thread cannot be stopped)."""
    transcriber = WhisperTranscriber(whisper_model_dir("tiny.en", get_settings().build_dir), cpu_threads=1)
    running, overlaps = [0], []
    guard = threading.Lock()

    def slow(samples: np.ndarray, language: str) -> str:
        with guard:
            running[0] += 1
            overlaps.append(running[0])
        time.sleep(0.2)
        with guard:
            running[0] -= 1
        return "ok"

    monkeypatch.setattr(transcriber, "_transcribe", slow)
    speech = np.ones(MODEL_RATE, np.float32)
    cancelled = asyncio.create_task(transcriber.transcribe(speech, "en"))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    results = await asyncio.gather(*(transcriber.transcribe(speech, "en") for _ in range(2)))
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert results == ["ok", "ok"] and max(overlaps) == 1 and len(overlaps) == 3


def test_chunk_length_must_fit_whisper_window():
    with pytest.raises(ValueError, match="chunk_length"):
        WhisperTranscriber(Path("never-loaded"), chunk_length=45)
