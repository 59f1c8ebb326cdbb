"""Locust users for the gateway: live conversations over the streaming protocol, plus REST traffic.

    .venv/bin/locust -f benchmarks/locustfile.py --headless -u 4 -r 1 -t 60s --host http://127.0.0.1:8080

Always bound a headless run with `-t`. `RestUser` has `fixed_count = 1`: of `-u N` users one does REST
calls and N-1 hold conversations. `python -m benchmarks.report` (through `benchmarks.load`) drives the same classes through Locust's
library API (`run()` below) in a process of their own.

Locust runs on gevent and importing it monkey-patches sockets, `time.sleep` and `threading` — so it is
imported first, and the streaming client is the synchronous `StreamClient` (websocket-client; its reader
thread becomes a greenlet), since asyncio clients do not work under gevent. For the same reason the gateway
must never share a process with this module.

Each conversation streams one real LibriSpeech utterance in real time, then pauses about as long as it
spoke. Custom metrics (request type "WS"), all client-measured except "utterance total":

* `end of speech -> first audio`: per utterance, last speech sample sent -> first translated audio frame;
* `utterance total`: the server's VAD end -> audio_end (its `timings_ms` ride along in `context`);
* `stream`: one whole stream; fails when refused or not closed with 1000;
* `dropped frames`: a failure per stream whose audio sequence numbers have gaps (count = response_length);
* `error event`: a failure per `error` event, grouped by its code.

Response lengths of the utterance metrics are the audio chunks (200 ms each) received.
"""

from __future__ import annotations

from locust import HttpUser, between, events, task  # isort: skip  (first: gevent patches the stdlib here)

import argparse
import io
import itertools
import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path

import gevent
import numpy as np
import soundfile

from gateway.settings import get_settings
from gateway.stream_client import StreamClient, StreamError, StreamResult

PASSWORD = "locust password 123"
TOKEN_REFRESH_S = 600  # access tokens live 15 min; log in again well before
FIRST_AUDIO = "end of speech -> first audio"
UTTERANCE_TOTAL = "utterance total"
ANSWERED = "answered utterances"
_FILES = sorted(get_settings().data_dir.glob("*.flac"))
_NEXT_FILE = itertools.cycle(range(len(_FILES)))  # shared by all users: each utterance is a different one


def _next_recording() -> Path:
    if not _FILES:
        raise RuntimeError(f"no LibriSpeech FLAC files in {get_settings().data_dir}; set UNIVOICE_DATA_DIR")
    return _FILES[next(_NEXT_FILE)]


def _short_enrolment() -> bytes:
    """Six seconds of real speech: enough for an enrolment (>= 3 s of speech), small to upload."""
    wav, rate = soundfile.read(_FILES[0], dtype="float32")
    buffer = io.BytesIO()
    soundfile.write(buffer, wav[: 6 * rate], rate, format="FLAC")
    return buffer.getvalue()


class _Account:
    """Sign-up + login through a Locust HTTP client, re-logging in before the access token expires."""

    def __init__(self, client, prefix: str):
        self.client = client
        self.username = f"{prefix}-{uuid.uuid4().hex[:12]}"
        client.post("/v1/auth/signup", json={"username": self.username, "password": PASSWORD},
                    name="/v1/auth/signup").raise_for_status()
        self.login()

    def login(self) -> None:
        response = self.client.post("/v1/auth/token", data={"username": self.username, "password": PASSWORD},
                                    name="/v1/auth/token")
        response.raise_for_status()
        self.token, self.logged_in_at = response.json()["access_token"], time.monotonic()

    def fresh_token(self) -> str:
        if time.monotonic() - self.logged_in_at > TOKEN_REFRESH_S:
            self.login()
        return self.token

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.fresh_token()}"}

    def enrol(self, filename: str, data: bytes) -> str:
        response = self.client.post("/v1/profiles", headers=self.headers, name="/v1/profiles (enrol)",
                                    files={"file": (filename, data, "audio/flac")},
                                    data={"name": filename[:60], "consent": "true"})
        response.raise_for_status()
        return response.json()["id"]

    def create_session(self, profile_id: str | None = None) -> str:
        response = self.client.post("/v1/sessions", headers=self.headers, name="/v1/sessions (create)", json={
            "source_language": "en", "target_language": "en", "voice_profile_id": profile_id})
        response.raise_for_status()
        return response.json()["id"]


def dropped_frames(sequences: list[int]) -> int:
    """Frames missing from a stream's audio sequence numbers (0, 1, 2, ... per stream)."""
    return max(sequences) + 1 - len(sequences) if sequences else 0


class ConversationUser(HttpUser):
    """One person in a call: enrols their voice once, then speaks an utterance, listens, pauses, repeats."""

    weight = 10

    def on_start(self) -> None:
        self.account = _Account(self.client, "talker")
        enrolment = _next_recording()
        profile = self.account.enrol(enrolment.name, enrolment.read_bytes())
        self.session_id = self.account.create_session(profile)
        self.pause_s = 0.0

    def wait_time(self) -> float:
        return self.pause_s

    @task
    def speak(self) -> None:
        wav, rate = soundfile.read(_next_recording(), dtype="float32")
        seconds = len(wav) / rate
        # A natural pause, about as long as the utterance: each person speaks about half of the time.
        self.pause_s = seconds * random.uniform(0.5, 1.5)
        client = StreamClient(self.host, self.session_id, token=self.account.fresh_token())
        started = time.perf_counter()
        try:
            result = client.stream(wav, rate, realtime=True)
        except StreamError as error:
            self._fire("stream", started, exception=error)
            return
        closed_cleanly = result.close_code == 1000
        self._fire("stream", started, length=len(result.sequences),
                   exception=None if closed_cleanly else StreamError({"code": "closed", "message": "stream ended"},
                                                                     result.close_code))
        self._report(result)

    def _report(self, result: StreamResult) -> None:
        fire = self.environment.events.request.fire
        for utterance in result.utterances:
            chunks = len(utterance.audio)
            if utterance.first_audio_at is not None and utterance.vad_end_stream_seconds is not None:
                waited = utterance.first_audio_at - result.send_time_of(utterance.vad_end_stream_seconds)
                fire(request_type="WS", name=FIRST_AUDIO, response_time=1000 * waited, response_length=chunks,
                     exception=None, context={"timings_ms": utterance.timings_ms})
            if "audio_end_after_end_ms" in utterance.timings_ms:
                fire(request_type="WS", name=UTTERANCE_TOTAL,
                     response_time=utterance.timings_ms["audio_end_after_end_ms"], response_length=chunks,
                     exception=None, context={"timings_ms": utterance.timings_ms})
        answered = sum("audio_end_after_end_ms" in u.timings_ms for u in result.utterances)
        if answered:  # what the session's history must hold (checked by benchmarks.soak)
            fire(request_type="WS", name=ANSWERED, response_time=0, response_length=answered,
                 context={"session_id": self.session_id}, exception=None)
        for warning in result.warnings:
            fire(request_type="WS", name="warning event", response_time=0, response_length=0,
                 context={"code": warning.get("code")}, exception=None)
        dropped = dropped_frames(result.sequences)
        if dropped:
            fire(request_type="WS", name="dropped frames", response_time=0, response_length=dropped, context={},
                 exception=RuntimeError(f"{dropped} audio frame(s) dropped (sequence gaps)"))
        for error in result.errors:
            fire(request_type="WS", name="error event", response_time=0, response_length=0,
                 context={"code": error.get("code")},
                 exception=RuntimeError(f"{error.get('code')}: {error.get('message')}"))

    def _fire(self, name: str, started: float, *, length: int = 0, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(request_type="WS", name=name, context={}, exception=exception,
                                             response_time=1000 * (time.perf_counter() - started),
                                             response_length=length)


class RestUser(HttpUser):
    """The REST side of an app: logins, enrolments, session bookkeeping, profile lists."""

    weight = 1
    fixed_count = 1  # one is enough to exercise the routes; the rest of the users talk
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.account = _Account(self.client, "rest")
        self.enrolment = _short_enrolment()

    @task(1)
    def login(self) -> None:
        self.account.login()

    @task(1)
    def enrol(self) -> None:
        self.account.enrol("short.flac", self.enrolment)

    @task(4)
    def session_crud(self) -> None:
        session_id = self.account.create_session()
        headers = self.account.headers
        self.client.get(f"/v1/sessions/{session_id}", headers=headers, name="/v1/sessions/[id]")
        self.client.get("/v1/sessions", headers=headers, name="/v1/sessions (list)")
        self.client.post(f"/v1/sessions/{session_id}/close", headers=headers, name="/v1/sessions/[id]/close")

    @task(2)
    def list_profiles(self) -> None:
        self.client.get("/v1/profiles", headers=self.account.headers, name="/v1/profiles (list)")


# --- library-API run (used by benchmarks.load) ------------------------------------------------------

def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    array = np.asarray(values)
    return {"count": len(values), "mean": float(array.mean()),
            **{f"p{p}": float(np.percentile(array, p)) for p in (50, 95, 99)}, "max": float(array.max())}


def run(host: str, users: int, rest_users: int, duration_s: float, spawn_rate: float, drain_s: float) -> dict:
    """`users` conversations + `rest_users` REST users for `duration_s` after all have spawned.

    Then users stop; with `drain_s` a stream still running is finished (up to that long) and counted, so
    the slowest answers are not the ones left out. Locust's own stats restart when spawning completes
    (`reset_stats`); failures, user exceptions, error events and dropped frames are kept from the very
    start, so a smoke test sees those of the ramp too. Exact latencies are kept besides Locust's
    percentiles, which round to 100 ms above 1 s.
    """
    from locust.env import Environment

    RestUser.fixed_count = rest_users
    env = Environment(user_classes=[ConversationUser, RestUser] if rest_users else [ConversationUser],
                      events=events, host=host, reset_stats=True, stop_timeout=drain_s or None)
    first_audio: list[dict] = []
    totals: list[float] = []
    failures: list[str] = []
    user_errors: list[str] = []
    error_codes: Counter = Counter()
    warning_codes: Counter = Counter()
    answered: Counter = Counter()  # utterances whose audio ended, per session, from the very start
    dropped = 0
    measuring = {"since": None}

    def on_request(name, response_time, response_length, exception, context, request_type, **_):
        nonlocal dropped
        if exception is not None:
            failures.append(f"{request_type} {name}: {exception}")
        if name == "error event":
            error_codes[context["code"]] += 1
        elif name == "warning event":
            warning_codes[context["code"]] += 1
        elif name == ANSWERED:
            answered[context["session_id"]] += response_length
        elif name == "dropped frames":
            dropped += response_length
        elif measuring["since"] is not None and name == FIRST_AUDIO:
            first_audio.append({"first_audio_ms": response_time, "timings_ms": context["timings_ms"],
                                "at_s": time.monotonic() - measuring["since"]})
        elif measuring["since"] is not None and name == UTTERANCE_TOTAL:
            totals.append(response_time)

    def on_spawned(user_count, **_):
        measuring["since"] = time.monotonic()

    env.events.request.add_listener(on_request)
    env.events.spawning_complete.add_listener(on_spawned)
    env.events.user_error.add_listener(lambda user_instance, exception, tb, **_: user_errors.append(repr(exception)))
    runner = env.create_local_runner()
    runner.start(users + rest_users, spawn_rate=spawn_rate)
    while measuring["since"] is None:
        gevent.sleep(0.1)
    gevent.sleep(duration_s)
    runner.quit()
    window_s = time.monotonic() - measuring["since"]
    entries = [{"method": e.method, "name": e.name, "requests": e.num_requests, "failures": e.num_failures,
                "p50_ms": e.get_response_time_percentile(0.5), "p95_ms": e.get_response_time_percentile(0.95),
                "p99_ms": e.get_response_time_percentile(0.99), "mean_ms": e.avg_response_time,
                "mean_length": e.avg_content_length, "per_s": e.num_requests / window_s}
               for e in env.stats.entries.values()]
    return {
        "users": users, "rest_users": rest_users, "window_s": window_s, "entries": entries,
        "first_audio_ms": _percentiles([r["first_audio_ms"] for r in first_audio]),
        "utterance_total_ms": _percentiles(totals), "first_audio_rows": first_audio,
        "failures_since_start": failures, "user_errors": user_errors, "error_events": dict(error_codes),
        "warning_events": dict(warning_codes), "dropped_frames": dropped, "answered_by_session": dict(answered),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Locust users headless through the library API.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--users", type=int, required=True, help="conversation users")
    parser.add_argument("--rest-users", type=int, default=1)
    parser.add_argument("--duration", type=float, required=True, help="seconds measured after the ramp")
    parser.add_argument("--spawn-rate", type=float, default=1.0)
    parser.add_argument("--drain-s", type=float, default=120.0, help="at most this long to finish running streams")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    args = parser.parse_args(argv)
    result = run(args.host, args.users, args.rest_users, args.duration, args.spawn_rate, args.drain_s)
    args.out.write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
