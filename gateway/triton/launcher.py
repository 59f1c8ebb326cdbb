"""Start and stop the real `tritonserver` binary that ships in the `nvidia-pytriton` wheel.

The server runs on loopback with explicit model control. Its python-backend stub embeds Debian's
libpython3.11 and ignores PYTHONPATH, so the stub finds numpy/onnxruntime through this interpreter's
environment being first on PATH. The child gets its own process group and dies with its parent
(PR_SET_PDEATHSIG), so neither a crash nor Ctrl-C leaves a server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


class TritonStartError(RuntimeError):
    """The server did not become ready; the message quotes the end of its log."""


class TritonModelError(RuntimeError):
    """A model failed to load; the message quotes Triton's reason."""


def triton_home() -> Path:
    try:
        import pytriton
    except ImportError as error:  # pragma: no cover - install problem
        raise TritonStartError("nvidia-pytriton is not installed; run `make setup`") from error
    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def prepare_backends() -> Path:
    """Put the python-backend stub for this Python next to libtriton_python.so (idempotent).

    The stub's RPATH ($ORIGIN/../../../../nvidia_pytriton.libs) only resolves from inside the wheel's
    own `backends/python`, so it is copied there rather than into a directory of ours.
    """
    home = triton_home()
    stub = home / "python_backend_stubs" / PYTHON_VERSION / "triton_python_backend_stub"
    target = home / "backends" / "python" / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"the pytriton wheel has no python-backend stub for Python {PYTHON_VERSION}")
    if not target.exists() or target.stat().st_size != stub.stat().st_size:
        shutil.copy2(stub, target)
    return home / "backends"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec. Linux sends the death signal when the *thread* that started the
    server ends, not only the process: start a server from a thread that outlives it (the main one)."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class TritonServer:
    """One bundled Triton. Use as a context manager, or `start()` / `stop()`."""

    repository: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    config_name: str | None = None
    log_path: Path | None = None
    startup_timeout_s: float = 180.0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        args = [
            str(triton_home() / "bin" / "tritonserver"),
            f"--model-repository={Path(self.repository).resolve()}",
            f"--backend-directory={prepare_backends()}",
            "--model-control-mode=explicit",
            # Ready = started (load() waits for each model itself). Not strict: strict readiness stays false after
            # a failed publish (Triton keeps the retired version's load error), though the previous one serves.
            "--strict-readiness=false",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--log-info=true",
            "--exit-timeout-secs=10",
        ]
        if self.config_name:
            args.append(f"--model-config-name={self.config_name}")
        return args + list(self.extra_args)

    def start(self) -> TritonServer:
        if self.process is not None:
            return self
        if self.log_path is None:
            self.log_path = Path(tempfile.mkstemp(prefix="tritonserver-", suffix=".log")[1])
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                self.command(), stdout=log_file, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
            )
        log.info("tritonserver pid %s starting, log %s", self.process.pid, self.log_path)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonStartError(
                    f"tritonserver exited with code {self.process.returncode} while starting.\n{self.log_tail()}"
                )
            if self.is_ready():
                return
            time.sleep(0.2)
        raise TritonStartError(
            f"tritonserver was not ready after {self.startup_timeout_s:.0f} s "
            f"(http {self.http_url}).\n{self.log_tail()}"
        )

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def load(self, models: Iterable[str]) -> None:
        """Load models (explicit mode) and wait until each is READY; raises with Triton's reason."""
        for name in models:
            request = urllib.request.Request(
                f"http://{self.http_url}/v2/repository/models/{name}/load", data=b"{}", method="POST"
            )
            try:
                urllib.request.urlopen(request, timeout=self.startup_timeout_s).close()
            except urllib.error.HTTPError as error:
                reason = error.read().decode(errors="replace")
                with contextlib.suppress(ValueError, KeyError):
                    reason = json.loads(reason)["error"]
                raise TritonModelError(f"loading model {name!r} failed: {reason}\n{self.log_tail(20)}") from None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not Path(self.log_path).exists():
            return "(no server log)"
        text = Path(self.log_path).read_text(errors="replace").splitlines()
        return "--- tritonserver log (last lines) ---\n" + "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("tritonserver did not stop within %.0f s; killing it", timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # Python-backend stubs share the group; make sure none outlives the server.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
