"""Triton dies mid-utterance: the client gets an error event, the stream survives, and the next
utterance is translated once Triton is back. Uses a private Triton so the shared one stays up."""

from __future__ import annotations

import json
import threading
import time

import httpx

from gateway.embedded import copy_repository, gateway_in_thread
from gateway.settings import get_settings
from gateway.triton.launcher import TritonServer, free_port
from tests.faults.support import events_until, ready_stream, send_speech
from tests.gateway.api.test_stream import login, new_session
from univoice_core.served import SERVED_MODELS


def test_triton_outage_fails_one_utterance_and_the_stream_recovers(gateway_settings, utterances, tmp_path):
    repository = copy_repository(get_settings().model_repository, tmp_path / "model_repository")
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    triton = TritonServer(repository=repository, **ports).start()
    triton.load(SERVED_MODELS)
    settings = gateway_settings.model_copy(update={"triton_grpc_port": ports["grpc_port"],
                                                   "triton_http_port": ports["http_port"]})
    try:
        with gateway_in_thread(settings) as (base, _):
            tokens = login(base, "outage")
            ws = ready_stream(base, new_session(base, tokens), tokens)

            send_speech(ws, utterances[0][1][: 16_000 * 3])
            events = events_until(ws, lambda e: e["type"] == "vad" and e["state"] == "end")
            triton.stop(timeout_s=0.1)  # killed while the utterance is being transcribed
            events += events_until(ws, lambda e: e["type"] in ("error", "audio_end"))
            error = events[-1]
            assert error["type"] == "error", [e["type"] for e in events]
            assert error["code"] in ("triton_unavailable", "inference_failed") and error["utterance_id"]

            # While Triton is down the stream keeps answering. Reading also answers the server's keep-alive
            # pings, as a browser would: a silent client is dropped after ~40 s. (Triton is restarted here, not
            # in the helper thread: the launcher makes Triton die with the thread that started it.)
            restarted, pongs, failures = threading.Event(), [], []

            def ping_until_restarted():
                try:
                    while not restarted.wait(timeout=1):
                        ws.send(json.dumps({"type": "ping", "id": f"during-outage-{len(pongs)}"}))
                        pongs.append(events_until(ws, lambda e: e["type"] == "pong", timeout_s=30)[-1])
                except Exception as error:  # reported below, in the test's own thread
                    failures.append(error)

            pinger = threading.Thread(target=ping_until_restarted)
            pinger.start()
            try:
                triton = TritonServer(repository=repository, **ports).start()
                triton.load(SERVED_MODELS)
            finally:
                restarted.set()
                pinger.join()
            assert not failures, failures
            assert pongs and all(p["type"] == "pong" for p in pongs)
            deadline = time.monotonic() + 30  # reconnection attempts are at most 2 s apart
            while (ready := httpx.get(f"{base}/readyz")).status_code != 200:  # the gateway reconnects to Triton
                assert time.monotonic() < deadline, f"the gateway never saw Triton again: {ready.text}"
                ws.send(json.dumps({"type": "ping", "id": "waiting"}))
                events_until(ws, lambda e: e["type"] == "pong", timeout_s=30)
                time.sleep(1)

            ws.send(json.dumps({"type": "ping", "id": "still-there"}))
            send_speech(ws, utterances[1][1][: 16_000 * 3])
            events = events_until(ws, lambda e: e["type"] == "audio_end")
            assert any(e["type"] == "translation" and e["text"] for e in events)
            assert {"type": "pong", "id": "still-there"} in events
            ws.send(json.dumps({"type": "stop"}))
            assert events_until(ws, lambda e: e["type"] == "stopped")[-1]["type"] == "stopped"
    finally:
        triton.stop()
