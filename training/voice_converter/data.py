"""Parallel data for the voice converter, made without recording anything.

For each speaker of ../shared/data (one 10-20 s LibriSpeech utterance each) the recording is cut in two:
the **first half** is the enrolment (speaker embedding, profile statistics, nearest preset), exactly as
a user enrols; the **second half** is what the converter must learn to sound like. Whisper transcribes
the second half, Kokoro reads the transcript with the nearest preset, and DTW on speaker-normalised
envelopes aligns the synthetic frames to the real ones. Examples are cached per speaker under
`.build/voice_converter/examples/` (a rerun only computes what is missing).

Speakers are split by id into train / validation / test (stratified by gender, fixed seed); nothing
from a test speaker is ever seen by training (`benchmarks/voice_similarity.py` evaluates on them).
"""

from __future__ import annotations

import random
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from univoice_core import kokoro, whisper
from univoice_core import voice_features as vf
from univoice_core.atomic import atomic_write
from univoice_core.audio import MODEL_RATE, read_16k, to_model_rate
from univoice_core.librispeech import speaker_genders
from univoice_core.presets import PASSAGE, PresetTable, load_styles, unit
from univoice_core.text import split_clauses

# Bump when an example's content changes: cached examples are then rebuilt. 3: transcripts decoded with the
# gateway's Whisper settings (univoice_core.whisper.DECODING: timestamp tokens on), not text-only.
EXAMPLE_FORMAT = 3
SPLIT_SEED = 20261129
TEST_PER_GENDER = 15
VALIDATION_PER_GENDER = 6
# Both halves must hold the 3 s of speech the gateway asks of an enrolment: 28 of the 251 recordings are
# shorter and take no part.
MIN_RECORDING_S = 6.0


@dataclass(frozen=True)
class Speaker:
    id: str
    gender: str  # "F" | "M" (SPEAKERS.TXT)
    path: Path


def speakers(data_dir: Path) -> list[Speaker]:
    """Every speaker with a recording of at least MIN_RECORDING_S in `data_dir`, sorted by id."""
    genders = speaker_genders(data_dir)
    found = []
    for path in sorted(data_dir.glob("*.flac")):
        speaker_id = path.name.split("-")[0]
        if speaker_id in genders and soundfile.info(path).duration >= MIN_RECORDING_S:
            found.append(Speaker(speaker_id, genders[speaker_id], path))
    if not found:
        raise FileNotFoundError(f"no LibriSpeech recordings in {data_dir}: set UNIVOICE_DATA_DIR to ../shared/data/...")
    return sorted(found, key=lambda s: int(s.id))


def split(all_speakers: list[Speaker]) -> dict[str, list[Speaker]]:
    """train / validation / test by speaker id: per gender, a seeded shuffle of the ids decides."""
    parts: dict[str, list[Speaker]] = {"train": [], "validation": [], "test": []}
    for gender in ("F", "M"):
        group = [s for s in all_speakers if s.gender == gender]
        random.Random(f"{SPLIT_SEED}-{gender}").shuffle(group)
        parts["test"] += group[:TEST_PER_GENDER]
        parts["validation"] += group[TEST_PER_GENDER : TEST_PER_GENDER + VALIDATION_PER_GENDER]
        parts["train"] += group[TEST_PER_GENDER + VALIDATION_PER_GENDER :]
    return {name: sorted(group, key=lambda s: int(s.id)) for name, group in parts.items()}


def halves(speaker: Speaker) -> tuple[np.ndarray, np.ndarray]:
    """(enrolment, held-out): the first and second half of the speaker's recording, 16 kHz float32."""
    samples = read_16k(speaker.path)
    middle = len(samples) // 2
    return samples[:middle], samples[middle:]


# --- models used to make data, loaded once per worker process ----------------------------------------


class Toolkit:
    """Kokoro (ONNX, in-process), espeak-ng, Whisper base and the resemblyzer encoder, one thread each."""

    def __init__(self, synthesizer_onnx: Path, whisper_dir: Path, threads: int = 1):
        import onnxruntime as ort
        from faster_whisper import WhisperModel

        from univoice_core.phonemes import Phonemizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.kokoro = ort.InferenceSession(str(synthesizer_onnx), options, providers=["CPUExecutionProvider"])
        self.phonemizer = Phonemizer()
        self.whisper = WhisperModel(str(whisper_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self.threads = threads
        self._encoder = None

    def embed(self, samples16k: np.ndarray) -> np.ndarray:
        """resemblyzer's utterance embedding: what Triton's `voice_embedding` returns (parity 3e-7)."""
        if self._encoder is None:
            import torch

            torch.set_num_threads(self.threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder

            self._encoder = VoiceEncoder("cpu", verbose=False)
        from resemblyzer import preprocess_wav

        return self._encoder.embed_utterance(preprocess_wav(samples16k, MODEL_RATE)).astype(np.float32)

    def transcribe(self, samples16k: np.ndarray) -> str:
        return whisper.transcribe(self.whisper, samples16k, "en")

    def synthesize(self, text: str, styles: np.ndarray, speed: float = 1.0) -> np.ndarray:
        """Kokoro reads `text` clause by clause (as the gateway does) -> 16 kHz float32."""
        pieces = []
        for clause in split_clauses(text, 160, 12):
            tokens = self.phonemizer.tokens(clause, "en")
            if len(tokens) == 0:
                continue
            inputs = kokoro.request(tokens, speed, styles[kokoro.style_row(len(tokens))])
            pieces.append(np.asarray(self.kokoro.run(None, inputs)[0], dtype=np.float32).ravel())
        if not pieces:
            raise ValueError(f"nothing to pronounce in {text!r}")
        return to_model_rate(np.concatenate(pieces))


def preset_table(toolkit: Toolkit, presets: dict[str, np.ndarray]) -> PresetTable:
    """The PresetTable of `presets` (name -> style table): each reads PASSAGE, as the gateway's presets do."""
    names = sorted(presets)
    embeddings, statistics = [], []
    for name in names:
        audio = toolkit.synthesize(PASSAGE, presets[name])
        embeddings.append(unit(toolkit.embed(audio)))
        statistics.append(vf.voice_statistics(audio, f0_method="dio"))  # Kokoro's speech: as voice_clone analyses it
    return PresetTable(names, np.stack(embeddings).astype(np.float32), np.stack(statistics).astype(np.float32))


# --- one speaker's example ----------------------------------------------------------------------------


def enrolment(toolkit: Toolkit, samples16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a profile holds: the speaker embedding and the voice statistics."""
    return toolkit.embed(samples16k), vf.voice_statistics(samples16k)


def align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each source frame, the index of its target frame: DTW on per-utterance normalised envelopes
    (c0, loudness, left out), so phonetic content rather than the voice decides the path."""

    def normalised(envelope):
        body = envelope[:, 1:]
        return (body - body.mean(axis=0)) / (body.std(axis=0) + 1e-6)

    a, b = normalised(source), normalised(target)
    cost = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0))
    match = np.zeros(len(source), dtype=np.int64)
    for i, j in dtw_path(cost):  # in order: where a source frame matches several target frames, the last wins
        match[i] = j
    return match


def dtw_path(cost: np.ndarray) -> list[tuple[int, int]]:
    """The minimum-cost monotonic path from (0, 0) to the last cell (steps: diagonal, right, down; ties in
    that order, as librosa.sequence.dtw). numpy over anti-diagonals: no JIT to compile on a fresh machine."""
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    total[0, 0] = 0.0
    for diagonal in range(2, rows + cols + 1):  # 1-based i + j
        i = np.arange(max(1, diagonal - cols), min(rows, diagonal - 1) + 1)
        j = diagonal - i
        total[i, j] = cost[i - 1, j - 1] + np.minimum(np.minimum(total[i - 1, j - 1], total[i, j - 1]), total[i - 1, j])
    i, j, path = rows, cols, [(rows - 1, cols - 1)]
    while (i, j) != (1, 1):
        step = int(np.argmin((total[i - 1, j - 1], total[i, j - 1], total[i - 1, j])))
        i, j = ((i - 1, j - 1), (i, j - 1), (i - 1, j))[step]
        path.append((i - 1, j - 1))
    return path[::-1]


def build_example(toolkit: Toolkit, speaker: Speaker, presets: dict[str, np.ndarray], table: PresetTable) -> dict:
    enrol, held_out = halves(speaker)
    embedding, statistics = enrolment(toolkit, enrol)
    preset = table.nearest(embedding)
    text = toolkit.transcribe(held_out)
    synthetic = toolkit.synthesize(text, presets[table.names[preset]])
    source = vf.analyse(synthetic, with_aperiodicity=False)
    target = vf.analyse(held_out, with_aperiodicity=False, f0_method="harvest")  # a real recording
    match = align(source.envelope, target.envelope)
    mask = vf.speech_frames(source.envelope) & vf.speech_frames(target.envelope)[match]
    return {
        "format": EXAMPLE_FORMAT,
        "speaker": speaker.id,
        "gender": speaker.gender,
        "text": text,
        "embedding": embedding,
        "statistics": statistics,
        "preset": preset,
        "source": source.envelope.astype(np.float32),
        "target": target.envelope[match].astype(np.float32),
        "mask": mask,
    }


_worker: tuple[Toolkit, dict, PresetTable] | None = None


def _init_worker(synthesizer_onnx: Path, whisper_dir: Path, table_path: Path) -> None:
    global _worker
    _worker = (Toolkit(synthesizer_onnx, whisper_dir), load_styles(), PresetTable.load(table_path))


def _build_cached(speaker: Speaker, cache_dir: Path) -> Path:
    path = cache_dir / f"{speaker.id}.npz"
    toolkit, presets, table = _worker
    example = build_example(toolkit, speaker, presets, table)
    atomic_write(path, lambda file: np.savez(file, **example))
    return path


def load_example(path: Path) -> dict | None:
    try:
        with np.load(path) as data:
            example = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):
        return None
    return example if int(example.get("format", -1)) == EXAMPLE_FORMAT else None


def examples(chosen: list[Speaker], cache_dir: Path, synthesizer_onnx: Path, whisper_dir: Path, table_path: Path,
             workers: int, progress) -> list[dict]:
    """The examples of `chosen` speakers, building the missing ones in `workers` processes."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    missing = [s for s in chosen if load_example(cache_dir / f"{s.id}.npz") is None]
    if missing:
        with ProcessPoolExecutor(workers, initializer=_init_worker,
                                 initargs=(synthesizer_onnx, whisper_dir, table_path)) as pool:
            futures = [pool.submit(_build_cached, s, cache_dir) for s in missing]
            for future in progress(futures, desc="parallel data (Whisper -> Kokoro -> DTW)", unit="speaker"):
                future.result()
    return [load_example(cache_dir / f"{s.id}.npz") for s in chosen]
