"""Users, refresh tokens (rotated, revocable) and API keys, kept in the RecordStore."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from gateway import security
from gateway.audit import SYSTEM, AuditLog
from gateway.cpu import PASSWORDS, run_cpu
from gateway.records import ApiKey, RefreshToken, User, from_document, to_document
from gateway.security import Principal, TokenIssuer
from gateway.stores.base import RecordStore
from univoice_core.errors import BadRequest, Conflict, NotFound, Unauthorized

USERS, USERNAMES, API_KEYS, REVOKED = "users", "usernames", "api_keys", "revoked_access"
# Per user: access tokens issued before this time are refused (a refresh token was replayed: all sessions end).
REVOKED_BEFORE = "revoked_access_before"
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
    def __init__(self, store: RecordStore, issuer: TokenIssuer, refresh_ttl_s: int, audit: AuditLog, *,
                 max_api_keys: int = 10):
        self.store = store
        self.issuer = issuer
        self.audit = audit
        self.refresh_ttl_s = refresh_ttl_s
        self.max_api_keys = max_api_keys

    # --- users ---------------------------------------------------------------------------------
    async def create_user(self, username: str, password: str, scopes=security.DEFAULT_USER_SCOPES, *,
                          actor: str | None = None) -> User:
        """`actor`: who creates it, when not the new user itself (signing up): "cli" for an administrator."""
        key = username.lower()
        if problem := security.password_problem(username, password):
            raise BadRequest(problem, code="weak_password")
        if await self.store.get(USERNAMES, key):
            raise Conflict(f"the username {username!r} is taken; choose another", code="username_taken")
        password_hash = await run_cpu(security.hash_password, password, pool=PASSWORDS)
        user = User(id=f"u_{uuid.uuid4().hex}", username=username, password_hash=password_hash,
                    scopes=tuple(sorted(set(scopes))), created_at=time.time())
        await self.store.put(USERS, user.id, to_document(user))
        await self.store.put(USERNAMES, key, {"user_id": user.id})
        await self.audit.record(user.id, "account.created", user.id, actor=actor, scopes=list(user.scopes))
        return user

    async def user(self, user_id: str) -> User:
        document = await self.store.get(USERS, user_id)
        if document is None:
            raise NotFound("user not found", code="user_not_found")
        return from_document(User, document)

    async def sign_in(self, username: str, password: str, scopes: list[str] | None = None) -> IssuedTokens:
        """Tokens for the account, or `invalid_credentials`; an unknown username costs the same argon2 check and
        the same audit write as a known one, so the answer's timing does not tell which usernames exist."""
        entry = await self.store.get(USERNAMES, username.lower())
        document = await self.store.get(USERS, entry["user_id"]) if entry else None
        user = from_document(User, document) if document else None
        stored_hash = user.password_hash if user else security.dummy_password_hash()
        matches = await run_cpu(security.verify_password, password, stored_hash, pool=PASSWORDS)
        if user is None:  # recorded too, under SYSTEM: the same store write as for a known account (timing)
            await self.audit.record(SYSTEM, "auth.sign_in_refused", "-", actor="-", result="denied",
                                    reason="unknown username")
        elif not matches:
            await self.audit.record(user.id, "auth.sign_in_refused", user.id, result="denied",
                                    reason="wrong password")
        if user is None or not matches:
            raise Unauthorized("wrong username or password", code="invalid_credentials")
        tokens = await self.issue(user, scopes)
        await self.audit.record(user.id, "auth.signed_in", user.id, scopes=list(tokens.scopes))
        return tokens

    # --- tokens --------------------------------------------------------------------------------
    async def issue(self, user: User, scopes: list[str] | None = None) -> IssuedTokens:
        if scopes and not set(scopes) <= set(user.scopes):
            raise BadRequest(f"this account may not have {', '.join(sorted(set(scopes) - set(user.scopes)))}; it has "
                             f"{' '.join(user.scopes)}", code="invalid_scope")
        granted = tuple(sorted(set(scopes or user.scopes)))
        refresh, token_id = security.new_refresh_token()
        access, expires_in = self.issuer.issue_access(user.id, granted, refresh_token_id=token_id)
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
            await self.store.put(REVOKED_BEFORE, record.user_id, {"before": time.time()},
                                 ttl_s=self.issuer.access_ttl_s)
            await self.audit.record(record.user_id, "auth.refresh_token_reused", token_id, result="denied",
                                    consequence="every session of the account signed out")
            raise Unauthorized("the refresh token was already used; every session was signed out",
                               code="refresh_token_reused")
        user = await self.user(record.user_id)  # scopes removed since the login are not handed out again
        return await self.issue(user, sorted(set(record.scopes) & set(user.scopes)))

    async def _refresh_token(self, token_id: str) -> RefreshToken | None:
        document = await self.store.get(REFRESH, token_id)
        return from_document(RefreshToken, document) if document else None

    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        """Revoke the access token, and the refresh token given (or, without one, the one issued with it)."""
        if principal.token_id and principal.via == "access_token":  # first: a bad refresh token must not keep it
            await self.store.put(REVOKED, principal.token_id, {"user_id": principal.subject},
                                 ttl_s=self.issuer.access_ttl_s)
        token_id = security.parse_refresh_token(refresh_token)[0] if refresh_token else principal.refresh_token_id
        record = await self._refresh_token(token_id) if token_id else None
        if record and record.user_id == principal.subject:  # revoked, not "used": forget it entirely
            await self.store.delete(REFRESH_LIVE, record.id)
            await self.store.delete(REFRESH, record.id)
        await self.audit.record(principal.subject, "auth.signed_out", principal.token_id or "-",
                                refresh_token_revoked=bool(record and record.user_id == principal.subject))

    async def revoke_all(self, user_id: str) -> None:
        for document in await self.store.list(REFRESH, owner=user_id):
            await self.store.delete(REFRESH_LIVE, document["id"])
            await self.store.delete(REFRESH, document["id"])

    async def verify_access(self, token: str) -> Principal:
        principal = self.issuer.verify_access(token)
        if principal.token_id and await self.store.get(REVOKED, principal.token_id):
            raise Unauthorized("the access token was revoked (logged out); log in again", code="token_revoked")
        cutoff = await self.store.get(REVOKED_BEFORE, principal.subject)
        if cutoff and principal.issued_at is not None and principal.issued_at <= cutoff["before"]:
            raise Unauthorized("every session of this account was signed out (a refresh token was reused); log in "
                               "again", code="token_revoked")
        return principal

    async def revoke_credentials(self, user_id: str) -> None:
        """Every credential of the account stops working: API keys, refresh tokens, access tokens already out."""
        for document in await self.store.list(API_KEYS, owner=user_id):
            await self.store.delete(API_KEYS, document["id"])
        await self.revoke_all(user_id)
        await self.store.put(REVOKED_BEFORE, user_id, {"before": time.time()}, ttl_s=self.issuer.access_ttl_s)

    async def delete_user(self, user_id: str) -> None:
        """The account record and its username (none to delete for an external, jwks-mode identity)."""
        document = await self.store.get(USERS, user_id)
        if document is not None:
            await self.store.delete(USERNAMES, from_document(User, document).username.lower())
            await self.store.delete(USERS, user_id)

    # --- API keys ------------------------------------------------------------------------------
    async def create_api_key(self, user: User, name: str, scopes: list[str]) -> tuple[str, ApiKey]:
        granted = tuple(sorted(set(scopes) & set(user.scopes)))
        if not granted:
            raise Unauthorized("none of the requested scopes is granted to this account", code="insufficient_scope")
        if len(await self.store.list(API_KEYS, owner=user.id)) >= self.max_api_keys:
            raise Conflict(f"this account has {self.max_api_keys} API keys, the most it may hold; delete one first",
                           code="too_many_api_keys")
        key, key_id = security.new_api_key()
        _, secret = security.parse_api_key(key)
        record = ApiKey(id=key_id, user_id=user.id, name=name, scopes=granted,
                        secret_hash=security.hash_secret(secret), created_at=time.time())
        await self.store.put(API_KEYS, key_id, to_document(record), owner=user.id)
        await self.audit.record(user.id, "api_key.created", key_id, name=name, scopes=list(granted))
        return key, record

    async def api_keys(self, user_id: str) -> list[ApiKey]:
        return [from_document(ApiKey, d) for d in await self.store.list(API_KEYS, owner=user_id)]

    async def delete_api_key(self, user_id: str, key_id: str) -> None:
        record = await self._api_key(key_id)
        if record is None or record.user_id != user_id:
            raise NotFound("no such API key", code="api_key_not_found")
        await self.store.delete(API_KEYS, key_id)
        await self.audit.record(user_id, "api_key.deleted", key_id, name=record.name)

    async def verify_api_key(self, key: str) -> Principal:
        key_id, secret = security.parse_api_key(key)
        record = await self._api_key(key_id)
        if record is None or not security.secrets_match(secret, record.secret_hash):
            raise Unauthorized("the API key is unknown or was deleted", code="invalid_api_key")
        return Principal(subject=record.user_id, scopes=frozenset(record.scopes), via="api_key", token_id=key_id)

    async def _api_key(self, key_id: str) -> ApiKey | None:
        document = await self.store.get(API_KEYS, key_id)
        return from_document(ApiKey, document) if document else None
