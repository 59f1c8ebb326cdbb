"""`make eval-voice --quick` end to end on the served models: the pipeline works and reports what it
promises (it does not check the quality figures; those are in training/README.md)."""

from __future__ import annotations

import json

import soundfile

from benchmarks import voice_similarity
from training.voice_converter import data


def test_quick_evaluation_reports_every_voice_on_test_speakers_only(triton, tmp_path, data_dir):
    result = voice_similarity.main(["--quick", "--grpc-url", triton.server.grpc_url, "--out", str(tmp_path)])

    saved = json.loads((tmp_path / "voice_clone.json").read_text())
    assert saved["speakers"] == result["speakers"] == 4
    test_ids = {s.id for s in data.split(data.speakers(data_dir))["test"]}
    assert {row["speaker"] for row in saved["per_speaker"]} <= test_ids
    for row in saved["per_speaker"]:
        for variant in voice_similarity.VARIANTS:
            assert -1.0 <= row[variant]["judge"] <= 1.0 and -1.0 <= row[variant]["resemblyzer"] <= 1.0
            assert 0.0 <= row[variant]["wer"] <= 1.0
    # The real second half of a recording is recognised as its own speaker by the judge (sanity of the judge).
    assert saved["reference"]["same_speaker_judge"] > saved["reference"]["same_gender_stranger_judge"]
    assert set(saved["targets"]) == {"clone_vs_nearest_judge", "clone_vs_default_judge", "identification_vs_chance",
                                     "clone_wer_vs_nearest_preset", "clone_wer"}
    assert (tmp_path / "voice_clone.png").stat().st_size > 10_000
    clones = sorted((tmp_path / "voice_clone_samples").glob("*_clone.wav"))
    assert len(clones) == 4
    audio, rate = soundfile.read(clones[0])
    assert rate == 24_000 and len(audio) > rate // 2
