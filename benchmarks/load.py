"""`make bench`: every benchmark, then concurrent conversations against the embedded stack, in one report.

    python -m benchmarks.load [--users 1 2 4 8] [--duration 60] [--quick]

(a) `benchmarks.embedding_throughput` and (b) `benchmarks.latency`, each with its own Triton, one after
the other; then the embedded stack in this process (a private Triton, the gateway in a thread) and:
(c) Locust at each user count: N conversation users (`benchmarks/locustfile.py`, real LibriSpeech
    utterances streamed in real time, each person speaking about half of the time) + one REST user, for
    `--duration` seconds after the ramp; streams still running then are finished and counted. Locust runs
    in a child process because it monkey-patches the standard library with gevent, which the gateway in
    this process must not get. CPU use of this process (the gateway), the Locust process and Triton is
    sampled with psutil. A user count is "held in real time" when p95 end of speech -> first audio
    <= 2.5 s, no frame was dropped and nothing failed.
(d) serving overhead: the same phrases through the gateway + Triton (WebSocket, as fast as possible,
    partial transcripts off) vs the same model work in this process without serving (streaming VAD,
    Whisper, Kokoro's ONNX file in onnxruntime with Triton's thread settings); and enrolments (POST
    /v1/profiles vs decode + VAD + the voice_embedding front end and encoder in-process). Reported for
    the whole path, for the whole path less the live pipeline's wasted speculative transcripts, and for
    the Triton-served models alone.

Writes benchmarks/results/<date>/report.md, load.png and summary.json next to (a)'s and (b)'s files.
`--quick` (about 3 minutes): small (a) and (b), 2 users for 30 s, 2 phrases. The full run: about 20 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import psutil
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from benchmarks import embedding_throughput, latency, translation
from export.repository import ModelRepository
from export.specs import SPEAKER_ENCODER, SYNTHESIZER
from gateway import audio
from gateway.local_stack import gateway_in_thread, private_triton
from gateway.observability import REGISTRY
from gateway.pipeline.synthesis import KokoroSynthesizer
from gateway.pipeline.vad import StreamingVad
from gateway.pipeline.voices import DEFAULT_VOICE
from gateway.settings import Settings, get_settings
from gateway.stream_client import StreamClient, open_session, sign_in
from univoice_core.audio import MODEL_RATE

RESULTS = Path(__file__).resolve().parent / "results"
HELD_P95_MS = 2500.0
TARGET_USERS = 4
OVERHEAD_TARGET = 0.15
PASSWORD = "load benchmark password"
STAGES = ("stt_ms", "translation_ms", "first_clause_synthesis_ms", "first_audio_after_end_ms",
          "audio_end_after_end_ms")
console = Console()


# --- the embedded stack ------------------------------------------------------------------------------

def stack_settings(base: Settings, grpc_port: int, http_port: int, state_dir: Path, **overrides) -> Settings:
    """The gateway for load: the given Triton, fresh SQLite + local files, rate limits out of the way."""
    return base.model_copy(update={
        "triton_grpc_port": grpc_port, "triton_http_port": http_port, "state_dir": state_dir,
        "store_backend": "sqlite", "blob_backend": "local", "sqlite_path": None, "blob_dir": None,
        "rate_limit_per_minute": 60_000, "rate_limit_burst": 10_000, "preload_voices": True,
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


# --- (d) serving overhead ------------------------------------------------------------------------------

class LocalKokoro:
    """Triton's `synthesizer` without Triton: the same ONNX file and onnxruntime options, in this process."""

    def __init__(self, repository: Path):
        import onnxruntime as ort

        repo = ModelRepository(repository)
        options = ort.SessionOptions()
        options.intra_op_num_threads = SYNTHESIZER.cpu_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = repo.info("synthesizer", repo.latest("synthesizer")).path / "model.onnx"
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    async def synthesize(self, tokens: np.ndarray, style: np.ndarray, speed: float = 1.0) -> np.ndarray:
        ids = np.concatenate([[0], np.asarray(tokens, dtype=np.int64), [0]])[None, :]
        return self.session.run(["audio"], {"tokens": ids, "style": np.asarray(style, np.float32).reshape(1, 256),
                                            "speed": np.array([speed], np.float32)})[0]


class LocalEmbedding:
    """Triton's `voice_embedding` without Triton: its own numpy front end + the speaker encoder's ONNX file."""

    def __init__(self, repository: Path):
        import onnxruntime as ort

        repo = ModelRepository(repository)
        self.frontend = repo.python_module("voice_embedding")
        options = ort.SessionOptions()
        options.intra_op_num_threads = SPEAKER_ENCODER.cpu_threads
        path = repo.info("speaker_encoder", repo.latest("speaker_encoder")).path / "model.onnx"
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, samples16k: np.ndarray) -> np.ndarray:
        encoded = self.session.run(None, {"mel": self.frontend.partials(samples16k)})[0]
        return self.frontend.pool(encoded)


def utterance_ends(clip: np.ndarray, tail_s: float, settings: Settings) -> list:
    """The gateway's streaming VAD over the clip + silence, fed 20 ms at a time: its end-of-utterance events."""
    vad = StreamingVad(min_silence_ms=settings.vad_min_silence_ms, max_utterance_s=settings.stream_max_utterance_s)
    signal = np.concatenate([clip, np.zeros(int(tail_s * MODEL_RATE), np.float32)])
    return [e for i in range(0, len(signal), MODEL_RATE // 50) for e in vad.feed(signal[i : i + MODEL_RATE // 50])
            if e.kind == "end"]


def raw_phrase(clip: np.ndarray, tail_s: float, speech, synthesizer: KokoroSynthesizer, settings: Settings) -> dict:
    """The stream's model work for one phrase, unserved: streaming VAD, Whisper on each utterance it ends,
    Kokoro on each clause (passthrough translation costs nothing). Seconds per stage."""
    started = time.perf_counter()
    ends = utterance_ends(clip, tail_s, settings)
    stages = {"vad_s": time.perf_counter() - started, "stt_s": 0.0, "synthesis_s": 0.0}
    voice = speech.presets[DEFAULT_VOICE]

    async def work():
        for end in ends:
            began = time.perf_counter()
            text = await speech.transcriber.transcribe(end.audio, "en")
            transcribed = time.perf_counter()
            async for _ in synthesizer.speak(text, "en", voice):
                pass
            stages["stt_s"] += transcribed - began
            stages["synthesis_s"] += time.perf_counter() - transcribed

    asyncio.run(work())
    return stages


def raw_enrolment(data: bytes, embedder: LocalEmbedding, settings: Settings,
                  detector: audio.SpeechDetector) -> dict[str, float]:
    """POST /v1/profiles' model work, unserved: decode + checks (Silero VAD), then the embedding. Seconds."""
    started = time.perf_counter()
    report = audio.check_enrolment(audio.decode(data), settings.enrol_min_speech_s, settings.enrol_max_speech_s,
                                   detector)
    checked = time.perf_counter()
    embedder.embed(report.samples16k)
    return {"checks_s": checked - started, "embedding_s": time.perf_counter() - checked}


@contextmanager
def whisper_calls(transcriber):
    """Seconds of each Whisper call the gateway makes meanwhile: a speculative final transcript that speech
    then overtook is a call of its own (a probe on the shared instance, removed afterwards)."""
    calls: list[float] = []
    original = transcriber._transcribe

    def timed(samples, language):
        started = time.perf_counter()
        try:
            return original(samples, language)
        finally:
            calls.append(time.perf_counter() - started)

    transcriber._transcribe = timed
    try:
        yield calls
    finally:
        del transcriber._transcribe  # back to the class's method


def triton_seconds(model: str) -> float:
    """Time this process's gateways have spent waiting on Triton for `model` (their own histogram)."""
    return REGISTRY.get_sample_value("univoice_triton_request_seconds_sum", {"model": model, "outcome": "ok"}) or 0.0


def serving_overhead(triton, base_settings: Settings, state_dir: Path, phrases: int, enrolments: int) -> dict:
    """Served vs unserved time for the same phrases and enrolments, alternating which goes first: the
    whole path, and the Triton-served models alone (the gateway's wait on Triton vs onnxruntime here)."""
    tail_s = 0.6  # enough silence for the VAD's 400 ms end of utterance
    settings = stack_settings(base_settings, triton.grpc_port, triton.http_port, state_dir,
                              stream_partial_interval_s=1e9)  # partials are extra work the raw path does not do
    # One VAD utterance each: with two, the served pipeline overlaps one's STT with the other's synthesis,
    # which the sequential unserved path cannot, and the comparison would flatter serving.
    clips = [c for c in latency.phrases(4 * phrases) if len(utterance_ends(c, tail_s, settings)) == 1][:phrases]
    files = sorted(settings.data_dir.glob("*.flac"))[:enrolments]
    embedder, detector = LocalEmbedding(settings.model_repository), audio.SpeechDetector()
    rows, enrol_rows = [], []
    with gateway_in_thread(settings) as (base, app):
        speech = app.state.services.speech
        synthesizer = KokoroSynthesizer(LocalKokoro(settings.model_repository))
        token = sign_in(base, "overhead", PASSWORD)
        session = open_session(base, token)

        def served(clip):
            started, in_triton = time.perf_counter(), triton_seconds("synthesizer")
            with whisper_calls(speech.transcriber) as calls:
                result = StreamClient(base, session, token=token).stream(clip, realtime=False, tail_silence_s=tail_s)
            return time.perf_counter() - started, triton_seconds("synthesizer") - in_triton, calls, result

        served(clips[0])  # warm both paths (sessions, caches) outside the measurement
        raw_phrase(clips[0], tail_s, speech, synthesizer, settings)
        for index, clip in enumerate(tqdm(clips, desc="overhead: phrases")):
            if index % 2:
                stages = raw_phrase(clip, tail_s, speech, synthesizer, settings)
                served_s, synthesizer_s, calls, result = served(clip)
            else:
                served_s, synthesizer_s, calls, result = served(clip)
                stages = raw_phrase(clip, tail_s, speech, synthesizer, settings)
            wasted_s = sum(calls[:-1])  # one utterance: every call but the last was a guess overtaken by speech
            rows.append({"seconds": len(clip) / MODEL_RATE, "raw_s": sum(stages.values()), "raw_stages_s": stages,
                         "raw_model_s": stages["synthesis_s"], "served_s": served_s, "served_model_s": synthesizer_s,
                         "whisper_calls": len(calls), "wasted_speculation_s": wasted_s,
                         "served_less_waste_s": served_s - wasted_s,
                         "utterances": len(result.utterances), "errors": result.errors,
                         "transcripts": [u.transcript for u in result.utterances]})
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            def enrol(path):
                started, in_triton = time.perf_counter(), triton_seconds("voice_embedding")
                http.post("/v1/profiles", files={"file": (path.name, path.read_bytes(), "audio/flac")},
                          data={"name": path.stem, "consent": "true"}).raise_for_status()
                return time.perf_counter() - started, triton_seconds("voice_embedding") - in_triton

            enrol(files[0])
            raw_enrolment(files[0].read_bytes(), embedder, settings, detector)
            for path in tqdm(files, desc="overhead: enrolments"):
                served_s, embedding_s = enrol(path)
                stages = raw_enrolment(path.read_bytes(), embedder, settings, detector)
                enrol_rows.append({"file": path.name, "raw_s": sum(stages.values()), "raw_stages_s": stages,
                                   "raw_model_s": stages["embedding_s"], "served_s": served_s,
                                   "served_less_waste_s": served_s, "served_model_s": embedding_s})

    def ratio(items, raw_key, served_key):
        raw, served_total = sum(r[raw_key] for r in items), sum(r[served_key] for r in items)
        return {"raw_s": raw, "served_s": served_total, "overhead": served_total / raw - 1}

    everything = rows + enrol_rows
    result = {"phrases": rows, "enrolments": enrol_rows, "target": OVERHEAD_TARGET,
              "stream": ratio(rows, "raw_s", "served_s"), "enrolment": ratio(enrol_rows, "raw_s", "served_s"),
              "total": ratio(everything, "raw_s", "served_s"),
              "total_less_waste": ratio(everything, "raw_s", "served_less_waste_s"),
              "triton_models": ratio(everything, "raw_model_s", "served_model_s")}
    result["met"] = {key: result[key]["overhead"] <= OVERHEAD_TARGET
                     for key in ("total", "total_less_waste", "triton_models")}
    return result


# --- the report ---------------------------------------------------------------------------------------------

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


def _s(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms / 1000:.2f}"


def report(summary: dict, embedding: dict, latency_result: dict, loads: list[dict], overhead: dict,
           translation_result: dict) -> str:
    lines = [f"# UniVoice benchmarks, {summary['date']}", "",
             f"{os.cpu_count()}-core CPU machine, everything (clients included) on the same cores. "
             f"Run: `python -m benchmarks.load {' '.join(summary['argv'])}`; phases took "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in summary["phase_seconds"].items()) + ".", ""]

    s = embedding["summary"]
    lines += ["## (a) Embedding throughput (Triton `voice_embedding`)", "",
              "| batching | clients | emb/s | p50 ms | p95 ms | mean batch |", "|---|---|---|---|---|---|"]
    lines += [f"| {'on' if r['dynamic_batching'] else 'off'} | {r['concurrency']} | {r['embeddings_per_s']:.0f} | "
              f"{r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['mean_batch']:.1f} |" for r in embedding["triton"]]
    lines += ["", f"Batching gain at {s['concurrency']} clients: {s['batching_gain']:.2f}x (target 3x); "
              f"{100 * s['fraction_of_batch32_ceiling']:.0f} % of the in-process encoder batch-32 ceiling; "
              f"{100 * s['fraction_of_in_process_path']:.0f} % of the same work in-process "
              f"({embedding['window_seconds']:g} s windows).", "",
              "![embedding throughput](embedding_throughput.png)", ""]

    s = latency_result["summary"]
    lines += ["## (b) Latency, one stream (end of speech -> first translated audio)", "",
              "| pipeline | p50 s | p95 s |", "|---|---|---|",
              f"| live | {s['live_p50_s']:.2f} | {s['live_p95_s']:.2f} |",
              f"| naive | {s['naive_p50_s']:.2f} | {s['naive_p95_s']:.2f} |", "",
              f"{s['answered']}/{s['clips']} {latency_result['unit']}; speed-up at p50 {s['speedup_p50']:.2f}x "
              "(target 2x); live p50 target 1.5 s.", "", "![latency](latency.png)", ""]

    lines += ["## (b2) Translation (held-out NTREX-128)", "",
              "| engine | pair | chrF | BLEU | s/sentence |", "|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['pair']} | {r['chrf']:.1f} | {r['bleu']:.1f} | {r['s_per_sentence']:.2f} |"
              for r in translation_result["rows"]]
    lines += ["", "![translation](translation.png)", ""]

    lines += ["## (c) Concurrent conversations (Locust)", "",
              f"Each conversation user streams real LibriSpeech recordings (10-20 s; the VAD cuts them at pauses) in "
              f"real time and then pauses 0.5-1.5x as long; one more user does REST calls. Measured "
              f"{loads[0]['duration_s']:g} s after the ramp, plus the streams still running then. Held in real "
              f"time: p95 end of speech -> first audio <= {HELD_P95_MS / 1000:.1f} s, no dropped frame, no failure. "
              "Latency is client-measured, from sending the last speech sample to receiving the first audio "
              "frame; it includes the VAD's 400 ms of closing silence.", "",
              "| users | utterances | e2e p50 s | e2e p95 s | e2e p99 s | server total p95 s | utt/min | REST req/s "
              "| failures | error events | dropped frames | CPU % (gw/Triton/Locust) | held |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in loads:
        e2e, total, cpu = r["first_audio_ms"], r["utterance_total_ms"], r["cpu"]
        errors = ", ".join(f"{k} x{v}" for k, v in r["error_events"].items()) or "0"
        lines.append(
            f"| {r['users']} | {e2e['count']} | {_s(e2e.get('p50'))} | {_s(e2e.get('p95'))} | {_s(e2e.get('p99'))} | "
            f"{_s(total.get('p95'))} | {r['utterances_per_min']:.1f} | {r['rest_requests_per_s']:.2f} | "
            f"{len(r['failures_since_start']) + len(r['user_errors'])} | {errors} | {r['dropped_frames']} | "
            f"{cpu['total_pct']:.0f} ({cpu['gateway_pct']:.0f}/{cpu['triton_pct']:.0f}/{cpu['locust_pct']:.0f}) | "
            f"{'yes' if r['held'] else 'no: ' + '; '.join(r['why_not'])} |")
    held = summary["largest_held"]
    lines += ["", f"**Largest user count held in real time: {held if held is not None else 'none'}** "
              f"(target {TARGET_USERS}: {summary['target_verdict']}).", "", "![load](load.png)", "",
              "### Where the time goes (server stages, ms after the VAD's end of speech; mean / p95)", "",
              "| users | STT | translation | first clause synthesis | first audio | audio end "
              "| end-pointing + delivery |",
              "|---|---|---|---|---|---|---|"]
    for r in loads:
        p = r["stages"]

        def cell(key):
            return f"{p[key]['mean']:.0f} / {p[key]['p95']:.0f}" if key in p else "n/a"

        lines.append(f"| {r['users']} | {cell('stt_ms')} | {cell('translation_ms')} | "
                     f"{cell('first_clause_synthesis_ms')} | {cell('first_audio_after_end_ms')} | "
                     f"{cell('audio_end_after_end_ms')} | {cell('endpointing_and_delivery_ms')} |")
    lines += ["", "STT is the final transcript's wait after the end of speech (it starts speculatively 200 ms into "
              "the pause, and queues behind every other stream's partials and finals: Whisper runs one call at a "
              "time per process). End-pointing + delivery = client latency - server first audio: the VAD's "
              "closing silence, framing, and the trip back.", "",
              "### Locust statistics per request", ""]
    for r in loads:
        lines += [f"{r['users']} conversation user(s):", "",
                  "| type | name | requests | failures | p50 ms | p95 ms | p99 ms | per s |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {e['method']} | {e['name']} | {e['requests']} | {e['failures']} | {e['p50_ms']} | "
                  f"{e['p95_ms']} | {e['p99_ms']} | {e['per_s']:.2f} |"
                  for e in sorted(r["entries"], key=lambda e: (e["method"], e["name"]))]
        lines.append("")

    o = overhead
    lines += ["## (d) Serving overhead", "",
              "The same work with and without serving, one item at a time on an idle stack, alternating which "
              "goes first. Served: a one-utterance phrase streamed through the gateway (WebSocket, sent as fast "
              "as possible, partial transcripts off) from connect to close; an enrolment is POST /v1/profiles. "
              "Unserved, in this process: streaming VAD on 20 ms frames, Whisper on the utterance it ends, "
              "Kokoro's ONNX file in onnxruntime with Triton's thread settings on each clause (same phonemes, "
              "clauses and style); decode + checks (VAD) + the `voice_embedding` front end and encoder. Whisper "
              "runs inside the gateway process either way. Wasted speculation: Whisper calls the live pipeline "
              "started 200 ms into a pause that speech then resumed — work the design adds, which on audio sent "
              "faster than real time lands on the critical path (in a live call it overlaps the speech). Triton "
              "columns: the models Triton serves, alone — the gateway's own histogram of its waits on Triton "
              "(gRPC, python backend, model) vs the same model run here.", "",
              "| item | audio s | unserved s (VAD / STT / synthesis; checks / embedding) | served s | "
              "wasted speculation s | overhead | less waste | Triton model: unserved s | served s | overhead |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def pct(served, raw):
        return f"{100 * (served / raw - 1):+.0f} %"

    for i, r in enumerate(o["phrases"] + o["enrolments"]):
        name, audio_s = (f"phrase {i + 1}", f"{r['seconds']:.1f}") if "seconds" in r else (f"enrol {r['file']}", "")
        stages = " / ".join(f"{v:.2f}" for v in r["raw_stages_s"].values())
        waste = f"{r['wasted_speculation_s']:.2f} ({r['whisper_calls'] - 1} call(s))" if "whisper_calls" in r else ""
        lines.append(f"| {name} | {audio_s} | {r['raw_s']:.2f} ({stages}) | {r['served_s']:.2f} | {waste} | "
                     f"{pct(r['served_s'], r['raw_s'])} | {pct(r['served_less_waste_s'], r['raw_s'])} | "
                     f"{r['raw_model_s']:.3f} | {r['served_model_s']:.3f} | "
                     f"{pct(r['served_model_s'], r['raw_model_s'])} |")
    for key in ("stream", "enrolment", "total"):
        lines.append(f"| **{key}** | | {o[key]['raw_s']:.2f} | {o[key]['served_s']:.2f} | | "
                     f"**{100 * o[key]['overhead']:+.1f} %** | | | | |")
    t, less = o["triton_models"], o["total_less_waste"]
    lines.append(f"| **total, less wasted speculation** | | {less['raw_s']:.2f} | {less['served_s']:.2f} | | | "
                 f"**{100 * less['overhead']:+.1f} %** | | | |")
    lines.append(f"| **Triton models** | | | | | | | {t['raw_s']:.2f} | {t['served_s']:.2f} | "
                 f"**{100 * t['overhead']:+.1f} %** |")
    verdict = {key: "met" if met else "NOT met" for key, met in o["met"].items()}
    lines += ["", f"Target <= {100 * OVERHEAD_TARGET:.0f} % overhead: whole path {verdict['total']} "
              f"({100 * o['total']['overhead']:+.1f} %); less the wasted speculation {verdict['total_less_waste']} "
              f"({100 * less['overhead']:+.1f} %); Triton-served models alone {verdict['triton_models']} "
              f"({100 * t['overhead']:+.1f} %). Besides transport the served path also holds the connection and "
              "`ready` handshake, PCM framing, persisting each utterance, and for enrolments storing the "
              "embedding and a FLAC of the upload. Single items vary by +-20 % on this shared machine.", ""]
    return "\n".join(lines)


def summarise_load(result: dict, duration_s: float) -> dict:
    rest = [e for e in result["entries"] if e["method"] != "WS"]
    window_min = result["window_s"] / 60
    return {**result, "duration_s": duration_s, "stages": stage_profile(result),
            "utterances_per_min": result["utterance_total_ms"]["count"] / window_min,
            "rest_requests_per_s": sum(e["requests"] for e in rest) / result["window_s"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 2, 4, 8], help="conversation users per run")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per user count")
    parser.add_argument("--quick", action="store_true", help="small settings everywhere (about 3 minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.duration = [2], 30.0
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    phases: dict[str, float] = {}

    def phase(name, started):
        phases[name] = time.perf_counter() - started

    started = time.perf_counter()
    console.rule("(a) embedding throughput")
    embedding = embedding_throughput.main(
        (["--seconds", "2", "--concurrency", "1", "8"] if args.quick else []) + ["--out", str(out)])
    phase("embedding", started)
    started = time.perf_counter()
    console.rule("(b) latency")
    latency_result = latency.main((["--count", "3"] if args.quick else []) + ["--out", str(out)])
    phase("latency", started)
    started = time.perf_counter()
    console.rule("(b2) translation quality and speed")
    translation_result = translation.main(["--sentences", "10" if args.quick else "60", "--out", str(out)])
    phase("translation", started)

    settings = get_settings()
    loads = []
    with tempfile.TemporaryDirectory(prefix="univoice-load-") as tmp, \
            private_triton(settings.model_repository) as triton:
        started = time.perf_counter()
        console.rule("(c) concurrent conversations")
        with gateway_in_thread(stack_settings(settings, triton.grpc_port, triton.http_port, Path(tmp) / "load")) \
                as (base, _):
            # Whisper and the caches loaded before anyone is measured.
            token = sign_in(base, "warm-up", PASSWORD)
            StreamClient(base, open_session(base, token), token=token).stream(latency.phrases(1)[0], realtime=False)
            for users in args.users:
                loads.append(summarise_load(run_locust(base, users, args.duration), args.duration))
                r = loads[-1]
                console.print(f"{users} user(s): p95 end of speech -> first audio "
                              f"{_s(r['first_audio_ms'].get('p95'))} s, "
                              f"{r['utterance_total_ms']['count']} utterances, CPU {r['cpu']['total_pct']:.0f} %, "
                              f"{'held' if r['held'] else 'NOT held: ' + '; '.join(r['why_not'])}")
        phase("load", started)
        started = time.perf_counter()
        console.rule("(d) serving overhead")
        overhead = serving_overhead(triton, settings, Path(tmp) / "overhead", 2 if args.quick else 12,
                                    2 if args.quick else 6)
        phase("overhead", started)

    held = [r["users"] for r in loads if r["held"]]
    largest = max(held) if held else None
    at_target = next((r for r in loads if r["users"] == TARGET_USERS), None)
    if at_target is None:
        verdict = f"not measured (users {args.users})"
    elif at_target["held"]:
        verdict = "met"
    else:
        verdict = "NOT met: " + "; ".join(at_target["why_not"])
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "argv": argv if argv is not None else sys.argv[1:],
        "phase_seconds": phases, "largest_held": largest, "target_users": TARGET_USERS, "target_verdict": verdict,
        "held_p95_ms": HELD_P95_MS,
        "embedding": embedding["summary"], "latency": latency_result["summary"],
        "load": [{k: v for k, v in r.items() if k != "first_audio_rows"} for r in loads],
        "overhead": overhead,
    }
    plot(loads, out / "load.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "report.md").write_text(report(summary, embedding, latency_result, loads, overhead, translation_result)
                                   + "\n")

    table = Table("users", "e2e p95 s", "utt/min", "CPU %", "held", title="concurrent conversations")
    for r in loads:
        table.add_row(str(r["users"]), _s(r["first_audio_ms"].get("p95")), f"{r['utterances_per_min']:.1f}",
                      f"{r['cpu']['total_pct']:.0f}", "yes" if r["held"] else "no")
    console.print(table)
    console.print(f"largest user count held in real time: {largest}; {TARGET_USERS}-user target: {verdict}")
    console.print(f"serving overhead (target <= {100 * OVERHEAD_TARGET:.0f} %): whole path "
                  f"{100 * overhead['total']['overhead']:+.1f} %, less wasted speculation "
                  f"{100 * overhead['total_less_waste']['overhead']:+.1f} %, Triton-served models "
                  f"{100 * overhead['triton_models']['overhead']:+.1f} %")
    console.print(f"saved {out / 'report.md'}, load.png and summary.json")
    return summary


if __name__ == "__main__":
    main()
