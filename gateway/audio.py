"""Audio in, audio checked: decoding uploads, resampling, PCM16 framing, speech detection and the
enrolment quality gate.

Plain functions and small dataclasses with no HTTP in them, so the REST routes and the WebSocket
stream share one definition of "audio we accept". Every refusal is an `InvalidAudio` (or
`PayloadTooLarge`) with a stable code and a message that says what was measured, what is needed
and what to do about it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile
import soxr
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from univoice_core.audio import MODEL_RATE
from univoice_core.errors import InvalidAudio, PayloadTooLarge

MIN_RATE, MAX_RATE = 8_000, 192_000  # what `resample` takes
# What an upload may declare, checked in its header before a sample is decoded: a few hundred KB of FLAC can
# declare 8 channels at 192 kHz or 655 kHz, and decode to gigabytes.
MAX_UPLOAD_RATE, MAX_UPLOAD_CHANNELS = 48_000, 2
DECODE_BLOCK_FRAMES = 1 << 16  # decoded and mixed down to mono a block at a time
ACCEPTED_FORMATS = frozenset({"WAV", "WAVEX", "FLAC", "OGG"})  # libsndfile major formats
ACCEPTED_TEXT = "WAV, FLAC or OGG (Vorbis/Opus)"

# Below this much detected speech there is nothing to enrol at all, whatever the configured minimum.
NO_SPEECH_S = 0.5
CLIP_LEVEL = 0.999
MAX_CLIPPED_RATIO = 0.01
MIN_SPEECH_DBFS = -50.0
# Fewer non-speech samples than this (0.1 s) say nothing about the noise floor.
MIN_NOISE_SAMPLES = MODEL_RATE // 10
# Floor for RMS so that digital silence gives a finite (very low) level instead of -inf.
RMS_FLOOR = 1e-10


@dataclass(frozen=True)
class Audio:
    """Decoded mono audio at its original rate."""

    samples: np.ndarray  # float32, 1-D
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(data: bytes, *, max_bytes: int, max_seconds: float) -> Audio:
    """Decode an uploaded file to mono float32, in bounded memory.

    The header is checked first (format, rate, channels, declared length) and nothing is decoded if it asks
    for more than the limits; then blocks are decoded and mixed down one at a time, and decoding stops as soon
    as the audio runs past `max_seconds` (a header may leave its length unknown, or lie).
    """
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the audio file is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data:
        raise InvalidAudio(f"the audio file is empty; send {ACCEPTED_TEXT}", code="unsupported_audio")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            _check_header(f, max_seconds)
            samples, rate = _read_mono(f, limit=int(max_seconds * f.samplerate), max_seconds=max_seconds), f.samplerate
    except soundfile.SoundFileError as exc:
        raise InvalidAudio(
            f"could not decode the upload as audio; send {ACCEPTED_TEXT}", code="unsupported_audio"
        ) from exc
    if len(samples) == 0:
        raise InvalidAudio(f"the audio file has no samples; send {ACCEPTED_TEXT}", code="unsupported_audio")
    if not np.isfinite(samples).all():
        raise InvalidAudio("the audio contains NaN or infinite samples", code="unsupported_audio")
    return Audio(samples, int(rate))


def _check_header(f: soundfile.SoundFile, max_seconds: float) -> None:
    if f.format not in ACCEPTED_FORMATS:
        raise InvalidAudio(f"{f.format} audio is not accepted; send {ACCEPTED_TEXT}", code="unsupported_audio")
    if not MIN_RATE <= f.samplerate <= MAX_UPLOAD_RATE:
        raise InvalidAudio(f"the upload's sample rate is {f.samplerate} Hz; send {MIN_RATE}..{MAX_UPLOAD_RATE} Hz "
                           "(16000 Hz is best)", code="unsupported_sample_rate")
    if not 1 <= f.channels <= MAX_UPLOAD_CHANNELS:
        raise InvalidAudio(f"the upload has {f.channels} channels; send mono or stereo", code="too_many_channels")
    if f.frames > max_seconds * f.samplerate:
        raise PayloadTooLarge(f"the audio is {f.frames / f.samplerate:.1f} s long; the limit is {max_seconds:.0f} s",
                              code="audio_too_long")


def _read_mono(f: soundfile.SoundFile, limit: int, max_seconds: float) -> np.ndarray:
    blocks, frames = [], 0
    for block in f.blocks(blocksize=DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True):
        frames += len(block)
        if frames > limit:
            raise PayloadTooLarge(f"the audio is longer than the limit of {max_seconds:.0f} s", code="audio_too_long")
        blocks.append(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy())
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def resample(samples: np.ndarray, from_rate: int, to_rate: int = MODEL_RATE) -> np.ndarray:
    """Band-limited resampling (soxr HQ); the models only take 16 kHz."""
    for rate in (from_rate, to_rate):
        if not MIN_RATE <= rate <= MAX_RATE:
            raise InvalidAudio(
                f"sample rate {rate} Hz is not supported; use {MIN_RATE}..{MAX_RATE} Hz (16000 Hz is best)",
                code="unsupported_sample_rate",
            )
    samples = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian int16 PCM (the WebSocket frame format) to float32 in [-1, 1)."""
    if len(data) % 2:
        raise InvalidAudio(
            f"PCM16 data must have an even number of bytes (2 per sample); got {len(data)}",
            code="odd_length_pcm",
        )
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float32 to little-endian int16 PCM, clipping to full scale (same 32768 scale as soundfile)."""
    x = np.nan_to_num(np.asarray(samples, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.round(np.clip(x, -1.0, 1.0) * 32768.0), -32768, 32767).astype("<i2").tobytes()


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level relative to a full-scale square wave (0 dBFS = RMS 1.0)."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    return 20.0 * float(np.log10(max(rms, RMS_FLOOR)))


class ClipVad:
    """Silero VAD (ONNX, via faster-whisper) over a whole clip (an upload): where in 16 kHz audio someone is
    speaking. `gateway.pipeline.vad.StreamingVad` runs the same model on live audio, frame by frame.

    The defaults keep 100 ms around each segment and bridge pauses under 300 ms, so consonant edges
    survive for the speaker embedding while real pauses do not count as speech.
    """

    def __init__(self, options: VadOptions | None = None):
        self.options = options or VadOptions(
            threshold=0.5, min_speech_duration_ms=250, min_silence_duration_ms=300, speech_pad_ms=100
        )
        get_vad_model()  # load the ONNX session now (it is cached process-wide), not on first request

    def speech_segments(self, samples16k: np.ndarray) -> list[tuple[int, int]]:
        """[start, end) sample ranges of speech."""
        samples = np.ascontiguousarray(samples16k, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError("speech detection needs mono (1-D) samples")
        if not len(samples):
            return []
        return [(s["start"], s["end"]) for s in get_speech_timestamps(samples, self.options, MODEL_RATE)]

    def speech_seconds(self, samples16k: np.ndarray) -> float:
        return sum(end - start for start, end in self.speech_segments(samples16k)) / MODEL_RATE

    def speech_only(self, samples16k: np.ndarray) -> np.ndarray:
        """The speech segments joined end to end (empty when there is none)."""
        return _join(np.asarray(samples16k, dtype=np.float32), self.speech_segments(samples16k))


def _join(samples: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    if not segments:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([samples[start:end] for start, end in segments])


@dataclass(frozen=True)
class EnrolmentReport:
    """What an accepted enrolment recording measured; samples16k is the speech only, at 16 kHz."""

    samples16k: np.ndarray
    speech_seconds: float
    total_seconds: float
    clipping_ratio: float
    rms_dbfs: float  # of the speech
    snr_db: float | None  # speech vs pauses; None without enough pause to measure


def check_enrolment(
    audio: Audio, min_speech_s: float, max_speech_s: float, detector: ClipVad
) -> EnrolmentReport:
    """Accept a voice-profile recording or say precisely why not (clipping is checked at the original
    rate, before resampling can smooth it away)."""
    clipping_ratio = float(np.mean(np.abs(audio.samples) >= CLIP_LEVEL))
    if clipping_ratio > MAX_CLIPPED_RATIO:
        raise InvalidAudio(
            f"{clipping_ratio:.1%} of the samples are clipped (at full scale); at most "
            f"{MAX_CLIPPED_RATIO:.0%} is allowed. Lower the microphone gain or move back from it, "
            "then record again.",
            code="clipped",
        )
    samples16k = resample(audio.samples, audio.sample_rate)
    segments = detector.speech_segments(samples16k)
    speech = _join(samples16k, segments)
    speech_s = len(speech) / MODEL_RATE
    if speech_s < NO_SPEECH_S:
        raise InvalidAudio(
            f"no speech was detected in {audio.seconds:.1f} s of audio (overall level "
            f"{rms_dbfs(samples16k):.0f} dBFS). Record yourself reading aloud for "
            f"{min_speech_s:.0f}-{max_speech_s:.0f} s.",
            code="no_speech",
        )
    level = rms_dbfs(speech)
    if level < MIN_SPEECH_DBFS:
        raise InvalidAudio(
            f"the speech is too quiet: {level:.0f} dBFS, at least {MIN_SPEECH_DBFS:.0f} dBFS is needed. "
            "Speak closer to the microphone or raise its gain.",
            code="too_quiet",
        )
    if speech_s < min_speech_s:
        raise InvalidAudio(
            f"only {speech_s:.1f} s of speech was detected; at least {min_speech_s:.0f} s is needed. "
            "Record a longer passage, reading aloud without long pauses.",
            code="too_little_speech",
        )
    if speech_s > max_speech_s:
        raise InvalidAudio(
            f"{speech_s:.1f} s of speech was detected; at most {max_speech_s:.0f} s is accepted. "
            "Trim the recording or record a shorter passage.",
            code="too_much_speech",
        )
    mask = np.ones(len(samples16k), dtype=bool)
    for start, end in segments:
        mask[start:end] = False
    noise = samples16k[mask]
    snr = level - rms_dbfs(noise) if len(noise) >= MIN_NOISE_SAMPLES else None
    return EnrolmentReport(
        samples16k=speech,
        speech_seconds=speech_s,
        total_seconds=audio.seconds,
        clipping_ratio=clipping_ratio,
        rms_dbfs=level,
        snr_db=snr,
    )
