"""Numbered model versions on disk: build one into a staging directory, gate it, then make it visible.

A version directory holds everything Triton needs for that version (``model.onnx``, the python-backend
runner as ``model.py``, ``model.plan`` when TensorRT built one) and ``version.json``: the source
fingerprint, when and how it was built, and the parity figures that let it in. A version only appears
under its number after its gate passed, so a refused export never touches what is being served.
Retired versions move to ``.retired/`` (outside Triton's view), never deleted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from export.specs import SPECS, ModelSpec

MANIFEST = "version.json"
# The python-backend runner copied as model.py into every version of a model of that kind.
RUNNERS = {"onnx": Path(__file__).with_name("onnx_backend.py"), "gguf": Path(__file__).with_name("llm_backend.py")}


class ModelSource(ABC):
    """Where one served model's weights come from (a PyTorch export, a prebuilt ONNX file, ...)."""

    name: str

    @abstractmethod
    def fingerprint(self) -> str:
        """Changes whenever the built files would change; equal fingerprints make a rebuild a no-op."""

    @abstractmethod
    def build(self, directory: Path, progress) -> dict:
        """Write the model files into `directory`, run its gate, return the gate's figures (raise to refuse)."""

    @abstractmethod
    def smoke_inputs(self) -> dict:
        """A small valid request (input name -> numpy array) used to smoke-test a freshly loaded version."""


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    path: Path
    manifest: dict


class ModelRepository:
    def __init__(self, root: Path):
        self.root = Path(root)

    def versions(self, name: str) -> list[int]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())

    def latest(self, name: str) -> int | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def info(self, name: str, version: int) -> VersionInfo:
        path = self.root / name / str(version)
        manifest_path = path / MANIFEST
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        return VersionInfo(name, version, path, manifest)

    def is_current(self, source: ModelSource) -> bool:
        """True when the latest version was built from exactly this source and its files are intact."""
        latest = self.latest(source.name)
        if latest is None:
            return False
        info = self.info(source.name, latest)
        files = info.manifest.get("files", {})
        return (
            info.manifest.get("fingerprint") == self.fingerprint(source)
            and bool(files)
            and all((info.path / f).exists() and (info.path / f).stat().st_size == size for f, size in files.items())
        )

    @staticmethod
    def fingerprint(source: ModelSource) -> str:
        """The source's fingerprint, plus the python-backend runner that ships inside its versions."""
        runner_path = RUNNERS.get(SPECS[source.name].kind)
        if runner_path is None:
            return source.fingerprint()
        runner = hashlib.sha256(runner_path.read_bytes()).hexdigest()
        return hashlib.sha256(f"{source.fingerprint()}:{runner}".encode()).hexdigest()

    def add_version(self, source: ModelSource, progress=None) -> VersionInfo:
        """Build, gate and publish-on-disk version N+1. On any failure nothing under <model>/ changes."""
        spec: ModelSpec = SPECS[source.name]
        staging = self.root / ".staging" / f"{source.name}-{time.time_ns()}"
        staging.mkdir(parents=True)
        try:
            gate = source.build(staging, progress)
            if spec.kind in RUNNERS:
                shutil.copy2(RUNNERS[spec.kind], staging / "model.py")
            manifest = {
                "model": source.name,
                "fingerprint": self.fingerprint(source),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "gate": gate,
                "files": {p.name: p.stat().st_size for p in sorted(staging.iterdir()) if p.is_file()},
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            version = (self.latest(source.name) or 0) + 1
            target = self.root / source.name / str(version)
            staging.rename(target)
            return VersionInfo(source.name, version, target, manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with_parent = self.root / ".staging"
            if with_parent.exists() and not any(with_parent.iterdir()):
                with_parent.rmdir()

    def python_module(self, name: str, version: int = 1):
        """Import a committed python-backend model's code (its helpers are plain numpy functions)."""
        path = self.root / name / str(version) / "model.py"
        spec = importlib.util.spec_from_file_location(f"{name}_v{version}_model", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def retire(self, name: str, version: int) -> Path:
        """Move a version out of Triton's view, keeping its files under .retired/<model>/<version>-<time>."""
        source = self.root / name / str(version)
        target = self.root / ".retired" / name / f"{version}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}"
        target.parent.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        return target
