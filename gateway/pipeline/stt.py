"""Speech-to-text providers: Whisper on the CPU (faster-whisper / CTranslate2) and Amazon Transcribe.

Whisper decodes with `univoice_core.whisper.DECODING`, where the measurements that chose it are.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import soundfile
from botocore.exceptions import BotoCoreError, ClientError
from faster_whisper import WhisperModel

from univoice_core import whisper
from univoice_core.audio import MODEL_RATE
from univoice_core.errors import BadRequest, Unavailable

log = logging.getLogger("univoice.stt")

MIN_SAMPLES = MODEL_RATE // 10  # below 0.1 s there is nothing to transcribe


def _check_samples(samples16k: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples16k, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono 16 kHz samples (1-D), got shape {samples.shape}")
    return samples


class WhisperTranscriber:
    """Whisper via faster-whisper, int8, decoding with `univoice_core.whisper.DECODING` (`chunk_length` is a
    setting; `without_timestamps` is there to measure text-only decoding: `benchmarks/stt_chunk_length.py`).
    Calls are serialized (FIFO) on one worker thread: two encoders on the same few cores only slow each
    other down, and CTranslate2 would interleave their encode/decode steps so that both finish late.
    A thread rather than an asyncio lock, because one instance serves every event loop of the process.
    """

    def __init__(self, model_dir: Path, *, cpu_threads: int = 2,
                 chunk_length: int = whisper.DECODING["chunk_length"],
                 without_timestamps: bool = whisper.DECODING["without_timestamps"]):
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
        return whisper.transcribe(self._model, samples, language, without_timestamps=self.without_timestamps,
                                  chunk_length=self.chunk_length)


# ISO 639-1 -> the Amazon Transcribe locale used for it (a deployment serving en-GB etc. overrides this).
TRANSCRIBE_LANGUAGE_CODES = {
    "ar": "ar-SA", "da": "da-DK", "de": "de-DE", "en": "en-US", "es": "es-US", "fr": "fr-FR", "he": "he-IL",
    "hi": "hi-IN", "id": "id-ID", "it": "it-IT", "ja": "ja-JP", "ko": "ko-KR", "ms": "ms-MY", "nl": "nl-NL",
    "pt": "pt-BR", "ru": "ru-RU", "sv": "sv-SE", "th": "th-TH", "tr": "tr-TR", "zh": "zh-CN",
}


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, MODEL_RATE, format="WAV", subtype="PCM_16")
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
                MediaFormat="wav", MediaSampleRateHertz=MODEL_RATE,
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
