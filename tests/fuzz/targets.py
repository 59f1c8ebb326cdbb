"""Fuzz targets: what the gateway reads from strangers, each with the one contract it must keep on any input.

- `client_message`: a WebSocket text message parses into a typed message or is refused with a `BadRequest`
  (malformed_message, unknown_message_type, invalid_message), never another exception.
- `pcm_frame`: a WebSocket binary frame becomes finite samples in [-1, 1] or is refused with `InvalidAudio`.
- `audio_upload`: an uploaded file decodes into finite mono samples within the limits, or is refused with
  `InvalidAudio` / `PayloadTooLarge`, never another exception, and never more audio than the cap.

Hypothesis drives them in the test suite (tests/fuzz/test_fuzz.py, bounded); `make fuzz` runs them under
Atheris, coverage-guided, for longer (`python -m tests.fuzz.run audio_upload -max_total_time=600`). An input
that breaks a contract becomes a regression test in test_fuzz.py.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile

from gateway import audio
from gateway.api.stream_protocol import parse_client_message
from univoice_core.errors import BadRequest, InvalidAudio, PayloadTooLarge

MAX_BYTES, MAX_SECONDS = 1 << 20, 5.0


def client_message(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        message = parse_client_message(text)
    except BadRequest as error:
        assert error.code in ("malformed_message", "unknown_message_type", "invalid_message"), error.code
        assert len(error.message) < 2_000, "an error message must not echo a whole input back"
        return
    assert message.type in ("config", "auth", "flush", "stop", "ping")


def pcm_frame(data: bytes) -> None:
    try:
        samples = audio.pcm16_to_float(data)
    except InvalidAudio:
        assert len(data) % 2 == 1
        return
    assert samples.dtype == np.float32 and len(samples) == len(data) // 2
    assert np.isfinite(samples).all() and np.abs(samples).max(initial=0) <= 1.0


def audio_upload(data: bytes) -> None:
    try:
        clip = audio.decode(data, max_bytes=MAX_BYTES, max_seconds=MAX_SECONDS)
    except (InvalidAudio, PayloadTooLarge):
        return
    assert clip.samples.ndim == 1 and clip.samples.dtype == np.float32 and len(clip.samples) > 0
    assert np.isfinite(clip.samples).all()
    assert len(clip.samples) <= MAX_SECONDS * clip.sample_rate + 1


TARGETS = {"client_message": client_message, "pcm_frame": pcm_frame, "audio_upload": audio_upload}


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs to start from: each message type, PCM, and a short file in each accepted format."""
    tone = (0.3 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    files = []
    for fmt, subtype in (("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")):
        buffer = io.BytesIO()
        soundfile.write(buffer, tone, 16_000, format=fmt, subtype=subtype)
        files.append(buffer.getvalue())
    messages = [b'{"type":"config","audio":{"encoding":"pcm_s16le","sample_rate":16000,"channels":1}}',
                b'{"type":"auth","token":"x"}', b'{"type":"flush"}', b'{"type":"stop"}', b'{"type":"ping","id":7}']
    return {"client_message": messages, "pcm_frame": [audio.float_to_pcm16(tone)], "audio_upload": files}
