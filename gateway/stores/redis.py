"""Redis `RecordStore`: shared state for several gateway replicas, expiry done by Redis itself.

Keys: `{prefix}{collection}:{id}` holds `{"created", "owner", "doc"}` as JSON (PX expiry), and
`{prefix}{collection}:owner:{owner}` is a sorted set of the owner's ids scored by `created` (a
counter from INCR, so the order is exact across replicas). Writes that touch a record and its index
run as Lua scripts, so each is atomic: a replaced record keeps its score, a delete removes exactly
once, and pruning an index member whose record expired cannot race a put that re-creates it.
"""

from __future__ import annotations

import json

import redis.asyncio as redis

_PUT = """
local existing = redis.call('GET', KEYS[1])
local created
if existing then
  local old = cjson.decode(existing)
  created = old.created
  if type(old.owner) == 'string' and (ARGV[4] == '0' or old.owner ~= ARGV[5]) then
    redis.call('ZREM', ARGV[6] .. old.owner, ARGV[1])
  end
else
  created = redis.call('INCR', KEYS[2])
end
local value = '{"created":' .. created .. ',"owner":' .. ARGV[3] .. ',"doc":' .. ARGV[2] .. '}'
local ttl_ms = tonumber(ARGV[7])
if ttl_ms > 0 then
  redis.call('SET', KEYS[1], value, 'PX', ttl_ms)
else
  redis.call('SET', KEYS[1], value)
end
if ARGV[4] == '1' then
  redis.call('ZADD', ARGV[6] .. ARGV[5], created, ARGV[1])
end
"""

_DELETE = """
local existing = redis.call('GET', KEYS[1])
if not existing then
  return 0
end
redis.call('DEL', KEYS[1])
local old = cjson.decode(existing)
if type(old.owner) == 'string' then
  redis.call('ZREM', ARGV[1] .. old.owner, ARGV[2])
end
return 1
"""

# KEYS: the records' keys; ARGV[1]: the index; ARGV[i + 1]: the id whose record is KEYS[i].
_PRUNE = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', ARGV[1], ARGV[i + 1])
  end
end
"""

_RESERVED = "owner:"


class RedisRecordStore:
    def __init__(self, url: str, prefix: str):
        self.prefix = prefix
        # Public: the app shares this client with the Redis rate limiter.
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self._put = self.redis.register_script(_PUT)
        self._delete = self.redis.register_script(_DELETE)
        self._prune = self.redis.register_script(_PRUNE)

    def _key(self, collection: str, id: str) -> str:
        return f"{self.prefix}{collection}:{id}"

    def _index_prefix(self, collection: str) -> str:
        return f"{self.prefix}{collection}:{_RESERVED}"

    async def put(self, collection: str, id: str, doc: dict, *, owner: str | None = None,
                  ttl_s: float | None = None) -> None:
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
        if id.startswith(_RESERVED):
            raise ValueError(f"record ids must not start with {_RESERVED!r} (owner index keys use it): {id!r}")
        ttl_ms = 0 if ttl_s is None else max(1, round(ttl_s * 1000))
        await self._put(
            keys=[self._key(collection, id), f"{self.prefix}seq"],
            args=[id, json.dumps(doc), json.dumps(owner), "0" if owner is None else "1", owner or "",
                  self._index_prefix(collection), ttl_ms],
        )

    async def get(self, collection: str, id: str) -> dict | None:
        if id.startswith(_RESERVED):  # put refuses such ids, so no such record exists
            return None
        value = await self.redis.get(self._key(collection, id))
        return None if value is None else json.loads(value)["doc"]

    async def delete(self, collection: str, id: str) -> bool:
        if id.startswith(_RESERVED):
            return False
        removed = await self._delete(keys=[self._key(collection, id)], args=[self._index_prefix(collection), id])
        return removed == 1

    async def list(self, collection: str, *, owner: str) -> list[dict]:
        index = self._index_prefix(collection) + owner
        ids = await self.redis.zrange(index, 0, -1)
        if not ids:
            return []
        keys = [self._key(collection, id) for id in ids]
        docs, gone = [], []
        for id, key, value in zip(ids, keys, await self.redis.mget(keys)):
            if value is None:
                gone.append((key, id))
            else:
                docs.append(json.loads(value)["doc"])
        if gone:
            await self._prune(keys=[key for key, _ in gone], args=[index, *(id for _, id in gone)])
        return docs

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except redis.RedisError:
            return False

    async def close(self) -> None:
        await self.redis.aclose()
