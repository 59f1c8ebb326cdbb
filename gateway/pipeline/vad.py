"""Streaming end-pointing with the Silero VAD (the ONNX model faster-whisper ships; no torch).

Audio arrives in arbitrary chunks; the model runs on 512-sample windows (32 ms at 16 kHz) carrying
its recurrent state and 64-sample context across calls, so probabilities match a whole-file pass.
A segment starts after `min_speech_ms` of speech and ends after `min_silence_ms` of silence (or at
`max_utterance_s`, so a monologue still gets translated piece by piece).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import get_vad_model

from univoice_core.audio import MODEL_RATE

WINDOW = 512
CONTEXT = 64


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" | "end"
    sample: int  # position in the stream (16 kHz samples since the stream began)
    audio: np.ndarray | None = None  # the utterance, with `pad_ms` on each side, on "end"


class StreamingVad:
    def __init__(self, threshold: float = 0.5, min_speech_ms: int = 200, min_silence_ms: int = 400,
                 pad_ms: int = 150, max_utterance_s: float = 20.0):
        self.session = get_vad_model().session
        self.threshold = threshold
        self.release = max(0.05, threshold - 0.15)  # hysteresis: speech ends below this
        self.min_speech = int(min_speech_ms * MODEL_RATE / 1000)
        self.min_silence = int(min_silence_ms * MODEL_RATE / 1000)
        self.pad = int(pad_ms * MODEL_RATE / 1000)
        self.max_utterance = int(max_utterance_s * MODEL_RATE)
        self._state = np.zeros((2, 1, 1, 128), dtype=np.float32)  # the LSTM's h and c
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._processed = 0  # samples the model has seen
        self._history = np.zeros(0, dtype=np.float32)  # audio kept for the current utterance (+ pad)
        self._history_start = 0
        self._speaking = False
        self._speech_run = 0
        self._silence_run = 0
        self._start = 0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def silence_ms(self) -> float:
        """How long the speaker has been silent within the current utterance (0 while they talk)."""
        return 1000 * self._silence_run / MODEL_RATE if self._speaking else 0.0

    def current_utterance(self) -> np.ndarray:
        """Audio of the utterance in progress (for partial transcripts); empty when nobody speaks."""
        if not self._speaking:
            return np.zeros(0, dtype=np.float32)
        return self._history[max(0, self._start - self.pad - self._history_start):]

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        events: list[VadEvent] = []
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        self._history = np.concatenate([self._history, samples.astype(np.float32, copy=False)])
        usable = len(self._pending) // WINDOW * WINDOW
        if not usable:
            return events
        windows, self._pending = self._pending[:usable].reshape(-1, WINDOW), self._pending[usable:]
        for probability in self._probabilities(windows):
            position = self._processed
            self._processed += WINDOW
            events.extend(self._step(probability, position))
        if not self._speaking:
            # Keep only what a future utterance needs: its start is dated up to min_speech (rounded up to a
            # window) before the window that confirms it, and it gets `pad` before that.
            keep = self.pad + self.min_speech + WINDOW + len(self._pending)
            if len(self._history) > keep:
                self._history_start += len(self._history) - keep
                self._history = self._history[-keep:]
        return events

    def flush(self) -> list[VadEvent]:
        """End the utterance in progress now (client `flush`/`stop`)."""
        return [self._end(self._processed)] if self._speaking else []

    def _probabilities(self, windows: np.ndarray) -> np.ndarray:
        out = []
        for window in windows:  # one window at a time keeps the recurrent state exact
            batch = np.concatenate([self._context, window[None, :]], axis=1)
            probability, self._state = self._run(batch)
            self._context = window[None, -CONTEXT:]
            out.append(float(np.asarray(probability).reshape(-1)[0]))
        return np.array(out)

    def _run(self, batch: np.ndarray):
        output, h, c = self.session.run(None, {"input": batch, "h": self._state[0], "c": self._state[1]})
        return output, np.stack([h, c])

    def _step(self, probability: float, position: int) -> list[VadEvent]:
        if not self._speaking:
            self._speech_run = self._speech_run + WINDOW if probability >= self.threshold else 0
            if self._speech_run >= self.min_speech:
                self._speaking = True
                self._start = position + WINDOW - self._speech_run
                self._silence_run = 0
                return [VadEvent("start", self._start)]
            return []
        self._silence_run = self._silence_run + WINDOW if probability < self.release else 0
        if self._silence_run >= self.min_silence:
            return [self._end(position + WINDOW - self._silence_run)]
        if position + WINDOW - self._start >= self.max_utterance:
            return [self._end(position + WINDOW)]
        return []

    def _end(self, end: int) -> VadEvent:
        first = max(self._history_start, self._start - self.pad)
        last = min(self._history_start + len(self._history), end + self.pad)
        audio = self._history[first - self._history_start : last - self._history_start].copy()
        self._speaking = False
        self._speech_run = 0
        self._silence_run = 0
        return VadEvent("end", end, audio)
