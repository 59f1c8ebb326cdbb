"""Voice profiles: enrol a speaker from an upload (validated, VAD-trimmed, embedded by Triton), compare, delete."""

from __future__ import annotations

import asyncio
import io
import math
import time
import uuid

import numpy as np
import soundfile

from gateway import audio
from gateway.blobs.base import BlobStore
from gateway.records import EnrolmentQuality, VoiceProfile, from_document, to_document
from gateway.stores.base import RecordStore
from gateway.triton.client import TritonClient
from univoice_core import served, voice_features
from univoice_core.audio import MODEL_RATE
from univoice_core.errors import InvalidAudio, NotFound

PROFILES = "profiles"
COMPARE_MIN_SPEECH_S = 1.0
MAX_UPLOAD_SECONDS = 300.0  # bounds memory: a tiny FLAC of silence could otherwise decode to hours
STATISTICS_BLOB = "voice_statistics.npy"


class ProfileService:
    def __init__(self, store: RecordStore, blobs: BlobStore, triton: TritonClient, detector: audio.ClipVad,
                 *, max_upload_bytes: int, min_speech_s: float, max_speech_s: float, keep_audio: bool):
        self.store, self.blobs, self.triton, self.detector = store, blobs, triton, detector
        self.max_upload_bytes = max_upload_bytes
        self.min_speech_s, self.max_speech_s = min_speech_s, max_speech_s
        self.keep_audio = keep_audio

    def _decode(self, data: bytes) -> audio.Audio:
        return audio.decode(data, max_bytes=self.max_upload_bytes, max_seconds=MAX_UPLOAD_SECONDS)

    async def enrol(self, owner: str, name: str, data: bytes, consent: bool) -> VoiceProfile:
        if not consent:
            raise InvalidAudio("enrolment needs the speaker's consent: send consent=true", code="consent_required")
        clip = self._decode(data)  # checked at its own rate: resampling would smooth clipped peaks away
        report = audio.check_enrolment(clip, self.min_speech_s, self.max_speech_s, self.detector)
        embedding = await self.triton.embed(report.samples16k)
        try:  # what voice_clone needs besides the embedding: pitch and timbre statistics (WORLD Harvest, ~0.3 s per s)
            statistics = await asyncio.to_thread(voice_features.voice_statistics, report.samples16k)
        except ValueError as error:
            raise InvalidAudio(f"{error} (found too few voiced frames)", code="too_little_speech") from None
        profile_id = f"p_{uuid.uuid4().hex}"
        await self.blobs.put(f"profiles/{profile_id}/embedding.npy", _npy(embedding))
        await self.blobs.put(f"profiles/{profile_id}/{STATISTICS_BLOB}", _npy(statistics))
        if self.keep_audio:
            await self.blobs.put(f"profiles/{profile_id}/source.flac", _flac(clip), "audio/flac")
        profile = VoiceProfile(
            id=profile_id, owner=owner, name=name, created_at=time.time(), speech_seconds=report.speech_seconds,
            total_seconds=report.total_seconds,
            quality=EnrolmentQuality(report.snr_db, report.rms_dbfs, report.clipping_ratio),
            consent=consent, has_source_audio=self.keep_audio, embedding_model=served.VOICE_EMBEDDING,
            voice_pitch_hz=round(math.exp(float(statistics[0])), 1),
        )
        await self.store.put(PROFILES, profile_id, to_document(profile), owner=owner)
        return profile

    async def get(self, owner: str, profile_id: str) -> VoiceProfile:
        document = await self.store.get(PROFILES, profile_id)
        if document is None or document["owner"] != owner:
            raise NotFound(f"no voice profile {profile_id!r} for this account", code="profile_not_found")
        return from_document(VoiceProfile, document)

    async def list(self, owner: str) -> list[VoiceProfile]:
        return [from_document(VoiceProfile, d) for d in await self.store.list(PROFILES, owner=owner)]

    async def delete(self, owner: str, profile_id: str) -> None:
        await self.get(owner, profile_id)
        await self.blobs.delete_prefix(f"profiles/{profile_id}/")
        await self.store.delete(PROFILES, profile_id)

    async def embedding(self, owner: str, profile_id: str) -> np.ndarray:
        await self.get(owner, profile_id)
        return await self._array(profile_id, "embedding.npy")

    async def voice(self, owner: str, profile_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The profile's speaker embedding and voice statistics (None for a profile enrolled before cloning)."""
        profile = await self.get(owner, profile_id)
        embedding = await self._array(profile_id, "embedding.npy")
        if profile.voice_pitch_hz is None:
            return embedding, None
        return embedding, await self._array(profile_id, STATISTICS_BLOB)

    async def _array(self, profile_id: str, name: str) -> np.ndarray:
        return np.load(io.BytesIO(await self.blobs.get(f"profiles/{profile_id}/{name}")))

    async def compare(self, owner: str, profile_id: str, data: bytes) -> tuple[float, float]:
        """Cosine similarity between the profile and the speaker of `data`; also the speech seconds used."""
        reference = await self.embedding(owner, profile_id)
        clip = self._decode(data)
        speech = self.detector.speech_only(audio.resample(clip.samples, clip.sample_rate))
        seconds = len(speech) / MODEL_RATE
        if seconds < COMPARE_MIN_SPEECH_S:
            raise InvalidAudio(
                f"found {seconds:.1f} s of speech; comparing needs at least {COMPARE_MIN_SPEECH_S:.0f} s",
                code="too_little_speech",
            )
        candidate = await self.triton.embed(speech)
        return float(np.dot(reference, candidate)), seconds


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def _flac(clip: audio.Audio) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip.samples, clip.sample_rate, format="FLAC")
    return buffer.getvalue()
