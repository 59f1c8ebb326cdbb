"""Cheap attacks on the gateway, and what each costs it: `python -m benchmarks.abuse` (issue 12).

The gateway runs in a child process (`univoice serve`) on a private Triton with the
speaker-embedding models, warmed by one stream; this process attacks it. While an attack runs, the child's RSS is sampled every 50 ms
and `/healthz` is timed every 100 ms by a separate client. One row per attack: `attack`, `rss_increase_mb` (peak
RSS minus RSS before), `healthz_p99_ms`, and what the gateway answered. Targets: no attack raises RSS by more
than 100 MB or `/healthz` p99 above 100 ms.

    python -m benchmarks.abuse [--out DIR]

Writes benchmarks/results/<date>/abuse.{json,png}. About 2 minutes (the Triton start included).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile
import websocket
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from gateway.embedded import GatewayProcess, private_triton
from gateway.settings import get_settings
from univoice_core import served

RESULTS = Path(__file__).resolve().parent / "results"
RSS_TARGET_MB, HEALTHZ_TARGET_MS = 100.0, 100.0
PASSWORD = "abuse benchmark password 7"
console = Console()


# --- the gateway under attack ----------------------------------------------------------------------

class Probe(threading.Thread):
    """RSS of the gateway every 50 ms and the latency of /healthz every 100 ms, until stopped."""

    def __init__(self, pid: int, base: str):
        super().__init__(daemon=True)
        self.process, self.base = psutil.Process(pid), base
        self.rss: list[float] = []
        self.healthz_ms: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            next_health = 0.0
            while not self._done.is_set():
                self.rss.append(self.process.memory_info().rss / 2**20)
                if time.monotonic() >= next_health:
                    started = time.perf_counter()
                    client.get("/healthz")
                    self.healthz_ms.append(1000 * (time.perf_counter() - started))
                    next_health = time.monotonic() + 0.1
                time.sleep(0.05)

    def stop(self) -> dict:
        self._done.set()
        self.join()
        return {"rss_peak_mb": max(self.rss), "healthz_p99_ms": float(np.percentile(self.healthz_ms, 99)),
                "healthz_max_ms": max(self.healthz_ms), "healthz_samples": len(self.healthz_ms)}


def account(base: str, name: str) -> dict:
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post("/v1/auth/signup", json={"username": name, "password": PASSWORD}).raise_for_status()
        tokens = client.post("/v1/auth/token", data={"username": name, "password": PASSWORD})
        tokens.raise_for_status()
        return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


# --- the attacks -----------------------------------------------------------------------------------

def _flac(rate: int, channels: int, seconds: float) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((int(rate * seconds), channels), np.int16), rate, format="FLAC",
                    subtype="PCM_16")
    return buffer.getvalue()


def flac_bomb(base: str, headers: dict) -> dict:
    """The issue's bomb: ~460 KB of FLAC, 192 kHz, 8 channels, 290 s of silence, to enrol."""
    bomb = _flac(192_000, 8, 290.0)
    response = httpx.post(f"{base}/v1/profiles", headers=headers, files={"file": ("bomb.flac", bomb)},
                          data={"name": "bomb", "consent": "true"}, timeout=120)
    return {"status": response.status_code, "code": response.json().get("code"), "upload_kb": len(bomb) // 1024}


def _huge_body(base: str, path: str, content_type: str, total_mb: int, headers: dict | None = None) -> int:
    """Stream `total_mb` MB at the gateway (no Content-Length, so only counting can stop it); the status."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Type: {content_type}",
                "Transfer-Encoding: chunked", *[f"{k}: {v}" for k, v in (headers or {}).items()], "", ""]
        sock.sendall("\r\n".join(head).encode())
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
        try:
            for _ in range(total_mb):
                sock.sendall(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the gateway answered and closed while we were still sending: what it should do
            pass
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1]) if status_line else 0


def json_bodies(base: str, _headers: dict) -> dict:
    """Four 200 MB JSON bodies to sign-up at once, no credentials needed."""
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: _huge_body(base, "/v1/auth/signup", "application/json", 200), range(4)))
    return {"statuses": dict(Counter(statuses))}


def multipart_without_token(base: str, _headers: dict) -> dict:
    """200 MB of multipart to enrol, with no token."""
    return {"status": _huge_body(base, "/v1/profiles", "multipart/form-data; boundary=x", 200)}


def password_guessing(base: str, _headers: dict, seconds: float = 20.0) -> dict:
    """One client guessing one known account's password as fast as it can."""
    statuses: Counter = Counter()
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < deadline:
            statuses[client.post("/v1/auth/token", data={"username": "victim", "password": "guess"}).status_code] += 1
    return {"guesses_checked_per_min": 60 * statuses[401] / seconds, "statuses": dict(statuses)}


def parallel_enrolments(base: str, headers: dict) -> dict:
    """One account enrols 20 recordings at once while another lists its sessions."""
    recording = sorted(get_settings().data_dir.glob("*.flac"))[0].read_bytes()
    other = account(base, "bystander")  # (before password_guessing spends this address's login budget)

    def enrol(index: int) -> int:
        return httpx.post(f"{base}/v1/profiles", headers=headers, files={"file": (f"{index}.flac", recording)},
                          data={"name": f"r{index}", "consent": "true"}, timeout=300).status_code

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(enrol, i) for i in range(20)]
        waits = []
        with httpx.Client(base_url=base, headers=other, timeout=60) as client:
            while not all(f.done() for f in futures):
                started = time.perf_counter()
                client.get("/v1/sessions")
                waits.append(1000 * (time.perf_counter() - started))
                time.sleep(0.2)
        statuses = Counter(f.result() for f in futures)
    return {"statuses": dict(statuses), "other_user_list_sessions_p99_ms": float(np.percentile(waits, 99))}


def idle_sockets(base: str, _headers: dict) -> dict:
    """300 WebSockets that never authenticate."""
    url = base.replace("http://", "ws://") + "/v1/sessions/s_none/stream"
    sockets, refused = [], 0
    for _ in range(300):
        try:
            ws = websocket.create_connection(url, timeout=10)
        except (OSError, websocket.WebSocketException):
            refused += 1
            continue
        ws.settimeout(0.05)
        try:
            message = ws.recv()
            refused += "too_many_connections" in message
            ws.close()
        except websocket.WebSocketTimeoutException:
            sockets.append(ws)
    held = len(sockets)
    time.sleep(6)  # past stream_config_timeout_s: the held ones are closed by the server
    still_open = 0
    for ws in sockets:
        try:
            ws.settimeout(1)
            while ws.recv():
                pass
        except websocket.WebSocketConnectionClosedException:
            pass
        except (websocket.WebSocketTimeoutException, OSError):
            still_open += 1
        ws.close()
    return {"held": held, "refused": refused, "open_after_6_s": still_open}


def streams_of_one_user(base: str, headers: dict) -> dict:
    """One account opens 100 streams."""
    url = base.replace("http://", "ws://")
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        sessions = [client.post("/v1/sessions", json={"source_language": "en", "target_language": "en"}).json()["id"]
                    for _ in range(100)]
    ready, refused, opened = 0, 0, []
    for session_id in sessions:
        ws = websocket.create_connection(f"{url}/v1/sessions/{session_id}/stream",
                                         header=[f"Authorization: {headers['Authorization']}"], timeout=30)
        ws.send(json.dumps({"type": "config"}))
        message = json.loads(ws.recv())
        ready += message["type"] == "ready"
        refused += message.get("code") == "too_many_streams"
        opened.append(ws)
    for ws in opened:
        ws.close()
    return {"ready": ready, "refused": refused}


def warm_up(base: str, headers: dict) -> None:
    """One stream before any attack: the first one loads Whisper and Silero (once per process, ~100 MB)."""
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        session_id = client.post("/v1/sessions", json={"source_language": "en", "target_language": "en"}).json()["id"]
    ws = websocket.create_connection(base.replace("http://", "ws://") + f"/v1/sessions/{session_id}/stream",
                                     header=[f"Authorization: {headers['Authorization']}"], timeout=60)
    ws.send(json.dumps({"type": "config"}))
    assert json.loads(ws.recv())["type"] == "ready"
    ws.close()


ATTACKS = {  # password guessing last: it spends this address's login budget for a minute
    "flac_bomb_192khz_8ch_290s": flac_bomb,
    "json_200mb_x4_signup": json_bodies,
    "multipart_200mb_no_token": multipart_without_token,
    "parallel_enrolments_x20": parallel_enrolments,
    "idle_websockets_x300": idle_sockets,
    "streams_of_one_user_x100": streams_of_one_user,
    "password_guessing_20s": password_guessing,
}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["attack"] for r in rows]
    fig, (rss, health) = plt.subplots(1, 2, figsize=(13, 4.5))
    rss.barh(names, [r["rss_increase_mb"] for r in rows])
    rss.axvline(RSS_TARGET_MB, color="red", linestyle="--", label=f"target {RSS_TARGET_MB:.0f} MB")
    rss.set(xlabel="MB", title="Gateway RSS increase while attacked")
    rss.legend()
    health.barh(names, [r["healthz_p99_ms"] for r in rows])
    health.axvline(HEALTHZ_TARGET_MS, color="red", linestyle="--", label=f"target {HEALTHZ_TARGET_MS:.0f} ms")
    health.set(xlabel="ms", title="/healthz p99 while attacked")
    health.set_yticklabels([])
    health.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="univoice-abuse-") as tmp, \
            private_triton(settings.model_repository, [served.SPEAKER_ENCODER, served.VOICE_EMBEDDING]) as triton:
        gateway = GatewayProcess(Path(tmp) / "state", grpc_port=triton.grpc_port, http_port=triton.http_port,
                                 store_backend="sqlite", blob_backend="local", preload_voices=False,
                                 log_level="WARNING", translation_provider="apertium")
        gateway.start()
        base = gateway.base
        try:
            attacker = account(base, "attacker")
            account(base, "victim")
            warm_up(base, attacker)
            for name, attack in tqdm(ATTACKS.items(), desc="attacks"):
                time.sleep(1)  # settle
                before = psutil.Process(gateway.pid).memory_info().rss / 2**20
                probe = Probe(gateway.pid, base)
                probe.start()
                started = time.perf_counter()
                outcome = attack(base, attacker)
                seconds = time.perf_counter() - started
                measured = probe.stop()
                rows.append({"attack": name, "rss_increase_mb": round(measured["rss_peak_mb"] - before, 1),
                             "healthz_p99_ms": round(measured["healthz_p99_ms"], 1),
                             "healthz_max_ms": round(measured["healthz_max_ms"], 1), "seconds": round(seconds, 1),
                             "outcome": outcome})
        finally:
            gateway.stop()
    held = all(r["rss_increase_mb"] <= RSS_TARGET_MB and r["healthz_p99_ms"] <= HEALTHZ_TARGET_MS for r in rows)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "rss_target_mb": RSS_TARGET_MB,
              "healthz_target_ms": HEALTHZ_TARGET_MS, "targets_met": held, "rows": rows,
              "command": "python -m benchmarks.abuse"}
    (args.out / "abuse.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out / "abuse.png")
    table = Table("attack", "RSS +MB", "/healthz p99 ms", "s", "outcome", title="abuse")
    for r in rows:
        table.add_row(r["attack"], f"{r['rss_increase_mb']:.0f}", f"{r['healthz_p99_ms']:.0f}", f"{r['seconds']:.0f}",
                      json.dumps(r["outcome"]))
    console.print(table)
    console.print(f"targets (RSS <= {RSS_TARGET_MB:.0f} MB, /healthz p99 <= {HEALTHZ_TARGET_MS:.0f} ms): "
                  f"{'met' if held else 'NOT met'}; saved {args.out / 'abuse.json'} and abuse.png")
    return result


if __name__ == "__main__":
    main()
