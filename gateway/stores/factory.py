"""Pick the `RecordStore` backend named by `settings.store_backend`; imports stay lazy per backend.

Async because opening DynamoDB may create the table (blocking boto3 calls, run in a thread)."""

from __future__ import annotations

import asyncio

from gateway.settings import Settings
from gateway.stores.base import RecordStore


async def make_record_store(settings: Settings) -> RecordStore:
    if settings.store_backend == "sqlite":
        from gateway.stores.sqlite import SqliteRecordStore

        return SqliteRecordStore(settings.resolved_sqlite_path())
    if settings.store_backend == "redis":
        from gateway.stores.redis import RedisRecordStore

        return RedisRecordStore(settings.redis_url, settings.redis_prefix)
    if settings.store_backend == "dynamodb":
        from gateway.stores.dynamodb import DynamoRecordStore

        store = DynamoRecordStore(settings.dynamodb_table, settings.aws_region, settings.aws_endpoint_url)
        await asyncio.to_thread(store.ensure_table)
        return store
    raise ValueError(f"unknown store_backend {settings.store_backend!r} (expected sqlite, redis or dynamodb)")
