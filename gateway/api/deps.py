"""FastAPI dependencies: the service container, the authenticated principal, scope checks."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from gateway.accounts import AccountService
from gateway.blobs.base import BlobStore
from gateway.pipeline.providers import SpeechProviders
from gateway.profiles import ProfileService
from gateway.ratelimit import RateLimiter
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
    limiter: RateLimiter
    triton: TritonClient
    accounts: AccountService
    sessions: SessionService
    profiles: ProfileService
    jwks: JwksVerifier | None
    speech: SpeechProviders


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
    await svc.limiter.acquire(f"{who.via}:{who.token_id if who.via == 'api_key' else who.subject}")
    request.state.subject = who.subject
    return who


def require(scope: str):
    async def dependency(who: Principal = Depends(principal)) -> Principal:
        who.require(scope)
        return who

    return dependency
