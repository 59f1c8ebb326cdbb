"""Request and response bodies of the REST API (validated once, at the edge)."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from gateway.records import AUDIT_ACTIONS, SessionState
from gateway.security import MIN_PASSWORD_CHARS

# ISO 639-1 codes the pipeline knows how to name; phonemisation and STT support is checked later.
LanguageCode = Literal[
    "ar", "cs", "de", "el", "en", "es", "fi", "fr", "hi", "hu", "it", "ja", "ko", "nl", "pl", "pt", "ro", "ru",
    "sv", "tr", "uk", "vi", "zh",
]
Username = str


def _visible(text: str) -> str:
    """Control, format (bidi overrides, zero-width), private-use and unassigned characters would let a name show
    something else than it holds (in a UI, in a log line)."""
    if any(unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs", "Cn") for char in text):
        raise ValueError("names may not contain control, bidi-override, zero-width or unassigned characters")
    return text


# A name a person gave something (a voice profile, an API key), shown back to them.
DisplayName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_visible)]


class SignupRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"username": "ada", "password": "correct horse battery"}]})

    username: Username = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=256,
                          description="not the username, not a commonly guessed password")


class _FromRecord(BaseModel):
    """A response body read from a record (`gateway/records.py`)."""

    model_config = ConfigDict(from_attributes=True)


def _from_epoch(value):
    return datetime.fromtimestamp(value, timezone.utc) if isinstance(value, int | float) else value


# Records keep epoch seconds; responses say UTC datetimes (`fromtimestamp`, exact to the microsecond).
Timestamp = Annotated[datetime, BeforeValidator(_from_epoch)]


class UserOut(_FromRecord):
    id: str
    username: str
    scopes: list[str]
    created_at: Timestamp


class TokenPair(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "access_token": "eyJhbGciOiJIUzI1NiIs...", "token_type": "bearer", "expires_in": 900,
        "refresh_token": "5eRp0c...Qk", "scope": "stream profiles:write",
    }]})

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
    scope: str


class RefreshRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "5eRp0c...Qk"}]})

    refresh_token: str = Field(min_length=1, max_length=512)


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "call-center-bridge", "scopes": ["stream"]}]})

    name: DisplayName
    scopes: list[Literal["stream", "profiles:write", "models:admin"]] = Field(default_factory=lambda: ["stream"])


class ApiKeyOut(_FromRecord):
    id: str
    name: str
    scopes: list[str]
    created_at: Timestamp


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. Shown once: store it now.")


class AudioFormat(_FromRecord):
    encoding: Literal["pcm16"] = "pcm16"
    sample_rate: Literal[8000, 16000, 24000, 48000] = 16000
    channels: Literal[1] = 1


class SessionCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "source_language": "es", "target_language": "en", "voice_profile_id": None,
        "audio_format": {"encoding": "pcm16", "sample_rate": 16000, "channels": 1},
    }]})

    source_language: LanguageCode
    target_language: LanguageCode
    voice_profile_id: str | None = Field(default=None, max_length=64)
    audio_format: AudioFormat = Field(default_factory=AudioFormat)


class LanguagePair(BaseModel):
    source: str = Field(examples=["es"])
    target: str = Field(examples=["en"])
    engine: str = Field(description="the translation engine: llm, apertium, amazon, ctranslate2 or passthrough",
                        examples=["llm"])
    fallback: str | None = Field(description="the engine used when the primary's output fails a guard rail",
                                 examples=["apertium"])


class Languages(BaseModel):
    languages: list[str]
    pairs: list[LanguagePair]


class SessionOut(_FromRecord):
    id: str
    state: SessionState
    source_language: str
    target_language: str
    voice_profile_id: str | None
    audio_format: AudioFormat
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp


class HistoryEntryOut(_FromRecord):
    id: str
    transcript: str
    translation: str
    source_language: str
    target_language: str
    created_at: Timestamp
    timings_ms: dict[str, float] = Field(default_factory=dict)


class ProfileQuality(_FromRecord):
    snr_db: float | None
    rms_dbfs: float
    clipping_ratio: float


class ProfileOut(_FromRecord):
    id: str
    name: str
    created_at: Timestamp
    speech_seconds: float
    total_seconds: float
    quality: ProfileQuality
    consent: bool
    has_source_audio: bool
    embedding_model: str
    voice_pitch_hz: float | None = Field(
        default=None, description="The speaker's typical pitch (geometric mean F0); null for a profile enrolled "
        "before voice cloning, which then speaks with the nearest preset voice until re-enrolled")


class AuditEntryOut(_FromRecord):
    id: str
    at: Timestamp
    actor: str = Field(description="who acted: this account's id, `cli` for an administrator at the console, or "
                       "`system` for the gateway's own jobs (retention)")
    action: str = Field(examples=["profile.enrolled"], description="one of: " + ", ".join(AUDIT_ACTIONS))
    resource_id: str = Field(description="the voice profile, API key, account or session acted on (`-`: none)")
    result: Literal["ok", "denied"]
    address: str = Field(description="the client's address")
    correlation_id: str = Field(description="the gateway's id of the request, as in its X-Correlation-ID response "
                                "header (a stream's: its session id)")
    details: dict


class ConsentOut(BaseModel):
    version: str
    text: str


class CompareResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"profile_id": "p_3b9e...", "score": 0.87, "speech_seconds": 6.2}]})

    profile_id: str
    score: float = Field(description="Cosine similarity of the two speaker embeddings, -1..1 (same speaker ~0.8+)")
    speech_seconds: float


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]
