"""What can go wrong that a caller can be told, each kind with a stable code: no transport in here.

The pipeline, the services and the stores raise these; the HTTP layer (`gateway.api.errors`) alone maps each kind
to a status and headers, and the stream protocol sends the same codes in `error` events. Anything else is an
`internal_error` with no detail: never a stack trace to the client.
"""

from __future__ import annotations


class UniVoiceError(Exception):
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(UniVoiceError):
    code = "bad_request"


class InvalidAudio(UniVoiceError):
    """The upload is not audio we can decode, or fails a quality check (codes say which)."""

    code = "invalid_audio"


class Unauthorized(UniVoiceError):
    code = "unauthorized"


class Forbidden(UniVoiceError):
    code = "forbidden"


class NotFound(UniVoiceError):
    code = "not_found"


class Conflict(UniVoiceError):
    code = "conflict"


class PayloadTooLarge(UniVoiceError):
    code = "payload_too_large"


class RateLimited(UniVoiceError):
    code = "rate_limited"

    def __init__(self, retry_after_s: float, message: str | None = None, *, code: str | None = None):
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(message or f"too many requests; retry in {seconds} s", code=code)
        self.retry_after_s = seconds


class Unavailable(UniVoiceError):
    """A dependency (Triton, the store) is down; the client may retry."""

    code = "unavailable"
