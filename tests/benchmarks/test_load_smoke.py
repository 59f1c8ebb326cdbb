"""Load smoke test: Locust (2 conversations streaming real speech in real time + 1 REST user) for 45 s, then
the running streams finish, against the embedded gateway on the session's Triton. Any Locust failure, user
exception, `error` event or dropped audio frame fails it."""

from __future__ import annotations

import soundfile

from benchmarks.load import run_locust, stack_settings
from gateway.embedded import gateway_in_thread
from gateway.settings import Settings
from gateway.stream_client import StreamClient, open_session, sign_in
from univoice_core.audio import MODEL_RATE


def warm_up(base: str, settings: Settings) -> None:
    """One stream before the clock starts: loads Whisper and the guard, computes the preset embeddings. Run first
    in a session, a cold gateway spends much of the 50 s on that."""
    token = sign_in(base, "warm-up", "smoke test secret 42")
    wav, _ = soundfile.read(sorted(settings.data_dir.glob("*.flac"))[0], dtype="float32")
    StreamClient(base, open_session(base, token, "en", "en"), token=token).stream(wav[: 4 * MODEL_RATE], realtime=False)


def test_two_conversations_and_rest_traffic_for_45_seconds(triton, tmp_path):
    settings = stack_settings(Settings(_env_file=None), triton.server.grpc_port, triton.server.http_port,
                              tmp_path / "state")
    with gateway_in_thread(settings) as (base, _):
        warm_up(base, settings)
        # A conversation first enrols a whole recording (voice statistics: ~0.3 s of Harvest per s of speech),
        # then streams 8-16 s in real time, and reports only when its stream ends. The streams still running at
        # 45 s are finished (drain), so a slower machine answers fewer utterances instead of none.
        result = run_locust(base, users=2, duration_s=45, spawn_rate=3, drain=True)

    assert result["failures_since_start"] == []
    assert result["user_errors"] == []
    assert result["error_events"] == {}
    assert result["dropped_frames"] == 0
    assert result["first_audio_ms"]["count"] >= 2, result["first_audio_ms"]
    rest = {e["name"] for e in result["entries"] if e["method"] != "WS" and e["requests"]}
    assert {"/v1/sessions (create)", "/v1/profiles (list)"} & rest, rest
