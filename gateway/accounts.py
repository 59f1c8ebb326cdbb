"""Users, refresh tokens (rotated, revocable) and API keys, kept in the RecordStore."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from gateway import security
from gateway.records import ApiKey, RefreshToken, User, from_document, to_document
from gateway.security import Principal, TokenIssuer
from gateway.stores.base import RecordStore
from univoice_core.errors import Conflict, NotFound, Unauthorized

USERS, USERNAMES, API_KEYS, REVOKED = "users", "usernames", "api_keys", "revoked_access"
# A refresh token's record outlives its use (so a replay is recognised); a separate "live" marker is
# what rotation consumes, atomically, exactly once.
REFRESH, REFRESH_LIVE = "refresh_tokens", "refresh_live"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    scopes: tuple[str, ...]


class AccountService:
    def __init__(self, store: RecordStore, issuer: TokenIssuer, refresh_ttl_s: int):
        self.store = store
        self.issuer = issuer
        self.refresh_ttl_s = refresh_ttl_s

    # --- users ---------------------------------------------------------------------------------
    async def create_user(self, username: str, password: str, scopes=security.DEFAULT_USER_SCOPES) -> User:
        key = username.lower()
        if await self.store.get(USERNAMES, key):
            raise Conflict(f"the username {username!r} is taken; choose another", code="username_taken")
        user = User(id=f"u_{uuid.uuid4().hex}", username=username, password_hash=security.hash_password(password),
                    scopes=tuple(sorted(set(scopes))), created_at=time.time())
        await self.store.put(USERS, user.id, to_document(user))
        await self.store.put(USERNAMES, key, {"user_id": user.id})
        return user

    async def user(self, user_id: str) -> User:
        document = await self.store.get(USERS, user_id)
        if document is None:
            raise NotFound("user not found", code="user_not_found")
        return from_document(User, document)

    async def authenticate(self, username: str, password: str) -> User:
        entry = await self.store.get(USERNAMES, username.lower())
        document = await self.store.get(USERS, entry["user_id"]) if entry else None
        user = from_document(User, document) if document else None
        if user is None or not security.verify_password(password, user.password_hash):
            raise Unauthorized("wrong username or password", code="invalid_credentials")
        return user

    # --- tokens --------------------------------------------------------------------------------
    async def issue(self, user: User, scopes: list[str] | None = None) -> IssuedTokens:
        granted = tuple(sorted(set(scopes or user.scopes) & set(user.scopes)))
        access, expires_in = self.issuer.issue_access(user.id, granted)
        refresh, token_id = security.new_refresh_token()
        _, secret = security.parse_refresh_token(refresh)
        record = RefreshToken(id=token_id, user_id=user.id, secret_hash=security.hash_secret(secret), scopes=granted)
        await self.store.put(REFRESH, token_id, to_document(record), owner=user.id, ttl_s=self.refresh_ttl_s)
        await self.store.put(REFRESH_LIVE, token_id, {"user_id": user.id}, ttl_s=self.refresh_ttl_s)
        return IssuedTokens(access, expires_in, refresh, granted)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Rotate: the presented token is consumed; presenting it again revokes every session of the user."""
        token_id, secret = security.parse_refresh_token(refresh_token)
        record = await self._refresh_token(token_id)
        if record is None or not security.secrets_match(secret, record.secret_hash):
            raise Unauthorized("the refresh token is unknown, expired or revoked; log in again", code="invalid_token")
        if not await self.store.delete(REFRESH_LIVE, token_id):  # already used or revoked: a replay
            await self.revoke_all(record.user_id)
            raise Unauthorized("the refresh token was already used; every session was signed out",
                               code="refresh_token_reused")
        return await self.issue(await self.user(record.user_id), list(record.scopes))

    async def _refresh_token(self, token_id: str) -> RefreshToken | None:
        document = await self.store.get(REFRESH, token_id)
        return from_document(RefreshToken, document) if document else None

    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        if refresh_token:
            token_id, _ = security.parse_refresh_token(refresh_token)
            record = await self._refresh_token(token_id)
            if record and record.user_id == principal.subject:  # revoked, not "used": forget it entirely
                await self.store.delete(REFRESH_LIVE, token_id)
                await self.store.delete(REFRESH, token_id)
        if principal.token_id:
            await self.store.put(REVOKED, principal.token_id, {"user_id": principal.subject},
                                 ttl_s=self.issuer.access_ttl_s)

    async def revoke_all(self, user_id: str) -> None:
        for document in await self.store.list(REFRESH, owner=user_id):
            await self.store.delete(REFRESH_LIVE, document["id"])
            await self.store.delete(REFRESH, document["id"])

    async def verify_access(self, token: str) -> Principal:
        principal = self.issuer.verify_access(token)
        if principal.token_id and await self.store.get(REVOKED, principal.token_id):
            raise Unauthorized("the access token was revoked (logged out); log in again", code="token_revoked")
        return principal

    # --- API keys ------------------------------------------------------------------------------
    async def create_api_key(self, user: User, name: str, scopes: list[str]) -> tuple[str, ApiKey]:
        granted = tuple(sorted(set(scopes) & set(user.scopes)))
        if not granted:
            raise Unauthorized("none of the requested scopes is granted to this account", code="insufficient_scope")
        key, key_id = security.new_api_key()
        _, secret = security.parse_api_key(key)
        record = ApiKey(id=key_id, user_id=user.id, name=name, scopes=granted,
                        secret_hash=security.hash_secret(secret), created_at=time.time())
        await self.store.put(API_KEYS, key_id, to_document(record), owner=user.id)
        return key, record

    async def api_keys(self, user_id: str) -> list[ApiKey]:
        return [from_document(ApiKey, d) for d in await self.store.list(API_KEYS, owner=user_id)]

    async def delete_api_key(self, user_id: str, key_id: str) -> None:
        record = await self._api_key(key_id)
        if record is None or record.user_id != user_id:
            raise NotFound("no such API key", code="api_key_not_found")
        await self.store.delete(API_KEYS, key_id)

    async def verify_api_key(self, key: str) -> Principal:
        key_id, secret = security.parse_api_key(key)
        record = await self._api_key(key_id)
        if record is None or not security.secrets_match(secret, record.secret_hash):
            raise Unauthorized("the API key is unknown or was deleted", code="invalid_api_key")
        return Principal(subject=record.user_id, scopes=frozenset(record.scopes), via="api_key", token_id=key_id)

    async def _api_key(self, key_id: str) -> ApiKey | None:
        document = await self.store.get(API_KEYS, key_id)
        return from_document(ApiKey, document) if document else None
