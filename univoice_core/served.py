"""The models Triton serves: their names, the order they load in, the speaker-encoder sizes both ends of a
call must agree on (Kokoro's are in `kokoro`, the voice features' in `voice_features`), and where a model's
newest version is on disk."""

from __future__ import annotations

from pathlib import Path

SPEAKER_ENCODER = "speaker_encoder"
VOICE_EMBEDDING = "voice_embedding"
SYNTHESIZER = "synthesizer"
VOICE_CONVERTER = "voice_converter"
VOICE_CLONE = "voice_clone"
TRANSLATOR = "translator"
# Load order: a BLS model after the models it calls (voice_embedding -> speaker_encoder; voice_clone ->
# synthesizer + voice_converter).
SERVED_MODELS: tuple[str, ...] = (
    SPEAKER_ENCODER, VOICE_EMBEDDING, SYNTHESIZER, VOICE_CONVERTER, VOICE_CLONE, TRANSLATOR,
)

MEL_CHANNELS = 40  # the speaker encoder's input bands (resemblyzer)
EMBEDDING_DIM = 256  # a speaker embedding (resemblyzer's d-vector): voice_embedding's output


def latest_version(model_dir: Path) -> Path:
    """The newest numbered version directory of a model (the one Triton serves)."""
    model_dir = Path(model_dir)
    found = model_dir.iterdir() if model_dir.is_dir() else ()
    versions = [int(p.name) for p in found if p.is_dir() and p.name.isdigit()]
    if not versions:
        raise FileNotFoundError(f"no version of {model_dir.name} in {model_dir}: run `make models`")
    return model_dir / str(max(versions))
