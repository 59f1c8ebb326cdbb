"""The gateway is killed (-9) in the middle of a session and started again: the client reconnects to the same
session with the same token and goes on, and every utterance it saw answered (`audio_end`) is in the history."""

from __future__ import annotations

import json

import httpx
import pytest
import websocket

from gateway.embedded import GatewayProcess
from tests.faults.support import events_until, ready_stream, send_speech
from tests.gateway.api.test_stream import login, new_session, next_json


def answer(ws, samples) -> list[dict]:
    """Speak (one or more utterances: speech has pauses); the events up to the first one's audio end."""
    send_speech(ws, samples)
    events = events_until(ws, lambda e: e["type"] in ("audio_end", "error"))
    assert events[-1]["type"] == "audio_end", events
    return events


def answered(events: list[dict]) -> list[str]:
    """The transcripts of the utterances whose audio the client saw end."""
    ended = {e["utterance_id"] for e in events if e["type"] == "audio_end"}
    return [e["text"] for e in events if e["type"] == "transcript" and e["utterance_id"] in ended]


def test_a_killed_gateway_comes_back_and_the_client_resumes_its_session(triton, tmp_path, utterances):
    gateway = GatewayProcess(tmp_path / "state", grpc_port=triton.server.grpc_port,
                             http_port=triton.server.http_port, translation_provider="apertium",
                             preload_voices=False, auth_attempts_per_minute=6000, auth_attempts_burst=1000)
    try:
        gateway.start()
        tokens = login(gateway.base, "resumer")
        session_id = new_session(gateway.base, tokens)
        ws = ready_stream(gateway.base, session_id, tokens)
        seen = answer(ws, utterances[0][1][: 16_000 * 4])

        gateway.kill()  # no shutdown of any kind: the process is gone
        with pytest.raises((websocket.WebSocketException, OSError)):
            for _ in range(1000):  # what was already on its way may still arrive; then the connection is gone
                seen.append(next_json(ws))
                if seen[-1]["type"] == "closed":
                    raise websocket.WebSocketConnectionClosedException("closed")
        recovery_s = gateway.start()
        print(f"gateway back in {recovery_s:.1f} s")

        ws = ready_stream(gateway.base, session_id, tokens)  # the token and the session survive the crash
        seen += answer(ws, utterances[1][1][: 16_000 * 4])
        ws.send(json.dumps({"type": "stop"}))  # answers what is still being said, then stops
        seen += events_until(ws, lambda e: e["type"] == "stopped")
        assert seen[-1]["type"] == "stopped"

        history = httpx.get(f"{gateway.base}/v1/sessions/{session_id}/history",
                            headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
        saved = [entry["transcript"] for entry in history]
        assert len(answered(seen)) >= 2 and set(answered(seen)) <= set(saved), (answered(seen), saved)
    finally:
        gateway.stop()
