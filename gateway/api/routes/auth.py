"""Sign-up, OAuth2 password flow, refresh rotation, logout, API keys."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from gateway.accounts import IssuedTokens
from gateway.api.deps import Services, principal, services
from gateway.erasure import erase_account
from gateway.observability import client_address
from gateway.ratelimit import address_key
from gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEntryOut,
    RefreshRequest,
    SignupRequest,
    TokenPair,
    UserOut,
)
from gateway.security import Principal
from univoice_core.errors import Forbidden

router = APIRouter(prefix="/v1", tags=["auth"])


def _address() -> str:
    """The requesting client's address (set for each request by the app's middleware) as a limit's key."""
    return address_key(client_address.get())


def _pair(tokens: IssuedTokens) -> TokenPair:
    return TokenPair(access_token=tokens.access_token, expires_in=tokens.expires_in,
                     refresh_token=tokens.refresh_token, scope=" ".join(tokens.scopes))


@router.post("/auth/signup", response_model=UserOut, status_code=status.HTTP_201_CREATED,
             summary="Create an account (when sign-up is enabled)")
async def signup(body: SignupRequest, svc: Services = Depends(services)) -> UserOut:
    if not svc.settings.allow_signup:
        raise Forbidden("sign-up is disabled on this gateway; ask an administrator", code="signup_disabled")
    await svc.auth_limiter.acquire(f"signup:address:{_address()}")
    return UserOut.model_validate(await svc.accounts.create_user(body.username, body.password))


@router.post("/auth/token", response_model=TokenPair, summary="OAuth2 password flow: username + password -> tokens")
async def token(form: OAuth2PasswordRequestForm = Depends(),
                svc: Services = Depends(services)) -> TokenPair:
    # One address guessing many accounts; one address guessing one account; and many addresses guessing one
    # account, with a ceiling ten times higher, so that a stranger cannot lock the real user out cheaply.
    address, account = _address(), form.username.lower()[:64]
    await svc.auth_limiter.acquire(f"login:address:{address}")
    await svc.auth_limiter.acquire(f"login:account:{account}:address:{address}")
    await svc.auth_limiter.acquire(f"login:account:{account}", cost=0.1)
    return _pair(await svc.accounts.sign_in(form.username, form.password, form.scopes or None))


@router.post("/auth/refresh", response_model=TokenPair, summary="Trade a refresh token for new tokens (rotation)")
async def refresh(body: RefreshRequest, svc: Services = Depends(services)) -> TokenPair:
    return _pair(await svc.accounts.refresh(body.refresh_token))


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
             summary="Revoke this access token and, if given, the refresh token")
async def logout(body: RefreshRequest | None = Body(default=None), who: Principal = Depends(principal),
                 svc: Services = Depends(services)) -> Response:
    await svc.accounts.logout(who, body.refresh_token if body else None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=UserOut, summary="The account behind the credentials")
async def me(who: Principal = Depends(principal), svc: Services = Depends(services)) -> UserOut:
    return UserOut.model_validate(await svc.accounts.user(who.subject))


@router.delete("/auth/me", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete your account: voice profiles, sessions and history, API keys, tokens")
async def delete_me(who: Principal = Depends(principal), svc: Services = Depends(services)) -> Response:
    if who.via == "api_key":
        raise Forbidden("an API key cannot delete its account; use a user token", code="insufficient_scope")
    await erase_account(who.subject, accounts=svc.accounts, sessions=svc.sessions, profiles=svc.profiles,
                        audit=svc.audit)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", response_model=list[AuditEntryOut],
            summary="Your voice profiles' audit trail: enrolments with consent, uses, comparisons, deletions")
async def audit_trail(who: Principal = Depends(principal), svc: Services = Depends(services)) -> list[AuditEntryOut]:
    return [AuditEntryOut.model_validate(e) for e in await svc.audit.entries(who.subject)]


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED,
             summary="Create an API key for server-to-server calls (the key is shown once)")
async def create_api_key(body: ApiKeyCreate, who: Principal = Depends(principal),
                         svc: Services = Depends(services)) -> ApiKeyCreated:
    if who.via == "api_key":
        raise Forbidden("an API key cannot create API keys; use a user token", code="insufficient_scope")
    key, record = await svc.accounts.create_api_key(await svc.accounts.user(who.subject), body.name, body.scopes)
    return ApiKeyCreated(key=key, **ApiKeyOut.model_validate(record).model_dump())


@router.get("/api-keys", response_model=list[ApiKeyOut], summary="List your API keys (without secrets)")
async def list_api_keys(who: Principal = Depends(principal), svc: Services = Depends(services)) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(r) for r in await svc.accounts.api_keys(who.subject)]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete an API key")
async def delete_api_key(key_id: str, who: Principal = Depends(principal),
                         svc: Services = Depends(services)) -> Response:
    await svc.accounts.delete_api_key(who.subject, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
