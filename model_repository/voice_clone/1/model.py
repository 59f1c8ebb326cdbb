"""voice_clone: phoneme ids + a profile's speaker embedding and voice statistics -> speech in that voice.

BLS over three steps, per request (one clause):

1. `synthesizer` (Kokoro) reads the phonemes with the preset nearest to the speaker embedding, the
   converter's starting point (the table of presets ships with the `voice_converter` version);
2. WORLD analysis at 16 kHz (F0, coded spectral envelope, aperiodicity; `gateway.voice_features`);
3. `voice_converter` (the trained ONNX model) maps the preset's envelope to the speaker's. The envelope
   is cut into fixed-size chunks with context on both sides (wider than the converter's receptive
   field, so the stitched result equals converting the whole clause), which lets Triton's dynamic
   batcher merge the chunks of concurrent clauses into one call;
4. F0 moves to the speaker's log-F0 mean/std, WORLD resynthesizes, and the result is resampled to
   24 kHz at the loudness Kokoro produced.

The speech is band-limited to 8 kHz: the target envelope is learnt from 16 kHz enrolment audio.
"""

from pathlib import Path

import numpy as np

try:  # only inside Triton; tests import the functions below directly
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover
    pb_utils = None

OUTPUT_RATE = 24_000
EMBEDDING_DIM = 256
CHUNK_FRAMES = 128  # converted frames per chunk (0.64 s)
CONTEXT_FRAMES = 16  # on each side; the converter sees 12 at most
MAX_TOKENS = 510  # Kokoro's context


def chunk(envelope, core=CHUNK_FRAMES, context=CONTEXT_FRAMES):
    """[T, D] -> [N, core + 2 * context, D]: overlapping windows over the edge-padded envelope."""
    frames = len(envelope)
    count = max(1, -(-frames // core))
    padded = np.pad(envelope, ((context, count * core - frames + context), (0, 0)), mode="edge")
    return np.stack([padded[i * core : i * core + core + 2 * context] for i in range(count)])


def unchunk(chunks, frames, core=CHUNK_FRAMES, context=CONTEXT_FRAMES):
    """Inverse of `chunk`: the centre of every window, concatenated and cut to `frames`."""
    return np.concatenate([c[context : context + core] for c in chunks])[:frames]


def style_row(token_count):
    """Kokoro's style row for a request of `token_count` ids including the two 0 pads."""
    return token_count - 3


def validate(tokens, embedding, statistics, speed, statistics_dim):
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        return f"tokens must have shape [1, T], got {list(tokens.shape)}"
    if not 3 <= tokens.shape[1] <= MAX_TOKENS + 2:
        return f"tokens must hold 1..{MAX_TOKENS} phoneme ids between two 0 pads, got {tokens.shape[1]} values"
    if embedding.shape != (EMBEDDING_DIM,) or not np.isfinite(embedding).all() or not np.any(embedding):
        return f"embedding must be {EMBEDDING_DIM} finite values, not all zero (a voice_embedding output)"
    if statistics.shape != (statistics_dim,) or not np.isfinite(statistics).all():
        return f"statistics must be {statistics_dim} finite values (a voice profile's statistics)"
    if np.any(statistics[1:2] <= 0) or np.any(statistics[2 + (statistics_dim - 2) // 2 :] <= 0):
        return "statistics hold non-positive standard deviations: re-enrol the voice profile"
    if speed.shape != (1,) or not 0.5 <= float(speed[0]) <= 2.0:
        return "speed must be one value in 0.5..2.0"
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


def latest_version(model_dir):
    versions = [int(p.name) for p in Path(model_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no version of {Path(model_dir).name} in {model_dir}: run `univoice models build`")
    return Path(model_dir) / str(max(versions))


class TritonPythonModel:
    def initialize(self, args):
        import soxr

        from gateway import voice_features
        from gateway.pipeline.voices import load_presets

        self.vf, self.soxr = voice_features, soxr
        repository = Path(args["model_repository"]).parent
        with np.load(latest_version(repository / "voice_converter") / "presets.npz") as table:
            self.preset_names = [str(n) for n in table["names"]]
            self.preset_embeddings = table["embeddings"].astype(np.float32)
            self.preset_statistics = table["statistics"].astype(np.float32)
        styles = load_presets()
        self.styles = [styles[name].styles for name in self.preset_names]

    def execute(self, requests):
        return [self._one(request) for request in requests]

    def _one(self, request):
        def tensor(name):
            return pb_utils.get_input_tensor_by_name(request, name).as_numpy()

        tokens, embedding, statistics, speed = tensor("tokens"), tensor("embedding"), tensor("statistics"), tensor("speed")
        embedding, statistics = embedding.reshape(-1), statistics.reshape(-1)
        problem = validate(tokens, embedding, statistics, speed, self.vf.STATISTICS_DIM)
        if problem:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
        preset = int(np.argmax(self.preset_embeddings @ (embedding / np.linalg.norm(embedding))))
        style = self.styles[preset][style_row(tokens.shape[1])][None, :].astype(np.float32)
        spoken = self._call("synthesizer", {"tokens": tokens.astype(np.int64), "style": style,
                                             "speed": speed.astype(np.float32)}, "audio")
        if isinstance(spoken, str):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"synthesizer failed: {spoken}"))
        spoken = spoken.reshape(-1)
        source_statistics = self.preset_statistics[preset]
        features = self.vf.analyse(self.soxr.resample(spoken, OUTPUT_RATE, self.vf.SAMPLE_RATE))
        windows = chunk(features.envelope.astype(np.float32))
        count = len(windows)
        converted = self._call("voice_converter", {
            "envelope": windows,
            "source_statistics": np.repeat(source_statistics[None], count, axis=0),
            "target_statistics": np.repeat(statistics[None].astype(np.float32), count, axis=0),
            "embedding": np.repeat(embedding[None].astype(np.float32), count, axis=0),
        }, "converted")
        if isinstance(converted, str):
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"voice_converter failed: {converted}"))
        envelope = unchunk(converted, len(features.envelope))
        f0 = self.vf.map_f0(features.f0, source_statistics, statistics)
        speech = self.vf.synthesise(f0, envelope, features.aperiodicity)
        audio = match_loudness(self.soxr.resample(speech, self.vf.SAMPLE_RATE, OUTPUT_RATE), spoken)
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
