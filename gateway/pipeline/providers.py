"""The speech providers a gateway process uses, chosen by settings and loaded once per process."""

from __future__ import annotations

import asyncio
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from gateway.pipeline.guard import TranslationGuard
from gateway.pipeline.interfaces import Transcriber, Translator, Voice
from gateway.pipeline.stt import AmazonTranscribeTranscriber, WhisperTranscriber
from gateway.pipeline.synthesis import KokoroSynthesizer
from gateway.pipeline.translate import PairSupport, make_translator, supported_pairs
from gateway.pipeline.voices import DEFAULT_VOICE, load_presets, nearest_preset, preset_embeddings
from gateway.settings import Settings
from gateway.triton.client import TritonClient
from univoice_core import served
from univoice_core.errors import BadRequest
from univoice_core.phonemes import ESPEAK_VOICES
from univoice_core.whisper import whisper_model_dir

CLONED_VOICE = served.VOICE_CLONE  # the voice name a stream reports when it speaks in the enrolled speaker's voice


@lru_cache(maxsize=4)
def _whisper(model_dir: Path, threads: int, chunk_length: int) -> WhisperTranscriber:
    """Loading Whisper takes seconds and hundreds of MB: one instance per process serves every session."""
    return WhisperTranscriber(model_dir, cpu_threads=threads, chunk_length=chunk_length)


class SpeechProviders:
    """The transcriber, translators per pair, synthesizer and voices that every stream of this process shares."""

    def __init__(self, settings: Settings, triton: TritonClient):
        self.settings = settings
        self.triton = triton
        self.synthesizer = KokoroSynthesizer(triton)
        self.presets = load_presets()
        self.guard = TranslationGuard(tuple(settings.languages))
        self._preset_embeddings: asyncio.Task | None = None
        self._guard_loaded: asyncio.Future | None = None

    @cached_property
    def transcriber(self) -> Transcriber:
        s = self.settings
        if s.stt_provider == "amazon":
            return AmazonTranscribeTranscriber(s.transcribe_bucket, prefix=s.s3_prefix, region=s.aws_region,
                                               endpoint_url=s.aws_endpoint_url)
        return _whisper(whisper_model_dir(s.stt_model, s.build_dir), s.stt_threads, s.stt_chunk_length)

    @cached_property
    def pairs(self) -> list[PairSupport]:
        """The language pairs a session may use: translated by an engine here, heard by the transcriber (tiny.en
        hears English only) and spoken by the synthesizer (espeak-ng + Kokoro)."""
        s = self.settings
        heard = ["en"] if s.stt_provider == "whisper" and s.stt_model == "tiny.en" else s.languages
        return [support for support in supported_pairs(s.languages, s.translation_provider, s.translation_providers,
                                                       s.translation_models)
                if support.source in heard and support.target in ESPEAK_VOICES]

    def pair(self, source_language: str, target_language: str) -> PairSupport:
        """The supported pair, or a BadRequest that lists the pairs there are."""
        for support in self.pairs:
            if (support.source, support.target) == (source_language, target_language):
                return support
        offered = ", ".join(support.pair for support in self.pairs if support.source != support.target)
        raise BadRequest(f"{source_language}->{target_language} is not a supported language pair; supported: "
                         f"{offered} (and any of {', '.join(self.settings.languages)} to itself); "
                         "GET /v1/languages lists them", code="unsupported_language_pair")

    def translator(self, source_language: str, target_language: str) -> Translator:
        s = self.settings
        return make_translator(self.pair(source_language, target_language), triton=self.triton, guard=self.guard,
                               model_dirs=s.translation_models, aws_region=s.aws_region,
                               aws_endpoint_url=s.aws_endpoint_url)

    def _load_transcriber_and_guard(self) -> None:
        self.transcriber  # noqa: B018 - a cached property: loading it is the point
        self.guard.language_of("warm up")

    def warm_up(self) -> None:
        """In the background: load Whisper and the guard's language models (seconds), and compute the preset
        voices' embeddings (seconds of synthesis, cached on disk)."""
        if self._guard_loaded is None:
            self._guard_loaded = asyncio.ensure_future(asyncio.to_thread(self._load_transcriber_and_guard))
        if self._preset_embeddings is None:
            self._preset_embeddings = asyncio.ensure_future(
                preset_embeddings(self.triton, self.presets, self.settings.build_dir / "preset_embeddings.json")
            )

    async def voice_for(self, embedding: np.ndarray | None, statistics: np.ndarray | None = None) -> Voice:
        """The voice to speak with: the profile's speaker cloned when its statistics are known (and cloning is
        on), else the preset nearest to its embedding; the default preset without a profile."""
        if embedding is None:
            return self.presets[DEFAULT_VOICE]
        if statistics is not None and self.settings.voice_cloning:
            return Voice(CLONED_VOICE, embedding=embedding, statistics=statistics)
        self.warm_up()
        try:
            embeddings = await asyncio.shield(self._preset_embeddings)
        except Exception:
            self._preset_embeddings = None  # e.g. Triton was down: try again next time
            raise
        return nearest_preset(embedding, embeddings, self.presets)

