"""The one place a domain error (`univoice_core.errors`) becomes an HTTP status and headers, and the one shape of
every error body: {"code", "message", "correlation_id"}."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from gateway.observability import correlation_id
from univoice_core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidAudio,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    UniVoiceError,
)

STATUS: dict[type[UniVoiceError], int] = {
    BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, PayloadTooLarge: 413,
    InvalidAudio: 422, RateLimited: 429, Unavailable: 503,
}


def http_status(error: UniVoiceError) -> int:
    """The status of the nearest mapped kind in the error's class hierarchy (500 for none)."""
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 500)


def http_headers(error: UniVoiceError) -> dict[str, str]:
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after_s)}
    return {}


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    body = {"code": code, "message": message, "correlation_id": correlation_id.get()}
    return JSONResponse(body, status_code=status, headers=headers)
