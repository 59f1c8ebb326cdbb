"""voice_clone: phoneme ids + a profile's speaker embedding and voice statistics -> speech in that voice.

BLS over three steps, per request (one clause):

1. `synthesizer` (Kokoro) reads the phonemes with the preset nearest to the speaker embedding, the
   converter's starting point (the table of presets ships with the `voice_converter` version);
2. WORLD analysis at 16 kHz (F0, coded spectral envelope, aperiodicity; `univoice_core.voice_features`);
3. `voice_converter` (the trained ONNX model) maps the preset's envelope to the speaker's. The envelope
   is cut into fixed-size chunks with context on both sides (wider than the converter's receptive
   field, so the stitched result equals converting the whole clause), which lets Triton's dynamic
   batcher merge the chunks of concurrent clauses into one call;
4. F0 moves to the speaker's log-F0 mean/std, WORLD resynthesizes, and the result is resampled to
   24 kHz at the loudness Kokoro produced.

The speech is band-limited to 8 kHz: the target envelope is learnt from 16 kHz enrolment audio.
Besides numpy it imports only `univoice_core` (the Triton image copies that package alone).
"""

from pathlib import Path

import numpy as np
import soxr

from univoice_core import kokoro, served
from univoice_core import voice_features as vf
from univoice_core.audio import MODEL_RATE, OUTPUT_RATE, to_model_rate
from univoice_core.presets import PRESET_TABLE, PresetTable, load_styles

try:  # only inside Triton; tests import the functions below directly
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover
    pb_utils = None

CHUNK_FRAMES = 128  # converted frames per chunk (0.64 s)
CONTEXT_FRAMES = 16  # on each side; the converter sees 12 at most


def chunk(envelope, core=CHUNK_FRAMES, context=CONTEXT_FRAMES):
    """[T, D] -> [N, core + 2 * context, D]: overlapping windows over the edge-padded envelope."""
    frames = len(envelope)
    count = max(1, -(-frames // core))
    padded = np.pad(envelope, ((context, count * core - frames + context), (0, 0)), mode="edge")
    return np.stack([padded[i * core : i * core + core + 2 * context] for i in range(count)])


def unchunk(chunks, frames, core=CHUNK_FRAMES, context=CONTEXT_FRAMES):
    """Inverse of `chunk`: the centre of every window, concatenated and cut to `frames`."""
    return np.concatenate([c[context : context + core] for c in chunks])[:frames]


def validate(tokens, embedding, statistics, speed):
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        return f"tokens must have shape [1, T], got {list(tokens.shape)}"
    if not 3 <= tokens.shape[1] <= kokoro.MAX_TOKENS + 2:
        return (f"tokens must hold 1..{kokoro.MAX_TOKENS} phoneme ids between two 0 pads, "
                f"got {tokens.shape[1]} values")
    if embedding.shape != (served.EMBEDDING_DIM,) or not np.isfinite(embedding).all() or not np.any(embedding):
        return f"embedding must be {served.EMBEDDING_DIM} finite values, not all zero (a voice_embedding output)"
    if statistics.shape != (vf.STATISTICS_DIM,) or not np.isfinite(statistics).all():
        return f"statistics must be {vf.STATISTICS_DIM} finite values (a voice profile's statistics)"
    if np.any(statistics[1:2] <= 0) or np.any(statistics[vf.ENVELOPE_STDS] <= 0):
        return "statistics hold non-positive standard deviations: re-enrol the voice profile"
    if speed.shape != (1,) or not kokoro.MIN_SPEED <= float(speed[0]) <= kokoro.MAX_SPEED:
        return f"speed must be one value in {kokoro.MIN_SPEED}..{kokoro.MAX_SPEED}"
    return None


def match_loudness(audio, reference):
    """Scale `audio` to the RMS of `reference` (what Kokoro produced), keeping it within [-1, 1]."""
    rms = float(np.sqrt(np.mean(np.square(audio)))) if len(audio) else 0.0
    if rms < 1e-6:
        return audio
    gain = float(np.sqrt(np.mean(np.square(reference)))) / rms
    peak = float(np.max(np.abs(audio))) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (audio * gain).astype(np.float32)


class TritonPythonModel:
    def initialize(self, args):
        repository = Path(args["model_repository"]).parent
        self.table = PresetTable.load(served.latest_version(repository / served.VOICE_CONVERTER) / PRESET_TABLE)
        styles = load_styles()
        self.styles = [styles[name] for name in self.table.names]

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        def tensor(name):
            return pb_utils.get_input_tensor_by_name(request, name).as_numpy()

        tokens, embedding, statistics, speed = tensor("tokens"), tensor("embedding"), tensor("statistics"), tensor("speed")
        embedding, statistics = embedding.reshape(-1), statistics.reshape(-1)
        problem = validate(tokens, embedding, statistics, speed)
        if problem:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
        preset = self.table.nearest(embedding)
        ids = tokens[0, 1:-1]  # the client's ids, without the pads the request adds again
        style = self.styles[preset][kokoro.style_row(len(ids))]
        spoken = self._call(served.SYNTHESIZER, kokoro.request(ids, speed, style), "audio")
        if isinstance(spoken, str):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"synthesizer failed: {spoken}"))
        spoken = spoken.reshape(-1)
        source_statistics = self.table.statistics[preset]
        features = vf.analyse(to_model_rate(spoken))
        windows = chunk(features.envelope.astype(np.float32))
        count = len(windows)
        converted = self._call(served.VOICE_CONVERTER, {
            "envelope": windows,
            "source_statistics": np.repeat(source_statistics[None], count, axis=0),
            "target_statistics": np.repeat(statistics[None].astype(np.float32), count, axis=0),
            "embedding": np.repeat(embedding[None].astype(np.float32), count, axis=0),
        }, "converted")
        if isinstance(converted, str):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"voice_converter failed: {converted}"))
        envelope = unchunk(converted, len(features.envelope))
        f0 = vf.map_f0(features.f0, source_statistics, statistics)
        speech = vf.synthesise(f0, envelope, features.aperiodicity)
        audio = match_loudness(soxr.resample(speech, MODEL_RATE, OUTPUT_RATE), spoken)
        return pb_utils.InferenceResponse([pb_utils.Tensor("audio", audio.astype(np.float32))])

    @staticmethod
    def _call(model, inputs, output):
        result = pb_utils.InferenceRequest(
            model_name=model, requested_output_names=[output],
            inputs=[pb_utils.Tensor(name, value) for name, value in inputs.items()],
        ).exec()
        if result.has_error():
            return result.error().message()
        return pb_utils.get_output_tensor_by_name(result, output).as_numpy()
