"""Run one fuzz target under Atheris (coverage-guided, libFuzzer options after the target's name), from its valid
seeds: `python -m tests.fuzz.run {client_message,pcm_frame,audio_upload} -max_total_time=600`. Only our own code
is instrumented (gateway, univoice_core), so the run starts in seconds. Crashes are written as `crash-*` files
(`-artifact_prefix=DIR/`); each becomes a regression test in tests/fuzz/test_fuzz.py."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gateway", "univoice_core"]):
    from tests.fuzz import targets


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in targets.TARGETS:
        sys.exit(f"usage: python -m tests.fuzz.run {{{','.join(targets.TARGETS)}}} [libFuzzer options]")
    name = argv[1]
    corpus = Path(tempfile.mkdtemp(prefix=f"univoice-fuzz-{name}-"))
    for index, seed in enumerate(targets.seeds()[name]):
        (corpus / f"seed-{index}").write_bytes(seed)
    atheris.Setup([argv[0], *argv[2:], str(corpus)], targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
