"""Load smoke test: Locust (2 conversations streaming real speech in real time + 1 REST user) for 50 s
against the embedded gateway on the session's Triton. Any Locust failure, user exception, `error` event
or dropped audio frame fails it."""

from __future__ import annotations

from benchmarks.load import run_locust, stack_settings
from gateway.local_stack import gateway_in_thread
from gateway.settings import Settings


def test_two_conversations_and_rest_traffic_for_50_seconds(triton, tmp_path):
    settings = stack_settings(Settings(_env_file=None), triton.server.grpc_port, triton.server.http_port,
                              tmp_path / "state")
    with gateway_in_thread(settings) as (base, _):
        # drain=False: streams still running at 50 s are cut off, which keeps the test short. 50 s, not 30: a
        # conversation first enrols a whole recording (voice statistics: ~0.3 s of Harvest per s of speech).
        result = run_locust(base, users=2, duration_s=50, spawn_rate=3, drain=False)

    assert result["failures_since_start"] == []
    assert result["user_errors"] == []
    assert result["error_events"] == {}
    assert result["dropped_frames"] == 0
    assert result["first_audio_ms"]["count"] >= 2, result["first_audio_ms"]
    rest = {e["name"] for e in result["entries"] if e["method"] != "WS" and e["requests"]}
    assert {"/v1/sessions (create)", "/v1/profiles (list)"} & rest, rest
