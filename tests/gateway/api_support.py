"""Fixtures and helpers for the API tests: a gateway wired to the session's real Triton."""

from __future__ import annotations

import io
import uuid
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.embedded import gateway_in_thread
from gateway.settings import Settings

PASSWORD = "correct horse battery"


def bearer(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def api_error(response, status: int) -> str:
    """Assert the status and the error body's shape; return its code."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"code", "message", "correlation_id"}, body
    assert body["message"]
    return body["code"]


def flac(samples: np.ndarray, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def signup_and_login(api: TestClient, username: str) -> dict:
    created = api.post("/v1/auth/signup", json={"username": username, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = api.post("/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return login.json()


@contextmanager
def make_client(settings: Settings):
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def live_gateway(gateway_settings):
    with gateway_in_thread(gateway_settings) as running:
        yield running


@pytest.fixture
def gateway_settings(tmp_path, triton) -> Settings:
    return Settings(
        _env_file=None,
        state_dir=tmp_path / "state",
        store_backend="sqlite",
        blob_backend="local",
        triton_grpc_port=triton.server.grpc_port,
        triton_http_port=triton.server.http_port,
        rate_limit_per_minute=6000,
        rate_limit_burst=1000,
        auth_attempts_per_minute=6000,  # every test signs its accounts up from 127.0.0.1
        auth_attempts_burst=1000,
        log_json=False,
        preload_voices=False,
        # Tests that do not need the LLM translate with Apertium (milliseconds); test_translator_llm.py uses the LLM.
        translation_provider="apertium",
    )


@pytest.fixture
def api(gateway_settings):
    with make_client(gateway_settings) as client:
        yield client


@pytest.fixture
def admin_headers(api) -> dict:
    services = api.app.state.services
    api.portal.call(services.accounts.create_user, "root", PASSWORD, ["stream", "profiles:write", "models:admin"])
    return bearer(api.post("/v1/auth/token", data={"username": "root", "password": PASSWORD}).json())


@pytest.fixture(params=["sqlite", "redis"])
def store_settings(request, gateway_settings) -> Settings:
    """The same gateway on each persistent store backend (Redis: the real server, a unique prefix)."""
    if request.param == "sqlite":
        yield gateway_settings
        return
    prefix = f"univoice-test-{uuid.uuid4().hex[:8]}:"
    yield gateway_settings.model_copy(update={"store_backend": "redis", "redis_prefix": prefix})
    import redis

    client = redis.Redis.from_url(gateway_settings.redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def store_api(store_settings):
    with make_client(store_settings) as client:
        yield client, lambda c: c.app.state.services
