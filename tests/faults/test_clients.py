"""Clients that misbehave by accident: one that vanishes mid-utterance (its connection dropped without a close)
and one that reads too slowly. Neither may hold what it took, nor grow the server's memory."""

from __future__ import annotations

import json
import socket
import time

import httpx

from gateway.audio import float_to_pcm16
from gateway.embedded import gateway_in_thread
from gateway.settings import Settings
from tests.faults.support import read_answers, ready_stream, send_speech, wait_until
from tests.gateway.api.test_stream import connect, login, new_session, next_json


def active_streams(base: str) -> float:
    metrics = httpx.get(f"{base}/metrics").text
    return float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("univoice_active_sessions")))


def test_a_client_that_vanishes_mid_utterance_frees_its_stream_for_the_next(gateway_settings: Settings, utterances):
    settings = gateway_settings.model_copy(update={"streams_per_user": 1})
    with gateway_in_thread(settings) as (base, _):
        tokens = login(base, "vanisher")
        session_id = new_session(base, tokens)
        ws = ready_stream(base, session_id, tokens)
        for start in range(0, 16_000 * 2, 1600):  # two seconds of speech, then the network is gone
            ws.send_binary(float_to_pcm16(utterances[0][1][start: start + 1600]))
        ws.sock.shutdown(socket.SHUT_RDWR)
        ws.sock.close()

        def next_stream_is_ready() -> bool:
            again = connect(base, session_id, tokens)
            again.send(json.dumps({"type": "config"}))
            answer = next_json(again)
            again.close()
            assert answer["type"] == "ready" or answer.get("code") == "too_many_streams", answer
            return answer["type"] == "ready"  # until then: refused, the one stream still held

        recovery_s = wait_until(next_stream_is_ready, 30, "the vanished client's stream being released", 0.5)
        print(f"stream released {recovery_s:.1f} s after the client vanished")
        wait_until(lambda: active_streams(base) == 0, 10, "no stream left open")


def test_a_client_that_reads_too_slowly_loses_audio_not_the_stream(gateway_settings: Settings, utterances):
    settings = gateway_settings.model_copy(update={"stream_send_queue": 8})
    with gateway_in_thread(settings) as (base, _):
        tokens = login(base, "slowpoke")
        ws = ready_stream(base, new_session(base, tokens), tokens,
                          sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        send_speech(ws, utterances[0][1][: 16_000 * 8])
        time.sleep(15)  # reads nothing while the answer is spoken
        events, frames = read_answers(ws)
        dropped = sum(e["chunks"] for e in events if e["type"] == "warning" and e["code"] == "audio_dropped")
        assert dropped > 0, [e["type"] for e in events]
        assert len(frames) == sum(e["chunks"] for e in events if e["type"] == "audio_end")
        assert frames == sorted(set(frames))

        send_speech(ws, utterances[1][1][: 16_000 * 3])  # read at once: the stream goes on, and the gap shows
        _, later = read_answers(ws)
        assert later[0] == len(frames) + dropped  # the dropped chunks' sequence numbers were skipped

