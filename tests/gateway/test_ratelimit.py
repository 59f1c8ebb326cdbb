"""Token buckets, in memory and in Redis (the real server at 127.0.0.1:6379), held to the same rules."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
import redis.asyncio

from gateway.api.errors import http_headers, http_status
from gateway.ratelimit import (
    ConcurrencyLimit,
    InMemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    address_key,
    make_rate_limiter,
)
from gateway.settings import Settings
from univoice_core.errors import RateLimited

REDIS_URL = "redis://127.0.0.1:6379/0"
SLOW = 1 / 3600  # one token an hour: nothing refills during a test


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Limiters:
    """Builds limiters of one kind and lets time pass for them (fake clock or real sleep)."""

    def __init__(self, kind: str, client=None, prefix: str = ""):
        self.kind, self.client, self.prefix, self.now = kind, client, prefix, 0.0

    def make(self, rate_per_s: float, burst: int) -> RateLimiter:
        if self.kind == "memory":
            return InMemoryRateLimiter(rate_per_s, burst, clock=lambda: self.now)
        return RedisRateLimiter(self.client, self.prefix, rate_per_s, burst)

    async def advance(self, seconds: float) -> None:
        if self.kind == "memory":
            self.now += seconds
        else:
            await anyio.sleep(seconds)


@asynccontextmanager
async def redis_session() -> AsyncIterator[tuple[redis.asyncio.Redis, str]]:
    """A client and a fresh key prefix; the prefix's keys are deleted afterwards."""
    client = redis.asyncio.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError):
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"test-ratelimit-{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiters(request, anyio_backend):
    if request.param == "memory":
        yield Limiters("memory")
        return
    async with redis_session() as (client, prefix):
        yield Limiters("redis", client, prefix)


async def succeeded(limiter: RateLimiter, key: str, attempts: int) -> int:
    ok = 0
    for _ in range(attempts):
        try:
            await limiter.acquire(key)
            ok += 1
        except RateLimited:
            pass
    return ok


@pytest.mark.anyio
async def test_burst_then_limited(limiters):
    limiter = limiters.make(1 / 60, burst=5)
    for _ in range(5):
        await limiter.acquire("user-1")
    with pytest.raises(RateLimited) as excinfo:
        await limiter.acquire("user-1")
    error = excinfo.value
    assert http_status(error) == 429 and error.code == "rate_limited"
    assert error.retry_after_s >= 1
    assert 55 <= error.retry_after_s <= 60  # one token per minute
    assert http_headers(error)["Retry-After"] == str(error.retry_after_s)


@pytest.mark.anyio
async def test_refill(limiters):
    limiter = limiters.make(5.0, burst=1)
    await limiter.acquire("user-1")
    with pytest.raises(RateLimited) as excinfo:
        await limiter.acquire("user-1")
    assert excinfo.value.retry_after_s == 1  # 200 ms, rounded up to what Retry-After can say
    await limiters.advance(0.3)
    await limiter.acquire("user-1")


@pytest.mark.anyio
async def test_refill_caps_at_burst(limiters):
    limiter = limiters.make(10.0, burst=3)
    await limiters.advance(0.5)  # 5 tokens' worth of time on an untouched bucket
    assert await succeeded(limiter, "user-1", 6) in (3, 4)  # 4 if a token refills mid-loop (Redis)


@pytest.mark.anyio
async def test_keys_are_independent(limiters):
    limiter = limiters.make(SLOW, burst=2)
    assert await succeeded(limiter, "user-1", 3) == 2
    assert await succeeded(limiter, "user-2", 3) == 2
    assert await succeeded(limiter, "key-abc", 3) == 2


@pytest.mark.anyio
async def test_cost(limiters):
    limiter = limiters.make(SLOW, burst=10)
    await limiter.acquire("user-1", cost=7)
    with pytest.raises(RateLimited):
        await limiter.acquire("user-1", cost=4)
    await limiter.acquire("user-1", cost=3)  # a refused request took nothing
    with pytest.raises(ValueError, match="can never be paid"):
        await limiter.acquire("user-1", cost=11)


@pytest.mark.anyio
async def test_concurrent_acquires_are_atomic(limiters):
    limiter = limiters.make(SLOW, burst=10)
    results: list[bool] = []

    async def one() -> None:
        try:
            await limiter.acquire("shared")
            results.append(True)
        except RateLimited:
            results.append(False)

    async with anyio.create_task_group() as group:
        for _ in range(50):
            group.start_soon(one)
    assert len(results) == 50
    assert results.count(True) == 10


@pytest.mark.anyio
async def test_redis_bucket_expires():
    async with redis_session() as (client, prefix):
        await RedisRateLimiter(client, prefix, rate_per_s=10.0, burst=5).acquire("user-1")
        ttl_ms = await client.pttl(f"{prefix}ratelimit:user-1")
        assert 0 < ttl_ms <= 1500  # refills fully in 0.5 s, plus a 1 s margin


def test_make_rate_limiter(tmp_path):
    memory = make_rate_limiter(Settings(state_dir=tmp_path, store_backend="sqlite"))
    assert isinstance(memory, InMemoryRateLimiter)
    assert isinstance(memory, RateLimiter)
    client = redis.asyncio.from_url(REDIS_URL)
    assert isinstance(make_rate_limiter(Settings(state_dir=tmp_path, store_backend="sqlite"), client), RedisRateLimiter)
    assert isinstance(make_rate_limiter(Settings(state_dir=tmp_path, store_backend="redis")), RedisRateLimiter)


def test_bad_config():
    with pytest.raises(ValueError, match="RATE_LIMIT"):
        InMemoryRateLimiter(0, 10)


def test_a_concurrency_limit_refuses_one_more_per_key_and_gives_slots_back():
    limit = ConcurrencyLimit(2, lambda n: RateLimited(1, f"{n} running", code="too_many_uploads"))
    with limit.hold("u1"), limit.hold("u1"):
        with pytest.raises(RateLimited) as refused, limit.hold("u1"):
            pass
        assert refused.value.code == "too_many_uploads" and refused.value.message == "2 running"
        with limit.hold("u2"):  # another key is not held up
            pass
    with limit.hold("u1"), limit.hold("u1"):  # both slots came back
        pass


def test_an_ipv6_client_is_keyed_by_its_slash_64_and_an_ipv4_client_by_its_address():
    """One host holds a whole IPv6 /64: counting each of its addresses apart would let it dodge every limit."""
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.7") == "192.0.2.7" and address_key("testclient") == "testclient"
