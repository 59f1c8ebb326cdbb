"""What the fault tests share: speech sent as a client would, events read until one of interest, and a Redis of
the test's own that can be killed (the gateway's equivalent is `gateway.embedded.GatewayProcess`)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import websocket

from gateway.audio import float_to_pcm16
from gateway.triton.launcher import free_port
from tests.gateway.api.test_stream import connect, next_json


def send_speech(ws, samples: np.ndarray) -> None:
    padded = np.concatenate([samples, np.zeros(16_000, np.float32)])  # trailing silence ends the utterance
    for start in range(0, len(padded), 1600):
        ws.send_binary(float_to_pcm16(padded[start : start + 1600]))


def events_until(ws, predicate, timeout_s: float = 120) -> list[dict]:
    events, deadline = [], time.monotonic() + timeout_s
    ws.settimeout(timeout_s)
    while time.monotonic() < deadline:
        event = next_json(ws)
        events.append(event)
        if predicate(event) or event["type"] == "closed":
            return events
    raise AssertionError(f"timed out; got {[e['type'] for e in events]}")


def ready_stream(base: str, session_id: str, tokens: dict, **options):
    """A configured stream of the session (its `ready` seen); `options` go to `websocket.create_connection`."""
    ws = connect(base, session_id, tokens, **options)
    ws.send(json.dumps({"type": "config"}))
    assert next_json(ws)["type"] == "ready"
    return ws


def read_answers(ws, timeout_s: float = 120) -> tuple[list[dict], list[int]]:
    """The events and the audio frames' sequence numbers until every utterance that started (speech has pauses)
    has its `metrics` or `error`."""
    events, frames, deadline = [], [], time.monotonic() + timeout_s
    ws.settimeout(timeout_s)
    while time.monotonic() < deadline:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            frames.append(int.from_bytes(data[:4], "big"))
            continue
        events.append(json.loads(data) if opcode == websocket.ABNF.OPCODE_TEXT else {"type": "closed"})
        started = sum(1 for e in events if e["type"] == "vad" and e["state"] == "start")
        answered = sum(e["type"] in ("metrics", "error") for e in events)
        if events[-1]["type"] == "closed" or (started and answered >= started):
            return events, frames
    raise AssertionError(f"timed out; got {[e['type'] for e in events]}")


def answer_all(ws, samples: np.ndarray, timeout_s: float = 120) -> list[dict]:
    """Speak, and read until every utterance the speech made has its `metrics` or `error`."""
    send_speech(ws, samples)
    return read_answers(ws, timeout_s)[0]


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Poll `check()` until it is true; the seconds it took (an AssertionError naming `what` past the deadline)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"{what} did not happen within {timeout_s:.0f} s"
        time.sleep(interval_s)
    return time.monotonic() - started


class RedisProcess:
    """A redis-server of the test's own that keeps what it is told (an append-only file, synced on every write),
    as a production Redis would, so that a restart loses nothing."""

    def __init__(self, data_dir: Path):
        self.port, self.data_dir = free_port(), data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        def answers() -> bool:
            try:
                return redis.Redis.from_url(self.url, socket_timeout=1).ping()
            except redis.RedisError:
                return False

        wait_until(answers, 20, f"redis-server on port {self.port} starting")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
