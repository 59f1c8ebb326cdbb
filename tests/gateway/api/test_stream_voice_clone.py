"""A live stream that answers in the enrolled speaker's voice: real gateway, WebSocket, Triton and Whisper."""

from __future__ import annotations

import httpx
import numpy as np
import soxr

from benchmarks.quality import word_error_rate
from gateway.embedded import gateway_in_thread
from gateway.pipeline.voices import load_presets
from gateway.stream_client import StreamClient
from tests.gateway.api.test_stream import login, new_session
from tests.gateway.api_support import flac
from univoice_core import voice_features as vf

ENROLLED = "1040"  # a man (SPEAKERS.TXT), ~130 Hz: far below every female preset, the default voice included


def clone_requests(triton) -> int:
    stats = triton.http().get_inference_statistics("voice_clone")["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


def enrol(base: str, tokens: dict, wav: np.ndarray) -> dict:
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        created = client.post("/v1/profiles", files={"file": ("me.flac", flac(wav))},
                              data={"name": "me", "consent": "true"})
        assert created.status_code == 201, created.text
        profile = client.get(f"/v1/profiles/{created.json()['id']}")
        assert profile.status_code == 200
        return profile.json()


def speaker(utterances, wanted: str) -> np.ndarray:
    return next(wav for speaker_id, wav in utterances if speaker_id == wanted)


def test_a_stream_with_a_profile_answers_in_the_enrolled_voice(live_gateway, triton, utterances):
    base, app = live_gateway
    tokens = login(base, "cloned")
    profile = enrol(base, tokens, speaker(utterances, ENROLLED))
    assert 90 <= profile["voice_pitch_hz"] <= 170, profile

    session_id = new_session(base, tokens, voice_profile_id=profile["id"])
    before = clone_requests(triton)
    speech = speaker(utterances, "1034")  # someone else speaks; the answer comes in the profile's voice
    result = StreamClient(base, session_id, token=tokens["access_token"], timeout_s=120).stream(speech, realtime=False)
    after = clone_requests(triton)

    assert result.ready["voice"] == "voice_clone"
    assert result.errors == [], result.errors
    spoken = [u for u in result.utterances if u.translation]
    assert spoken, [e["type"] for e in result.events]
    assert all(len(u.audio24k) > 0.3 * 24_000 for u in spoken)
    assert after > before  # one voice_clone request per spoken clause
    assert result.close_code == 1000

    audio16k = soxr.resample(np.concatenate([u.audio24k for u in spoken]), 24_000, 16_000).astype(np.float32)
    pitch = float(np.exp(vf.voice_statistics(audio16k, f0_method="dio")[0]))
    print(f"profile pitch {profile['voice_pitch_hz']} Hz, streamed speech {pitch:.1f} Hz")
    assert abs(np.log(pitch / profile["voice_pitch_hz"])) < 0.2  # the man's pitch, not a female preset's

    import anyio

    translated = " ".join(u.translation for u in spoken)
    heard = anyio.run(app.state.services.speech.transcriber.transcribe, audio16k, "en")
    error_rate = word_error_rate(translated, heard)
    print(f"WER of the cloned speech: {error_rate:.2f} ({translated!r} -> {heard!r})")
    assert error_rate <= 0.3, (translated, heard)


def test_with_cloning_off_the_same_profile_speaks_with_the_nearest_preset(gateway_settings, triton, utterances):
    with gateway_in_thread(gateway_settings.model_copy(update={"voice_cloning": False})) as (base, _):
        tokens = login(base, "preset")
        profile = enrol(base, tokens, speaker(utterances, ENROLLED))
        assert profile["voice_pitch_hz"] is not None
        session_id = new_session(base, tokens, voice_profile_id=profile["id"])
        before = clone_requests(triton)
        result = StreamClient(base, session_id, token=tokens["access_token"], timeout_s=120).stream(
            speaker(utterances, "1034")[: 16_000 * 4], realtime=False)
        assert result.ready["voice"] in load_presets()
        assert result.errors == [], result.errors
        assert any(len(u.audio24k) > 0 for u in result.utterances if u.translation)
        assert clone_requests(triton) == before
