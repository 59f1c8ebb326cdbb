"""Machine-translation providers behind the one streaming `Translator` protocol, and the choice per pair.

| engine | what | pairs |
|---|---|---|
| `llm` | Triton's `translator` (Qwen2.5-Coder-1.5B-Instruct on llama.cpp), streamed piece by piece, with the session's previous utterances as context, checked by `guard.py` and backed by Apertium | en, es, de, fr: any two |
| `apertium` | Debian's rule-based Apertium, one long-lived null-flush pipeline per pair (1-20 ms a sentence) | en<->es |
| `amazon` | Amazon Translate | Amazon's |
| `ctranslate2` | a converted OPUS-MT/NLLB directory (none ships: converted elsewhere and copied in) | the model's |
| `passthrough` | the text unchanged | same language |

`make_translator` builds the translator of one session's pair from settings (`translation_providers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import boto3
import ctranslate2
import sentencepiece
from botocore.exceptions import BotoCoreError, ClientError

from export.llm_backend import LANGUAGE_NAMES
from gateway.observability import log_event
from gateway.pipeline.guard import TranslationGuard
from gateway.pipeline.interfaces import Context, TranslationPiece, Translator
from gateway.triton.client import TritonClient
from univoice_core.errors import BadRequest, Unavailable

Engine = Literal["llm", "apertium", "amazon", "ctranslate2", "passthrough"]
ENGINES: tuple[Engine, ...] = ("llm", "apertium", "amazon", "ctranslate2", "passthrough")
APERTIUM_PAIRS = ("en-es", "es-en")  # the pairs Debian packages (apertium-eng-spa)
_APERTIUM_MODES = {"en": "eng", "es": "spa"}
APERTIUM_MODES_DIR = Path("/usr/share/apertium/modes")
APERTIUM_TIMEOUT_S = 10.0
_APERTIUM_RESERVED = "\\$/[]{}<>@*#+~"  # and the caret, which _translate drops instead of escaping
log = logging.getLogger("univoice.translate")

CONVERT_HINT = (
    "convert a model on a machine with network, e.g. `pip install ctranslate2 transformers sentencepiece "
    "&& ct2-transformers-converter --model Helsinki-NLP/opus-mt-es-en --output_dir opus-mt-es-en "
    "--quantization int8 --copy_files source.spm target.spm`, then copy that directory here"
)
REQUIRED_FILES = ("model.bin", "config.json", "source.spm", "target.spm")


class ConversationContext:
    """The previous utterances a session's translator sees: one or two (transcript, translation) pairs.

    The window moves in blocks rather than sliding one by one: it grows to two, then restarts from the
    latest. A sliding window changes the prompt right after the fixed instruction every time, so the
    model re-reads both context turns for every utterance (~2 s on 2 cores); in blocks, every other
    prompt extends the previous one, which llama.cpp still holds in its KV cache.
    """

    def __init__(self, size: int = 2):
        self.size = size
        self.turns: list[tuple[str, str]] = []

    def add(self, transcript: str, translation: str) -> None:
        self.turns.append((transcript, translation))
        if len(self.turns) > self.size:
            self.turns = self.turns[-1:]

    def __call__(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.turns) if self.size else ()


class WholeTextTranslator:
    """A provider that translates whole texts: its stream is one piece."""

    engine: str

    async def stream(self, text: str, source_language: str, target_language: str,
                     context: Context = ()) -> AsyncIterator[TranslationPiece]:
        translated = await self.translate(text, source_language, target_language) if text.strip() else ""
        if translated:
            yield TranslationPiece(translated, self.engine)

    async def translate(self, text: str, source_language: str, target_language: str) -> str:
        raise NotImplementedError


async def translate_all(translator: Translator, text: str, source_language: str, target_language: str,
                        context: Context = ()) -> tuple[str, TranslationPiece | None]:
    """The whole translation of `text`, and the piece that started a fallback (None when there was none)."""
    out, fallback = "", None
    async for piece in translator.stream(text, source_language, target_language, context):
        if piece.fallback_reason:
            out, fallback = "", piece
        out += piece.text
    return out.strip(), fallback


class PassthroughTranslator(WholeTextTranslator):
    """The text unchanged: the session's source and target languages are the same."""

    engine = "passthrough"

    async def translate(self, text: str, source_language: str, target_language: str) -> str:
        return text


class ApertiumTranslator(WholeTextTranslator):
    """Apertium (GPL-2, a separate program like espeak-ng) through its mode pipeline, started once and kept open.

    Every program of the pipeline runs in null-flush mode (`-z`, unbuffered): a text followed by NUL comes
    back followed by NUL, so one process serves every request (a fresh `apertium` costs 0.3-0.6 s to start).
    Unknown words pass through without Apertium's `*` marks. Calls are serialised by a lock, in a thread.
    """

    engine = "apertium"

    def __init__(self, pair: str, modes_dir: Path = APERTIUM_MODES_DIR):
        self.pair = pair
        self.mode_file = apertium_mode_file(pair, modes_dir)
        if not self.mode_file.is_file() or shutil.which("stdbuf") is None:
            raise Unavailable(f"Apertium's {pair} mode is not installed ({self.mode_file}); run `make setup` "
                              "(apt packages apertium, apertium-eng-spa)", code="translation_unavailable")
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def _command(self) -> str:
        stages = []
        for stage in self.mode_file.read_text().strip().split("|"):
            program, _, arguments = stage.strip().replace("$1", "-n").replace("$2", "").partition(" ")
            stages.append(f"stdbuf -o0 {program} -z {arguments}")
        return " | ".join(stages)

    async def translate(self, text: str, source_language: str, target_language: str) -> str:
        return await asyncio.to_thread(self._translate, text)

    def _translate(self, text: str) -> str:
        # Apertium's stream format reserves these characters; a NUL would end the request early.
        # An (escaped) caret at the end, or before any character outside the BMP or in a private-use area, hangs
        # Apertium's pipeline; a caret has no reading: drop every one.
        words = " ".join(text.replace("\0", "").replace("^", " ").split())
        escaped = "".join("\\" + c if c in _APERTIUM_RESERVED else c for c in words)
        with self._lock:
            for attempt in (1, 2):
                if self._process is None or self._process.poll() is not None:
                    self._process = subprocess.Popen(["bash", "-c", self._command()], stdin=subprocess.PIPE,
                                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                                     start_new_session=True)
                try:
                    # A trailing newline keeps the sentence's final punctuation (the generator drops it at NUL).
                    self._process.stdin.write(escaped.encode() + b"\n\0")
                    self._process.stdin.flush()
                    out = b""
                    while b"\0" not in out:
                        ready, _, _ = select.select([self._process.stdout], [], [], APERTIUM_TIMEOUT_S)
                        chunk = self._process.stdout.read1(65536) if ready else b""
                        if not chunk:
                            raise BrokenPipeError("apertium exited or hung")
                        out += chunk
                    return re.sub(r"\\(.)", r"\1", out.split(b"\0")[0].decode("utf-8", errors="replace")).strip()
                except (BrokenPipeError, OSError):
                    self._stop()
                    if attempt == 2:
                        raise Unavailable("Apertium failed twice in a row", code="translation_unavailable") from None
        raise AssertionError("unreachable")

    def _stop(self) -> None:
        """Kill the whole pipeline (its own process group), not just the shell that started it."""
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class LlmTranslator:
    """Triton's `translator`, streamed: each generated piece as it arrives, with up to two previous utterances
    of the session as context."""

    engine = "llm"

    def __init__(self, triton: TritonClient, style: str | None = None):
        self.triton = triton
        self.style = style  # "plain": the benchmark's single-sentence baseline

    async def stream(self, text: str, source_language: str, target_language: str,
                     context: Context = ()) -> AsyncIterator[TranslationPiece]:
        if not text.strip():
            return
        flat = [value for pair in list(context)[-2:] for value in pair]
        async for piece in self.triton.translate_stream(text, source_language, target_language, flat, self.style):
            yield TranslationPiece(piece, self.engine)


class GuardedTranslator:
    """The listener only ever hears a translation: the primary's output is checked as it streams.

    The first clause is held back until it has passed the checks a prefix allows (refusal, answer and
    apology openings, leftover prompt or markup, runaway length, the source language echoed), so a
    refusal is never spoken; later pieces go through as they come, still checked. When a check fails, the primary is
    stopped and `fallback` translates the whole text (the first fallback piece says why and `replaces`
    what came before); with no fallback the utterance fails with `translation_rejected`.
    """

    def __init__(self, primary: Translator, fallback: Translator | None, guard: TranslationGuard,
                 release_chars: int = 24):
        self.primary, self.fallback, self.guard = primary, fallback, guard
        self.engine = primary.engine
        self.release_chars = release_chars

    async def stream(self, text: str, source_language: str, target_language: str,
                     context: Context = ()) -> AsyncIterator[TranslationPiece]:
        out, released, reason = "", False, None
        pieces = self.primary.stream(text, source_language, target_language, context)
        try:
            async for piece in pieces:
                out += piece.text
                reason = self.guard.check_prefix(text, out, target_language)
                if reason:
                    break
                if released:
                    yield piece
                elif len(out.strip()) >= self.release_chars:
                    reason = await self.guard.check_release_async(out, source_language, target_language)
                    if reason:
                        break
                    released = True
                    yield TranslationPiece(out, piece.engine)
        except Unavailable as error:  # Triton down, the model failed: the fallback serves this utterance
            if self.fallback is None:
                raise
            reason = f"{self.primary.engine}_unavailable"
            log_event(log, "translation engine unavailable; falling back", level=logging.WARNING,
                      engine=self.primary.engine, error=error.message)
        finally:
            await pieces.aclose()  # stops the model when a check failed or the listener left
        reason = reason or await self.guard.check_final_async(text, out, source_language, target_language)
        if reason is None:
            if not released and out.strip():
                yield TranslationPiece(out, self.engine)
            return
        if self.fallback is None:
            raise Unavailable(f"the translation was rejected ({reason}) and {source_language}->{target_language} "
                              "has no fallback engine", code="translation_rejected")
        first = True
        async for piece in self.fallback.stream(text, source_language, target_language, context):
            yield TranslationPiece(piece.text, piece.engine, fallback_reason=reason if first else None,
                                   replaces=released and first)
            first = False


class CTranslate2Translator(WholeTextTranslator):
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

    engine = "ctranslate2"

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


class AmazonTranslator(WholeTextTranslator):
    """Amazon Translate (TranslateText), one synchronous boto3 call per text in a worker thread."""

    engine = "amazon"

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


@dataclass(frozen=True)
class PairSupport:
    """One supported language pair: the engine that translates it and the one that backs it up."""

    source: str
    target: str
    engine: Engine
    fallback: Engine | None

    @property
    def pair(self) -> str:
        return f"{self.source}-{self.target}"


def engine_supports(engine: Engine, pair: str, model_dirs: Mapping[str, Path] | None = None) -> bool:
    """Whether `engine` can translate `pair` here (Amazon: any pair; its API refuses what it lacks)."""
    source, _, target = pair.partition("-")
    if source == target:
        return engine == "passthrough"
    if engine == "llm":
        return source in LANGUAGE_NAMES and target in LANGUAGE_NAMES  # the languages the prompt knows
    if engine == "apertium":
        return pair in APERTIUM_PAIRS and apertium_mode_file(pair).is_file()
    if engine == "ctranslate2":
        return bool(model_dirs) and (pair in model_dirs or "*" in model_dirs)
    return engine == "amazon"


def supported_pairs(languages: Sequence[str], default_engine: Engine, overrides: Mapping[str, Engine],
                    model_dirs: Mapping[str, Path] | None = None) -> list[PairSupport]:
    """Every pair of `languages` this configuration translates, with its engine and fallback."""
    out = []
    for source in languages:
        for target in languages:
            pair = f"{source}-{target}"
            engine: Engine = "passthrough" if source == target else overrides.get(pair, default_engine)
            if not engine_supports(engine, pair, model_dirs):
                continue
            fallback = "apertium" if engine == "llm" and engine_supports("apertium", pair) else None
            out.append(PairSupport(source, target, engine, fallback))
    return out


def apertium_mode_file(pair: str, modes_dir: Path = APERTIUM_MODES_DIR) -> Path:
    source, _, target = pair.partition("-")
    return modes_dir / f"{_APERTIUM_MODES.get(source, source)}-{_APERTIUM_MODES.get(target, target)}.mode"


@lru_cache(maxsize=None)
def _ctranslate2(model_dir: Path, threads: int) -> CTranslate2Translator:
    """One loaded model per directory, shared by every session using it."""
    return CTranslate2Translator(model_dir, threads=threads)


@lru_cache(maxsize=None)
def apertium(pair: str) -> ApertiumTranslator:
    """One Apertium pipeline per pair and process, shared by every session."""
    return ApertiumTranslator(pair)


def make_translator(support: PairSupport, *, triton: TritonClient | None = None, guard: TranslationGuard | None = None,
                    model_dirs: Mapping[str, Path] | None = None, threads: int = 2, aws_region: str = "us-east-1",
                    aws_endpoint_url: str | None = None) -> Translator:
    """The translator for one supported pair (see `supported_pairs`)."""
    engine = support.engine
    if engine == "passthrough":
        return PassthroughTranslator()
    if engine == "apertium":
        return apertium(support.pair)
    if engine == "amazon":
        return AmazonTranslator(region=aws_region, endpoint_url=aws_endpoint_url)
    if engine == "ctranslate2":
        dirs = model_dirs or {}
        return _ctranslate2(Path(dirs.get(support.pair) or dirs["*"]), threads)
    if engine == "llm":
        if triton is None or guard is None:
            raise ValueError("the llm engine needs the Triton client and the guard")
        fallback = apertium(support.pair) if support.fallback == "apertium" else None
        return GuardedTranslator(LlmTranslator(triton), fallback, guard)
    raise ValueError(f"unknown translation engine {engine!r}; use one of {', '.join(ENGINES)}")
