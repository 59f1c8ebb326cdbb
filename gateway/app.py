"""The FastAPI application: wiring of services, middleware (correlation id, metrics, logs), error mapping."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import audio, security
from gateway.accounts import AccountService
from gateway.allocator import release_free_heap_periodically
from gateway.api.body_limit import BodyLimit
from gateway.api.deps import Services
from gateway.api.errors import error_response, http_headers, http_status
from gateway.api.routes import auth, demo, health, profiles, sessions, stream
from gateway.audit import SYSTEM, AuditLog
from gateway.blobs.factory import make_blob_store
from gateway.cpu import PASSWORDS, run_cpu
from gateway.maintenance import apply_retention
from gateway.observability import (
    CORRELATION_HEADER,
    HTTP_LATENCY,
    HTTP_REQUESTS,
    client_address,
    configure_logging,
    configure_tracing,
    correlation_id,
    log_event,
    new_correlation_id,
)
from gateway.pipeline.providers import SpeechProviders
from gateway.profiles import ProfileService
from gateway.ratelimit import ConcurrencyLimit, make_rate_limiter
from gateway.security import JwksVerifier, TokenIssuer
from gateway.sessions import SessionService
from gateway.settings import Settings, get_settings
from gateway.stores.factory import make_record_store
from gateway.triton.client import TritonClient
from univoice_core.errors import RateLimited, UniVoiceError

log = logging.getLogger("univoice.gateway")
CLIENT_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CLIENT_CORRELATION_HEADER = "X-Client-Correlation-ID"

DESCRIPTION = """
UniVoice gateway. Authenticate with the OAuth2 password flow (`POST /v1/auth/token`) and send
`Authorization: Bearer <access_token>`, or send an API key as `X-API-Key`. Errors always have the body
`{"code", "message", "correlation_id"}`; the code is stable, the message says what to do.
"""


def security_headers(path: str, *, tls: bool) -> dict[str, str]:
    """On every response: no framing (clickjacking), no MIME sniffing, no referrer; a Content-Security-Policy that
    lets the /demo page run its own script and AudioWorklet (a blob: module) and open its WebSocket, and lets
    /docs run Swagger UI's inline start-up script, both from this origin only."""
    inline = " 'unsafe-inline'" if path == "/docs" else ""
    headers = {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": f"default-src 'self'; script-src 'self' blob:{inline}; style-src 'self'{inline}; "
                                   "img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
                                   "base-uri 'none'; form-action 'self'",
    }
    if tls:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


def _serve_docs_locally(app: FastAPI) -> None:
    """/docs with Swagger UI from the fastapi-offline package, not from a CDN (nothing loaded from elsewhere)."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/docs/static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API docs",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon.png")


def account_service(settings: Settings, store, audit: AuditLog) -> AccountService:
    issuer = TokenIssuer(settings.signing_key(), settings.jwt_issuer, settings.jwt_audience,
                         settings.access_token_ttl_s)
    return AccountService(store, issuer, settings.refresh_token_ttl_s, audit,
                          max_api_keys=settings.max_api_keys_per_user)


async def build_services(settings: Settings) -> Services:
    store = await make_record_store(settings)
    redis_client = getattr(store, "redis", None)
    blobs = await make_blob_store(settings)
    triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
    audit = AuditLog(store)
    await run_cpu(security.dummy_password_hash, pool=PASSWORDS)  # now: the first unknown-user login costs the same
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
        auth_limiter=make_rate_limiter(settings, redis_client, per_minute=settings.auth_attempts_per_minute,
                                       burst=settings.auth_attempts_burst),
        triton=triton,
        accounts=account_service(settings, store, audit),
        sessions=SessionService(store, settings.session_ttl_s),
        audit=audit,
        profiles=ProfileService(
            store, blobs, triton, audio.ClipVad(), audit,
            max_upload_bytes=settings.max_upload_bytes, min_speech_s=settings.enrol_min_speech_s,
            max_speech_s=settings.enrol_max_speech_s, keep_audio=settings.keep_enrolment_audio,
            uploads_per_user=settings.uploads_per_user,
        ),
        jwks=jwks,
        speech=SpeechProviders(settings, triton),
        connections_per_address=ConcurrencyLimit(settings.stream_connections_per_address, lambda limit: RateLimited(
            5, f"{limit} streams are already open from this address; close one first", code="too_many_connections")),
        streams_per_user=ConcurrencyLimit(settings.streams_per_user, lambda limit: RateLimited(
            5, f"{limit} streams of this account are already open; close one first", code="too_many_streams")),
    )


async def _apply_retention(settings: Settings, services: Services) -> None:
    """At every start: no recording outlives its retention because the gateway was down when it expired."""
    try:
        await apply_retention(settings, services.profiles, services.audit, actor=SYSTEM)
    except Exception:  # a store hiccup must not take the gateway down; the next start or the command retries
        log.exception("applying the enrolment-audio retention failed; run `univoice admin apply-retention`")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = services = await build_services(settings)
        # In the background: listing every blob takes a while on S3, and must not hold a replica's start-up.
        retention = asyncio.create_task(_apply_retention(settings, services))
        heap = asyncio.create_task(release_free_heap_periodically())
        try:
            if settings.preload_voices:
                app.state.services.speech.warm_up()
            yield
        finally:
            retention.cancel()
            heap.cancel()
            await asyncio.gather(retention, heap, return_exceptions=True)
            await app.state.services.triton.close()
            await app.state.services.store.close()

    app = FastAPI(title="UniVoice gateway", version="1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, upload_bytes=settings.max_upload_bytes)  # inside `observe`: it has the id
    _serve_docs_locally(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=True,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key", CORRELATION_HEADER],
                           expose_headers=[CORRELATION_HEADER, "Retry-After"])
    for router in (auth.router, sessions.router, sessions.languages_router, profiles.router, health.router,
                   stream.router, demo.router):
        app.include_router(router)
    configure_tracing(settings.otel_exporter, settings.otel_endpoint)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        # The id is always ours (a client could otherwise pass another request's id, or a forged log line);
        # a well-formed id of the client's rides along in the log and comes back in its own header.
        client_id = request.headers.get(CORRELATION_HEADER, "")
        client_id = client_id if CLIENT_CORRELATION_ID.fullmatch(client_id) else None
        token = correlation_id.set(new_correlation_id())
        address = client_address.set(request.client.host if request.client else "-")
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[CORRELATION_HEADER] = correlation_id.get()
            if client_id:
                response.headers[CLIENT_CORRELATION_HEADER] = client_id
            response.headers.update(security_headers(request.url.path, tls=settings.tls_certfile is not None))
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(request.method, path, str(status)).inc()
            HTTP_LATENCY.labels(request.method, path).observe(elapsed)
            log_event(log, "request", method=request.method, route=path, status=status,
                      ms=round(1000 * elapsed, 1), subject=getattr(request.state, "subject", None),
                      client_correlation_id=client_id)
            client_address.reset(address)
            correlation_id.reset(token)

    @app.exception_handler(UniVoiceError)
    async def api_error(request: Request, exc: UniVoiceError):
        return error_response(http_status(exc), exc.code, exc.message, http_headers(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()[:5]
        )
        return error_response(422, "validation_error", f"the request is invalid: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error",
                              "an internal error occurred; quote the correlation id when reporting it")

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory gateway.app:app_from_env`."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
