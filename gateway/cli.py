"""The `univoice` command."""

from __future__ import annotations

import logging
import signal
import threading
import time

import typer
from rich.console import Console

from export.cli import app as models_app
from export.specs import SERVED_MODELS
from gateway.settings import get_settings

app = typer.Typer(help="UniVoice: real-time voice translation in the speaker's own voice.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()


@app.command()
def triton(
    gpu: bool = typer.Option(False, help="Use the GPU configs (configs/gpu.pbtxt); needs the NGC Triton build."),
) -> None:
    """Start the bundled Triton on loopback with every model loaded, and keep it running until Ctrl-C."""
    from gateway.triton.launcher import TritonModelError, TritonServer, TritonStartError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    server = TritonServer(
        repository=settings.model_repository,
        host=settings.triton_host,
        http_port=settings.triton_http_port,
        grpc_port=settings.triton_grpc_port,
        metrics_port=settings.triton_metrics_port,
        config_name="gpu" if gpu else settings.triton_config_name,
        startup_timeout_s=settings.triton_start_timeout_s,
    )
    started = time.monotonic()
    try:
        server.start()
        server.load(SERVED_MODELS)
    except (TritonStartError, TritonModelError) as error:
        server.stop()
        console.print(f"[red]{error}[/]")
        console.print("Is the repository materialised? Run `make models`.")
        raise typer.Exit(1) from None
    console.print(f"[green]Triton ready in {time.monotonic() - started:.1f} s[/] with models: {', '.join(SERVED_MODELS)}")
    console.print(f"  HTTP     http://{server.http_url}   (e.g. curl http://{server.http_url}/v2/models/voice_embedding)")
    console.print(f"  gRPC     {server.grpc_url}")
    console.print(f"  metrics  {server.metrics_url}")
    console.print(f"  log      {server.log_path}")
    console.print("  versions `univoice models list`   ·   stop with Ctrl-C")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            if server.process is None or server.process.poll() is not None:
                console.print(f"[red]tritonserver exited unexpectedly.[/]\n{server.log_tail()}")
                raise typer.Exit(1)
    finally:
        server.stop()
        console.print("Triton stopped.")


if __name__ == "__main__":  # pragma: no cover
    app()
