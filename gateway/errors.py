"""One exception hierarchy for everything a client can be told. Each error has a stable code.

Routes and services raise these; `gateway.app` maps them to the HTTP status and a JSON body
`{"code", "message", "correlation_id"}` (and WebSocket `error` events reuse the same codes).
Anything else becomes `internal_error` with no detail: never a stack trace to the client.
"""

from __future__ import annotations


class ApiError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class InvalidAudio(ApiError):
    """The upload is not audio we can decode, or fails a quality check (codes say which)."""

    status, code = 422, "invalid_audio"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class RateLimited(ApiError):
    status, code = 429, "rate_limited"

    def __init__(self, retry_after_s: float):
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(f"too many requests; retry in {seconds} s", headers={"Retry-After": str(seconds)})
        self.retry_after_s = seconds


class Unavailable(ApiError):
    """A dependency (Triton, the store) is down; the client may retry."""

    status, code = 503, "unavailable"
