"""The trained voice converter (`make train-voice`), exported through the contract like every model.

Export depends on training (it packages the module and checkpoint training made), never the other way.
Besides `model.onnx`, a version carries `presets.npz` (univoice_core.presets.PRESET_TABLE): the preset
table the converter was trained against (names, speaker embeddings of each preset, their voice
statistics). `voice_clone` reads it to pick the starting preset and to normalise its envelope, so a
version's weights and table always match.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from export.contract import Exportable, Inputs
from export.sources import TorchExport
from univoice_core import config, served
from univoice_core import voice_features as vf
from univoice_core.audio import MODEL_RATE, read_16k
from univoice_core.presets import PRESET_TABLE, PresetTable


class VoiceConverterExport(Exportable):
    name = served.VOICE_CONVERTER
    input_names = ("envelope", "source_statistics", "target_statistics", "embedding")
    output_names = ("converted",)
    dynamic_axes = {
        "envelope": {0: "batch", 1: "time"}, "source_statistics": {0: "batch"},
        "target_statistics": {0: "batch"}, "embedding": {0: "batch"}, "converted": {0: "batch", 1: "time"},
    }
    tolerance = 1e-3  # envelope units are nats of log power: 1e-3 is far below audible

    def __init__(self, checkpoint: Path | None = None, data_dir: Path | None = None):
        self.checkpoint = Path(checkpoint or config.voice_converter_checkpoint())
        self.data_dir = Path(data_dir or config.data_dir())
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            if not self.checkpoint.exists():
                raise FileNotFoundError(
                    f"no voice converter checkpoint at {self.checkpoint}: train one with `make train-voice`"
                )
            from training.voice_converter.model import load

            self._loaded = load(self.checkpoint)
        return self._loaded

    def module(self):
        return self._load()[0]

    def presets(self) -> dict:
        return self._load()[1]["presets"]

    def random_inputs(self, rng: np.random.Generator) -> Iterable[tuple[str, Inputs]]:
        presets = self.presets()
        for batch, frames in ((4, 160), (1, 160), (7, 33), (64, 160), (2, 400)):
            envelope = rng.normal(0.0, 1.0, (batch, frames, vf.ENVELOPE_DIM)).astype(np.float32)
            source = presets["statistics"][rng.integers(0, len(presets["names"]), batch)].astype(np.float32)
            target = (source + rng.normal(0.0, 0.1, source.shape)).astype(np.float32)
            target[:, vf.ENVELOPE_STDS] = np.abs(target[:, vf.ENVELOPE_STDS]) + 0.05  # stds stay positive
            embedding = rng.normal(0.0, 1.0, (batch, served.EMBEDDING_DIM)).astype(np.float32)
            embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
            envelope = envelope * source[:, None, vf.ENVELOPE_STDS] + source[:, None, vf.ENVELOPE_MEANS]
            yield f"random B={batch} T={frames}", (envelope, source, target, embedding)

    def real_inputs(self) -> Iterable[tuple[str, Inputs]]:
        """Real speakers' envelopes and statistics (no synthesis needed: the gate checks arithmetic)."""
        presets = self.presets()
        files = sorted(self.data_dir.glob("*.flac"))[:2]
        if len(files) < 2:
            raise FileNotFoundError(f"the parity gate needs 2 real utterances in {self.data_dir}")
        for index, path in enumerate(files):
            features = vf.analyse(read_16k(path)[: 4 * MODEL_RATE], with_aperiodicity=False)
            statistics = vf.statistics(features)
            source = presets["statistics"][index % len(presets["names"])][None].astype(np.float32)
            embedding = np.zeros((1, served.EMBEDDING_DIM), np.float32)
            embedding[0, index] = 1.0
            yield f"real {path.stem}", (features.envelope[None].astype(np.float32), source, statistics[None], embedding)

    def source_files(self) -> list[Path]:
        from training.voice_converter import model

        return [self.checkpoint, Path(model.__file__), Path(__file__)]

    def trt_profile(self):
        statistics = tuple((batch, vf.STATISTICS_DIM) for batch in (1, 16, 64))
        return {"envelope": ((1, 16, vf.ENVELOPE_DIM), (16, 160, vf.ENVELOPE_DIM), (64, 400, vf.ENVELOPE_DIM)),
                "source_statistics": statistics, "target_statistics": statistics,
                "embedding": tuple((batch, served.EMBEDDING_DIM) for batch in (1, 16, 64))}

    def write_extras(self, directory: Path) -> None:
        presets = self.presets()
        table = PresetTable(list(presets["names"]), presets["embeddings"], presets["statistics"])
        table.save(directory / PRESET_TABLE)


def smoke_inputs() -> dict:
    _, inputs = next(iter(VoiceConverterExport().random_inputs(np.random.default_rng(0))))
    return dict(zip(VoiceConverterExport.input_names, inputs))


def voice_converter_source() -> TorchExport:
    return TorchExport(VoiceConverterExport(), smoke_inputs)
