"""Machine translation plumbing on a tiny CTranslate2 model built here (random weights: gibberish out).

What is checked is the path a real OPUS-MT/NLLB directory takes — loading, SentencePiece in and out,
bounds, errors — not translation quality. The tiny model's two "languages" have disjoint alphabets, so
an output in the target alphabet proves it was decoded with target.spm.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest
import sentencepiece
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline.translate import (
    AmazonTranslator,
    ApertiumTranslator,
    CTranslate2Translator,
    PairSupport,
    PassthroughTranslator,
    make_translator,
    supported_pairs,
)
from training.tiny_translation_model import SOURCE_ALPHABET, TARGET_ALPHABET, build_tiny_model
from univoice_core.errors import BadRequest

SENTENCES = ["abc def ghij", "jihgf edcba aabbcc", "a", "deadbeef cafe bad"]
TARGET_CHARACTERS = set(TARGET_ALPHABET) | {" ", "\u2047"}  # U+2047 is how SentencePiece writes <unk>


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    started = time.perf_counter()
    path = build_tiny_model(tmp_path_factory.mktemp("mt") / "tiny-a-t")
    assert time.perf_counter() - started < 10
    return path


@pytest.fixture(scope="module")
def translator(model_dir: Path) -> CTranslate2Translator:
    return CTranslate2Translator(model_dir, threads=1)


def test_tiny_model_has_the_opus_mt_layout(model_dir: Path):
    assert {"model.bin", "config.json", "source.spm", "target.spm", "source_vocabulary.json",
            "target_vocabulary.json"} <= {p.name for p in model_dir.iterdir()}
    target = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "target.spm"))
    assert json.loads((model_dir / "target_vocabulary.json").read_text()) == [
        target.id_to_piece(i) for i in range(target.get_piece_size())]


@pytest.mark.anyio
async def test_translates_into_the_target_vocabulary(translator: CTranslate2Translator):
    for sentence in SENTENCES:
        text = await translator.translate(sentence, "src", "tgt")
        assert isinstance(text, str)
        assert set(text) <= TARGET_CHARACTERS, text
        assert not set(text) & set(SOURCE_ALPHABET)
        assert text == await translator.translate(sentence, "src", "tgt")  # greedy: deterministic


@pytest.mark.anyio
async def test_output_length_is_bounded(model_dir: Path):
    short = CTranslate2Translator(model_dir, threads=1, max_output_tokens=4)
    longest_piece = max(len(p) for p in json.loads((model_dir / "target_vocabulary.json").read_text()))
    for sentence in SENTENCES + [" ".join(SENTENCES * 20)]:
        text = await short.translate(sentence, "src", "tgt")
        assert len(text) <= 4 * (longest_piece + 2)


@pytest.mark.anyio
async def test_blank_text_is_not_sent_to_the_model(translator: CTranslate2Translator):
    assert await translator.translate("", "src", "tgt") == ""
    assert await translator.translate(" \n\t", "src", "tgt") == ""


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_unicode_never_raises(translator: CTranslate2Translator, text: str):
    out = asyncio.run(translator.translate(text, "src", "tgt"))
    assert isinstance(out, str) and set(out) <= TARGET_CHARACTERS


@pytest.mark.anyio
async def test_language_tokens_for_nllb_style_models(model_dir: Path, tmp_path: Path):
    """univoice.json maps languages to tokens: source prefix + target prefix, and unknown pairs are refused."""
    multi = tmp_path / "multi"
    shutil.copytree(model_dir, multi)
    (multi / "univoice.json").write_text(json.dumps({"language_tokens": {"es": "<unk>", "en": "<s>"}}))
    translator = CTranslate2Translator(multi, threads=1)
    text = await translator.translate("abc def", "es", "en")
    assert set(text) <= TARGET_CHARACTERS
    with pytest.raises(BadRequest) as error:
        await translator.translate("abc def", "es", "de")
    assert error.value.code == "unsupported_language" and "en, es" in error.value.message


def test_missing_model_directory_says_how_to_convert_one(tmp_path: Path, model_dir: Path):
    with pytest.raises(RuntimeError, match="ct2-transformers-converter --model Helsinki-NLP/opus-mt-es-en"):
        CTranslate2Translator(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    shutil.copytree(model_dir, partial)
    (partial / "target.spm").unlink()
    with pytest.raises(RuntimeError, match=r"lacks target\.spm: convert a model"):
        CTranslate2Translator(partial)


@pytest.mark.anyio
async def test_passthrough_returns_the_text_unchanged():
    assert await PassthroughTranslator().translate("¿Qué tal? 😀", "es", "en") == "¿Qué tal? 😀"


def test_make_translator_picks_the_engine(model_dir: Path):
    def support(source, target, engine, fallback=None):
        return PairSupport(source, target, engine, fallback)

    assert isinstance(make_translator(support("en", "en", "passthrough")), PassthroughTranslator)
    assert isinstance(make_translator(support("es", "en", "amazon")), AmazonTranslator)
    assert isinstance(make_translator(support("es", "en", "apertium")), ApertiumTranslator)
    pair = make_translator(support("es", "en", "ctranslate2"), model_dirs={"es-en": model_dir})
    assert isinstance(pair, CTranslate2Translator)
    assert make_translator(support("es", "en", "ctranslate2"), model_dirs={"es-en": model_dir}) is pair  # loaded once
    assert make_translator(support("fr", "de", "ctranslate2"), model_dirs={"*": model_dir}) is pair
    with pytest.raises(ValueError, match="unknown translation engine"):
        make_translator(support("es", "en", "deepl"))  # type: ignore[arg-type]


def test_supported_pairs_follow_the_engines():
    pairs = {p.pair: p for p in supported_pairs(["en", "es", "de", "fr"], "llm", {})}
    assert {"es-en", "en-es", "en-de", "de-en", "en-fr", "fr-en", "de-fr", "en-en"} <= set(pairs)
    assert (pairs["es-en"].engine, pairs["es-en"].fallback) == ("llm", "apertium")
    assert (pairs["en-de"].engine, pairs["en-de"].fallback) == ("llm", None)  # Debian has no Apertium en-de
    assert pairs["en-en"].engine == "passthrough"
    apertium_only = {p.pair for p in supported_pairs(["en", "es", "de"], "apertium", {})}
    assert apertium_only == {"en-es", "es-en", "en-en", "es-es", "de-de"}
    mixed = {p.pair: p.engine for p in supported_pairs(["en", "es"], "llm", {"en-es": "apertium"})}
    assert mixed == {"en-es": "apertium", "es-en": "llm", "en-en": "passthrough", "es-es": "passthrough"}
    assert {p.pair for p in supported_pairs(["en", "es"], "ctranslate2", {}, {"es-en": Path("m")})} == {
        "es-en", "en-en", "es-es"}
