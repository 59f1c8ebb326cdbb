"""Whisper for the pipeline tests: loaded once per session, shared by the STT and synthesis tests."""

from __future__ import annotations

import pytest

from gateway.pipeline.stt import WhisperTranscriber
from gateway.settings import get_settings
from univoice_core.whisper import whisper_model_dir


@pytest.fixture(scope="session")
def whisper_base() -> WhisperTranscriber:
    return WhisperTranscriber(whisper_model_dir("base", get_settings().build_dir), cpu_threads=2)


@pytest.fixture(scope="session")
def whisper_tiny_en() -> WhisperTranscriber:
    return WhisperTranscriber(whisper_model_dir("tiny.en", get_settings().build_dir), cpu_threads=2)
