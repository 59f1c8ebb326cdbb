"""The LibriSpeech excerpt the tests, the parity gates, training and the benchmarks read (CC BY 4.0)."""

from __future__ import annotations

from pathlib import Path


def speaker_genders(data_dir: Path) -> dict[str, str]:
    """Reader id -> "F" or "M", from the corpus' SPEAKERS.TXT (";" starts a comment; fields are "|"-separated:
    id, sex, subset, minutes, name)."""
    genders = {}
    for line in (Path(data_dir) / "SPEAKERS.TXT").read_text().splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        reader, sex, *_ = (field.strip() for field in line.split("|"))
        genders[reader] = sex
    return genders
