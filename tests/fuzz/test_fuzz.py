"""The parsers strangers reach keep their contracts (tests/fuzz/targets.py) on arbitrary input: Hypothesis on
random and mutated valid inputs, then a bounded coverage-guided run of each target under Atheris."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets

ROOT = Path(__file__).resolve().parents[2]
SEEDS = targets.seeds()
ATHERIS_SECONDS = 5  # per target here; `make fuzz` runs each for 10 minutes


@st.composite
def mutated(draw, name: str) -> bytes:
    """A valid input with a few bytes overwritten, inserted or cut: past the first checks, into the parser."""
    data = bytearray(draw(st.sampled_from(SEEDS[name])))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        match draw(st.sampled_from(["set", "insert", "cut"])):
            case "set" if data:
                data[at] = draw(st.integers(0, 255))
            case "insert":
                data[at:at] = draw(st.binary(max_size=16))
            case _:
                del data[at: at + draw(st.integers(1, 64))]
    return bytes(data)


@pytest.mark.parametrize("name", list(targets.TARGETS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_input_is_parsed_or_refused_with_a_clear_error(name, data):
    target = targets.TARGETS[name]
    target(data.draw(st.one_of(st.binary(max_size=4096), mutated(name)), label="input"))


@pytest.mark.parametrize("message", [
    b'{"type": "' + b"x" * 100_000 + b'"}',  # an unknown type is named in the error: shortened, not echoed whole
    b"[" * 100_000,  # deep nesting
    b'{"type": "ping", "id": ' + b"9" * 5_000 + b"}",  # a number too long for an int
])
def test_hostile_messages_are_refused_cleanly(message):
    targets.client_message(message)


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_a_coverage_guided_run_finds_no_crash(name, tmp_path):
    pytest.importorskip("atheris")
    run = subprocess.run([sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={ATHERIS_SECONDS}",
                          "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, timeout=ATHERIS_SECONDS + 120, cwd=ROOT)
    crashes = list(tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not crashes, (run.stderr[-4000:], [c.read_bytes()[:200] for c in crashes])
