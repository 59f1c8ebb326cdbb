"""Password hashing, our own access tokens, opaque refresh tokens / API keys, and external JWKS tokens.

Nothing here touches storage or HTTP routes: callers look records up by the ids these functions
parse out and compare secrets with `secrets_match`. Every authentication failure is an
`Unauthorized` with a stable code, so clients can tell "log in again" from "refresh your token".
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import inspect
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from jwt.algorithms import RSAAlgorithm

from univoice_core.errors import Forbidden, Unauthorized, Unavailable

# --- Passwords -------------------------------------------------------------------------------------

_hasher = PasswordHasher()  # argon2id with the library's current recommended cost
MIN_PASSWORD_CHARS = 10
# The most guessed passwords (and their stems, so "password12" is caught by "password"): never accepted.
_COMMON = frozenset("""password passw0rd p@ssword qwerty qwertyuiop azerty asdfgh asdfghjkl zxcvbnm 123456 1234567
12345678 123456789 1234567890 0987654321 111111 000000 abc123 abcdef abcdefgh iloveyou letmein welcome monkey
dragon football baseball sunshine princess admin administrator login master shadow superman trustno1 changeme
secret default guest root user test univoice""".split())


def password_problem(username: str, password: str) -> str | None:
    """Why `password` is too weak for `username` (None: it is fine): short, the username, a common password
    with digits or symbols around it, or too few different characters."""
    lowered = password.lower()
    stem = lowered.strip("0123456789!@#$%^&*()_+-=.,?")
    if len(password) < MIN_PASSWORD_CHARS:
        return f"use a password of at least {MIN_PASSWORD_CHARS} characters"
    if username.lower() in lowered:
        return "the password must not contain the username"
    if lowered in _COMMON or stem in _COMMON:
        return "that password is among the most guessed ones; choose another"
    if len(set(lowered)) < 5:
        return "use more different characters (at least 5)"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def dummy_password_hash() -> str:
    """A real argon2 hash of a random secret: what an unknown username is checked against, at the same cost."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password: str, hashed: str) -> bool:
    """False for a wrong password and for a corrupt stored hash: login must fail, not crash."""
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


# --- Scopes and principals -------------------------------------------------------------------------

SCOPE_STREAM = "stream"
SCOPE_PROFILES_WRITE = "profiles:write"
SCOPE_MODELS_ADMIN = "models:admin"
ALL_SCOPES = (SCOPE_STREAM, SCOPE_PROFILES_WRITE, SCOPE_MODELS_ADMIN)
DEFAULT_USER_SCOPES = (SCOPE_STREAM, SCOPE_PROFILES_WRITE)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do, however they authenticated."""

    subject: str  # user id
    scopes: frozenset[str]
    via: str  # "access_token" | "api_key" | "jwks"
    token_id: str | None = None
    expires_at: float | None = None  # epoch seconds; None for API keys (long-lived streams end then)
    issued_at: float | None = None  # access tokens: epoch seconds
    refresh_token_id: str | None = None  # access tokens: the refresh token issued with it (logout revokes it)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(
                f"this action needs the '{scope}' scope; use a token or API key that grants it",
                code="insufficient_scope",
            )


# --- Access tokens (our own, HS256) ----------------------------------------------------------------

_MIN_HS256_KEY_BYTES = 32  # RFC 7518 §3.2: the key must be at least as long as the hash output


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_times(claims: dict[str, Any], now: float) -> None:
    """exp/nbf against an injectable clock with zero leeway (PyJWT only knows the wall clock)."""
    exp = claims.get("exp")
    if not _is_number(exp):
        raise Unauthorized("the token has no valid expiry; log in again", code="invalid_token")
    for name in ("nbf", "iat"):
        if name in claims and not _is_number(claims[name]):
            raise Unauthorized(f"the token's '{name}' claim is not a number", code="invalid_token")
    if exp <= now:
        raise Unauthorized("the token has expired; refresh it or log in again", code="token_expired")
    if claims.get("nbf", now) > now:
        raise Unauthorized("the token is not valid yet; check the issuer's clock", code="invalid_token")


def _ascii_token(token: Any) -> str:
    """JWTs are ASCII; rejecting anything else up front keeps odd input away from the decoder."""
    if not isinstance(token, str) or not token.isascii():
        raise Unauthorized("the token is malformed; send the token exactly as issued", code="invalid_token")
    return token


class TokenIssuer:
    """Issues and verifies short-lived HS256 access tokens carrying the user id and scopes."""

    def __init__(self, secret: str, issuer: str, audience: str, access_ttl_s: int,
                 clock: Callable[[], float] = time.time):
        if len(secret.encode()) < _MIN_HS256_KEY_BYTES:
            raise ValueError(
                f"the JWT signing secret must be at least {_MIN_HS256_KEY_BYTES} bytes; "
                "unset UNIVOICE_JWT_SECRET to have one generated, or configure a longer one"
            )
        self._secret, self._issuer, self._audience = secret, issuer, audience
        self.access_ttl_s, self._clock = access_ttl_s, clock

    def issue_access(self, subject: str, scopes: Iterable[str], refresh_token_id: str | None = None) -> tuple[str, int]:
        """Returns (token, expires_in seconds). `iat` keeps milliseconds: "every token issued before this moment"
        (a replayed refresh token) must not catch one issued a moment after it."""
        clock = self._clock()
        now = int(clock)
        claims = {
            "sub": subject,
            "scope": " ".join(sorted(set(scopes))),
            "iat": round(clock, 3),
            "nbf": now,
            "exp": now + self.access_ttl_s,
            "iss": self._issuer,
            "aud": self._audience,
            "jti": uuid.uuid4().hex,
            "typ": "access",
            **({"rid": refresh_token_id} if refresh_token_id else {}),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), self.access_ttl_s

    def verify_access(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                _ascii_token(token),
                self._secret,
                algorithms=["HS256"],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": ["sub", "scope", "iat", "nbf", "exp", "iss", "aud", "jti", "typ"],
                    # Times are checked against self._clock below.
                    "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise Unauthorized("the access token is invalid; log in again", code="invalid_token") from None
        if claims.get("typ") != "access" or not isinstance(claims.get("scope"), str) or not claims["sub"]:
            raise Unauthorized("this is not an access token; send the access token", code="invalid_token")
        _check_times(claims, self._clock())
        return Principal(
            subject=claims["sub"],
            scopes=frozenset(claims["scope"].split()),
            via="access_token",
            token_id=claims["jti"],
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
            refresh_token_id=claims.get("rid") if isinstance(claims.get("rid"), str) else None,
        )


# --- Refresh tokens and API keys (opaque secrets) --------------------------------------------------

_ID_BYTES = 16  # token_urlsafe(16) -> 22 characters
_SECRET_BYTES = 32  # token_urlsafe(32) -> 43 characters
_URLSAFE = "A-Za-z0-9_-"
_REFRESH_RE = re.compile(rf"([{_URLSAFE}]{{22}})\.([{_URLSAFE}]{{43}})")
# The key id is hex so that the "_" separators stay unambiguous; the secret may contain "_".
_API_KEY_RE = re.compile(rf"uvk_([0-9a-f]{{16}})_([{_URLSAFE}]{{43}})")


def new_refresh_token() -> tuple[str, str]:
    """Returns (token, token_id); store `hash_secret(secret)` under token_id, never the token."""
    token_id, secret = secrets.token_urlsafe(_ID_BYTES), secrets.token_urlsafe(_SECRET_BYTES)
    return f"{token_id}.{secret}", token_id


def new_api_key() -> tuple[str, str]:
    """Returns (key, key_id); the "uvk_" prefix makes leaked keys easy to find with secret scanners."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(_SECRET_BYTES)
    return f"uvk_{key_id}_{secret}", key_id


def parse_refresh_token(token: str) -> tuple[str, str]:
    """Returns (token_id, secret)."""
    match = _REFRESH_RE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise Unauthorized("the refresh token is malformed; log in again", code="invalid_token")
    return match.group(1), match.group(2)


def parse_api_key(key: str) -> tuple[str, str]:
    """Returns (key_id, secret)."""
    match = _API_KEY_RE.fullmatch(key) if isinstance(key, str) else None
    if match is None:
        raise Unauthorized("the API key is malformed; send the key exactly as issued (uvk_...)",
                           code="invalid_api_key")
    return match.group(1), match.group(2)


def hash_secret(secret: str) -> str:
    """SHA-256 hex: the secrets are 256 random bits, so a slow password hash would add nothing."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(secret: str, hashed: str) -> bool:
    """Constant-time comparison (bytes, so non-ASCII input cannot raise)."""
    return hmac.compare_digest(hash_secret(secret).encode(), hashed.encode())


# --- External tokens (RS256 via JWKS, e.g. Cognito) ------------------------------------------------

JwksFetch = Callable[[], "dict[str, Any] | Awaitable[dict[str, Any]]"]


def _external_scopes(claims: dict[str, Any]) -> frozenset[str]:
    """Union of `scope` (space separated), `scp` (list or string) and `cognito:groups` (list)."""
    scopes: set[str] = set()
    for name in ("scope", "scp", "cognito:groups"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(item for item in value if isinstance(item, str))
    return frozenset(scopes)


class JwksVerifier:
    """Verifies RS256 tokens from an external issuer against its published JWKS.

    Keys are cached for `cache_ttl_s`. A token with an unknown `kid` (key rotation) triggers one
    refetch, but such refetches happen at most once per `refetch_cooldown_s`, so random kids
    cannot turn every request into a request to the issuer.
    """

    def __init__(self, jwks_url: str, issuer: str | None, audience: str | None, *,
                 fetch: JwksFetch | None = None, cache_ttl_s: float = 600.0,
                 refetch_cooldown_s: float = 30.0, clock: Callable[[], float] = time.time):
        self._url, self._issuer, self._audience = jwks_url, issuer, audience
        self._fetch = fetch or self._http_fetch
        self._cache_ttl_s, self._cooldown_s, self._clock = cache_ttl_s, refetch_cooldown_s, clock
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._forced_at: float | None = None  # last refetch caused by an unknown kid
        self._lock = asyncio.Lock()

    async def _http_fetch(self) -> dict[str, Any]:
        # Async so that a slow issuer does not block the event loop.
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self._url)
            response.raise_for_status()
            return response.json()

    async def _refresh(self) -> None:
        try:
            result = self._fetch()
            document = await result if inspect.isawaitable(result) else result
            entries = document["keys"]
        except Exception as exc:  # network, HTTP status, JSON: all mean "keys unavailable"
            if self._keys:  # keep serving with the keys we have; try again after the TTL
                self._fetched_at = self._clock()
                return
            raise Unavailable(f"could not fetch signing keys from {self._url} "
                              f"({type(exc).__name__}: {exc}); check UNIVOICE_JWKS_URL") from None
        keys = {}
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = RSAAlgorithm.from_jwk(entry)
            except (KeyError, TypeError, jwt.PyJWTError):
                continue  # one bad entry must not hide the others
        self._keys, self._fetched_at = keys, self._clock()

    async def _key(self, kid: str) -> Any:
        async with self._lock:  # one fetch at a time; waiters then see the fresh cache
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self._cache_ttl_s:
                await self._refresh()
            elif kid not in self._keys and (self._forced_at is None
                                            or now - self._forced_at >= self._cooldown_s):
                self._forced_at = now
                await self._refresh()
        if kid not in self._keys:
            raise Unauthorized(f"the token was signed with an unknown key (kid {kid!r})",
                               code="unknown_signing_key")
        return self._keys[kid]

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(_ascii_token(token))
        except jwt.PyJWTError:
            raise Unauthorized("the token is malformed; log in again", code="invalid_token") from None
        kid = header.get("kid")
        if header.get("alg") != "RS256" or not isinstance(kid, str):
            raise Unauthorized("only RS256 tokens with a key id are accepted", code="invalid_token")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                options={
                    "require": ["sub", "exp"],
                    "verify_iss": self._issuer is not None,
                    # aud is checked below (Cognito access tokens carry client_id instead).
                    "verify_aud": False,
                    "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise Unauthorized("the token is invalid; log in again", code="invalid_token") from None
        if not claims["sub"]:
            raise Unauthorized("the token has an empty subject", code="invalid_token")
        if self._audience is not None and not self._audience_matches(claims):
            raise Unauthorized("the token was issued for another audience", code="invalid_token")
        _check_times(claims, self._clock())
        jti = claims.get("jti")
        return Principal(
            subject=claims["sub"],
            scopes=_external_scopes(claims),
            via="jwks",
            token_id=jti if isinstance(jti, str) else None,
            expires_at=float(claims["exp"]),
        )

    def _audience_matches(self, claims: dict[str, Any]) -> bool:
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        return self._audience in audiences or claims.get("client_id") == self._audience
