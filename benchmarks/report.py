"""`make bench`: every benchmark, then concurrent conversations against the embedded stack, in one report.

    python -m benchmarks.report [--users 1 2 4 8] [--duration 60] [--quick]

(a) `benchmarks.embedding_throughput`, (b) `benchmarks.latency` and (b2) `benchmarks.translation`, each with
its own Triton, one after the other; then the embedded stack in this process (a private Triton, the gateway
in a thread) and (c) `benchmarks.load` at each user count, (d) `benchmarks.serving_overhead`.

Writes benchmarks/results/<date>/report.md, load.png and summary.json next to (a)'s and (b)'s files.
`--quick` (about 3 minutes): small (a) and (b), 2 users for 30 s, 2 phrases. The full run: about 20 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import embedding_throughput, latency, translation
from benchmarks.load import HELD_P95_MS, PASSWORD, plot, run_locust, stack_settings, summarise_load
from benchmarks.serving_overhead import OVERHEAD_TARGET, serving_overhead
from gateway.embedded import gateway_in_thread, private_triton
from gateway.settings import get_settings
from gateway.stream_client import StreamClient, open_session, sign_in

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_USERS = 4
console = Console()


def _s(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms / 1000:.2f}"


def report(summary: dict, embedding: dict, latency_result: dict, loads: list[dict], overhead: dict,
           translation_result: dict) -> str:
    lines = [f"# UniVoice benchmarks, {summary['date']}", "",
             f"{os.cpu_count()}-core CPU machine, everything (clients included) on the same cores. "
             f"Run: `python -m benchmarks.report {' '.join(summary['argv'])}`; phases took "
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
