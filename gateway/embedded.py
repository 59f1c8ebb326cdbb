"""The embedded stack for tests, benchmarks and load tests: a private Triton on a copy of the model repository,
and the gateway on a loopback port, in a thread of this process or (`GatewayProcess`) in a process of its own,
whose memory can be measured and which can be killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

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


class GatewayProcess:
    """`univoice serve` in a process of its own on an existing Triton (the embedded one off), configured through
    the environment: `settings` are setting names and values (`store_backend="redis"`). Only those: no UNIVOICE_
    variable of the caller's and no `.env` (it runs in the state directory's parent) reaches it."""

    def __init__(self, state_dir: Path, *, grpc_port: int, http_port: int, log_path: Path | None = None,
                 **settings: object):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or Path(state_dir).parent / f"gateway-{self.port}.log"
        defaults = {"state_dir": state_dir, "host": "127.0.0.1", "port": self.port, "triton_embedded": False,
                    "triton_grpc_port": grpc_port, "triton_http_port": http_port}
        inherited = {name: value for name, value in os.environ.items() if not name.startswith("UNIVOICE_")}
        self.env = {**inherited, **{f"UNIVOICE_{name.upper()}": str(value).lower() if isinstance(value, bool)
                                    else str(value) for name, value in {**defaults, **settings}.items()}}
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, timeout_s: float = 90) -> float:
        """Start it and wait until /healthz answers; the seconds that took."""
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(Path(sys.executable).parent / "univoice"), "serve"], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=self.log_path.parent)
        while not self._healthy():
            if time.monotonic() - started > timeout_s:
                self.kill()
                raise RuntimeError(f"the gateway on {self.base} did not start in {timeout_s:.0f} s; see "
                                   f"{self.log_path}")
            time.sleep(0.2)
        return time.monotonic() - started

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {self.process.returncode}:\n"
                               f"{self.log_path.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
