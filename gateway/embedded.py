"""The embedded stack in one process, for tests, benchmarks and load tests: a private Triton on a copy
of the model repository, and the gateway on a loopback port in a thread."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gateway.app import create_app
from gateway.server import uvicorn_server
from gateway.settings import Settings
from gateway.triton.launcher import TritonServer, free_port
from univoice_core.served import SERVED_MODELS

LINK_ABOVE_BYTES = 1 << 20


def copy_repository(source: Path, target: Path) -> Path:
    """Copy a model repository; weights are hard-linked (cheap), so publish/rollback on the copy
    never touches the original's versions."""

    def link_or_copy(src: str, dst: str) -> None:
        if os.path.getsize(src) > LINK_ABOVE_BYTES:
            try:
                os.link(src, dst)
                return
            except OSError:  # another filesystem: fall back to a copy
                pass
        shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, ignore=shutil.ignore_patterns(".retired", ".staging"))
    return target


@contextmanager
def private_triton(repository: Path, models: Sequence[str] = SERVED_MODELS, **ports) -> Iterator[TritonServer]:
    """A Triton of our own on a temporary copy of `repository`, with `models` loaded."""
    with tempfile.TemporaryDirectory(prefix="univoice-triton-") as tmp:
        root = copy_repository(repository, Path(tmp) / "model_repository")
        with TritonServer(repository=root, log_path=Path(tmp) / "tritonserver.log", **ports) as server:
            server.load(models)
            yield server


@contextmanager
def gateway_in_thread(settings: Settings, startup_timeout_s: float = 60.0):
    """The gateway on a free loopback port (uvicorn in a thread): yields (base URL, app); https with TLS set."""
    port = free_port()
    application = create_app(settings)
    server = uvicorn_server(application, settings, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start; see the log above")
        time.sleep(0.05)
    try:
        yield f"{'https' if settings.tls_certfile else 'http'}://127.0.0.1:{port}", application
    finally:
        server.should_exit = True
        thread.join(timeout=15)
