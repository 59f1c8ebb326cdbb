"""Serving overhead (`make bench` part (d)): the same phrases through the gateway + Triton (WebSocket, as fast as
possible, partial transcripts off) vs the same model work in this process without serving (streaming VAD,
Whisper, Kokoro's ONNX file in onnxruntime with Triton's thread settings); and enrolments (POST /v1/profiles
vs decode + VAD + the voice_embedding front end and encoder in-process). Reported for the whole path, for the
whole path less the live pipeline's wasted speculative transcripts, and for the Triton-served models alone.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from benchmarks import latency
from benchmarks.load import PASSWORD, stack_settings
from export.repository import ModelRepository
from export.specs import SPEAKER_ENCODER, SYNTHESIZER
from gateway import audio
from gateway.embedded import gateway_in_thread
from gateway.observability import REGISTRY
from gateway.pipeline.synthesis import KokoroSynthesizer
from gateway.pipeline.vad import StreamingVad
from gateway.pipeline.voices import DEFAULT_VOICE
from gateway.profiles import MAX_UPLOAD_SECONDS
from gateway.settings import Settings
from gateway.stream_client import StreamClient, open_session, sign_in
from univoice_core.audio import MODEL_RATE

OVERHEAD_TARGET = 0.15


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
                  detector: audio.ClipVad) -> dict[str, float]:
    """POST /v1/profiles' model work, unserved: decode + checks (Silero VAD), then the embedding. Seconds."""
    started = time.perf_counter()
    clip = audio.decode(data, max_bytes=settings.max_upload_bytes, max_seconds=MAX_UPLOAD_SECONDS)
    report = audio.check_enrolment(clip, settings.enrol_min_speech_s, settings.enrol_max_speech_s, detector)
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
    embedder, detector = LocalEmbedding(settings.model_repository), audio.ClipVad()
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
