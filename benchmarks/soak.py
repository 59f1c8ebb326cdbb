"""Soak: the rated load, held for a long time: `python -m benchmarks.soak [--minutes 30] [--users 2]` (`make soak`).

The gateway runs in a process of its own (`univoice serve`, `GatewayProcess`) on a private Triton with every served
model, warmed by one stream; Locust (benchmarks/locustfile.py: `--users` conversations, each enrolling a voice
and streaming real speech in real time, plus one REST user) runs against it for `--minutes`, while the gateway's
RSS is sampled every 5 s. Afterwards every session's history is read back from the store and compared with the
utterances its client saw answered (`audio_end`).

Figures: errors (Locust failures, user exceptions, `error` and `warning` events), dropped audio frames, answered
utterances missing from the history, RSS growth (median of the last fifth of the samples against the first fifth
after the first minute's warm-up, %) and slope (MB/min, least squares), and the p95 of end of speech -> first
audio per window with its drift (last window against the first). Targets: no lost answered utterance, no error,
RSS growth < 5 %. The rated load is the most users `make bench` held in real time on 2 cores (2).

Writes benchmarks/results/<date>/soak.{json,png}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile
from rich.console import Console

from benchmarks.load import run_locust
from gateway.embedded import GatewayProcess, private_triton
from gateway.sessions import HISTORY
from gateway.settings import get_settings
from gateway.stores.sqlite import SqliteRecordStore
from gateway.stream_client import StreamClient, open_session, sign_in
from univoice_core.audio import MODEL_RATE

RESULTS = Path(__file__).resolve().parent / "results"
RATED_USERS = 2
RSS_GROWTH_TARGET_PCT = 5.0
WARM_UP_S = 60.0  # Whisper, the guard's models and the first enrolments settle the gateway's memory
console = Console()


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval_s: float = 5.0):
        super().__init__(daemon=True)
        self.process, self.interval_s = psutil.Process(pid), interval_s
        self.started, self.samples = time.monotonic(), []
        self._done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self.started, self.process.memory_info().rss / 2**20))
            if self._done.wait(self.interval_s):
                return

    def stop(self) -> list[tuple[float, float]]:
        self._done.set()
        self.join()
        return self.samples


def rss_figures(samples: list[tuple[float, float]]) -> dict:
    settled = [(t, mb) for t, mb in samples if t >= min(WARM_UP_S, samples[-1][0] / 3)]
    fifth = max(1, len(settled) // 5)
    first, last = float(np.median([mb for _, mb in settled[:fifth]])), float(np.median([mb for _, mb in settled[-fifth:]]))
    times, values = np.array([t for t, _ in settled]), np.array([mb for _, mb in settled])
    slope = float(np.polyfit(times / 60, values, 1)[0]) if len(settled) > 1 else 0.0
    return {"first_mb": first, "last_mb": last, "growth_pct": 100 * (last - first) / first,
            "slope_mb_per_min": slope, "peak_mb": float(values.max())}


def latency_windows(rows: list[dict], window_s: float) -> list[dict]:
    windows = []
    end = max((r["at_s"] for r in rows), default=0.0)
    for start in np.arange(0.0, end + 1e-9, window_s):
        values = [r["first_audio_ms"] for r in rows if start <= r["at_s"] < start + window_s]
        if values:
            windows.append({"from_s": float(start), "count": len(values), "p95_ms": float(np.percentile(values, 95))})
    return windows


async def lost_utterances(state_dir: Path, answered: dict[str, int]) -> dict[str, int]:
    """Per session: answered utterances missing from its history (read from the gateway's store)."""
    store = SqliteRecordStore(state_dir / "univoice.db")
    try:
        saved = {session: len(await store.list(HISTORY, owner=session)) for session in answered}
    finally:
        await store.close()
    return {session: count - saved[session] for session, count in answered.items() if count > saved[session]}


def warm_up(base: str) -> None:
    token = sign_in(base, "soak-warm-up", "soak benchmark secret 42")
    wav, _ = soundfile.read(sorted(get_settings().data_dir.glob("*.flac"))[0], dtype="float32")
    StreamClient(base, open_session(base, token, "en", "en"), token=token).stream(wav[: 4 * MODEL_RATE], realtime=False)


def soak(minutes: float, users: int, triton: tuple[int, int] | None = None) -> dict:
    """`triton`: the (gRPC, HTTP) ports of a running Triton with every served model; default: a private one."""
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="univoice-soak-") as tmp, contextlib.ExitStack() as stack:
        if triton is None:
            server = stack.enter_context(private_triton(settings.model_repository))
            triton = (server.grpc_port, server.http_port)
        state_dir = Path(tmp) / "state"
        gateway = GatewayProcess(state_dir, grpc_port=triton[0], http_port=triton[1],
                                 store_backend="sqlite", blob_backend="local", log_level="WARNING", log_json=False,
                                 rate_limit_per_minute=60_000, rate_limit_burst=10_000,
                                 auth_attempts_per_minute=60_000, auth_attempts_burst=10_000, uploads_per_user=100)
        gateway.start()
        try:
            warm_up(gateway.base)
            sampler = RssSampler(gateway.pid)
            sampler.start()
            result = run_locust(gateway.base, users=users, duration_s=60 * minutes, spawn_rate=users, drain=True)
            rss = sampler.stop()
        finally:
            gateway.stop()
        lost = asyncio.run(lost_utterances(state_dir, result["answered_by_session"]))
    windows = latency_windows(result["first_audio_rows"], window_s=60.0 if minutes >= 10 else 30.0)
    answered = sum(result["answered_by_session"].values())
    errors = (len(result["failures_since_start"]) + len(result["user_errors"]) + sum(result["error_events"].values())
              + sum(result["warning_events"].values()))
    figures = {
        "answered_utterances": answered, "lost_answered_utterances": sum(lost.values()), "errors": errors,
        "error_rate": errors / max(answered, 1), "dropped_frames": result["dropped_frames"], "rss": rss_figures(rss),
        "first_audio_ms": result["first_audio_ms"], "p95_windows": windows,
        "p95_drift_ratio": windows[-1]["p95_ms"] / windows[0]["p95_ms"] if len(windows) > 1 else None,
    }
    met = figures["lost_answered_utterances"] == 0 and errors == 0 and figures["dropped_frames"] == 0 \
        and figures["rss"]["growth_pct"] < RSS_GROWTH_TARGET_PCT
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "minutes": minutes, "users": users, **figures,
            "targets_met": met, "rss_samples": rss, "lost_by_session": lost,
            "rest_requests": {e["name"]: e["requests"] for e in result["entries"] if e["method"] != "WS"},
            "failures": result["failures_since_start"][:20], "user_errors": result["user_errors"][:20],
            "error_events": result["error_events"], "warning_events": result["warning_events"],
            "command": f"python -m benchmarks.soak --minutes {minutes:g} --users {users}"}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, latency) = plt.subplots(1, 2, figsize=(13, 4.3))
    times, values = zip(*result["rss_samples"], strict=True)
    memory.plot(np.array(times) / 60, values, "-")
    memory.set(xlabel="minutes", ylabel="MB", title=f"Gateway RSS (growth {result['rss']['growth_pct']:+.1f} %)")
    windows = result["p95_windows"]
    latency.plot([w["from_s"] / 60 for w in windows], [w["p95_ms"] / 1000 for w in windows], "o-", label="p95")
    latency.set(xlabel="minutes", ylabel="seconds", title="End of speech -> first audio, per window", ylim=(0, None))
    latency.legend()
    fig.suptitle(f"Soak: {result['users']} conversations for {result['minutes']:g} min; {result['answered_utterances']} "
                 f"answered, {result['lost_answered_utterances']} lost, {result['errors']} errors")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=RATED_USERS, help="conversations (the rated load: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    result = soak(args.minutes, args.users)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "soak.png")
    rss = result["rss"]
    console.print(f"{result['answered_utterances']} utterances answered in {args.minutes:g} min, "
                  f"{result['lost_answered_utterances']} missing from history, {result['errors']} errors, "
                  f"{result['dropped_frames']} dropped frames; RSS {rss['first_mb']:.0f} -> {rss['last_mb']:.0f} MB "
                  f"({rss['growth_pct']:+.1f} %, {rss['slope_mb_per_min']:+.2f} MB/min); first audio p95 "
                  f"{result['first_audio_ms'].get('p95', float('nan')) / 1000:.2f} s, drift "
                  f"{result['p95_drift_ratio'] or float('nan'):.2f}x")
    console.print(f"targets (no loss, no error, RSS growth < {RSS_GROWTH_TARGET_PCT:.0f} %): "
                  f"{'met' if result['targets_met'] else 'NOT met'}; saved {args.out / 'soak.json'} and soak.png")
    return result


if __name__ == "__main__":
    main()
