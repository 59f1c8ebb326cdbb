"""Redis (the record store) restarts under a live stream: the stream stays open and keeps translating; the
utterance answered while Redis was down comes with a `history_not_saved` warning, and once Redis is back the
next one is saved again. This Redis keeps an append-only file, as a production one would, so nothing that was
saved is lost."""

from __future__ import annotations

import json

import httpx

from gateway.embedded import gateway_in_thread
from tests.faults.support import RedisProcess, answer_all, events_until, ready_stream, wait_until
from tests.gateway.api.test_stream import login, new_session


def test_a_redis_restart_under_a_live_stream_loses_only_the_history_of_what_was_said_meanwhile(
        gateway_settings, tmp_path, utterances):
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    settings = gateway_settings.model_copy(update={"store_backend": "redis", "redis_url": redis.url})
    try:
        with gateway_in_thread(settings) as (base, _):
            tokens = login(base, "through-redis")
            session_id = new_session(base, tokens)
            ws = ready_stream(base, session_id, tokens)
            before = answer_all(ws, utterances[0][1][: 16_000 * 4])

            redis.kill()
            during = answer_all(ws, utterances[1][1][: 16_000 * 4])  # translated and spoken all the same
            assert any(e["type"] == "audio_end" for e in during) and not [e for e in during if e["type"] == "error"]
            assert {e["code"] for e in during if e["type"] == "warning"} == {"history_not_saved"}

            redis.start()
            ws.send(json.dumps({"type": "ping", "id": "after"}))
            assert events_until(ws, lambda e: e["type"] == "pong")[-1] == {"type": "pong", "id": "after"}
            after = answer_all(ws, utterances[2][1][: 16_000 * 4])
            assert not [e for e in after if e["type"] in ("warning", "error")], after

            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            recovery_s = wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "readiness")
            print(f"ready again {recovery_s:.1f} s after Redis answered")
            history = httpx.get(f"{base}/v1/sessions/{session_id}/history", headers=headers).json()
            spoken = [e["text"] for events in (before, after) for e in events if e["type"] == "transcript" and e["text"]]
            assert [entry["transcript"] for entry in history] == spoken
            ws.send(json.dumps({"type": "stop"}))
            assert events_until(ws, lambda e: e["type"] == "stopped")[-1]["type"] == "stopped"
    finally:
        redis.stop()
