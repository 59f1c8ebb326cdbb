"""Which package may import which, read from the source (every import: module level, inside functions, under
TYPE_CHECKING; a function-level import is how a package cycle hides).

    univoice_core  <-  export, training, gateway, model_repository, benchmarks
    export -> training   (export packages the checkpoints training makes; training never imports export)
    gateway -> export    (the translator's protocol, the `univoice models` commands; export never imports the gateway)

The Triton models run where only the core is copied (gateway/deploy/triton.Dockerfile), and the core stays
light enough for that image: numpy, soxr, soundfile, pyworld and the standard library.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("univoice_core", "gateway", "export", "training", "model_repository", "benchmarks")
CORE_THIRD_PARTY = {"numpy", "soxr", "soundfile", "pyworld"}
# Written into every version of an onnx / gguf model as its model.py (export/repository.py RUNNERS): Triton
# runs them beside model_repository/.
TRITON_RUNNERS = ("export/onnx_backend.py", "export/llm_backend.py")


def _files(package: str) -> list[Path]:
    return sorted(path for path in (ROOT / package).rglob("*.py") if "__pycache__" not in path.parts)


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def imports(path: Path) -> frozenset[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    package = _module_of(path).split(".") if path.name == "__init__.py" else _module_of(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            if not node.module:  # `from . import x`: x is a module
                found.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(found)


def _top(module: str) -> str:
    return module.split(".")[0]


def edges(package: str) -> set[tuple[str, str]]:
    """(file, first-party module) for every import of another first-party package from `package`'s files."""
    return {(path.relative_to(ROOT).as_posix(), module) for path in _files(package) for module in imports(path)
            if _top(module) in PACKAGES and _top(module) != package}


def _importing(package: str, forbidden: set[str]) -> list[str]:
    return sorted(f"{file} imports {module}" for file, module in edges(package)
                  if _top(module) in forbidden)


def test_every_package_is_found():
    assert all(_files(package) for package in PACKAGES)


def test_the_core_imports_no_other_part_of_univoice():
    assert _importing("univoice_core", set(PACKAGES)) == []


def test_the_core_needs_nothing_heavier_than_numpy_soxr_soundfile_and_pyworld():
    """No FastAPI, gRPC, Triton client, boto3, pydantic-settings, torch...: the Triton image has none of them."""
    allowed = CORE_THIRD_PARTY | set(sys.stdlib_module_names) | {"univoice_core", "__future__"}
    used = {(path.relative_to(ROOT).as_posix(), module) for path in _files("univoice_core") for module in imports(path)}
    assert sorted(f"{file} imports {module}" for file, module in used if _top(module) not in allowed) == []


@pytest.mark.parametrize("package", ["export", "training", "model_repository"])
def test_nothing_but_the_gateway_and_the_benchmarks_imports_the_gateway(package):
    assert _importing(package, {"gateway"}) == []


def test_the_pipeline_and_the_services_know_nothing_of_http_or_the_wire_protocol():
    """Inside the gateway, `api/` calls the pipeline and the services, never the other way round."""
    services = [ROOT / "gateway" / name for name in ("accounts.py", "sessions.py", "profiles.py", "records.py")]
    inner = [*_files("gateway/pipeline"), *services]
    assert sorted(f"{path.relative_to(ROOT).as_posix()} imports {module}" for path in inner for module in imports(path)
                  if module.startswith("gateway.api") or _top(module) in ("fastapi", "starlette")) == []


def test_training_does_not_import_export():
    assert _importing("training", {"export"}) == []


def test_the_models_triton_runs_import_only_the_core():
    runners = [ROOT / path for path in TRITON_RUNNERS]
    outside = {f"{path.relative_to(ROOT).as_posix()} imports {module}"
               for path in [*_files("model_repository"), *runners] for module in imports(path)
               if _top(module) in PACKAGES and _top(module) != "univoice_core"}
    assert sorted(outside) == []


def _module_level_imports(path: Path) -> frozenset[str]:
    """What importing `path` imports at once (not inside functions, not under TYPE_CHECKING)."""
    found = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return frozenset(found)


def test_what_the_triton_models_load_of_the_core_needs_only_numpy_soxr_and_pyworld():
    """The Triton image has numpy, soxr and pyworld but no soundfile: a module-level import of anything else in a
    core module the models load would break them at load time, not in any test without Triton."""
    allowed = {"numpy", "soxr", "pyworld", "univoice_core", "__future__"} | set(sys.stdlib_module_names)
    pending = [path for path in [*_files("model_repository"), *(ROOT / p for p in TRITON_RUNNERS)]]
    seen, problems = set(), []
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _module_level_imports(path):
            if _top(module) == "univoice_core":
                target = ROOT / Path(*module.split("."))
                pending += [p for p in (target.with_suffix(".py"), target / "__init__.py") if p.is_file()]
            elif path.is_relative_to(ROOT / "univoice_core") and _top(module) not in allowed:
                problems.append(f"{path.relative_to(ROOT)} imports {module}")
    assert sorted(problems) == []


def test_nothing_imports_the_benchmarks():
    assert [f for package in PACKAGES if package != "benchmarks" for f in _importing(package, {"benchmarks"})] == []


def test_the_packages_form_no_cycle():
    graph = {package: {_top(module) for _, module in edges(package)} for package in PACKAGES}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(step == goal or (step not in seen and reaches(step, goal, seen | {step})) for step in graph[start])

    assert sorted(package for package in PACKAGES if reaches(package, package)) == []




def test_the_import_reader_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "export" / "models"
    package.mkdir(parents=True)
    module = package / "thing.py"
    module.write_text("from . import sources\n\ndef f():\n    from gateway.settings import get_settings\n"
                      "    import training.voice_converter.train\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imports(module) == {"export.models", "export.models.sources", "gateway.settings",
                               "training.voice_converter.train"}
