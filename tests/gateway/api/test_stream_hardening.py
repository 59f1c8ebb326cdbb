"""Revocation reaches open streams, and no one caller can hold the stream endpoint (issue 12): a logout, a deleted
API key or a session closed over REST ends the stream; sockets per address and streams per account are capped."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import websocket

from gateway.embedded import gateway_in_thread
from tests.gateway.api.test_stream import closed_with, connect, login, new_session, next_json

RECHECK_S = 0.3


@pytest.fixture
def strict_gateway(gateway_settings):
    with gateway_in_thread(gateway_settings.model_copy(update={
            "stream_recheck_s": RECHECK_S, "streams_per_user": 2, "stream_connections_per_address": 4})) as running:
        yield running


def ready_stream(base: str, session_id: str, header: list[str]):
    ws = websocket.create_connection(base.replace("http://", "ws://") + f"/v1/sessions/{session_id}/stream",
                                     header=header, timeout=30)
    ws.send(json.dumps({"type": "config"}))
    assert next_json(ws)["type"] == "ready"
    return ws


def ended_with(ws) -> tuple[str, int]:
    """The error the server gave, and its close code, once it ends the stream (the re-check runs every RECHECK_S;
    the socket's own 30 s timeout bounds the wait)."""
    return next_json(ws).get("code"), closed_with(ws)


def test_logging_out_ends_the_open_stream(strict_gateway):
    base, _ = strict_gateway
    tokens = login(base, "leaver")
    ws = ready_stream(base, new_session(base, tokens), [f"Authorization: Bearer {tokens['access_token']}"])
    with httpx.Client(base_url=base) as client:
        assert client.post("/v1/auth/logout", headers={"Authorization": f"Bearer {tokens['access_token']}"},
                           json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert ended_with(ws) == ("token_revoked", 4401)


def test_deleting_the_api_key_ends_the_stream_it_opened(strict_gateway):
    base, _ = strict_gateway
    tokens = login(base, "key-holder")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(base_url=base, headers=bearer) as client:
        key = client.post("/v1/api-keys", json={"name": "bridge", "scopes": ["stream"]}).json()
        ws = ready_stream(base, new_session(base, tokens), [f"X-API-Key: {key['key']}"])
        assert client.delete(f"/v1/api-keys/{key['id']}").status_code == 204
    assert ended_with(ws) == ("invalid_api_key", 4401)


def test_closing_the_session_over_rest_ends_its_stream(strict_gateway):
    base, _ = strict_gateway
    tokens = login(base, "closer")
    session_id = new_session(base, tokens)
    ws = ready_stream(base, session_id, [f"Authorization: Bearer {tokens['access_token']}"])
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['access_token']}"}) as client:
        assert client.post(f"/v1/sessions/{session_id}/close").status_code == 200
    assert ended_with(ws) == ("session_ended", 4409)


def test_an_account_holds_a_bounded_number_of_streams(strict_gateway):
    base, _ = strict_gateway
    tokens = login(base, "hoarder")
    header = [f"Authorization: Bearer {tokens['access_token']}"]
    open_streams = [ready_stream(base, new_session(base, tokens), header) for _ in range(2)]
    refused = connect(base, new_session(base, tokens), tokens)
    assert next_json(refused)["code"] == "too_many_streams" and closed_with(refused) == 4429
    open_streams.pop().close()
    for _ in range(100):  # the slot comes back once the server has noticed the close
        ws = connect(base, new_session(base, tokens), tokens)
        ws.send(json.dumps({"type": "config"}))
        if next_json(ws)["type"] == "ready":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the closed stream's slot never came back")


def test_pinging_does_not_keep_an_unconfigured_socket_open(strict_gateway):
    base, _ = strict_gateway
    ws = websocket.create_connection(base.replace("http://", "ws://") + "/v1/sessions/s_x/stream", timeout=30)
    started = time.monotonic()
    for index in range(200):  # pings every 50 ms, well past the 5 s deadline
        try:
            ws.send(json.dumps({"type": "ping", "id": index}))
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.05)
    ws.settimeout(30)
    assert closed_with(ws) == 4408 and time.monotonic() - started < 30


def test_an_address_holds_a_bounded_number_of_sockets_even_unauthenticated(strict_gateway):
    base, _ = strict_gateway
    url = base.replace("http://", "ws://") + "/v1/sessions/s_x/stream"
    idle = [websocket.create_connection(url, timeout=30) for _ in range(4)]
    refused = websocket.create_connection(url, timeout=30)
    assert next_json(refused)["code"] == "too_many_connections" and closed_with(refused) == 4429
    for ws in idle:  # and an unconfigured socket is dropped after stream_config_timeout_s
        ws.settimeout(30)
    assert {closed_with(ws) for ws in idle} == {4408}
