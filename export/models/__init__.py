"""Every model source we serve, by Triton model name."""

from __future__ import annotations

from export.repository import ModelSource


def sources() -> dict[str, ModelSource]:
    from export.models.speaker_encoder import speaker_encoder_source
    from export.models.synthesizer import synthesizer_source
    from export.models.translator import translator_source
    from export.models.voice_converter import voice_converter_source

    return {
        source.name: source
        for source in (speaker_encoder_source(), synthesizer_source(), voice_converter_source(), translator_source())
    }


def source(name: str) -> ModelSource:
    available = sources()
    if name not in available:
        raise KeyError(f"{name!r} has no weights to export; models with weights: {', '.join(sorted(available))}")
    return available[name]
