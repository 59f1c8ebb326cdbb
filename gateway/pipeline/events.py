"""What a live translation tells its listener, one type per kind of event, in the order they come per utterance:
`SpeechStarted`, `PartialTranscript`*, `SpeechEnded`, `FinalTranscript`, `AudioStarted`, `TranslationDone`,
`AudioEnded`, `UtteranceMetrics`; `UtteranceWarning` or `UtteranceFailed` where something went wrong.

The pipeline speaks no wire protocol: `gateway/api/stream_protocol.py` alone turns these into messages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpeechStarted:
    utterance_id: str
    stream_seconds: float  # where in the client's audio the VAD heard speech begin


@dataclass(frozen=True)
class SpeechEnded:
    utterance_id: str
    stream_seconds: float


@dataclass(frozen=True)
class PartialTranscript:
    utterance_id: str
    text: str


@dataclass(frozen=True)
class FinalTranscript:
    utterance_id: str
    text: str


@dataclass(frozen=True)
class TranslationDone:
    utterance_id: str
    text: str
    engine: str  # the engine whose text was spoken
    fallback_reason: str | None = None  # set when the primary engine's output failed a guard rail


@dataclass(frozen=True)
class AudioStarted:
    utterance_id: str
    sample_rate: int


@dataclass(frozen=True)
class AudioEnded:
    utterance_id: str
    chunks: int
    seconds: float


@dataclass(frozen=True)
class UtteranceMetrics:
    utterance_id: str
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class UtteranceWarning:
    """The utterance was answered, with a gap: `audio_dropped` (the client reads too slowly; `chunks` lost) or
    `history_not_saved`."""

    utterance_id: str
    code: str
    message: str
    chunks: int | None = None


@dataclass(frozen=True)
class UtteranceFailed:
    """The utterance was not answered (`overloaded`, a failing model, ...); the session goes on."""

    utterance_id: str
    code: str
    message: str


PipelineEvent = (SpeechStarted | SpeechEnded | PartialTranscript | FinalTranscript | TranslationDone | AudioStarted
                 | AudioEnded | UtteranceMetrics | UtteranceWarning | UtteranceFailed)
