"""Apertium (Debian's apertium-eng-spa) through the long-lived null-flush pipeline: real translations, fast."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.pipeline.translate import ApertiumTranslator, apertium, translate_all


@pytest.fixture(scope="module")
def es_en() -> ApertiumTranslator:
    return apertium("es-en")


@pytest.mark.anyio
async def test_translates_both_directions_and_keeps_punctuation(es_en):
    assert await es_en.translate("El perro come pan.", "es", "en") == "The dog eats bread."
    english = await apertium("en-es").translate("Good morning, my friend.", "en", "es")
    assert english.startswith("Buenos días") and english.endswith(".")


@pytest.mark.anyio
async def test_one_process_serves_many_requests_quickly(es_en):
    await es_en.translate("Hola.", "es", "en")
    process = es_en._process
    started = time.perf_counter()
    for _ in range(20):
        assert await es_en.translate("Buenos días", "es", "en") == "Good morning"
    assert es_en._process is process  # no new process per request (each start costs 0.3-0.6 s)
    assert time.perf_counter() - started < 5


@pytest.mark.anyio
async def test_a_killed_pipeline_is_restarted(es_en):
    await es_en.translate("Hola.", "es", "en")
    es_en._process.kill()
    es_en._process.wait()
    assert await es_en.translate("El gato duerme.", "es", "en") == "The cat sleeps."


@pytest.mark.anyio
async def test_streams_one_piece_from_apertium(es_en):
    text, fallback = await translate_all(es_en, "La casa es roja.", "es", "en")
    assert text == "The house is red." and fallback is None


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=200))
@example(text="perro^")  # a trailing caret hung Apertium (found by this test)
@example(text="x^ \U0001f600")  # so did a caret before any character outside the BMP (found by this test)
def test_arbitrary_text_never_breaks_the_pipeline(es_en, text):
    """Apertium's reserved characters (^ $ / [ ] ...), NULs and newlines are escaped or removed: the pipeline stays
    in step (the next request still gets its own answer)."""
    asyncio.run(es_en.translate(text, "es", "en"))
    assert asyncio.run(es_en.translate("El perro come pan.", "es", "en")) == "The dog eats bread."
