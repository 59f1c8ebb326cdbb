"""Bounded thread pools for CPU work on the request path, apart from asyncio's default executor (which serves
blocking I/O: SQLite, boto3), so CPU work never waits behind a slow call there and never stalls the event loop.

Three pools, so that uploads cannot starve live speech nor logins: `STREAMS` runs each stream's resampling and VAD (small
pieces, due every 20-100 ms); `UPLOADS` runs what a REST request brings (decoding an upload, its VAD, WORLD voice
statistics), with fewer workers than cores, so a burst of uploads queues there; `PASSWORDS` runs argon2 (~160 ms
a check), so logins neither block the loop nor wait behind uploads.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

CORES = os.cpu_count() or 2
STREAMS = ThreadPoolExecutor(max_workers=CORES, thread_name_prefix="univoice-stream")
UPLOADS = ThreadPoolExecutor(max_workers=max(1, CORES // 2), thread_name_prefix="univoice-upload")
PASSWORDS = ThreadPoolExecutor(max_workers=max(1, CORES // 2), thread_name_prefix="univoice-argon2")


async def run_cpu(function: Callable[..., T], *args, pool: ThreadPoolExecutor = STREAMS) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(function, *args))
