"""The bundled-Triton launcher: readiness, clear start-up errors, and no orphaned processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gateway.settings import get_settings
from gateway.triton.launcher import TritonModelError, TritonServer, TritonStartError

pytestmark = pytest.mark.triton


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid and _alive(int(entry)):
                    members.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
    return members


def _one_model_repository(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(get_settings().model_repository / "voice_embedding", root / "voice_embedding")
    return root


def test_start_load_and_stop_leaves_no_processes(tmp_path):
    server = TritonServer(repository=_one_model_repository(tmp_path))
    with server:
        server.load(["voice_embedding"])
        assert server.is_ready()
        pgid = server.process.pid
        assert len(_group_members(pgid)) >= 2  # the server and its python-backend stub
    deadline = time.monotonic() + 10
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(pgid) == []


def test_server_dies_with_a_killed_parent(tmp_path):
    """Even if the process that launched Triton is SIGKILLed, the server does not outlive it."""
    repo = _one_model_repository(tmp_path)
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from gateway.triton.launcher import TritonServer
        server = TritonServer(repository=Path({str(repo)!r})).start()
        print(server.process.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(parent.stdout.readline())
    assert _alive(server_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server_pid)


def test_start_failure_quotes_the_server_log(tmp_path):
    server = TritonServer(repository=tmp_path / "does-not-exist", startup_timeout_s=30)
    with pytest.raises(TritonStartError, match="(?s)exited with code.*tritonserver log"):
        server.start()
    assert server.process is None


def test_loading_an_unknown_model_names_the_model(tmp_path):
    with TritonServer(repository=_one_model_repository(tmp_path)) as server:
        with pytest.raises(TritonModelError, match="no_such_model"):
            server.load(["no_such_model"])
