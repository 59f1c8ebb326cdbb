"""The FastAPI application: wiring of services, middleware (correlation id, metrics, logs), error mapping."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import audio
from gateway.accounts import AccountService
from gateway.api.deps import Services
from gateway.api.errors import http_headers, http_status
from gateway.api.routes import auth, demo, health, profiles, sessions, stream
from gateway.blobs.factory import make_blob_store
from gateway.observability import (
    CORRELATION_HEADER,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    configure_logging,
    configure_tracing,
    correlation_id,
    log_event,
    new_correlation_id,
)
from gateway.pipeline.providers import SpeechProviders
from gateway.profiles import ProfileService
from gateway.ratelimit import make_rate_limiter
from gateway.security import JwksVerifier, TokenIssuer
from gateway.sessions import SessionService
from gateway.settings import Settings, get_settings
from gateway.stores.factory import make_record_store
from gateway.triton.client import TritonClient
from univoice_core.errors import UniVoiceError

log = logging.getLogger("univoice.gateway")

DESCRIPTION = """
UniVoice gateway. Authenticate with the OAuth2 password flow (`POST /v1/auth/token`) and send
`Authorization: Bearer <access_token>`, or send an API key as `X-API-Key`. Errors always have the body
`{"code", "message", "correlation_id"}`; the code is stable, the message says what to do.
"""


def account_service(settings: Settings, store) -> AccountService:
    issuer = TokenIssuer(settings.signing_key(), settings.jwt_issuer, settings.jwt_audience,
                         settings.access_token_ttl_s)
    return AccountService(store, issuer, settings.refresh_token_ttl_s)


async def build_services(settings: Settings) -> Services:
    store = await make_record_store(settings)
    redis_client = getattr(store, "redis", None)
    blobs = await make_blob_store(settings)
    triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
    jwks = None
    if settings.auth_mode == "jwks":
        if not settings.jwks_url:
            raise RuntimeError("UNIVOICE_AUTH_MODE=jwks needs UNIVOICE_JWKS_URL (e.g. the Cognito JWKS URL)")
        jwks = JwksVerifier(settings.jwks_url, settings.jwks_issuer, settings.jwks_audience)
    return Services(
        settings=settings,
        store=store,
        blobs=blobs,
        limiter=make_rate_limiter(settings, redis_client),
        triton=triton,
        accounts=account_service(settings, store),
        sessions=SessionService(store, settings.session_ttl_s),
        profiles=ProfileService(
            store, blobs, triton, audio.ClipVad(),
            max_upload_bytes=settings.max_upload_bytes, min_speech_s=settings.enrol_min_speech_s,
            max_speech_s=settings.enrol_max_speech_s, keep_audio=settings.keep_enrolment_audio,
        ),
        jwks=jwks,
        speech=SpeechProviders(settings, triton),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = await build_services(settings)
        if settings.preload_voices:
            app.state.services.speech.warm_up()
        try:
            yield
        finally:
            await app.state.services.triton.close()
            await app.state.services.store.close()

    app = FastAPI(title="UniVoice gateway", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    for router in (auth.router, sessions.router, sessions.languages_router, profiles.router, health.router,
                   stream.router, demo.router):
        app.include_router(router)
    configure_tracing(settings.otel_exporter, settings.otel_endpoint)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        cid = request.headers.get(CORRELATION_HEADER) or new_correlation_id()
        token = correlation_id.set(cid[:64])
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[CORRELATION_HEADER] = correlation_id.get()
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(request.method, path, str(status)).inc()
            HTTP_LATENCY.labels(request.method, path).observe(elapsed)
            log_event(log, "request", method=request.method, route=path, status=status,
                      ms=round(1000 * elapsed, 1), subject=getattr(request.state, "subject", None))
            correlation_id.reset(token)

    def error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
        body = {"code": code, "message": message, "correlation_id": correlation_id.get()}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(UniVoiceError)
    async def api_error(request: Request, exc: UniVoiceError):
        return error(http_status(exc), exc.code, exc.message, http_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()[:5]
        )
        return error(422, "validation_error", f"the request is invalid: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        return error(500, "internal_error", "an internal error occurred; quote the correlation id when reporting it")

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory gateway.app:app_from_env`."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
