"""FastAPI dependencies: the service container, the authenticated principal, scope checks."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from gateway.accounts import AccountService
from gateway.audit import AuditLog
from gateway.blobs.base import BlobStore
from gateway.pipeline.providers import SpeechProviders
from gateway.profiles import ProfileService
from gateway.ratelimit import ConcurrencyLimit, RateLimiter
from gateway.security import JwksVerifier, Principal
from gateway.sessions import SessionService
from gateway.settings import Settings
from gateway.stores.base import RecordStore
from gateway.triton.client import TritonClient
from univoice_core.errors import Unauthorized

oauth2 = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Server-to-server API key (uvk_...)")


@dataclass
class Services:
    settings: Settings
    store: RecordStore
    blobs: BlobStore
    limiter: RateLimiter  # every authenticated request, per account
    auth_limiter: RateLimiter  # logins and sign-ups, per client address and per account
    triton: TritonClient
    accounts: AccountService
    sessions: SessionService
    profiles: ProfileService
    audit: AuditLog
    jwks: JwksVerifier | None
    speech: SpeechProviders
    connections_per_address: ConcurrencyLimit  # open WebSockets
    streams_per_user: ConcurrencyLimit


def services(request: Request) -> Services:
    return request.app.state.services


async def authenticate(services: Services, token: str | None, api_key: str | None) -> Principal:
    """Bearer token (ours, or an external RS256 one in jwks mode) or API key -> Principal."""
    if api_key:
        return await services.accounts.verify_api_key(api_key)
    if token:
        if services.jwks is not None:
            return await services.jwks.verify(token)
        return await services.accounts.verify_access(token)
    raise Unauthorized("missing credentials: send `Authorization: Bearer <token>` or `X-API-Key: <key>`",
                       code="missing_credentials")


async def principal(
    request: Request,
    token: str | None = Depends(oauth2),
    api_key: str | None = Depends(api_key_header),
    svc: Services = Depends(services),
) -> Principal:
    who = await authenticate(svc, token, api_key)
    await svc.limiter.acquire(f"user:{who.subject}")  # one bucket per account, whichever credential it uses
    request.state.subject = who.subject
    return who


def require(scope: str):
    async def dependency(who: Principal = Depends(principal)) -> Principal:
        who.require(scope)
        return who

    return dependency
