"""Real translation with the real LLM: Triton's `translator` (Qwen2.5-Coder-1.5B-Instruct on llama.cpp), its
guard rails and Apertium fallback, and Spanish speech in -> English speech out over the real WebSocket.

There is no real Spanish speech in shared/: the Spanish input is synthetic, NTREX-128 Spanish reference lines
read by Kokoro (espeak-ng Spanish phonemes) through the same Triton.
"""

from __future__ import annotations

import anyio
import httpx
import numpy as np
import pytest
import soxr

from benchmarks.quality import word_error_rate
from gateway.embedded import gateway_in_thread
from gateway.pipeline.guard import TranslationGuard
from gateway.pipeline.translate import GuardedTranslator, LlmTranslator, apertium, translate_all
from gateway.pipeline.voices import DEFAULT_VOICE, load_presets
from gateway.stream_client import StreamClient
from gateway.triton.client import TritonClient
from tests.gateway.api_support import PASSWORD

# Answered, not translated, by the model at temperature 0 (seen: "Here's a joke about cats: Why did the cat...").
ANSWERED = "Dime un chiste sobre gatos."
SPANISH = "El tren llegó a la estación a las ocho de la mañana y todos los pasajeros bajaron con prisa."


@pytest.fixture
def llm_settings(gateway_settings):
    return gateway_settings.model_copy(update={"translation_provider": "llm"})


async def _pieces(triton, text, source, target, **kwargs):
    client = TritonClient(triton.server.grpc_url, timeout_s=120)
    try:
        return [p async for p in client.translate_stream(text, source, target, **kwargs)]
    finally:
        await client.close()


def test_translator_streams_a_long_sentence_in_many_pieces(triton):
    pieces = anyio.run(_pieces, triton, SPANISH, "es", "en")
    text = "".join(pieces).strip()
    assert len(pieces) > 5, pieces
    assert word_error_rate("The train arrived at the station at eight in the morning and all the passengers "
                           "got off in a hurry.", text) <= 0.35, text


def test_previous_utterances_are_context_not_retranslated(triton):
    context = ["Mi hermana vive en Berlín.", "My sister lives in Berlin."]
    text = "".join(anyio.run(lambda: _pieces(triton, "Ella es médica.", "es", "en", context=context))).strip()
    assert "Berlin" not in text and text.lower().startswith("she"), text  # "ella" resolved to the sister


def test_an_answered_request_is_caught_and_apertium_stands_in(triton):
    async def run():
        client = TritonClient(triton.server.grpc_url, timeout_s=120)
        try:
            raw, _ = await translate_all(LlmTranslator(client), ANSWERED, "es", "en")
            guarded = GuardedTranslator(LlmTranslator(client), apertium("es-en"), TranslationGuard())
            pieces = [p async for p in guarded.stream(ANSWERED, "es", "en")]
            return raw, pieces
        finally:
            await client.close()

    raw, pieces = anyio.run(run)
    assert TranslationGuard().check_final(ANSWERED, raw, "es", "en") is not None, raw  # the LLM did answer
    assert pieces and all(p.engine == "apertium" for p in pieces)
    assert pieces[0].fallback_reason
    assert "".join(p.text for p in pieces) == "Say me a joke on cats."


def _spanish_speech(triton, text: str) -> np.ndarray:
    from gateway.pipeline.synthesis import KokoroSynthesizer

    async def speak():
        client = TritonClient(triton.server.grpc_url, timeout_s=120)
        try:
            clauses = [c.audio24k async for c in KokoroSynthesizer(client).speak(text, "es", load_presets()[DEFAULT_VOICE])]
        finally:
            await client.close()
        return np.concatenate(clauses)

    speech = soxr.resample(anyio.run(speak), 24_000, 16_000).astype(np.float32)
    return np.concatenate([speech, np.zeros(16_000, np.float32)])  # a pause: one utterance each


def test_spanish_speech_comes_back_as_english_speech(llm_settings, triton):
    speech = _spanish_speech(triton, SPANISH)
    with gateway_in_thread(llm_settings) as (base, app):
        with httpx.Client(base_url=base) as http:
            http.post("/v1/auth/signup", json={"username": "hablante", "password": PASSWORD})
            token = http.post("/v1/auth/token", data={"username": "hablante", "password": PASSWORD}).json()["access_token"]
            created = http.post("/v1/sessions", headers={"Authorization": f"Bearer {token}"},
                                json={"source_language": "es", "target_language": "en"})
            assert created.status_code == 201, created.text
        result = StreamClient(base, created.json()["id"], token=token, timeout_s=180).stream(speech, realtime=False)
        transcriber = app.state.services.speech.transcriber
        assert result.errors == [], result.errors
        spoken = [u for u in result.utterances if u.translation]
        assert len(spoken) == 1, [(u.transcript, u.translation) for u in result.utterances]
        story = spoken[0]
        assert story.translation_engine == "llm" and story.translation_fallback is None
        assert "translation_first_piece_ms" in story.timings_ms
        heard = anyio.run(transcriber.transcribe, soxr.resample(story.audio24k, 24_000, 16_000).astype(np.float32), "en")
        assert word_error_rate(story.translation, heard) <= 0.20, (story.translation, heard)
        assert word_error_rate("The train arrived at the station at eight in the morning and all the passengers "
                               "got off in a hurry.", story.translation) <= 0.4, story.translation
