"""Concurrent conversations against the embedded stack, through Locust (`make bench` runs this as part (c)).

At each user count: N conversation users (`benchmarks/locustfile.py`, real LibriSpeech utterances streamed
in real time, each person speaking about half of the time) + one REST user, for `--duration` seconds after
the ramp; streams still running then are finished and counted. Locust runs in a child process because it
monkey-patches the standard library with gevent, which the gateway in this process must not get. CPU use of
this process (the gateway), the Locust process and Triton is sampled with psutil. A user count is "held in
real time" when p95 end of speech -> first audio <= 2.5 s, no frame was dropped and nothing failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
from tqdm import tqdm

from gateway.settings import Settings

HELD_P95_MS = 2500.0
PASSWORD = "load benchmark password"
STAGES = ("stt_ms", "translation_ms", "first_clause_synthesis_ms", "first_audio_after_end_ms",
          "audio_end_after_end_ms")


# --- the embedded stack ------------------------------------------------------------------------------

def stack_settings(base: Settings, grpc_port: int, http_port: int, state_dir: Path, **overrides) -> Settings:
    """The gateway for load: the given Triton, fresh SQLite + local files, rate limits out of the way."""
    return base.model_copy(update={
        "triton_grpc_port": grpc_port, "triton_http_port": http_port, "state_dir": state_dir,
        "store_backend": "sqlite", "blob_backend": "local", "sqlite_path": None, "blob_dir": None,
        "rate_limit_per_minute": 60_000, "rate_limit_burst": 10_000, "auth_attempts_per_minute": 60_000,
        "auth_attempts_burst": 10_000, "max_api_keys_per_user": 1_000, "uploads_per_user": 100, "preload_voices": True,
        "log_json": False, "log_level": "WARNING", **overrides,
    })


# --- (c) Locust ----------------------------------------------------------------------------------------

class CpuSampler(threading.Thread):
    """CPU seconds of this process (the gateway), the Locust child and every other descendant (Triton),
    sampled each second: processes that exit between samples lose at most their last second."""

    def __init__(self, locust_pid: int, interval_s: float = 1.0):
        super().__init__(daemon=True)
        self.locust_pid, self.interval_s = locust_pid, interval_s
        self.me = psutil.Process()
        self.started = time.time()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.role: dict[int, str] = {}
        self._done = threading.Event()
        self._sample()

    def run(self) -> None:
        while not self._done.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        for process in [self.me, *self.me.children(recursive=True)]:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    if process.pid not in self.role:
                        self.role[process.pid] = self._role_of(process)
                        # Born during the run: all of its CPU time counts.
                        self.first[process.pid] = 0.0 if process.create_time() >= self.started else \
                            times.user + times.system
            except psutil.Error:
                continue
            self.last[process.pid] = times.user + times.system

    def _role_of(self, process: psutil.Process) -> str:
        if process.pid == self.me.pid:
            return "gateway"
        if process.pid == self.locust_pid or self.locust_pid in {p.pid for p in process.parents()}:
            return "locust"
        return "triton"

    def stop(self) -> dict[str, float]:
        """Mean CPU use per role over the run, in % of one core (200 % = both cores of this machine)."""
        self._done.set()
        self.join()
        self._sample()
        wall = time.time() - self.started
        used = Counter()
        for pid, last in self.last.items():
            used[self.role[pid]] += last - self.first[pid]
        cpu = {f"{role}_pct": 100 * used[role] / wall for role in ("gateway", "triton", "locust")}
        cpu["total_pct"] = sum(cpu.values())
        cpu["wall_s"] = wall
        return cpu


def run_locust(base: str, users: int, duration_s: float, *, rest_users: int = 1, spawn_rate: float = 1.0,
               drain: bool = True) -> dict:
    """Locust (benchmarks/locustfile.py, library API) in a child process; its results + CPU use.

    `drain`: streams running at the end are finished and counted (else they are cut off).
    """
    with tempfile.TemporaryDirectory(prefix="univoice-locust-") as tmp:
        out = Path(tmp) / "locust.json"
        command = [sys.executable, "-m", "benchmarks.locustfile", "--host", base, "--users", str(users),
                   "--rest-users", str(rest_users), "--duration", str(duration_s), "--spawn-rate", str(spawn_rate),
                   "--drain-s", "120" if drain else "0", "--out", str(out)]
        child = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1])
        sampler = CpuSampler(child.pid)
        sampler.start()
        deadline = time.monotonic() + duration_s + (120 if drain else 0) + 120  # ramp, start-up, a hang
        with tqdm(total=int(duration_s), desc=f"{users} conversation(s)", unit="s", leave=False) as bar:
            while child.poll() is None:
                if time.monotonic() > deadline:
                    child.kill()
                    child.wait()
                    break
                time.sleep(1)
                bar.update(min(1, bar.total - bar.n))
        cpu = sampler.stop()
        if child.returncode != 0:
            raise RuntimeError(f"the Locust run for {users} user(s) failed (exit {child.returncode}); see above")
        result = json.loads(out.read_text())
    return {**result, "cpu": cpu, **judge(result)}


def judge(result: dict) -> dict:
    """Held in real time: p95 end of speech -> first audio within target, no dropped frame, no failure."""
    p95 = result["first_audio_ms"].get("p95")
    failures = len(result["failures_since_start"]) + len(result["user_errors"])
    reasons = []
    if p95 is None:
        reasons.append("no utterance was answered")
    elif p95 > HELD_P95_MS:
        reasons.append(f"p95 end of speech -> first audio {p95 / 1000:.2f} s > {HELD_P95_MS / 1000:.1f} s")
    if result["dropped_frames"]:
        reasons.append(f"{result['dropped_frames']} dropped frame(s)")
    if failures:
        reasons.append(f"{failures} failure(s)")
    return {"held": not reasons, "why_not": reasons}


def stage_profile(result: dict) -> dict:
    """Mean and p95 of each server stage, plus end-pointing + delivery (client time minus server time)."""
    rows = result["first_audio_rows"]
    out = {}
    for stage in STAGES:
        values = [r["timings_ms"][stage] for r in rows if stage in r["timings_ms"]]
        if values:
            out[stage] = {"mean": float(np.mean(values)), "p95": float(np.percentile(values, 95))}
    delivery = [r["first_audio_ms"] - r["timings_ms"]["first_audio_after_end_ms"] for r in rows
                if "first_audio_after_end_ms" in r["timings_ms"]]
    if delivery:
        out["endpointing_and_delivery_ms"] = {"mean": float(np.mean(delivery)),
                                              "p95": float(np.percentile(delivery, 95))}
    return out


def summarise_load(result: dict, duration_s: float) -> dict:
    rest = [e for e in result["entries"] if e["method"] != "WS"]
    window_min = result["window_s"] / 60
    return {**result, "duration_s": duration_s, "stages": stage_profile(result),
            "utterances_per_min": result["utterance_total_ms"]["count"] / window_min,
            "rest_requests_per_s": sum(e["requests"] for e in rest) / result["window_s"]}


def plot(loads: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [r["users"] for r in loads]
    fig, (lat, thr, cpu) = plt.subplots(1, 3, figsize=(15, 4.3))
    for key, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        lat.plot(users, [r["first_audio_ms"].get(key, np.nan) / 1000 for r in loads], style, label=key)
    lat.plot(users, [r["utterance_total_ms"].get("p95", np.nan) / 1000 for r in loads], "s:", color="grey",
             label="p95 server: VAD end -> last audio")
    lat.axhline(HELD_P95_MS / 1000, color="red", linestyle="--", label="real-time limit (p95)")
    lat.set(xlabel="conversation users", ylabel="seconds", title="End of speech -> first translated audio",
            ylim=(0, None))
    lat.legend(fontsize=8)
    thr.plot(users, [r["utterances_per_min"] for r in loads], "o-", label="utterances answered / min")
    thr.plot(users, [r["rest_requests_per_s"] * 60 for r in loads], "s--", label="REST requests / min")
    thr.set(xlabel="conversation users", ylabel="per minute", title="Throughput", ylim=(0, None))
    thr.legend(fontsize=8)
    bottom = np.zeros(len(loads))
    for role in ("gateway", "triton", "locust"):
        values = np.array([r["cpu"][f"{role}_pct"] for r in loads])
        cpu.bar([str(u) for u in users], values, bottom=bottom, label=role)
        bottom += values
    cpu.axhline(100 * os.cpu_count(), color="red", linestyle="--", label=f"{os.cpu_count()} cores")
    cpu.set(xlabel="conversation users", ylabel="% of one core", title="CPU use (mean over the run)")
    cpu.legend(fontsize=8)
    for axis in (lat, thr):
        axis.set_xticks(users)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

