"""The core's small shared rules: presets, atomic writes, LibriSpeech speakers, Whisper's decoding."""

from __future__ import annotations

import numpy as np
import pytest

from univoice_core import presets, whisper
from univoice_core.atomic import atomic_write
from univoice_core.librispeech import speaker_genders


def test_the_nearest_preset_is_chosen_by_direction_not_length():
    table = np.eye(4, dtype=np.float32)[:3] * np.array([[1.0], [7.0], [0.2]], np.float32)
    assert presets.nearest(np.array([0.1, 0.2, 3.0, 0.0]), table) == 2
    np.testing.assert_allclose(presets.cosine_scores(np.array([0.0, 5.0, 0.0, 0.0]), table), [0.0, 1.0, 0.0])


def test_a_preset_table_survives_saving(tmp_path):
    table = presets.PresetTable(["a", "b"], presets.unit(np.array([[3.0, 4.0], [1.0, 0.0]])),
                                np.arange(4, dtype=np.float32).reshape(2, 2))
    table.save(tmp_path / presets.PRESET_TABLE)
    again = presets.PresetTable.load(tmp_path / presets.PRESET_TABLE)
    assert again.names == ["a", "b"] and again.nearest(np.array([0.0, 2.0])) == 0
    np.testing.assert_array_equal(again.statistics, table.statistics)


def test_an_atomic_write_replaces_the_file_or_leaves_it_alone(tmp_path):
    target = tmp_path / "deeper" / "cache.json"
    atomic_write(target, b"first")
    atomic_write(target, lambda file: file.write(b"second"))
    assert target.read_bytes() == b"second"

    def fail(file):
        file.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_bytes() == b"second" and [p.name for p in target.parent.iterdir()] == ["cache.json"]


def test_an_archive_written_atomically_loads(tmp_path):
    atomic_write(tmp_path / "example.npz", lambda file: np.savez(file, envelope=np.ones((3, 2))))
    with np.load(tmp_path / "example.npz") as data:
        assert data["envelope"].shape == (3, 2)


def test_speakers_txt_gives_each_readers_gender(tmp_path):
    (tmp_path / "SPEAKERS.TXT").write_text(
        "; ID  |SEX| SUBSET           |MINUTES| NAME\n;\n103  | F | train-clean-100  | 25.19 | Cavalier\n"
        "1040 | M | train-clean-100  | 25.05 | John Garvin\n\n")
    assert speaker_genders(tmp_path) == {"103": "F", "1040": "M"}


def test_whisper_decodes_with_timestamp_tokens_the_way_it_was_measured():
    """Text-only decoding dropped most of the words of 2 of 20 utterances (univoice_core/whisper.py)."""
    assert whisper.DECODING["without_timestamps"] is False
    assert whisper.DECODING["beam_size"] == 1 and whisper.DECODING["temperature"] == 0.0
