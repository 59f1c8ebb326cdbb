"""Hashing, our HS256 access tokens, opaque secrets and external RS256/JWKS tokens."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from gateway import security
from gateway.security import JwksVerifier, Principal, TokenIssuer
from univoice_core.errors import Forbidden, Unauthorized, Unavailable

SECRET = "s" * 48
ISSUER, AUDIENCE = "univoice", "univoice"


@pytest.fixture
def anyio_backend():
    return "asyncio"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def code_of(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.code


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- Passwords -------------------------------------------------------------------------------------

def test_password_round_trip_and_failures():
    hashed = security.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert security.verify_password("correct horse", hashed)
    assert not security.verify_password("wrong horse", hashed)
    assert not security.verify_password("correct horse", "not-a-hash")
    assert not security.verify_password("correct horse", "")


# --- Access tokens ---------------------------------------------------------------------------------

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer(clock) -> TokenIssuer:
    return TokenIssuer(SECRET, ISSUER, AUDIENCE, access_ttl_s=900, clock=clock)


def test_access_token_round_trip(issuer):
    token, expires_in = issuer.issue_access("user-1", security.DEFAULT_USER_SCOPES)
    assert expires_in == 900
    principal = issuer.verify_access(token)
    assert principal.subject == "user-1"
    assert principal.scopes == {"stream", "profiles:write"}
    assert principal.via == "access_token"
    assert principal.token_id


def test_expired_token(issuer, clock):
    token, _ = issuer.issue_access("user-1", ["stream"])
    clock.now += 899
    issuer.verify_access(token)
    clock.now += 1  # exp == now: expired, zero leeway
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(token)
    assert code_of(excinfo) == "token_expired"


def test_token_not_yet_valid(issuer, clock):
    token, _ = issuer.issue_access("user-1", ["stream"])
    clock.now -= 5
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(token)
    assert code_of(excinfo) == "invalid_token"


def test_tampered_payload(issuer):
    token, _ = issuer.issue_access("user-1", ["stream"])
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    flipped = "A" if payload[middle] != "A" else "B"
    tampered = ".".join([header, payload[:middle] + flipped + payload[middle + 1:], signature])
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(tampered)
    assert code_of(excinfo) == "invalid_token"


def test_escalated_scope_with_original_signature(issuer):
    token, _ = issuer.issue_access("user-1", ["stream"])
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["scope"] = "stream models:admin"
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(".".join([header, b64(claims), signature]))
    assert code_of(excinfo) == "invalid_token"


def test_other_secret(issuer, clock):
    other = TokenIssuer("o" * 48, ISSUER, AUDIENCE, access_ttl_s=900, clock=clock)
    token, _ = other.issue_access("user-1", ["stream"])
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(token)
    assert code_of(excinfo) == "invalid_token"


def test_alg_none(issuer, clock):
    claims = jwt.decode(issuer.issue_access("user-1", ["models:admin"])[0], options={"verify_signature": False})
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(token)
    assert code_of(excinfo) == "invalid_token"


@pytest.mark.parametrize("field,value", [("aud", "someone-else"), ("iss", "someone-else"),
                                         ("typ", "refresh")])
def test_wrong_claims(issuer, clock, field, value):
    claims = jwt.decode(issuer.issue_access("user-1", ["stream"])[0], options={"verify_signature": False})
    claims[field] = value
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert code_of(excinfo) == "invalid_token"


def test_missing_claim(issuer):
    claims = jwt.decode(issuer.issue_access("user-1", ["stream"])[0], options={"verify_signature": False})
    del claims["jti"]
    with pytest.raises(Unauthorized) as excinfo:
        issuer.verify_access(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert code_of(excinfo) == "invalid_token"


def test_short_secret_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenIssuer("short", ISSUER, AUDIENCE, access_ttl_s=900)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_verify_access_only_raises_unauthorized(text):
    verifier = TokenIssuer(SECRET, ISSUER, AUDIENCE, access_ttl_s=900)
    with pytest.raises(Unauthorized):
        verifier.verify_access(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ABCDEFabcdef0123456789-_=.{}\"", max_size=40), min_size=3, max_size=3))
def test_verify_access_jwt_shaped_garbage(parts):
    verifier = TokenIssuer(SECRET, ISSUER, AUDIENCE, access_ttl_s=900)
    with pytest.raises(Unauthorized):
        verifier.verify_access(".".join(parts))


# --- Refresh tokens, API keys ----------------------------------------------------------------------

def test_refresh_token_round_trip():
    token, token_id = security.new_refresh_token()
    parsed_id, secret = security.parse_refresh_token(token)
    assert parsed_id == token_id
    assert token == f"{token_id}.{secret}"
    hashed = security.hash_secret(secret)
    assert security.secrets_match(secret, hashed)
    assert not security.secrets_match(secret + "x", hashed)
    assert not security.secrets_match(secret, "é")


def test_api_key_round_trip():
    for _ in range(50):  # secrets may contain "_", which must not confuse the parser
        key, key_id = security.new_api_key()
        assert key.startswith(f"uvk_{key_id}_")
        parsed_id, secret = security.parse_api_key(key)
        assert parsed_id == key_id
        assert key == f"uvk_{key_id}_{secret}"


def test_malformed_refresh_tokens():
    token, _ = security.new_refresh_token()
    for bad in ["", ".", token.replace(".", ""), token + "\n", token + ".x", "a.b", token.replace(".", "_")]:
        with pytest.raises(Unauthorized) as excinfo:
            security.parse_refresh_token(bad)
        assert code_of(excinfo) == "invalid_token"


def test_malformed_api_keys():
    key, _ = security.new_api_key()
    for bad in ["", "uvk_", "uvk__", key[4:], "xyz" + key[3:], key + "\n", key[:-1], key.upper()]:
        with pytest.raises(Unauthorized) as excinfo:
            security.parse_api_key(bad)
        assert code_of(excinfo) == "invalid_api_key"


@given(st.text())
def test_parsers_only_raise_unauthorized(text):
    for parse in (security.parse_api_key, security.parse_refresh_token):
        try:
            parse(text)
        except Unauthorized:
            pass


# --- Principal -------------------------------------------------------------------------------------

def test_principal_require():
    principal = Principal("user-1", frozenset(security.DEFAULT_USER_SCOPES), "access_token", None)
    principal.require(security.SCOPE_STREAM)
    with pytest.raises(Forbidden) as excinfo:
        principal.require(security.SCOPE_MODELS_ADMIN)
    assert code_of(excinfo) == "insufficient_scope"
    assert "models:admin" in excinfo.value.message


# --- JWKS ------------------------------------------------------------------------------------------

JWKS_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test"
CLIENT_ID = "client-123"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key():
    return rsa_key()


def jwk(private_key, kid: str) -> dict:
    entry = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**entry, "kid": kid, "use": "sig", "alg": "RS256"}


class CountingFetch:
    """An injected JWKS endpoint: counts calls; its key set can change (rotation)."""

    def __init__(self, keys: list[dict]):
        self.keys, self.calls = keys, 0

    async def __call__(self) -> dict:
        self.calls += 1
        return {"keys": self.keys}


def external_token(private_key, kid: str, now: float, **overrides) -> str:
    claims = {"sub": "ext-user", "iss": JWKS_ISSUER, "client_id": CLIENT_ID, "token_use": "access",
              "scope": "stream", "cognito:groups": ["profiles:write"], "jti": "j-1",
              "iat": int(now), "exp": int(now) + 3600, **overrides}
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def fetch(signing_key) -> CountingFetch:
    return CountingFetch([jwk(signing_key, "k1")])


@pytest.fixture
def verifier(fetch, clock) -> JwksVerifier:
    return JwksVerifier("https://example.invalid/jwks.json", JWKS_ISSUER, CLIENT_ID, fetch=fetch, clock=clock)


@pytest.mark.anyio
async def test_jwks_round_trip_and_cache(verifier, fetch, signing_key, clock):
    token = external_token(signing_key, "k1", clock.now)
    principal = await verifier.verify(token)
    expires_at = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    assert principal == Principal("ext-user", frozenset({"stream", "profiles:write"}), "jwks", "j-1", expires_at)
    await verifier.verify(external_token(signing_key, "k1", clock.now))
    assert fetch.calls == 1
    clock.now += 601  # cache TTL over
    await verifier.verify(external_token(signing_key, "k1", clock.now))
    assert fetch.calls == 2


@pytest.mark.anyio
async def test_jwks_audience_from_aud_claim(verifier, signing_key, clock):
    token = external_token(signing_key, "k1", clock.now, client_id=None, aud=CLIENT_ID)
    assert (await verifier.verify(token)).subject == "ext-user"
    token = external_token(signing_key, "k1", clock.now, client_id="other-client")
    with pytest.raises(Unauthorized) as excinfo:
        await verifier.verify(token)
    assert code_of(excinfo) == "invalid_token"


@pytest.mark.anyio
async def test_jwks_sync_fetch(signing_key, clock):
    verifier = JwksVerifier("u", JWKS_ISSUER, None, fetch=lambda: {"keys": [jwk(signing_key, "k1")]}, clock=clock)
    assert (await verifier.verify(external_token(signing_key, "k1", clock.now))).via == "jwks"


@pytest.mark.anyio
async def test_jwks_unknown_kid_refetches_once(verifier, fetch, signing_key, clock):
    await verifier.verify(external_token(signing_key, "k1", clock.now))
    assert fetch.calls == 1
    with pytest.raises(Unauthorized) as excinfo:
        await verifier.verify(external_token(signing_key, "k2", clock.now))
    assert code_of(excinfo) == "unknown_signing_key"
    assert fetch.calls == 2
    with pytest.raises(Unauthorized):  # cooldown: random kids cannot hammer the issuer
        await verifier.verify(external_token(signing_key, "k3", clock.now))
    assert fetch.calls == 2


@pytest.mark.anyio
async def test_jwks_key_rotation(verifier, fetch, signing_key, clock):
    await verifier.verify(external_token(signing_key, "k1", clock.now))
    new_key = rsa_key()
    fetch.keys = [jwk(signing_key, "k1"), jwk(new_key, "k2")]
    assert (await verifier.verify(external_token(new_key, "k2", clock.now))).subject == "ext-user"
    assert fetch.calls == 2


@pytest.mark.anyio
async def test_jwks_rejects_hs256(verifier, fetch):
    token = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256",
                       headers={"kid": "k1"})
    with pytest.raises(Unauthorized) as excinfo:
        await verifier.verify(token)
    assert code_of(excinfo) == "invalid_token"
    assert fetch.calls == 0


@pytest.mark.anyio
async def test_jwks_wrong_key_same_kid(verifier, clock):
    with pytest.raises(Unauthorized) as excinfo:
        await verifier.verify(external_token(rsa_key(), "k1", clock.now))
    assert code_of(excinfo) == "invalid_token"


@pytest.mark.anyio
async def test_jwks_wrong_issuer(verifier, signing_key, clock):
    with pytest.raises(Unauthorized) as excinfo:
        await verifier.verify(external_token(signing_key, "k1", clock.now, iss="https://evil.example"))
    assert code_of(excinfo) == "invalid_token"


@pytest.mark.anyio
async def test_jwks_expired(verifier, signing_key, clock):
    token = external_token(signing_key, "k1", clock.now)
    clock.now += 3600
    with pytest.raises(Unauthorized) as excinfo:
        await verifier.verify(token)
    assert code_of(excinfo) == "token_expired"


@pytest.mark.anyio
async def test_jwks_garbage(verifier):
    for bad in ["", "abc", "a.b.c", "é.é.é"]:
        with pytest.raises(Unauthorized) as excinfo:
            await verifier.verify(bad)
        assert code_of(excinfo) == "invalid_token"


@pytest.mark.anyio
async def test_jwks_fetch_failure_without_keys(signing_key, clock):
    def down():
        raise OSError("connection refused")

    verifier = JwksVerifier("https://example.invalid/jwks.json", JWKS_ISSUER, None, fetch=down, clock=clock)
    with pytest.raises(Unavailable, match="connection refused"):
        await verifier.verify(external_token(signing_key, "k1", clock.now))
