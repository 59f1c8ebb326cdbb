"""Token-bucket rate limiting per caller (an account, a client address), and `ConcurrencyLimit`: how many
of one caller's long-running things (streams, connections, uploads) may run at once.

Each key has a bucket of `burst` tokens refilled at `rate_per_s`; a request takes `cost` tokens or
is refused with `RateLimited` (HTTP 429 + Retry-After) saying when enough will be back. In-memory
buckets suit one process; with several gateway replicas use Redis so they share one budget.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from gateway.settings import Settings
from univoice_core.errors import RateLimited, UniVoiceError


def address_key(host: str) -> str:
    """A client address as a limit's key: an IPv6 client is its /64 (one host holds a whole /64). Behind a proxy,
    uvicorn takes the address from X-Forwarded-For only for FORWARDED_ALLOW_IPS (see the README)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return str(ipaddress.ip_network(f"{host}/64", strict=False)) if address.version == 6 else host


class ConcurrencyLimit:
    """At most `limit` holders per key at a time, in this process: one more is refused (`refusal(limit)`), never
    queued, so one caller's burst cannot occupy what everyone shares. Replicas each count their own."""

    def __init__(self, limit: int, refusal: Callable[[int], UniVoiceError]):
        if limit < 1:
            raise ValueError(f"a concurrency limit must be at least 1, not {limit}")
        self.limit, self._refusal = limit, refusal
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._lock:
            if self._held[key] >= self.limit:
                raise self._refusal(self.limit)
            self._held[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]


@runtime_checkable
class RateLimiter(Protocol):
    async def acquire(self, key: str, cost: float = 1.0) -> None:
        """Take `cost` tokens from `key`'s bucket, or raise RateLimited without taking any."""
        ...


def _check_config(rate_per_s: float, burst: float) -> None:
    if rate_per_s <= 0 or burst <= 0:
        raise ValueError("rate limits must be positive; check UNIVOICE_RATE_LIMIT_PER_MINUTE/_BURST")


def _check_cost(cost: float, burst: float) -> None:
    if not 0 < cost <= burst:
        raise ValueError(f"cost {cost} can never be paid from a bucket of {burst} tokens")


class InMemoryRateLimiter:
    """Buckets in a dict, for a single gateway process."""

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic):
        _check_config(rate_per_s, burst)
        self._rate, self._burst, self._clock = rate_per_s, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated at)
        # A threading lock, not an asyncio one: the critical section never awaits, and this way the
        # limiter is also safe from threads and across event loops.
        self._lock = threading.Lock()
        self._prune_at = 1024

    async def acquire(self, key: str, cost: float = 1.0) -> None:
        _check_cost(cost, self._burst)
        with self._lock:
            now = self._clock()
            tokens = self._tokens(key, now)
            if tokens < cost:
                raise RateLimited((cost - tokens) / self._rate)
            self._buckets[key] = (tokens - cost, now)
            if len(self._buckets) >= self._prune_at:
                self._prune(now)

    def _tokens(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + max(0.0, now - updated) * self._rate)

    def _prune(self, now: float) -> None:
        """Drop full buckets (same as absent) so memory follows active callers, not all callers ever."""
        self._buckets = {k: b for k, b in self._buckets.items() if self._tokens(k, now) < self._burst}
        self._prune_at = max(1024, 2 * len(self._buckets))  # amortised O(1) per acquire


# Refill and take in one atomic step. The time comes from the script's own TIME call rather than
# from the client: every gateway replica then uses the one Redis clock, so skewed host clocks can
# neither mint extra tokens nor lock callers out. (Redis >= 5 replicates script effects, which
# makes TIME before writes allowed.) Returns the seconds to wait, 0 when the tokens were taken;
# as a string, because Redis would truncate a Lua number to an integer.
_TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
-- A bucket left alone refills completely within burst/rate seconds; then it equals no bucket.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets in Redis hashes (`<prefix>ratelimit:<key>`), shared by every gateway replica."""

    def __init__(self, redis_client, prefix: str, rate_per_s: float, burst: float):
        _check_config(rate_per_s, burst)
        self._prefix, self._rate, self._burst = prefix, rate_per_s, burst
        # register_script runs EVALSHA and loads the script again if the server lost it.
        self._script = redis_client.register_script(_TOKEN_BUCKET_LUA)

    async def acquire(self, key: str, cost: float = 1.0) -> None:
        _check_cost(cost, self._burst)
        wait = float(await self._script(keys=[f"{self._prefix}ratelimit:{key}"],
                                        args=[repr(self._rate), repr(self._burst), repr(cost)]))
        if wait > 0:
            raise RateLimited(wait)


def make_rate_limiter(settings: Settings, redis_client=None, *, per_minute: float | None = None,
                      burst: float | None = None) -> RateLimiter:
    """Redis when a client is given or the store backend is Redis (shared budget), else in-memory. The rates
    default to the per-account request limit (`rate_limit_*`)."""
    rate_per_s = (settings.rate_limit_per_minute if per_minute is None else per_minute) / 60.0
    burst = settings.rate_limit_burst if burst is None else burst
    if redis_client is None and settings.store_backend == "redis":
        import redis.asyncio

        redis_client = redis.asyncio.from_url(settings.redis_url)
    if redis_client is not None:
        return RedisRateLimiter(redis_client, settings.redis_prefix, rate_per_s, burst)
    return InMemoryRateLimiter(rate_per_s, burst)
