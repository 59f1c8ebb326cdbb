"""Schemathesis: property-based requests generated from our OpenAPI spec never get a 5xx.

The gateway runs for real (uvicorn on a loopback port) against the session's Triton; the fuzzer
authenticates as a user holding every scope.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.gateway.api_support import PASSWORD


@pytest.fixture
def api_schema(live_gateway):
    base, _ = live_gateway
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


@pytest.fixture
def auth_headers(live_gateway):
    base, _ = live_gateway
    with httpx.Client(base_url=base) as client:
        client.post("/v1/auth/signup", json={"username": "fuzzer", "password": PASSWORD})
        token = client.post("/v1/auth/token", data={"username": "fuzzer", "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def test_generated_requests_never_cause_server_errors(api_schema, auth_headers):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case):
            response = case.call(headers=auth_headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
            )
            content_type = " ".join(response.headers.get("content-type", []))
            if response.status_code >= 400 and content_type.startswith("application/json"):
                assert {"code", "message", "correlation_id"} <= set(response.json())

        no_server_error()
