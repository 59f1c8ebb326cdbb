"""The records the services keep: users, API keys, refresh tokens, sessions, history entries, voice profiles.

Typed here, stored as plain JSON documents in the `RecordStore`; `to_document` and `from_document` are the one
conversion each way. A field added later needs a default, so that documents written before it still load.
The services own the rules over these records (who may read one, which state may follow which); routes only
turn them into response bodies.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypeVar

SessionState = Literal["created", "active", "closed", "expired"]
R = TypeVar("R")


@dataclass(frozen=True)
class User:
    id: str
    username: str
    password_hash: str
    scopes: tuple[str, ...]
    created_at: float


@dataclass(frozen=True)
class ApiKey:
    id: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: float


@dataclass(frozen=True)
class RefreshToken:
    id: str
    user_id: str
    secret_hash: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AudioFormat:
    """The PCM the client streams (validated by `schemas.AudioFormat` at the edge)."""

    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class Session:
    id: str
    owner: str
    state: SessionState
    source_language: str
    target_language: str
    voice_profile_id: str | None
    audio_format: AudioFormat
    created_at: float
    updated_at: float
    expires_at: float


@dataclass(frozen=True)
class HistoryEntry:
    """One answered utterance of a session: what was heard and what was said."""

    id: str
    transcript: str
    translation: str
    source_language: str
    target_language: str
    created_at: float
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class EnrolmentQuality:
    snr_db: float | None
    rms_dbfs: float
    clipping_ratio: float


@dataclass(frozen=True)
class VoiceProfile:
    id: str
    owner: str
    name: str
    created_at: float
    speech_seconds: float
    total_seconds: float
    quality: EnrolmentQuality
    consent: bool
    has_source_audio: bool
    embedding_model: str
    voice_pitch_hz: float | None = None  # None: enrolled before voice cloning (no voice statistics stored)


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to which account, credential or voice profile, from where, and how it ended. Kept after what
    it names is deleted (an enrolment's consent included); appended, never changed."""

    id: str
    at: float
    owner: str  # whose trail it is: the account acted on (SYSTEM for actions on the whole gateway)
    actor: str  # who acted: an account id, "cli" (an administrator at the console), "system" (the gateway's own jobs)
    action: str  # one of AUDIT_ACTIONS
    resource_id: str  # the profile, API key, account or session; "-" for none
    result: Literal["ok", "denied"]
    address: str  # the client's address; "-" outside a request
    correlation_id: str
    details: dict


AUDIT_ACTIONS = (
    "account.created", "account.deleted", "auth.signed_in", "auth.sign_in_refused", "auth.signed_out",
    "auth.refresh_token_reused", "api_key.created", "api_key.deleted", "profile.enrolled", "profile.used",
    "profile.compared", "profile.deleted", "profile.audio_expired", "admin.keys_rotated", "admin.retention_applied",
)


def to_document(record) -> dict:
    return dataclasses.asdict(record)


def from_document(cls: type[R], document: dict) -> R:
    """The record `cls` from its stored document; unknown keys are ignored, missing ones take their default.
    A field may hold another record (`Session.audio_format`) or a tuple; nothing deeper is needed."""
    hints = _hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name not in document:
            continue
        value, kind = document[field.name], hints[field.name]
        if dataclasses.is_dataclass(kind):
            value = from_document(kind, value)
        elif typing.get_origin(kind) is tuple:
            value = tuple(value)
        values[field.name] = value
    return cls(**values)


@cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)
