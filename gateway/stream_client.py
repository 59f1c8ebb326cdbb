"""A synchronous client for the streaming protocol (docs/protocol.md).

Synchronous on purpose: the same code serves the `univoice speak` CLI, the tests, the latency
benchmark and Locust users (Locust runs on gevent, where asyncio clients do not work).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import websocket

from gateway.api.stream_protocol import parse_audio_frame
from gateway.audio import float_to_pcm16
from univoice_core.audio import MODEL_RATE


def sign_in(base_url: str, username: str, password: str) -> str:
    """An access token for `username`, signing up first unless the account exists (re-runs reuse it)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        http.post("/v1/auth/signup", json={"username": username, "password": password})
        response = http.post("/v1/auth/token", data={"username": username, "password": password})
        response.raise_for_status()
        return response.json()["access_token"]


def open_session(base_url: str, token: str, source_language: str = "en", target_language: str = "en") -> str:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.post("/v1/sessions", headers={"Authorization": f"Bearer {token}"},
                             json={"source_language": source_language, "target_language": target_language})
        response.raise_for_status()
        return response.json()["id"]


@dataclass
class UtteranceResult:
    id: str
    transcript: str = ""
    translation: str = ""
    translation_engine: str = ""
    translation_fallback: str | None = None  # the engine that stood in when the primary's output was refused
    partials: list[str] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)  # 24 kHz float32 chunks in order
    first_audio_at: float | None = None  # client monotonic time of the first audio frame
    vad_end_stream_seconds: float | None = None
    timings_ms: dict = field(default_factory=dict)
    error: dict | None = None

    @property
    def audio24k(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.float32)


@dataclass
class StreamResult:
    ready: dict
    utterances: list[UtteranceResult]
    events: list[dict]
    errors: list[dict]
    warnings: list[dict]
    sent_at: list[tuple[float, float]]  # (stream seconds sent so far, client monotonic time)
    sequences: list[int]
    close_code: int | None

    def send_time_of(self, stream_seconds: float) -> float:
        """Client time at which the audio up to `stream_seconds` had been sent."""
        for seconds, at in self.sent_at:
            if seconds >= stream_seconds:
                return at
        return self.sent_at[-1][1]


class StreamClient:
    def __init__(self, base_url: str, session_id: str, *, token: str | None = None, api_key: str | None = None,
                 timeout_s: float = 60.0):
        ws_base = base_url.replace("https://", "wss://").replace("http://", "ws://").rstrip("/")
        self.url = f"{ws_base}/v1/sessions/{session_id}/stream"
        self.token, self.api_key, self.timeout_s = token, api_key, timeout_s

    def stream(self, samples: np.ndarray, sample_rate: int = MODEL_RATE, *, realtime: bool = True, frame_ms: int = 20,
               source_language: str | None = None, target_language: str | None = None,
               voice_profile_id: str | None = None, token_in_config: bool = False,
               tail_silence_s: float = 1.0, on_progress=None) -> StreamResult:
        """Stream `samples` (float32 mono) and collect everything the server says until it has answered."""
        header = []
        if self.api_key:
            header.append(f"X-API-Key: {self.api_key}")
        elif self.token and not token_in_config:
            header.append(f"Authorization: Bearer {self.token}")
        ws = websocket.create_connection(self.url, header=header, timeout=self.timeout_s)
        config = {"type": "config", "protocol": 1, "audio": {"encoding": "pcm16", "sample_rate": sample_rate}}
        if token_in_config:
            config["token"] = self.token
        for key, value in (("source_language", source_language), ("target_language", target_language),
                           ("voice_profile_id", voice_profile_id)):
            if value:
                config[key] = value
        ws.send(json.dumps(config))
        collector = _Collector(ws)
        collector.start()
        ready = collector.wait_for("ready", self.timeout_s)
        # Trailing silence lets the server's VAD see the end of the last phrase, as in a real call.
        audio = np.concatenate([samples.astype(np.float32), np.zeros(int(tail_silence_s * sample_rate), np.float32)])
        frame = int(sample_rate * frame_ms / 1000)
        started = time.monotonic()
        sent_at = []
        for index, start in enumerate(range(0, len(audio), frame)):
            if realtime:
                delay = started + index * frame_ms / 1000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            ws.send_binary(float_to_pcm16(audio[start : start + frame]))
            sent_at.append((min(len(audio), start + frame) / sample_rate, time.monotonic()))
            if on_progress is not None:
                on_progress(sent_at[-1][0], len(audio) / sample_rate)
        ws.send(json.dumps({"type": "stop"}))
        collector.join(self.timeout_s * 4)
        with_ready = collector.result(ready)
        with_ready.sent_at = sent_at
        return with_ready


class _Collector(threading.Thread):
    """Reads every server message on a thread, stamping audio arrival times."""

    def __init__(self, ws):
        super().__init__(daemon=True)
        self.ws = ws
        self.events: list[dict] = []
        self.utterances: dict[str, UtteranceResult] = {}
        self.order: list[str] = []
        self.sequences: list[int] = []
        self.close_code: int | None = None
        self.current: str | None = None
        self._cond = threading.Condition()

    def run(self) -> None:
        try:
            while True:
                opcode, data = self.ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    break
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    sequence, audio = parse_audio_frame(data)
                    self.sequences.append(sequence)
                    if self.current:
                        utterance = self.utterances[self.current]
                        utterance.first_audio_at = utterance.first_audio_at or time.monotonic()
                        utterance.audio.append(audio)
                    continue
                self._event(json.loads(data))
        except (websocket.WebSocketConnectionClosedException, OSError):
            pass
        finally:
            with self._cond:
                self._cond.notify_all()
            try:
                self.ws.close()
            except Exception:
                pass

    def _event(self, event: dict) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()
        uid = event.get("utterance_id")
        if uid and uid not in self.utterances:
            self.utterances[uid] = UtteranceResult(uid)
            self.order.append(uid)
        utterance = self.utterances.get(uid) if uid else None
        kind = event["type"]
        if kind == "vad" and event["state"] == "end":
            utterance.vad_end_stream_seconds = event["stream_seconds"]
        elif kind == "partial_transcript":
            utterance.partials.append(event["text"])
        elif kind == "transcript":
            utterance.transcript = event["text"]
        elif kind == "translation":
            utterance.translation = event["text"]
            utterance.translation_engine = event.get("engine", "")
            utterance.translation_fallback = event.get("translation_fallback")
        elif kind == "audio_start":
            self.current = uid
        elif kind == "audio_end":
            self.current = None
        elif kind == "metrics":
            utterance.timings_ms = event["timings_ms"]
        elif kind == "error" and utterance is not None:
            utterance.error = event

    def wait_for(self, kind: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event["type"] == kind:
                        return event
                    if event["type"] == "error" and kind == "ready":
                        raise StreamError(event, self.close_code)
                if not self.is_alive() or time.monotonic() > deadline:
                    raise StreamError({"code": "no_" + kind, "message": f"no {kind} event"}, self.close_code)
                self._cond.wait(0.1)

    def result(self, ready: dict) -> StreamResult:
        return StreamResult(
            ready=ready,
            utterances=[self.utterances[u] for u in self.order],
            events=self.events,
            errors=[e for e in self.events if e["type"] == "error"],
            warnings=[e for e in self.events if e["type"] == "warning"],
            sent_at=[],
            sequences=self.sequences,
            close_code=self.close_code,
        )


class StreamError(RuntimeError):
    def __init__(self, event: dict, close_code: int | None):
        super().__init__(f"{event.get('code')}: {event.get('message')} (close {close_code})")
        self.event, self.close_code = event, close_code
