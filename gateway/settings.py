"""The one settings object.

Sources, lowest priority first: defaults, `.env`, `UNIVOICE_*` environment variables, then — when
`UNIVOICE_AWS_SSM_PREFIX` / `UNIVOICE_AWS_SECRET_ID` are set — AWS SSM Parameter Store (every
parameter under the prefix, named like the field) and a Secrets Manager JSON secret. `.env.example`
documents every field.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from univoice_core import config


class AwsSource(PydanticBaseSettingsSource):
    """SSM parameters under a prefix (e.g. /univoice/prod/jwt_secret) and one Secrets Manager secret."""

    def __init__(self, settings_cls, prefix: str | None, secret_id: str | None, region: str, endpoint: str | None):
        super().__init__(settings_cls)
        self.prefix, self.secret_id, self.region, self.endpoint = prefix, secret_id, region, endpoint

    def get_field_value(self, field, field_name):  # pragma: no cover - the whole mapping is built in __call__
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.prefix and not self.secret_id:
            return {}
        import boto3

        values: dict[str, Any] = {}
        fields = set(self.settings_cls.model_fields)
        if self.prefix:
            ssm = boto3.client("ssm", region_name=self.region, endpoint_url=self.endpoint)
            prefix = self.prefix.rstrip("/") + "/"
            for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, WithDecryption=True):
                for parameter in page["Parameters"]:
                    name = parameter["Name"][len(prefix):]
                    if name in fields:
                        values[name] = parameter["Value"]
        if self.secret_id:
            client = boto3.client("secretsmanager", region_name=self.region, endpoint_url=self.endpoint)
            secret = json.loads(client.get_secret_value(SecretId=self.secret_id)["SecretString"])
            values.update({k: v for k, v in secret.items() if k in fields})
        return values


class Settings(BaseSettings):
    # An empty value means "unset", as `.env.example` documents (UNIVOICE_JWT_SECRET= keeps the generated key).
    model_config = SettingsConfigDict(env_prefix="UNIVOICE_", env_file=".env", extra="ignore", env_ignore_empty=True)

    # --- Triton -------------------------------------------------------------------------------
    model_repository: Path = config.MODEL_REPOSITORY
    triton_host: str = config.TRITON_HOST
    triton_http_port: int = config.TRITON_HTTP_PORT
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_start_timeout_s: float = 180.0
    # None: <model>/config.pbtxt (bundled CPU Triton); "gpu": <model>/configs/gpu.pbtxt (NGC image).
    triton_config_name: str | None = None
    # `make run` starts the bundled Triton itself; set false to use an external one at triton_host.
    triton_embedded: bool = True
    triton_timeout_s: float = 30.0

    # --- Gateway ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080
    # HTTPS/WSS on `univoice serve` (TLS 1.3 only): a PEM certificate chain and its private key.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # Runtime state of the embedded defaults (SQLite file, local blobs, generated secret).
    state_dir: Path = config.REPO_ROOT / ".univoice"
    cors_origins: list[str] = Field(default_factory=list)

    # --- Storage ------------------------------------------------------------------------------
    store_backend: Literal["sqlite", "redis", "dynamodb"] = "sqlite"
    sqlite_path: Path | None = None  # default: <state_dir>/univoice.db
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "univoice:"
    dynamodb_table: str = "univoice"
    blob_backend: Literal["local", "s3"] = "local"
    blob_dir: Path | None = None  # default: <state_dir>/blobs
    s3_bucket: str = "univoice"
    s3_prefix: str = ""
    s3_sse: Literal["AES256", "aws:kms"] = "AES256"
    s3_kms_key_id: str | None = None
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # a local AWS-compatible endpoint (moto, LocalStack)
    aws_ssm_prefix: str | None = None
    aws_secret_id: str | None = None

    # --- Auth ---------------------------------------------------------------------------------
    auth_mode: Literal["local", "jwks"] = "local"
    # HS256 key for our own tokens. Unset: one is generated once and kept in <state_dir>/jwt_secret.
    jwt_secret: SecretStr | None = None
    # Blobs at rest (embeddings, voice statistics, enrolment audio) are envelope-encrypted: each has its own
    # AES-256-GCM data key, wrapped by a master key. The master keys: base64 AES-256 keys, one per line, the first
    # wrapping new data keys and the rest retired (still unwrapping until `univoice admin rotate-keys`). Unset: one
    # is generated once and kept in <state_dir>/blob_key (0600). Losing it loses every profile.
    blob_key: SecretStr | None = None
    # Set: AWS KMS wraps the data keys with this key (id, ARN or alias) instead, and blob_key is not used.
    blob_kms_key_id: str | None = None
    # Read blobs written before encryption (plaintext) as they are. Off: such a blob is refused, so a plaintext
    # blob slipped into the store is never taken for a profile's; on only while migrating an old data directory.
    allow_plaintext_blobs: bool = False
    jwt_issuer: str = "univoice"
    jwt_audience: str = "univoice"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 14 * 24 * 3600
    # auth_mode=jwks: RS256 tokens from an external issuer (e.g. Cognito) verified against its JWKS.
    jwks_url: str | None = None
    jwks_issuer: str | None = None
    jwks_audience: str | None = None
    allow_signup: bool = True

    # --- Sessions, profiles, limits -------------------------------------------------------------
    session_ttl_s: int = 4 * 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    enrol_min_speech_s: float = 3.0
    enrol_max_speech_s: float = 60.0
    keep_enrolment_audio: bool = True  # false: an enrolment's recording is never stored (only what it measured)
    # Enrolment recordings older than this are deleted, at start-up and by `univoice admin apply-retention`.
    enrolment_audio_retention_days: float | None = Field(default=None, gt=0)
    rate_limit_per_minute: float = 600.0  # each account's requests, whichever credential they come with
    rate_limit_burst: int = 100
    # Password guesses and sign-ups: per client address, and (logins) per account as well.
    auth_attempts_per_minute: float = 10.0
    auth_attempts_burst: int = 10
    max_api_keys_per_user: int = 10
    uploads_per_user: int = 2  # enrolments and comparisons of one account decoded and embedded at a time

    # --- Speech providers ------------------------------------------------------------------------
    # Assembled model files (Whisper from its PyPI parts) and machine-wide caches (preset voice embeddings).
    build_dir: Path = config.BUILD_DIR
    stt_provider: Literal["whisper", "amazon"] = "whisper"
    stt_model: Literal["base", "tiny.en"] = "base"
    stt_threads: int = 2
    stt_chunk_length: int = 30
    transcribe_bucket: str = "univoice-transcribe"  # stt_provider=amazon: where audio is staged
    # The languages sessions may use (STT source, spoken target); every pair of them that an engine translates
    # is offered (GET /v1/languages). The same language twice is a passthrough.
    languages: list[str] = Field(default_factory=lambda: ["en", "es", "de", "fr"])
    # The engine for every pair it supports: "llm" (Triton's translator, guarded, Apertium as fallback where the
    # pair has it), "apertium" (en<->es only), "amazon" (Amazon Translate), "ctranslate2" (translation_models).
    translation_provider: Literal["llm", "apertium", "amazon", "ctranslate2"] = "llm"
    # Per-pair overrides (JSON): {"en-es": "apertium"}.
    translation_providers: dict[str, Literal["llm", "apertium", "amazon", "ctranslate2"]] = Field(default_factory=dict)
    # translation_provider=ctranslate2: {"es-en": "/models/opus-mt-es-en", "*": "/models/nllb"} (JSON)
    translation_models: dict[str, Path] = Field(default_factory=dict)
    # Compute the preset voices' embeddings when the gateway starts rather than at the first stream.
    preload_voices: bool = True
    # Sessions with a voice profile speak through Triton's `voice_clone` (the trained converter); false:
    # through the preset nearest to the profile, as before cloning existed.
    voice_cloning: bool = True

    # --- Live streaming (/v1/sessions/{id}/stream) -------------------------------------------------
    stream_max_frame_bytes: int = 64 * 1024  # ~2 s of 16 kHz PCM16; send 20-100 ms per frame
    stream_max_session_s: int = 3600
    stream_max_utterance_s: float = 20.0  # a longer monologue is cut and translated piece by piece
    stream_config_timeout_s: float = 5.0  # an unconfigured socket is held this long at most, whatever it sends
    stream_connections_per_address: int = 20  # open WebSockets per client address, authenticated or not
    streams_per_user: int = 4  # open streams per account
    # How often an open stream re-checks, through the store, that its credential and session still stand
    # (logout, a deleted API key or a session closed over REST reach every replica's streams this way).
    stream_recheck_s: float = 2.0
    stream_idle_timeout_s: float = 60.0
    stream_send_queue: int = 64  # outgoing messages buffered per stream; audio beyond it is dropped
    # Whisper cannot be interrupted: a final transcript waits for the partial in flight (~1 s on 2 cores). Every
    # 2 s of new speech, about half the phrase ends find Whisper idle.
    stream_partial_interval_s: float = 2.0
    vad_min_silence_ms: int = 400  # silence that ends an utterance

    # --- Observability ---------------------------------------------------------------------------
    log_level: str = "INFO"
    log_json: bool = True
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None

    # Real speech used by export parity gates, tests and benchmarks (LibriSpeech, CC BY 4.0).
    data_dir: Path = config.DATA_DIR

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        base = (init_settings, env_settings, dotenv_settings, file_secret_settings)
        probe = {}
        for source in reversed(base):
            probe.update(source())
        aws = AwsSource(
            settings_cls,
            prefix=probe.get("aws_ssm_prefix"),
            secret_id=probe.get("aws_secret_id"),
            region=probe.get("aws_region", "us-east-1"),
            endpoint=probe.get("aws_endpoint_url"),
        )
        # Highest priority first: explicit init args, then AWS (production secrets), env, .env.
        return (init_settings, aws, env_settings, dotenv_settings, file_secret_settings)

    @property
    def triton_http_url(self) -> str:
        return f"{self.triton_host}:{self.triton_http_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    def resolved_sqlite_path(self) -> Path:
        return self.sqlite_path or self.state_dir / "univoice.db"

    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.state_dir / "blobs"

    def signing_key(self) -> str:
        """The HS256 key: configured, or generated once per state directory and reused across restarts."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return _secret_file(self.state_dir / "jwt_secret", lambda: secrets.token_urlsafe(48))

    def blob_key_file(self) -> Path:
        return self.state_dir / "blob_key"

    def blob_master_keys(self) -> str:
        """The AES master keys' text: configured, or generated once per state directory."""
        if self.blob_key is not None:
            return self.blob_key.get_secret_value()
        return _secret_file(self.blob_key_file(), lambda: base64.b64encode(secrets.token_bytes(32)).decode())


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    """A secret kept in a file only its owner can read: created 0600 (never readable by others, not even
    between creating and chmod-ing it), once; later calls read it back."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(make())
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
