"""The streaming protocol's client messages, validated once at the edge (see docs/protocol.md)."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.audio import float_to_pcm16, pcm16_to_float
from gateway.schemas import AudioFormat, LanguageCode
from univoice_core.errors import BadRequest

if TYPE_CHECKING:
    from gateway.pipeline.live import Event

PROTOCOL_VERSION = 1
AUDIO_HEADER = struct.Struct(">I")  # server -> client binary frames: uint32 sequence number, then PCM16 LE


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigMessage(_Message):
    type: Literal["config"]
    protocol: Literal[1] = PROTOCOL_VERSION
    token: str | None = Field(default=None, max_length=4096, description="Bearer token, when no header was sent")
    audio: AudioFormat | None = None
    source_language: LanguageCode | None = None
    target_language: LanguageCode | None = None
    voice_profile_id: str | None = Field(default=None, max_length=64)


class AuthMessage(_Message):
    """A fresh access token before the current one expires (the stream is closed when it does)."""

    type: Literal["auth"]
    token: str = Field(max_length=4096)


class FlushMessage(_Message):
    """End the current utterance now instead of waiting for silence."""

    type: Literal["flush"]


class StopMessage(_Message):
    """Finish: answer every utterance already heard, then close."""

    type: Literal["stop"]


class PingMessage(_Message):
    type: Literal["ping"]
    id: int | str | None = None


ClientMessage = Annotated[
    ConfigMessage | AuthMessage | FlushMessage | StopMessage | PingMessage, Field(discriminator="type")
]
_ADAPTER = TypeAdapter(ClientMessage)


def parse_client_message(text: str) -> ClientMessage:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest("the message is not valid JSON", code="malformed_message") from None
    if not isinstance(data, dict) or "type" not in data:
        raise BadRequest('every JSON message is an object with a "type"', code="malformed_message")
    known = ("config", "auth", "flush", "stop", "ping")
    if data["type"] not in known:
        raise BadRequest(f"unknown message type {data['type']!r}; expected one of {', '.join(known)}",
                         code="unknown_message_type")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors()[:3])
        raise BadRequest(f"invalid {data['type']} message: {problems}", code="invalid_message") from None


def event_message(event: Event) -> dict:
    """The JSON message for a pipeline event: {"type": ..., **fields}."""
    return {"type": event.type, **event.fields}


def audio_frame(sequence: int, samples: np.ndarray) -> bytes:
    """Server -> client audio: 4-byte big-endian sequence number + PCM16 little-endian mono samples."""
    return AUDIO_HEADER.pack(sequence & 0xFFFFFFFF) + float_to_pcm16(samples)


def parse_audio_frame(frame: bytes) -> tuple[int, np.ndarray]:
    """Client-side helper (CLI, benchmarks, tests): the inverse of `audio_frame`."""
    (sequence,) = AUDIO_HEADER.unpack_from(frame)
    return sequence, pcm16_to_float(frame[AUDIO_HEADER.size:])
