"""The soak benchmark for 30 s (`python -m benchmarks.soak --minutes 0.5`, on the session's Triton): 2 conversations
streaming real speech in real time + 1 REST user against the gateway in a process of its own, then every session's
history is read back. Any Locust failure, user exception, `error` or `warning` event, dropped audio frame, or
answered utterance missing from its history fails it (the memory and latency figures are the benchmark's)."""

from __future__ import annotations

from benchmarks.soak import soak


def test_thirty_seconds_of_the_rated_load_lose_nothing(triton):
    result = soak(0.5, 2, triton=(triton.server.grpc_port, triton.server.http_port))

    assert result["failures"] == [] and result["user_errors"] == []
    assert result["error_events"] == {} and result["warning_events"] == {}
    assert result["dropped_frames"] == 0
    assert result["answered_utterances"] >= 2 and result["lost_answered_utterances"] == 0, result["lost_by_session"]
    assert {"/v1/sessions (create)", "/v1/profiles (list)"} & {n for n, count in result["rest_requests"].items()
                                                              if count}, result["rest_requests"]
    assert len(result["rss_samples"]) >= 5
