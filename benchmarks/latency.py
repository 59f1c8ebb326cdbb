"""End of speech -> first translated audio byte, live pipeline vs a naive one, in the same run.

Each of N real LibriSpeech utterances (10-20 s, with the speaker's own pauses) is streamed in real
time through the real gateway (WebSocket, uvicorn on loopback) and the embedded Triton. The live
pipeline answers phrase by phrase while the person is still speaking; the client clocks the time
from sending the utterance's last speech sample to receiving the first translated audio frame that
answers its final phrase. `--phrases` instead cuts each utterance at its first pause (2.5-8 s), so
that both pipelines answer one phrase: the per-phrase view.

The naive pipeline, measured on the same audio with the same models in the same process: the same
end-of-speech detection (its measured delay is reused), then whole-utterance STT, then translation,
then the whole translation synthesized in one call — the first byte exists only when all of it does.

    python -m benchmarks.latency [--count 20] [--phrases] [--source en --target en] [--engine llm|apertium]

With a source language other than English the input is synthetic: held-out NTREX-128 sentences in
that language read by Kokoro through the same Triton, since no real speech in that language ships
here; only readings that are one phrase (no pause the VAD cuts at) are kept, the per-phrase view. `--engine` picks the translation engine (default: settings, i.e. the LLM).

Prints p50/p95 and writes benchmarks/results/<date>/latency.{json,png} (per-stage breakdown).
Targets: live p50 <= 1.5 s on this 2-core machine (es->en with the LLM: <= 2.0 s), and >= 2x faster than naive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np
import soundfile
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from gateway.audio import ClipVad
from gateway.embedded import gateway_in_thread, private_triton
from gateway.pipeline.synthesis import KokoroSynthesizer, trim_silence
from gateway.pipeline.translate import make_translator, translate_all
from gateway.pipeline.voices import DEFAULT_VOICE, load_presets
from gateway.settings import get_settings
from gateway.speak import utterance_latencies
from gateway.stream_client import StreamClient, open_session, sign_in
from gateway.triton.client import TritonClient
from univoice_core.audio import MODEL_RATE, to_model_rate
from univoice_core.kokoro import style_row

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "benchmark password"
console = Console()


def phrases(count: int, min_s: float = 2.5, max_s: float = 8.0) -> list[np.ndarray]:
    """The opening of each utterance up to the first pause after at least `min_s` of speech (<= `max_s`)."""
    detector = ClipVad()
    out = []
    for path in sorted(get_settings().data_dir.glob("*.flac")):
        wav, _ = soundfile.read(path, dtype="float32")
        segments = detector.speech_segments(wav)
        if not segments:
            continue
        start, end = segments[0][0], segments[0][1]
        for seg_start, seg_end in segments[1:]:
            if (end - start) / MODEL_RATE >= min_s:
                break
            end = seg_end
        if min_s <= (end - start) / MODEL_RATE <= max_s:
            out.append(wav[max(0, start - 3200) : end])
        if len(out) == count:
            return out
    raise SystemExit(f"only {len(out)} usable phrases in {get_settings().data_dir}")


async def naive(speech, grpc_url: str, audio: np.ndarray, source: str, target: str) -> dict[str, float]:
    """Whole-utterance STT -> translation -> whole-utterance synthesis; seconds per stage.

    The same transcriber, translator, phonemizer, voice and Triton model as the live pipeline.
    """
    triton = TritonClient(grpc_url)  # a client of this event loop (the gateway's lives in its thread)
    started = time.perf_counter()
    transcript = await speech.transcriber.transcribe(audio, source)
    stt = time.perf_counter()
    # The same engine and guard as the session, on this loop's Triton client.
    translator = make_translator(speech.pair(source, target), triton=triton, guard=speech.guard)
    translation, _ = await translate_all(translator, transcript, source, target)
    mt = time.perf_counter()
    tokens = await asyncio.to_thread(speech.synthesizer.phonemizer.tokens, translation, target)
    voice = speech.presets[DEFAULT_VOICE]
    trim_silence(await triton.synthesize(tokens, voice.styles[style_row(len(tokens))]))
    done = time.perf_counter()
    await triton.close()
    return {"stt_s": stt - started, "translation_s": mt - stt, "synthesis_s": done - mt}


def utterances(count: int) -> list[np.ndarray]:
    """Whole utterances, trimmed to their speech (the end of speech is the clip's end)."""
    detector = ClipVad()
    out = []
    for path in sorted(get_settings().data_dir.glob("*.flac"))[:count]:
        wav, _ = soundfile.read(path, dtype="float32")
        segments = detector.speech_segments(wav)
        out.append(wav[max(0, segments[0][0] - 3200) : segments[-1][1]])
    return out


def synthetic_phrases(grpc_url: str, language: str, count: int, max_s: float = 8.0) -> list[np.ndarray]:
    """Held-out NTREX-128 sentences in `language` (20-120 characters) read by Kokoro, at 16 kHz: the first
    `count` whose reading is one phrase (no pause the VAD would cut at) of at most `max_s`, like `--phrases`."""
    from benchmarks.translation import held_out, lines

    texts = [t for t in (lines(language)[i] for i in held_out(400)) if 20 <= len(t) <= 120]
    detector = ClipVad()

    async def read_all():
        triton = TritonClient(grpc_url, timeout_s=120)
        voice = load_presets()[DEFAULT_VOICE]
        out = []
        try:
            with tqdm(total=count, desc=f"synthetic {language} phrases") as progress:
                for text in texts:
                    audio = np.concatenate([c.audio24k async for c in KokoroSynthesizer(triton).speak(text, language, voice)])
                    clip = to_model_rate(audio)
                    if len(detector.speech_segments(clip)) == 1 and len(clip) <= max_s * MODEL_RATE:
                        out.append(clip)
                        progress.update()
                    if len(out) == count:
                        return out
        finally:
            await triton.close()
        raise SystemExit(f"only {len(out)} one-phrase {language} readings among {len(texts)} held-out sentences")

    return asyncio.run(read_all())


def run(clips, source: str, target: str, engine: str | None = None) -> dict:
    """`clips`: 16 kHz clips, or a function of Triton's gRPC URL that makes them."""
    settings = get_settings()
    rows = []
    with private_triton(settings.model_repository) as triton:
        gateway_settings = settings.model_copy(update={
            "triton_grpc_port": triton.grpc_port, "triton_http_port": triton.http_port, "preload_voices": False,
            "state_dir": settings.state_dir / "benchmark", "rate_limit_burst": 10_000,
            **({"translation_provider": engine} if engine else {}),
        })
        if callable(clips):
            clips = clips(triton.grpc_url)
        with gateway_in_thread(gateway_settings) as (base, app):
            token = sign_in(base, "latency-bench", PASSWORD)
            session = open_session(base, token, source, target)
            warm = StreamClient(base, session, token=token)
            warm.stream(clips[0], realtime=False)  # load Whisper, warm the caches
            portal_loop = asyncio.new_event_loop()
            for index, clip in enumerate(tqdm(clips, desc="clips")):
                result = StreamClient(base, session, token=token).stream(clip, realtime=True)
                spoken = [u for u in utterance_latencies(result) if "end_of_speech_to_first_audio_s" in u]
                phrase_ms = [u["server_timings_ms"]["first_audio_after_end_ms"] for u in spoken]
                if not spoken:
                    rows.append({"clip": index, "error": result.errors or "no audio"})
                    continue
                first = spoken[-1]  # the utterance that ends with the phrase
                end_of_speech_at = result.send_time_of(len(clip) / MODEL_RATE)
                utterance = result.utterances[[u.id for u in result.utterances].index(first["utterance_id"])]
                live = utterance.first_audio_at - end_of_speech_at
                vad_delay = live - first["server_timings_ms"]["first_audio_after_end_ms"] / 1000
                stages = portal_loop.run_until_complete(
                    naive(app.state.services.speech, triton.grpc_url, clip, source, target))
                rows.append({
                    "clip": index, "seconds": round(len(clip) / MODEL_RATE, 2), "phrases_answered": len(spoken),
                    "phrase_vad_end_to_first_audio_ms": phrase_ms,
                    "transcript": first["transcript"], "translation": first["translation"],
                    "live_s": live, "live_server_ms": first["server_timings_ms"], "vad_delay_s": vad_delay,
                    "naive_s": vad_delay + sum(stages.values()), "naive_stages_s": stages,
                })
            portal_loop.close()
    return {"rows": rows}


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if "live_s" in r]
    live = np.array([r["live_s"] for r in ok])
    naive_s = np.array([r["naive_s"] for r in ok])
    per_phrase = np.array([ms for r in ok for ms in r["phrase_vad_end_to_first_audio_ms"]]) / 1000
    return {
        "clips": len(rows), "answered": len(ok), "phrases_answered": int(len(per_phrase)),
        "server_phrase_vad_end_to_first_audio_p50_s": float(np.percentile(per_phrase, 50)),
        "live_p50_s": float(np.percentile(live, 50)), "live_p95_s": float(np.percentile(live, 95)),
        "naive_p50_s": float(np.percentile(naive_s, 50)), "naive_p95_s": float(np.percentile(naive_s, 95)),
        "speedup_p50": float(np.percentile(naive_s, 50) / np.percentile(live, 50)),
        "targets": {"live_p50_s": 1.5, "speedup_p50": 2.0},
    }


def plot(rows: list[dict], path: Path, unit: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "live_s" in r]

    def mean(values):
        return float(np.mean(values)) if values else 0.0

    vad = mean([r["vad_delay_s"] for r in ok])
    live_stt = mean([r["live_server_ms"].get("stt_ms", 0) / 1000 for r in ok])
    live_mt = mean([r["live_server_ms"].get("translation_ms", 0) / 1000 for r in ok])
    live_tts = mean([r["live_server_ms"].get("first_clause_synthesis_ms", 0) / 1000 for r in ok])
    naive_stt = mean([r["naive_stages_s"]["stt_s"] for r in ok])
    naive_mt = mean([r["naive_stages_s"]["translation_s"] for r in ok])
    naive_tts = mean([r["naive_stages_s"]["synthesis_s"] for r in ok])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["live (streaming)", "naive"]
    stages = [("end-of-speech detection", [vad, vad]), ("speech-to-text", [live_stt, naive_stt]),
              ("translation", [live_mt, naive_mt]), ("synthesis to first byte", [live_tts, naive_tts])]
    bottom = np.zeros(2)
    for label, values in stages:
        left.barh(names, values, left=bottom, label=label)
        bottom += values
    left.set_xlabel("seconds after the end of speech (mean)")
    left.set_title("Where the time goes")
    left.legend(loc="lower right", fontsize=8)
    left.invert_yaxis()
    order = np.argsort([r["naive_s"] for r in ok])
    right.plot([ok[i]["naive_s"] for i in order], "s--", label="naive")
    right.plot([ok[i]["live_s"] for i in order], "o-", label="live")
    right.axhline(1.5, color="grey", linestyle=":", label="target 1.5 s")
    right.set_xlabel(f"{unit[:-1]} (sorted by naive latency)")
    right.set_ylabel("end of speech -> first audio (s)")
    right.set_title(f"Per {unit[:-1]}")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20, help="how many utterances")
    parser.add_argument("--phrases", action="store_true", help="cut each utterance at its first pause")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="en")
    parser.add_argument("--engine", choices=["llm", "apertium", "amazon", "ctranslate2"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / time.strftime("%Y-%m-%d"))
    args = parser.parse_args(argv)
    if args.source != "en":
        clips = lambda url: synthetic_phrases(url, args.source, args.count)  # noqa: E731
    else:
        clips = phrases(args.count) if args.phrases else utterances(args.count)
    engine = args.engine or (get_settings().translation_provider if args.source != args.target else "passthrough")
    result = run(clips, args.source, args.target, args.engine)
    summary = summarise(result["rows"])
    unit = "phrases" if args.phrases or args.source != "en" else "utterances"
    target_p50 = 2.0 if engine == "llm" else 1.5
    summary["targets"]["live_p50_s"] = target_p50
    result = {"benchmark": "latency", "unit": unit, "source": args.source, "target": args.target,
              "engine": engine, "synthetic_input": args.source != "en", "summary": summary, **result}
    table = Table("pipeline", "p50 (s)", "p95 (s)",
                  title=f"end of speech -> first translated audio ({summary['answered']} {unit})")
    table.add_row("live", f"{summary['live_p50_s']:.2f}", f"{summary['live_p95_s']:.2f}")
    table.add_row("naive", f"{summary['naive_p50_s']:.2f}", f"{summary['naive_p95_s']:.2f}")
    console.print(table)
    console.print(f"every phrase, server-side VAD end -> first audio: p50 "
                  f"{summary['server_phrase_vad_end_to_first_audio_p50_s']:.2f} s over {summary['phrases_answered']}")
    console.print(f"speed-up at p50: {summary['speedup_p50']:.2f}x (target >= 2); live p50 target <= {target_p50} s: "
                  f"{'met' if summary['live_p50_s'] <= target_p50 else 'NOT met'}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "latency_phrases" if args.phrases else "latency"
    if args.source != args.target:
        name = f"latency_{args.source}_{args.target}_{engine}"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    plot(result["rows"], args.out / f"{name}.png", unit)
    console.print(f"saved {args.out / name}.json and .png")
    return result


if __name__ == "__main__":
    main()
