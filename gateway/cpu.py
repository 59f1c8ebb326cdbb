"""One bounded pool for CPU work on the request path (a stream's resampling and VAD; more to move here).

Apart from asyncio's default executor, which serves blocking I/O (SQLite, boto3): CPU work never waits behind a
slow call there, and a burst of it queues here instead of stalling the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

CPU_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="univoice-cpu")


async def run_cpu(function: Callable[..., T], *args) -> T:
    return await asyncio.get_running_loop().run_in_executor(CPU_POOL, functools.partial(function, *args))
