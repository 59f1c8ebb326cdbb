"""resemblyzer's GE2E speaker encoder (Apache-2.0 checkpoint inside the `resemblyzer` package)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from export.contract import Exportable, Inputs
from export.sources import TorchExport
from univoice_core import config, served
from univoice_core.audio import MODEL_RATE

REAL_UTTERANCES = 5


def _checkpoint() -> Path:
    with warnings.catch_warnings():  # webrtcvad (a resemblyzer dependency) imports pkg_resources
        warnings.simplefilter("ignore")
        import resemblyzer

    return Path(resemblyzer.__file__).with_name("pretrained.pt")


class SpeakerEncoderExport(Exportable):
    name = served.SPEAKER_ENCODER
    input_names = ("mel",)
    output_names = ("embedding",)
    dynamic_axes = {"mel": {0: "batch", 1: "time"}, "embedding": {0: "batch"}}
    tolerance = 1e-4

    def __init__(self, data_dir: Path | None = None):
        self.data_dir = Path(data_dir or config.data_dir())
        self._module = None

    def module(self):
        if self._module is None:
            from resemblyzer import VoiceEncoder

            self._module = VoiceEncoder("cpu", verbose=False, weights_fpath=_checkpoint()).eval()
        return self._module

    def random_inputs(self, rng: np.random.Generator) -> Iterable[tuple[str, Inputs]]:
        # Mel power is non-negative with a heavy tail; batch and time both vary.
        for batch, frames in ((2, 160), (1, 160), (7, 160), (32, 160), (3, 57), (1, 400)):
            yield f"random B={batch} T={frames}", (rng.gamma(0.5, 2.0, (batch, frames, 40)).astype(np.float32),)

    def real_inputs(self) -> Iterable[tuple[str, Inputs]]:
        import soundfile
        from resemblyzer import VoiceEncoder, audio

        files = sorted(self.data_dir.glob("*.flac"))[:REAL_UTTERANCES]
        if len(files) < REAL_UTTERANCES:
            raise FileNotFoundError(
                f"the parity gate needs {REAL_UTTERANCES} real utterances in {self.data_dir}; "
                "set UNIVOICE_DATA_DIR to the LibriSpeech folder from ../shared/data"
            )
        for path in files:
            wav, rate = soundfile.read(path, dtype="float32")
            if rate != MODEL_RATE:
                raise ValueError(f"{path} is {rate} Hz; the parity set must be 16 kHz")
            wav = audio.normalize_volume(wav, -30, increase_only=True)
            _, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
            mel = audio.wav_to_mel_spectrogram(wav)
            usable = [s for s in mel_slices if s.stop <= len(mel)]
            yield f"real {path.stem}", (np.stack([mel[s] for s in usable]),)

    def source_files(self) -> list[Path]:
        return [_checkpoint(), Path(__file__)]

    def trt_profile(self):
        return {"mel": ((1, 16, 40), (32, 160, 40), (128, 400, 40))}


def smoke_inputs() -> dict:
    return {"mel": np.random.default_rng(0).gamma(0.5, 2.0, (2, 160, 40)).astype(np.float32)}


def speaker_encoder_source() -> TorchExport:
    return TorchExport(SpeakerEncoderExport(), smoke_inputs)
