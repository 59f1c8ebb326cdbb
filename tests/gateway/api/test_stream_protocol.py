"""The wire messages of the pipeline's events are the ones docs/protocol.md documents, field for field."""

from __future__ import annotations

import pytest

from gateway.api.stream_protocol import error_message, event_message, ready_message
from gateway.pipeline import events
from univoice_core.errors import BadRequest

UT = "ut_1"


@pytest.mark.parametrize(("event", "message"), [
    (events.SpeechStarted(UT, 1.5), {"type": "vad", "state": "start", "utterance_id": UT, "stream_seconds": 1.5}),
    (events.SpeechEnded(UT, 3.0), {"type": "vad", "state": "end", "utterance_id": UT, "stream_seconds": 3.0}),
    (events.PartialTranscript(UT, "hola"), {"type": "partial_transcript", "utterance_id": UT, "text": "hola"}),
    (events.FinalTranscript(UT, "Hola."), {"type": "transcript", "utterance_id": UT, "text": "Hola."}),
    (events.TranslationDone(UT, "Hello.", engine="llm"),
     {"type": "translation", "utterance_id": UT, "text": "Hello.", "engine": "llm"}),
    (events.TranslationDone(UT, "Hello.", engine="apertium", fallback_reason="reply_presentation"),
     {"type": "translation", "utterance_id": UT, "text": "Hello.", "engine": "apertium",
      "translation_fallback": "apertium", "fallback_reason": "reply_presentation"}),
    (events.AudioStarted(UT, 24_000),
     {"type": "audio_start", "utterance_id": UT, "sample_rate": 24_000, "encoding": "pcm16", "channels": 1}),
    (events.AudioEnded(UT, 9, 1.8), {"type": "audio_end", "utterance_id": UT, "chunks": 9, "seconds": 1.8}),
    (events.UtteranceMetrics(UT, {"stt_ms": 900.0}),
     {"type": "metrics", "utterance_id": UT, "timings_ms": {"stt_ms": 900.0}}),
    (events.UtteranceWarning(UT, "audio_dropped", "2 dropped", chunks=2),
     {"type": "warning", "code": "audio_dropped", "utterance_id": UT, "chunks": 2, "message": "2 dropped"}),
    (events.UtteranceWarning(UT, "history_not_saved", "not saved"),
     {"type": "warning", "code": "history_not_saved", "utterance_id": UT, "message": "not saved"}),
    (events.UtteranceFailed(UT, "overloaded", "skipped"),
     {"type": "error", "code": "overloaded", "utterance_id": UT, "message": "skipped"}),
])
def test_each_pipeline_event_becomes_its_documented_message(event, message):
    assert list(event_message(event).items()) == list(message.items())  # the same fields, in the same order


def test_a_stream_error_names_no_utterance():
    assert error_message(BadRequest("bad", code="invalid_message")) == {
        "type": "error", "code": "invalid_message", "message": "bad"}


def test_anything_else_is_refused():
    with pytest.raises(TypeError):
        event_message({"type": "vad"})


def test_ready_describes_both_directions_of_audio_and_the_limits():
    ready = ready_message(session_id="s_1", source_language="es", target_language="en", voice="af_heart",
                          input_rate=48_000, output_rate=24_000, max_frame_bytes=32_000, max_session_seconds=3600)
    assert ready == {
        "type": "ready", "protocol": 1, "session_id": "s_1", "source_language": "es", "target_language": "en",
        "voice": "af_heart", "input": {"encoding": "pcm16", "sample_rate": 48_000, "channels": 1},
        "output": {"encoding": "pcm16", "sample_rate": 24_000, "channels": 1, "header": "uint32 sequence, big-endian"},
        "limits": {"max_frame_bytes": 32_000, "max_session_seconds": 3600}}
