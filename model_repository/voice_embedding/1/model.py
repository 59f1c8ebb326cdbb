"""voice_embedding: 16 kHz waveforms -> L2-normalised utterance embeddings (BLS over speaker_encoder).

Reproduces resemblyzer's `VoiceEncoder.embed_utterance` on a volume-normalised waveform:
resemblyzer's -30 dBFS increase-only normalisation, its non-log 40-band Slaney mel spectrogram
(n_fft 400, hop 160, centred, zero padded), its partial slicing (160-frame partials at 1.3 per
second, the last kept at >= 75 % coverage), the `speaker_encoder` network on every partial, and
the L2-normalised mean of the partial embeddings. numpy (and univoice_core's constants) only, so it also
runs in the NGC image.

Why BLS and not an ensemble: each utterance yields a different number of partials, and the
python-backend round trip per request costs more than the encoder itself on a CPU. Here the
dynamic batcher hands over many utterances (ragged lengths) at once; their partials go to
`speaker_encoder` as one batch, and are pooled back per utterance.
"""

import numpy as np

from univoice_core import served
from univoice_core.audio import MODEL_RATE

try:  # only inside Triton; tests import the functions below directly
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover
    pb_utils = None

N_FFT = 400
HOP = 160
PARTIAL_FRAMES = 160
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
MIN_SAMPLES = MODEL_RATE // 10  # 0.1 s
MAX_SAMPLES = 90 * MODEL_RATE  # at most 115 partials: one utterance always fits one encoder batch
ENCODER_MAX_BATCH = 128


def _hz_to_mel(hz):
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sample_rate=MODEL_RATE, n_fft=N_FFT, n_mels=served.MEL_CHANNELS):
    """Slaney-style, Slaney-normalised triangular filters (librosa.filters.mel defaults)."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_freqs = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filterbank()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def mel_spectrogram(wav):
    """Power mel spectrogram [frames, 40] (not log), centred frames as librosa.feature.melspectrogram."""
    padded = np.pad(wav.astype(np.float32), N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0])
    )
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return power @ _FILTERS.T


def normalize_volume(wav, target_dbfs=TARGET_DBFS):
    """Raise quiet speech to the target loudness; never attenuate (resemblyzer's increase_only)."""
    gain_db = target_dbfs - 10 * np.log10(np.mean(np.square(wav, dtype=np.float64)))
    return wav if gain_db < 0 else (wav * 10 ** (gain_db / 20)).astype(np.float32)


def partial_slices(n_samples):
    """Frame ranges of the 160-frame partials covering `n_samples` (resemblyzer's rule)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((MODEL_RATE / PARTIALS_PER_SECOND) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last_start = starts[-1] * HOP
    coverage = (n_samples - last_start) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    return [(s, s + PARTIAL_FRAMES) for s in starts]


def validate(wav):
    """A message saying what is wrong with the waveform, or None."""
    if len(wav) < MIN_SAMPLES:
        return f"waveform has {len(wav)} samples; send at least {MIN_SAMPLES} (0.1 s at 16 kHz)"
    if len(wav) > MAX_SAMPLES:
        return f"waveform has {len(wav)} samples; send at most {MAX_SAMPLES} (90 s at 16 kHz)"
    if not np.isfinite(wav).all():
        return "waveform contains NaN or infinite samples"
    if not np.any(wav):
        return "waveform is digital silence (all samples are zero)"
    return None


def partials(wav):
    """Waveform -> mel partials [P, 160, 40]."""
    wav = normalize_volume(wav.astype(np.float32))
    slices = partial_slices(len(wav))
    needed = slices[-1][1] * HOP
    if needed >= len(wav):
        wav = np.pad(wav, (0, needed - len(wav)))
    mel = mel_spectrogram(wav)
    return np.stack([mel[a:b] for a, b in slices])


def pool(partial_embeddings):
    """Utterance embedding: the L2-normalised mean of its partial embeddings."""
    mean = partial_embeddings.mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def encoder_batches(counts):
    """Group utterances (by their partial counts) into runs whose partials fit one encoder batch."""
    batch, total = [], 0
    for index, count in enumerate(counts):
        if batch and total + count > ENCODER_MAX_BATCH:
            yield batch
            batch, total = [], 0
        batch.append(index)
        total += count
    if batch:
        yield batch


class TritonPythonModel:
    def execute(self, requests):
        # One entry per utterance: (request index, row) -> partials; a request may carry several rows.
        responses = [None] * len(requests)
        rows = []
        for r, request in enumerate(requests):
            waveforms = pb_utils.get_input_tensor_by_name(request, "waveform").as_numpy()
            problems = [validate(w) for w in waveforms]
            problem = next((p for p in problems if p), None)
            if problem:
                responses[r] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
                continue
            rows.extend((r, partials(w)) for w in waveforms)
        embeddings = {}
        for group in encoder_batches([len(rows[i][1]) for i in range(len(rows))]):
            mel = np.concatenate([rows[i][1] for i in group])
            result = pb_utils.InferenceRequest(
                model_name=served.SPEAKER_ENCODER, requested_output_names=["embedding"],
                inputs=[pb_utils.Tensor("mel", mel)],
            ).exec()
            if result.has_error():
                for i in group:
                    embeddings[i] = result.error().message()
                continue
            encoded = pb_utils.get_output_tensor_by_name(result, "embedding").as_numpy()
            offset = 0
            for i in group:
                count = len(rows[i][1])
                embeddings[i] = pool(encoded[offset : offset + count])
                offset += count
        per_request = {}
        for i, (r, _) in enumerate(rows):
            per_request.setdefault(r, []).append(embeddings[i])
        for r, values in per_request.items():
            failed = next((v for v in values if isinstance(v, str)), None)
            if failed:
                responses[r] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(f"speaker_encoder failed: {failed}")
                )
            else:
                responses[r] = pb_utils.InferenceResponse([pb_utils.Tensor("embedding", np.stack(values))])
        return responses
