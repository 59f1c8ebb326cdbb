"""`AmazonTranscribeTranscriber` against mocked AWS services.

Amazon Transcribe cannot run here: it is mocked. moto's server mocks S3 and the Transcribe job API (start,
poll through QUEUED -> IN_PROGRESS -> COMPLETED, delete) but never writes a transcript, so the test
plays the service's part with a botocore event hook: when StartTranscriptionJob returns, it checks the
uploaded WAV and writes the transcript JSON where the job was told to. Failed and stuck jobs, which moto
cannot produce, use botocore's Stubber for the Transcribe client (S3 stays on moto).
"""

from __future__ import annotations

import io
import json
import uuid

import boto3
import numpy as np
import pytest
import soundfile
from botocore.stub import ANY, Stubber

from gateway.pipeline.stt import AmazonTranscribeTranscriber
from univoice_core.audio import MODEL_RATE
from univoice_core.errors import BadRequest, Unavailable

REGION = "us-east-1"
PREFIX = "transcribe/"
TONE = (0.3 * np.sin(np.arange(MODEL_RATE) * 2 * np.pi * 220 / MODEL_RATE)).astype(np.float32)


@pytest.fixture
def s3(moto_server: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_server)


@pytest.fixture
def bucket(s3) -> str:
    name = f"univoice-stt-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def transcribe_client(moto_server: str):
    return boto3.client("transcribe", region_name=REGION, endpoint_url=moto_server)


def keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.anyio
async def test_job_round_trip_on_moto(s3, bucket, transcribe_client):
    seen: dict = {}

    def capture(params, **_):
        seen.update(params)

    def service_writes_transcript(**_):
        """What Amazon Transcribe does when the job runs: read the media, write the transcript JSON."""
        media_bucket, media_key = seen["Media"]["MediaFileUri"].removeprefix("s3://").split("/", 1)
        media = s3.get_object(Bucket=media_bucket, Key=media_key)["Body"].read()
        audio, rate = soundfile.read(io.BytesIO(media), dtype="float32")
        seen["audio"] = (audio, rate)
        transcript = {"jobName": seen["TranscriptionJobName"], "status": "COMPLETED",
                      "results": {"transcripts": [{"transcript": " Hola, ¿qué tal? "}], "items": []}}
        s3.put_object(Bucket=seen["OutputBucketName"], Key=seen["OutputKey"], Body=json.dumps(transcript).encode())

    transcribe_client.meta.events.register("before-parameter-build.transcribe.StartTranscriptionJob", capture)
    transcribe_client.meta.events.register("after-call.transcribe.StartTranscriptionJob", service_writes_transcript)
    statuses: list[str] = []
    transcribe_client.meta.events.register(
        "after-call.transcribe.GetTranscriptionJob",
        lambda parsed, **_: statuses.append(parsed.get("TranscriptionJob", {}).get("TranscriptionJobStatus")))
    transcriber = AmazonTranscribeTranscriber(bucket, prefix=PREFIX, poll_interval_s=0.01, s3_client=s3,
                                              transcribe_client=transcribe_client)

    assert await transcriber.transcribe(TONE, "es") == "Hola, ¿qué tal?"
    assert statuses == ["QUEUED", "IN_PROGRESS", "COMPLETED"]  # polled until done
    assert seen["LanguageCode"] == "es-US" and seen["MediaFormat"] == "wav"
    assert seen["MediaSampleRateHertz"] == MODEL_RATE == seen["audio"][1]
    assert np.abs(seen["audio"][0] - TONE).max() < 1e-3  # 16-bit PCM of the same samples
    assert seen["OutputKey"].startswith(PREFIX)
    assert keys(s3, bucket) == []  # media and transcript removed
    with pytest.raises(transcribe_client.exceptions.BadRequestException):  # the job was deleted too
        transcribe_client.get_transcription_job(TranscriptionJobName=seen["TranscriptionJobName"])


@pytest.mark.anyio
async def test_unknown_language_and_empty_audio_make_no_calls(s3, bucket, transcribe_client):
    transcriber = AmazonTranscribeTranscriber(bucket, s3_client=s3, transcribe_client=transcribe_client)
    with pytest.raises(BadRequest) as error:
        await transcriber.transcribe(TONE, "xx")
    assert error.value.code == "unsupported_language"
    assert await transcriber.transcribe(np.zeros(100, np.float32), "en") == ""
    assert keys(s3, bucket) == [] and transcribe_client.list_transcription_jobs()["TranscriptionJobSummaries"] == []


def _stubbed_job(s3, bucket: str, statuses: list[dict], **options) -> tuple[AmazonTranscribeTranscriber, Stubber]:
    client = boto3.client("transcribe", region_name=REGION, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    stubber = Stubber(client)
    stubber.add_response("start_transcription_job", {"TranscriptionJob": {"TranscriptionJobStatus": "QUEUED"}},
                         {"TranscriptionJobName": ANY, "LanguageCode": "en-US", "MediaFormat": "wav",
                          "MediaSampleRateHertz": MODEL_RATE, "Media": ANY, "OutputBucketName": bucket,
                          "OutputKey": ANY})
    for job in statuses:
        stubber.add_response("get_transcription_job", {"TranscriptionJob": job})
    stubber.add_response("delete_transcription_job", {})
    stubber.activate()
    return AmazonTranscribeTranscriber(bucket, s3_client=s3, transcribe_client=client, poll_interval_s=0.01,
                                       **options), stubber


@pytest.mark.anyio
async def test_failed_job_is_unavailable_and_cleaned_up(s3, bucket):
    transcriber, stubber = _stubbed_job(s3, bucket, [
        {"TranscriptionJobStatus": "IN_PROGRESS"},
        {"TranscriptionJobStatus": "FAILED", "FailureReason": "The media file is corrupt."},
    ])
    with pytest.raises(Unavailable) as error:
        await transcriber.transcribe(TONE, "en")
    assert error.value.code == "transcription_failed" and "media file is corrupt" in error.value.message
    stubber.assert_no_pending_responses()
    assert keys(s3, bucket) == []


@pytest.mark.anyio
async def test_stuck_job_times_out(s3, bucket):
    transcriber, stubber = _stubbed_job(s3, bucket, [{"TranscriptionJobStatus": "IN_PROGRESS"}], timeout_s=0.0)
    with pytest.raises(Unavailable) as error:
        await transcriber.transcribe(TONE, "en")
    assert error.value.code == "transcription_timeout"
    stubber.assert_no_pending_responses()
    assert keys(s3, bucket) == []
