"""`StreamingVad` on the real Silero model (ONNX, milliseconds per second of audio) and real LibriSpeech speech
framed with digital silence: where utterances start and end, what audio an utterance carries, the pause the
live pipeline speculates in, `max_utterance_s`, `flush`, and that the chunking of the stream changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.pipeline.vad import WINDOW, StreamingVad, VadEvent
from univoice_core.audio import MODEL_RATE

STREAM_FRAME = MODEL_RATE // 50  # 20 ms: what the stream client and the /demo page send
LEAD, SPEECH, TAIL = 1.0, 3.0, 1.5  # seconds of silence, of speech, of silence


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * MODEL_RATE), np.float32)


@pytest.fixture(scope="module")
def speech(utterances) -> np.ndarray:
    """Three seconds of one reader, from the start of the recording (LibriSpeech's own lead-in included)."""
    return utterances[0][1][: int(SPEECH * MODEL_RATE)]


@pytest.fixture(scope="module")
def stream(speech) -> np.ndarray:
    return np.concatenate([silence(LEAD), speech, silence(TAIL)])


def feed(vad: StreamingVad, signal: np.ndarray, chunk: int = STREAM_FRAME) -> list[VadEvent]:
    events = []
    for start in range(0, len(signal), chunk):
        events.extend(vad.feed(signal[start : start + chunk]))
    return events


def test_silence_is_no_utterance():
    vad = StreamingVad()
    quiet_noise = np.random.default_rng(0).normal(0, 1e-3, 2 * MODEL_RATE).astype(np.float32)
    assert feed(vad, np.concatenate([silence(2), quiet_noise])) == []
    assert not vad.speaking and vad.silence_ms == 0 and len(vad.current_utterance()) == 0
    assert vad.flush() == []


def test_one_utterance_starts_in_the_speech_and_ends_where_the_silence_begins(stream):
    vad = StreamingVad()
    events = feed(vad, stream)
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events[0].sample, events[1].sample
    assert LEAD * MODEL_RATE <= start < (LEAD + 1.0) * MODEL_RATE  # not in the lead silence
    # The recording is cut mid-sentence at LEAD + SPEECH: the end is there, to within a window or two.
    assert abs(end - (LEAD + SPEECH) * MODEL_RATE) <= 2 * WINDOW
    assert not vad.speaking and len(vad.current_utterance()) == 0


@pytest.mark.parametrize("chunk", [len, 4096, STREAM_FRAME, 333], ids=["whole", "4096", "20ms", "333"])
def test_how_the_stream_is_cut_into_chunks_changes_no_event(stream, chunk):
    whole = feed(StreamingVad(), stream, len(stream))
    chunked = feed(StreamingVad(), stream, len(stream) if chunk is len else chunk)
    assert [(e.kind, e.sample) for e in chunked] == [(e.kind, e.sample) for e in whole]


# In 20 ms frames the start (dated min_speech before the window that confirms it) and its pad were once lost.
@pytest.mark.parametrize("chunk", [len, STREAM_FRAME], ids=["whole", "20ms"])
def test_an_utterance_is_the_stream_from_its_start_to_its_end_with_the_pad_on_each_side(stream, chunk):
    vad = StreamingVad()
    start, end = feed(vad, stream, len(stream) if chunk is len else chunk)
    np.testing.assert_array_equal(end.audio, stream[start.sample - vad.pad : end.sample + vad.pad])


def test_the_closing_pause_grows_until_the_end_and_speech_resets_it(stream):
    """The live pipeline starts its speculative transcript `speculate_after_ms` into this pause."""
    vad = StreamingVad(min_silence_ms=400)
    pauses, utterance_lengths = [], []
    for start in range(0, len(stream), STREAM_FRAME):
        events = vad.feed(stream[start : start + STREAM_FRAME])
        if any(e.kind == "end" for e in events):
            break
        if vad.speaking:
            pauses.append(vad.silence_ms)
            utterance_lengths.append(len(vad.current_utterance()))
    assert 0.0 in pauses  # while the reader talks
    closing = pauses[len(pauses) - pauses[::-1].index(0.0) :]  # after the last word
    assert closing == sorted(closing) and closing[-1] >= 400 - 1000 * WINDOW / MODEL_RATE
    assert utterance_lengths == sorted(utterance_lengths) and utterance_lengths[-1] >= SPEECH * MODEL_RATE / 2


def test_a_monologue_is_cut_every_max_utterance_s_and_goes_on_without_a_gap(utterances):
    """1069-133699-0000 reads on without a 400 ms pause for its first ten seconds."""
    speaker, reading = utterances[3]
    assert speaker == "1069"
    vad = StreamingVad(max_utterance_s=2.0)
    events = feed(vad, np.concatenate([silence(0.5), reading[: 10 * MODEL_RATE]]))
    kinds = [e.kind for e in events]
    assert kinds[:6] == ["start", "end"] * 3
    starts, ends = events[0:6:2], events[1:6:2]
    for start, end in zip(starts, ends):
        assert 2 * MODEL_RATE <= end.sample - start.sample < 2 * MODEL_RATE + WINDOW
    assert [s.sample for s in starts[1:]] == [e.sample for e in ends[:-1]]  # the next one starts where it was cut


def test_flush_ends_the_utterance_in_progress_with_the_audio_so_far_once(speech):
    vad = StreamingVad()
    signal = np.concatenate([silence(LEAD), speech])  # no closing silence
    events = feed(vad, signal)
    assert [e.kind for e in events] == ["start"] and vad.speaking
    so_far = vad.current_utterance().copy()
    (end,) = vad.flush()
    assert end.kind == "end" and end.sample == len(signal) // WINDOW * WINDOW  # what the model has seen
    np.testing.assert_array_equal(end.audio, so_far)
    assert not vad.speaking and vad.flush() == []
