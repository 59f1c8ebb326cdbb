"""`univoice speak`: stream a recording through a running gateway like a live caller would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import soundfile
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from gateway import audio
from gateway.stream_client import StreamClient, StreamError, StreamResult
from univoice_core.audio import OUTPUT_RATE
from univoice_core.errors import UniVoiceError

GAP_S = 0.3  # silence between utterances in the output file

# A local file the user chose to speak (not an upload): an hour of audio at most.
LOCAL_FILE_BYTES, LOCAL_FILE_SECONDS = 1 << 30, 3600.0


class SpeakError(RuntimeError):
    """What went wrong, said so that the user knows what to do."""


def utterance_latencies(result: StreamResult) -> list[dict]:
    """Per utterance: client-measured seconds from the end of speech to the first translated audio."""
    rows = []
    for u in result.utterances:
        row = {"utterance_id": u.id, "transcript": u.transcript, "translation": u.translation,
               "server_timings_ms": u.timings_ms, "error": u.error}
        if u.first_audio_at is not None and u.vad_end_stream_seconds is not None:
            row["end_of_speech_to_first_audio_s"] = round(u.first_audio_at - result.send_time_of(u.vad_end_stream_seconds), 3)
        row["audio_seconds"] = round(len(u.audio24k) / OUTPUT_RATE, 3)
        rows.append(row)
    return rows


def speak_file(input_path: Path, output_path: Path, *, source: str, target: str, profile: str | None, url: str,
               token: str | None, username: str | None, password: str | None, realtime: bool, report_path: Path,
               console: Console) -> str:
    try:
        clip = audio.decode(input_path.read_bytes(), max_bytes=LOCAL_FILE_BYTES, max_seconds=LOCAL_FILE_SECONDS)
    except UniVoiceError as error:
        raise SpeakError(f"{input_path}: {error.message}") from None
    with httpx.Client(base_url=url, timeout=30) as client:
        try:
            if token is None:
                if not (username and password):
                    raise SpeakError("give --token, or --username and --password (or UNIVOICE_TOKEN)")
                login = client.post("/v1/auth/token", data={"username": username, "password": password})
                if login.status_code != 200:
                    raise SpeakError(f"login failed: {login.json().get('message', login.text)}")
                token = login.json()["access_token"]
            created = client.post("/v1/sessions", headers={"Authorization": f"Bearer {token}"}, json={
                "source_language": source, "target_language": target, "voice_profile_id": profile,
            })
        except httpx.ConnectError:
            raise SpeakError(f"no gateway answers at {url}: start it with `make run`") from None
    if created.status_code != 201:
        raise SpeakError(f"could not create a session: {created.json().get('message', created.text)}")
    session_id = created.json()["id"]

    with Progress(TextColumn("streaming"), BarColumn(), TextColumn("{task.completed:.1f}/{task.total:.1f} s"),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("stream", total=clip.seconds)
        try:
            result = StreamClient(url, session_id, token=token).stream(
                clip.samples, clip.sample_rate, realtime=realtime,
                on_progress=lambda sent, total: progress.update(task, completed=min(sent, clip.seconds)),
            )
        except StreamError as error:
            raise SpeakError(f"the stream was refused: {error}") from None

    pieces = []
    for u in result.utterances:
        if len(u.audio24k):
            pieces += [u.audio24k, np.zeros(int(GAP_S * OUTPUT_RATE), np.float32)]
    speech = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(output_path, speech, OUTPUT_RATE, subtype="PCM_16")
    rows = utterance_latencies(result)
    report = {"session_id": session_id, "input": str(input_path), "output": str(output_path),
              "input_seconds": round(clip.seconds, 3), "output_seconds": round(len(speech) / OUTPUT_RATE, 3),
              "utterances": rows, "errors": result.errors, "warnings": result.warnings}
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    latencies = [r["end_of_speech_to_first_audio_s"] for r in rows if "end_of_speech_to_first_audio_s" in r]
    median = f"{np.median(latencies):.2f} s" if latencies else "n/a"
    return (f"{len(rows)} utterance(s), {len(result.errors)} error(s); end of speech -> first audio: median {median}\n"
            f"wrote {output_path} ({len(speech) / OUTPUT_RATE:.1f} s) and {report_path}")
