"""The gateway's periodic heap trim gives freed audio-sized blocks back to the system (the soak's flat RSS)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.allocator import _malloc_trim
from univoice_core.config import REPO_ROOT

# 50 blocks of 3 MB (a few seconds of decoded upload each), each followed by a small block that stays: after a
# first 4 MB block was freed, glibc serves them from the heap, where the small blocks pin the pages they leave.
SCRIPT = """
import json, resource
from gateway.allocator import release_free_heap
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
bytearray(4 << 20)  # freed at once: glibc raises its mmap threshold to 4 MB
before, blocks, pins = rss_mb(), [], []
for _ in range(50):
    blocks.append(bytearray(3 << 20))
    pins.append(bytearray(1000))
blocks.clear()
kept = rss_mb() - before
released = release_free_heap()
print(json.dumps({"kept": kept, "kept_after_trim": rss_mb() - before, "released": released}))
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="not glibc: the gateway does not trim")
def test_a_trim_gives_the_pages_of_freed_blocks_back_to_the_system():
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True, timeout=60)
    figures = json.loads(run.stdout)
    assert figures["kept"] > 100, f"glibc gave the freed blocks back unasked ({figures}): nothing was tested"
    assert figures["released"] and figures["kept_after_trim"] < 10, f"of 150 MB freed, the trim left {figures}"
