"""Machine-translation providers: none (passthrough), a CTranslate2 model on the CPU, Amazon Translate.

No MT model ships on PyPI, so a CTranslate2 model directory is converted once on a machine with network
and copied in (see `CTranslate2Translator`). `make_translator` picks a provider for one language pair.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import boto3
import ctranslate2
import sentencepiece
from botocore.exceptions import BotoCoreError, ClientError

from gateway.errors import BadRequest, Unavailable
from gateway.pipeline.interfaces import Translator

CONVERT_HINT = (
    "convert a model on a machine with network, e.g. `pip install ctranslate2 transformers sentencepiece "
    "&& ct2-transformers-converter --model Helsinki-NLP/opus-mt-es-en --output_dir opus-mt-es-en "
    "--quantization int8 --copy_files source.spm target.spm`, then copy that directory here"
)
REQUIRED_FILES = ("model.bin", "config.json", "source.spm", "target.spm")
Provider = Literal["none", "ctranslate2", "amazon"]


class PassthroughTranslator:
    """The text unchanged: the session's source and target languages are the same, or no MT is configured."""

    async def translate(self, text: str, source_language: str, target_language: str) -> str:
        return text


class CTranslate2Translator:
    """A converted OPUS-MT (one pair) or NLLB-style (many languages) model, greedy, in a worker thread.

    The directory holds what `ct2-transformers-converter` writes plus the SentencePiece models
    `source.spm` and `target.spm` (OPUS-MT ships them; for NLLB copy its `sentencepiece.bpe.model` under
    both names). An NLLB-style model also needs `univoice.json` mapping ISO 639-1 codes to its language
    tokens, e.g. {"language_tokens": {"en": "eng_Latn", "es": "spa_Latn"}}: the source is then encoded as
    [source token] + pieces + [</s>] and decoding starts from the target token. Without that file the
    model is taken to be one pair and the languages passed to `translate` are not checked.

    CTranslate2 queues concurrent calls itself (inter_threads=1: one translation at a time, using
    intra_threads cores), so no lock is needed here.
    """

    def __init__(self, model_dir: Path, *, threads: int = 2, max_input_tokens: int = 512,
                 max_output_tokens: int = 256):
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise RuntimeError(f"no translation model directory at {model_dir}: {CONVERT_HINT}")
        missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
        if missing:
            raise RuntimeError(f"translation model {model_dir} lacks {', '.join(missing)}: {CONVERT_HINT}")
        config = json.loads((model_dir / "config.json").read_text())
        self._eos = [] if config.get("add_source_eos") else [config.get("eos_token", "</s>")]
        options = model_dir / "univoice.json"
        self.language_tokens: dict[str, str] = (
            json.loads(options.read_text()).get("language_tokens", {}) if options.is_file() else {})
        self.max_input_tokens, self.max_output_tokens = max_input_tokens, max_output_tokens
        compute_type = "int8" if "int8" in ctranslate2.get_supported_compute_types("cpu") else "default"
        self._translator = ctranslate2.Translator(str(model_dir), device="cpu", compute_type=compute_type,
                                                  inter_threads=1, intra_threads=threads)
        self._source = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "source.spm"))
        self._target = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "target.spm"))

    async def translate(self, text: str, source_language: str, target_language: str) -> str:
        if not text.strip():
            return ""
        source_token = target_token = None
        if self.language_tokens:
            source_token = self.language_tokens.get(source_language)
            target_token = self.language_tokens.get(target_language)
            if source_token is None or target_token is None:
                raise BadRequest(f"this translation model has no {source_language}->{target_language}; it knows "
                                 f"{', '.join(sorted(self.language_tokens))}", code="unsupported_language")
        return await asyncio.to_thread(self._translate, text, source_token, target_token)

    def _translate(self, text: str, source_token: str | None, target_token: str | None) -> str:
        head = [source_token] if source_token else []
        pieces = self._source.encode(text, out_type=str)[: self.max_input_tokens - len(head) - len(self._eos)]
        source = head + pieces + self._eos
        prefix = [target_token] if target_token else []
        # Output length bounded by the input: a looping model stops early instead of at the hard cap.
        limit = min(self.max_output_tokens, 2 * len(source) + 10)
        result = self._translator.translate_batch(
            [source], target_prefix=[prefix] if prefix else None, beam_size=1, max_decoding_length=limit,
            max_input_length=self.max_input_tokens,
        )[0]
        return self._target.decode(result.hypotheses[0][len(prefix):]).strip()


class AmazonTranslator:
    """Amazon Translate (TranslateText), one synchronous boto3 call per text in a worker thread."""

    def __init__(self, *, region: str = "us-east-1", endpoint_url: str | None = None, client: Any = None):
        self._client = client or boto3.client("translate", region_name=region, endpoint_url=endpoint_url)

    async def translate(self, text: str, source_language: str, target_language: str) -> str:
        if not text.strip():
            return ""
        try:
            response = await asyncio.to_thread(self._client.translate_text, Text=text,
                                               SourceLanguageCode=source_language,
                                               TargetLanguageCode=target_language)
        except ClientError as error:
            if error.response["Error"]["Code"] == "UnsupportedLanguagePairException":
                raise BadRequest(f"Amazon Translate does not support {source_language}->{target_language}",
                                 code="unsupported_language") from error
            raise Unavailable(f"Amazon Translate failed: {error}") from error
        except BotoCoreError as error:
            raise Unavailable(f"Amazon Translate failed: {error}") from error
        return response["TranslatedText"]


@lru_cache(maxsize=None)
def _ctranslate2(model_dir: Path, threads: int) -> CTranslate2Translator:
    """One loaded model per directory, shared by every session using it."""
    return CTranslate2Translator(model_dir, threads=threads)


def make_translator(source_language: str, target_language: str, *, provider: Provider,
                    model_dirs: Mapping[str, Path] | None = None, threads: int = 2,
                    aws_region: str = "us-east-1", aws_endpoint_url: str | None = None) -> Translator:
    """The translator for one language pair.

    provider "none": passthrough (no MT configured). "ctranslate2": the directory `model_dirs` gives for
    "src-tgt" (e.g. "es-en"), or for "*" (one multilingual NLLB-style model); a pair with neither is a
    BadRequest, not a silent passthrough. "amazon": Amazon Translate. The same language is always passthrough.
    """
    if source_language == target_language or provider == "none":
        return PassthroughTranslator()
    if provider == "amazon":
        return AmazonTranslator(region=aws_region, endpoint_url=aws_endpoint_url)
    if provider == "ctranslate2":
        dirs = model_dirs or {}
        model_dir = dirs.get(f"{source_language}-{target_language}") or dirs.get("*")
        if model_dir is None:
            raise BadRequest(f"no translation model is configured for {source_language}->{target_language}",
                             code="unsupported_language")
        return _ctranslate2(Path(model_dir), threads)
    raise ValueError(f"unknown translation provider {provider!r}: use 'none', 'ctranslate2' or 'amazon'")
