"""The `univoice` command."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import typer
from rich.console import Console

from export.cli import app as models_app
from gateway.settings import get_settings
from univoice_core.served import SERVED_MODELS

app = typer.Typer(help="UniVoice: real-time voice translation in the speaker's own voice.", no_args_is_help=True)
console = Console()


def _models_settings() -> None:
    """`univoice models` serves the same repository and Triton as the gateway: export reads them from the
    environment (univoice_core.config), so the settings (.env, SSM) are put there first."""
    settings = get_settings()
    for name, value in (("MODEL_REPOSITORY", settings.model_repository), ("TRITON_HOST", settings.triton_host),
                        ("TRITON_HTTP_PORT", settings.triton_http_port)):
        os.environ.setdefault(f"UNIVOICE_{name}", str(value))


app.add_typer(models_app, name="models", callback=_models_settings)


def _start_triton(gpu: bool):
    from gateway.triton.launcher import TritonModelError, TritonServer, TritonStartError

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
        console.print("Is the repository materialised? Run `make models`. Is port "
                      f"{settings.triton_http_port} free? (UNIVOICE_TRITON_HTTP_PORT changes it)")
        raise typer.Exit(1) from None
    console.print(f"[green]Triton ready in {time.monotonic() - started:.1f} s[/] with models: {', '.join(SERVED_MODELS)}")
    console.print(f"  Triton HTTP     http://{server.http_url}   (e.g. curl http://{server.http_url}/v2/models/voice_embedding)")
    console.print(f"  Triton gRPC     {server.grpc_url}")
    console.print(f"  Triton metrics  {server.metrics_url}")
    console.print(f"  Triton log      {server.log_path}")
    return server


GpuOption = typer.Option(False, help="Use the GPU configs (configs/gpu.pbtxt); needs the NGC Triton build.")


@app.command()
def triton(gpu: bool = GpuOption) -> None:
    """Start the bundled Triton on loopback with every model loaded, and keep it running until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = _start_triton(gpu)
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


@app.command()
def serve(gpu: bool = GpuOption) -> None:
    """Start the whole stack: the bundled Triton (unless UNIVOICE_TRITON_EMBEDDED=false) and the gateway."""
    from gateway.observability import configure_logging
    from gateway.server import uvicorn_server

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    server = _start_triton(gpu) if settings.triton_embedded else None
    scheme = "https" if settings.tls_certfile else "http"
    console.print(f"  Gateway         {scheme}://{settings.host}:{settings.port}   API docs: {scheme}://{settings.host}:{settings.port}/docs")
    console.print(f"  Storage         {settings.store_backend} ({settings.resolved_sqlite_path() if settings.store_backend == 'sqlite' else settings.redis_url if settings.store_backend == 'redis' else settings.dynamodb_table}), blobs: {settings.blob_backend}")
    console.print("  First user      `univoice admin create-user NAME` (or POST /v1/auth/signup)   ·   stop with Ctrl-C")
    try:
        uvicorn_server("gateway.app:app_from_env", settings, host=settings.host, port=settings.port, factory=True,
                       log_config=None, access_log=False).run()
    finally:
        if server is not None:
            server.stop()
            console.print("Triton stopped.")


@app.command()
def speak(
    input_path: Path = typer.Option(..., "--in", exists=True, dir_okay=False, help="WAV/FLAC/OGG to speak"),
    output_path: Path = typer.Option(..., "--out", help="Where to write the translated speech (WAV, 24 kHz)"),
    source: str = typer.Option("en", help="Language spoken in the input (GET /v1/languages lists the pairs)"),
    target: str = typer.Option("en", help="Language to translate into, e.g. --source es --target en"),
    profile: str | None = typer.Option(None, help="Voice profile id to speak with"),
    url: str = typer.Option("http://127.0.0.1:8080", envvar="UNIVOICE_URL", help="Gateway base URL"),
    token: str | None = typer.Option(None, envvar="UNIVOICE_TOKEN", help="Access token (or give --username)"),
    username: str | None = typer.Option(None, envvar="UNIVOICE_USERNAME"),
    password: str | None = typer.Option(None, envvar="UNIVOICE_PASSWORD"),
    realtime: bool = typer.Option(True, help="Stream at the speed of speech (--no-realtime: as fast as possible)"),
    report: Path | None = typer.Option(None, help="Timing report (JSON); default: <out>.json"),
) -> None:
    """Stream a recording through a running gateway; write the translated speech and a timing report."""
    from gateway.speak import SpeakError, speak_file

    try:
        summary = speak_file(input_path, output_path, source=source, target=target, profile=profile, url=url,
                             token=token, username=username, password=password, realtime=realtime,
                             report_path=report or output_path.with_suffix(".json"), console=console)
    except SpeakError as error:
        console.print(f"[red]{error}[/]")
        raise typer.Exit(1) from None
    console.print(summary)


admin = typer.Typer(help="Administration.", no_args_is_help=True)
app.add_typer(admin, name="admin")
CLI_ACTOR = "cli"  # the audit trail's actor for what an administrator does here


@admin.command("create-user")
def create_user(
    username: str,
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                 help="Prompted for when omitted; `-` reads it from standard input."),
    scopes: list[str] = typer.Option(["stream", "profiles:write", "models:admin"], "--scope",
                                     help="Scopes to grant (repeat); the default is every scope."),
) -> None:
    """Create a user in the configured store (the first administrator, typically)."""
    import asyncio
    import sys

    from gateway.app import account_service
    from gateway.audit import AuditLog
    from gateway.security import ALL_SCOPES, password_problem
    from gateway.stores.factory import make_record_store
    from univoice_core.errors import UniVoiceError

    if password == "-":
        password = sys.stdin.readline().rstrip("\n")
    if problem := password_problem(username, password):
        console.print(f"[red]{problem[0].upper() + problem[1:]}.[/]")
        raise typer.Exit(2)
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        console.print(f"[red]Unknown scope(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL_SCOPES)}.[/]")
        raise typer.Exit(2)

    async def run():
        settings = get_settings()
        store = await make_record_store(settings)
        try:
            return await account_service(settings, store, AuditLog(store)).create_user(username, password, scopes,
                                                                                      actor=CLI_ACTOR)
        finally:
            await store.close()

    try:
        user = asyncio.run(run())
    except UniVoiceError as error:
        console.print(f"[red]{error.message}[/]")
        raise typer.Exit(1) from None
    console.print(f"created user {user.username} ({user.id}) with scopes: {' '.join(user.scopes)}")


def _with_services(work):
    """Run `work(services)` against the configured stores, then close them; a stored-data error is a clean exit."""
    import asyncio

    from gateway.app import build_services
    from gateway.blobs.master_keys import MasterKeyError
    from univoice_core.errors import UniVoiceError

    async def run():
        services = await build_services(get_settings())
        try:
            return await work(services)
        finally:
            await services.triton.close()
            await services.store.close()

    try:
        return asyncio.run(run())
    except (MasterKeyError, UniVoiceError) as error:
        console.print(f"[red]{getattr(error, 'message', error)}[/]")
        raise typer.Exit(1) from None


@admin.command("rotate-keys")
def rotate_keys(
    new_key: bool = typer.Option(False, "--new-key", help="Only make a new master key, first in <state_dir>/blob_key "
                                 "(the old one stays, retired); restart the gateway, then run rotate-keys."),
) -> None:
    """Re-wrap every blob's data key under the current master key: the first key of UNIVOICE_BLOB_KEY (or of
    <state_dir>/blob_key), or the KMS key UNIVOICE_BLOB_KMS_KEY_ID names. The sealed data is not re-encrypted.
    With UNIVOICE_ALLOW_PLAINTEXT_BLOBS=true, blobs written before encryption are encrypted too.

    The order: give every gateway the new key first (new key on the first line, old ones after; --new-key does
    that for the key file) and restart them, then run this, and drop the old key only once a run re-wraps
    nothing."""
    from rich.progress import Progress

    from gateway.blobs.master_keys import MasterKeyError
    from gateway.maintenance import add_local_master_key, rotate_blob_keys

    if new_key:
        try:
            key_id = add_local_master_key(get_settings())
        except MasterKeyError as error:
            console.print(f"[red]{error}[/]")
            raise typer.Exit(2) from None
        console.print(f"new master key {key_id}, first in {get_settings().blob_key_file()}; restart the gateway, "
                      "then run `univoice admin rotate-keys`")
        return

    async def work(services):
        with Progress(console=console) as progress:
            task = progress.add_task("re-wrapping data keys", total=None)
            counts = await rotate_blob_keys(services.blobs, services.profiles, services.audit, actor=CLI_ACTOR,
                                            on_blob=lambda done, total: progress.update(task, completed=done,
                                                                                        total=total))
        return services.blobs.master_key.key_id, counts

    key_id, counts = _with_services(work)
    console.print(f"every blob is under master key {key_id}: {counts['rewrapped']} re-wrapped, "
                  f"{counts['current']} already current, {counts['encrypted']} encrypted for the first time, "
                  f"{counts['erased']} of deleted profiles erased")


@admin.command("apply-retention")
def apply_retention() -> None:
    """Delete enrolment recordings older than UNIVOICE_ENROLMENT_AUDIO_RETENTION_DAYS (the gateway also does this
    when it starts). Profiles keep working: their embedding and voice statistics stay."""
    from gateway.maintenance import apply_retention as expire

    settings = get_settings()
    if settings.enrolment_audio_retention_days is None:
        console.print("no retention is set (UNIVOICE_ENROLMENT_AUDIO_RETENTION_DAYS): every recording is kept")
        return
    expired = _with_services(lambda services: expire(settings, services.profiles, services.audit, actor=CLI_ACTOR))
    console.print(f"deleted {expired} enrolment recording(s) older than {settings.enrolment_audio_retention_days:g} "
                  "days")


if __name__ == "__main__":  # pragma: no cover
    app()
