"""Voice profiles: enrol a speaker from an upload (validated, VAD-trimmed, embedded by Triton), compare, delete."""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import time
import uuid

import numpy as np
import soundfile

from gateway import audio
from gateway.audit import SYSTEM, AuditLog
from gateway.blobs.base import BlobStore
from gateway.cpu import UPLOADS, run_cpu
from gateway.ratelimit import ConcurrencyLimit
from gateway.records import EnrolmentQuality, VoiceProfile, from_document, to_document
from gateway.stores.base import RecordStore
from gateway.triton.client import TritonClient
from univoice_core import served, voice_features
from univoice_core.audio import MODEL_RATE
from univoice_core.errors import BadRequest, InvalidAudio, NotFound, RateLimited

PROFILES = "profiles"
# What a speaker agrees to before enrolling; a change of the text is a new version. Each enrolment's audit event
# keeps the text and version it was given under (GET /v1/profiles/consent; the demo shows it).
CONSENT_VERSION = "2026-12-01"
CONSENT_TEXT = ("I am the speaker in this recording. I agree that UniVoice makes a voice profile of it (a speaker "
                "embedding and voice statistics), keeps it encrypted until I delete it, and speaks my translations "
                "in my voice with it.")
COMPARE_MIN_SPEECH_S = 1.0
MAX_UPLOAD_SECONDS = 120.0  # twice the most speech an enrolment keeps; bounds decoding (48 kHz mono: 23 MB)
STATISTICS_BLOB = "voice_statistics.npy"
SOURCE_BLOB = "source.flac"  # the enrolment recording: with keep_enrolment_audio, until its retention ends


class ProfileService:
    def __init__(self, store: RecordStore, blobs: BlobStore, triton: TritonClient, detector: audio.ClipVad,
                 audit: AuditLog, *, max_upload_bytes: int, min_speech_s: float, max_speech_s: float, keep_audio: bool,
                 uploads_per_user: int = 2):
        self.store, self.blobs, self.triton, self.detector, self.audit = store, blobs, triton, detector, audit
        self.max_upload_bytes = max_upload_bytes
        self.min_speech_s, self.max_speech_s = min_speech_s, max_speech_s
        self.keep_audio = keep_audio
        # One account's burst of enrolments must not take the CPU (or the disk its bodies spool to) from everyone
        # else: the routes hold a slot from reading the upload to the answer.
        self.uploads = ConcurrencyLimit(uploads_per_user, lambda limit: RateLimited(
            5, f"{limit} enrolments or comparisons of this account are already being processed; wait for one to "
               "finish", code="too_many_uploads"))

    async def _decode(self, data: bytes) -> audio.Audio:
        decode = functools.partial(audio.decode, max_bytes=self.max_upload_bytes, max_seconds=MAX_UPLOAD_SECONDS)
        return await run_cpu(decode, data, pool=UPLOADS)

    async def enrol(self, owner: str, name: str, data: bytes, consent: bool,
                    consent_version: str | None = None) -> VoiceProfile:
        """`consent_version`: the version of the consent text the speaker was shown (the current one if not said)."""
        if not consent:
            raise InvalidAudio("enrolment needs the speaker's consent: send consent=true", code="consent_required")
        if consent_version not in (None, CONSENT_VERSION):
            raise BadRequest(f"the consent text changed (version {CONSENT_VERSION}, not {consent_version[:32]}): show "
                             "the speaker the text of GET /v1/profiles/consent and send its version",
                             code="consent_outdated")
        clip = await self._decode(data)  # checked at its own rate: resampling would smooth clipped peaks away
        report = await run_cpu(audio.check_enrolment, clip, self.min_speech_s, self.max_speech_s, self.detector,
                               pool=UPLOADS)
        embedding = await self.triton.embed(report.samples16k)
        try:  # what voice_clone needs besides the embedding: pitch and timbre statistics (WORLD Harvest, ~0.3 s per s)
            statistics = await run_cpu(voice_features.voice_statistics, report.samples16k, pool=UPLOADS)
        except ValueError as error:
            raise InvalidAudio(f"{error} (found too few voiced frames)", code="too_little_speech") from None
        profile_id = f"p_{uuid.uuid4().hex}"
        await self.blobs.put(f"profiles/{profile_id}/embedding.npy", _npy(embedding))
        await self.blobs.put(f"profiles/{profile_id}/{STATISTICS_BLOB}", _npy(statistics))
        if self.keep_audio:
            await self.blobs.put(f"profiles/{profile_id}/{SOURCE_BLOB}", _flac(clip), "audio/flac")
        profile = VoiceProfile(
            id=profile_id, owner=owner, name=name, created_at=time.time(), speech_seconds=report.speech_seconds,
            total_seconds=report.total_seconds,
            quality=EnrolmentQuality(report.snr_db, report.rms_dbfs, report.clipping_ratio),
            consent=consent, has_source_audio=self.keep_audio, embedding_model=served.VOICE_EMBEDDING,
            voice_pitch_hz=round(math.exp(float(statistics[0])), 1),
        )
        await self.store.put(PROFILES, profile_id, to_document(profile), owner=owner)
        await self.audit.record(owner, "profile.enrolled", profile_id, consent=consent,
                                consent_version=CONSENT_VERSION, consent_text=CONSENT_TEXT,
                                speech_seconds=round(report.speech_seconds, 1), source_audio_kept=self.keep_audio)
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
        await self.audit.record(owner, "profile.deleted", profile_id)

    async def exists(self, profile_id: str) -> bool:
        return await self.store.get(PROFILES, profile_id) is not None

    async def expire_enrolment_audio(self, older_than_s: float, *, actor: str = SYSTEM) -> int:
        """Delete the enrolment recording of every profile enrolled more than `older_than_s` ago; the embedding and
        voice statistics stay, so the profile keeps working. (A recording without a profile record is one being
        enrolled, or one a crash left mid-enrolment: not this function's to judge.)"""
        cutoff, expired = time.time() - older_than_s, 0
        for key in await self.blobs.keys("profiles/"):
            parts = key.split("/")
            if len(parts) != 3 or parts[2] != SOURCE_BLOB:
                continue
            document = await self.store.get(PROFILES, parts[1])
            if document is None or document["created_at"] > cutoff:
                continue
            profile = from_document(VoiceProfile, document)
            await self.blobs.delete_prefix(key)
            expired += 1
            without_audio = dataclasses.replace(profile, has_source_audio=False)
            await self.store.put(PROFILES, profile.id, to_document(without_audio), owner=profile.owner)
            if not await self.blobs.keys(f"profiles/{profile.id}/"):  # deleted meanwhile: do not bring it back
                await self.store.delete(PROFILES, profile.id)
                continue
            await self.audit.record(profile.owner, "profile.audio_expired", profile.id, actor=actor,
                                    retention_days=round(older_than_s / 86_400, 2))
        return expired

    async def embedding(self, owner: str, profile_id: str) -> np.ndarray:
        await self.get(owner, profile_id)
        return await self._array(profile_id, "embedding.npy")

    async def voice(self, owner: str, profile_id: str, session_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The profile's speaker embedding and voice statistics (None for a profile enrolled before cloning), for
        a stream of `session_id` to speak with."""
        profile = await self.get(owner, profile_id)
        await self.audit.record(owner, "profile.used", profile_id, session_id=session_id)
        embedding = await self._array(profile_id, "embedding.npy")
        if profile.voice_pitch_hz is None:
            return embedding, None
        return embedding, await self._array(profile_id, STATISTICS_BLOB)

    async def _array(self, profile_id: str, name: str) -> np.ndarray:
        return np.load(io.BytesIO(await self.blobs.get(f"profiles/{profile_id}/{name}")))

    async def compare(self, owner: str, profile_id: str, data: bytes) -> tuple[float, float]:
        """Cosine similarity between the profile and the speaker of `data`; also the speech seconds used."""
        reference = await self.embedding(owner, profile_id)
        clip = await self._decode(data)
        speech = await run_cpu(self._speech_16k, clip, pool=UPLOADS)
        seconds = len(speech) / MODEL_RATE
        if seconds < COMPARE_MIN_SPEECH_S:
            raise InvalidAudio(
                f"found {seconds:.1f} s of speech; comparing needs at least {COMPARE_MIN_SPEECH_S:.0f} s",
                code="too_little_speech",
            )
        if seconds > self.max_speech_s:  # like enrolment: the embedding model's input is bounded
            raise InvalidAudio(f"found {seconds:.1f} s of speech; comparing takes at most "
                               f"{self.max_speech_s:.0f} s: send a shorter clip", code="too_much_speech")
        candidate = await self.triton.embed(speech)
        score = float(np.dot(reference, candidate))
        await self.audit.record(owner, "profile.compared", profile_id, score=round(score, 3),
                                speech_seconds=round(seconds, 1))
        return score, seconds

    def _speech_16k(self, clip: audio.Audio) -> np.ndarray:
        return self.detector.speech_only(audio.resample(clip.samples, clip.sample_rate))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


def _flac(clip: audio.Audio) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, clip.samples, clip.sample_rate, format="FLAC")
    return buffer.getvalue()
