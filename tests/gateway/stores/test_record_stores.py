"""The `RecordStore` contract, held against every backend by one set of tests.

SQLite runs on a temporary file; Redis is the real server at 127.0.0.1:6379 (a unique key prefix per
test, removed afterwards). DynamoDB cannot run here; moto's server is a local mock of its API
(allowed for cloud services). Every store is built by `make_record_store`, so the factory is covered.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import boto3
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.settings import Settings
from gateway.stores.base import RecordStore
from gateway.stores.factory import make_record_store

REDIS_URL = "redis://127.0.0.1:6379/0"
REGION = "us-east-1"

OpenStore = Callable[[], Awaitable[RecordStore]]


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
async def open_store(request, anyio_backend, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Opens stores of one backend, all on the same underlying data (file, key prefix or table)."""
    backend = request.param
    if backend == "sqlite":
        config = Settings(store_backend="sqlite", sqlite_path=tmp_path / "state" / "records.db")
    elif backend == "redis":
        config = Settings(store_backend="redis", redis_url=REDIS_URL,
                          redis_prefix=f"univoice-test-{uuid.uuid4().hex[:12]}:")
    else:
        config = Settings(store_backend="dynamodb", dynamodb_table=f"records-{uuid.uuid4().hex[:12]}",
                          aws_region=REGION, aws_endpoint_url=request.getfixturevalue("moto_server"))
    opened: list[RecordStore] = []

    async def open_() -> RecordStore:
        store = await make_record_store(config)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()
    if backend == "redis":
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(f"{config.redis_prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif backend == "dynamodb":
        boto3.client("dynamodb", region_name=REGION, endpoint_url=config.aws_endpoint_url).delete_table(
            TableName=config.dynamodb_table)


@pytest.fixture
async def store(open_store: OpenStore, anyio_backend) -> RecordStore:
    return await open_store()


@pytest.mark.anyio
async def test_put_get_round_trip_returns_an_independent_copy(store: RecordStore):
    assert isinstance(store, RecordStore)
    assert await store.ping()
    doc = {"name": "Ada", "scores": [1, 2.5, None], "nested": {"ok": True, "text": "こんにちは"}}
    await store.put("users", "u1", doc, owner="ada")
    got = await store.get("users", "u1")
    assert got == doc
    got["nested"]["ok"] = False
    doc["name"] = "changed after put"
    assert await store.get("users", "u1") == {"name": "Ada", "scores": [1, 2.5, None],
                                              "nested": {"ok": True, "text": "こんにちは"}}
    assert await store.get("users", "missing") is None
    assert await store.get("tokens", "u1") is None


@pytest.mark.anyio
async def test_replace_keeps_creation_order_and_follows_owner_changes(store: RecordStore):
    for name in ("a", "b", "c"):
        await store.put("sessions", name, {"v": 1}, owner="ada")
    await store.put("sessions", "a", {"v": 2}, owner="ada")
    assert await store.get("sessions", "a") == {"v": 2}
    assert await store.list("sessions", owner="ada") == [{"v": 2}, {"v": 1}, {"v": 1}]
    await store.put("sessions", "b", {"v": 3}, owner="bob")
    assert await store.list("sessions", owner="ada") == [{"v": 2}, {"v": 1}]
    assert await store.list("sessions", owner="bob") == [{"v": 3}]
    await store.put("sessions", "c", {"v": 4})
    assert await store.list("sessions", owner="ada") == [{"v": 2}]
    assert await store.get("sessions", "c") == {"v": 4}


@pytest.mark.anyio
async def test_ttl_expiry_hides_records_from_get_list_and_delete(store: RecordStore):
    # 2 s, not less: on a loaded machine three puts to moto's DynamoDB took longer than a 0.3 s TTL.
    await store.put("tokens", "short", {"n": 1}, owner="ada", ttl_s=2.0)
    await store.put("tokens", "long", {"n": 2}, owner="ada", ttl_s=60)
    await store.put("tokens", "forever", {"n": 3}, owner="ada")
    assert await store.get("tokens", "short") == {"n": 1}
    assert await store.list("tokens", owner="ada") == [{"n": 1}, {"n": 2}, {"n": 3}]
    await anyio.sleep(2.2)
    assert await store.get("tokens", "short") is None
    assert await store.list("tokens", owner="ada") == [{"n": 2}, {"n": 3}]
    assert await store.delete("tokens", "short") is False
    # Re-created after expiry, it is a new record: last in creation order.
    await store.put("tokens", "short", {"n": 4}, owner="ada")
    assert await store.list("tokens", owner="ada") == [{"n": 2}, {"n": 3}, {"n": 4}]
    # A replace without ttl_s makes the record permanent.
    await store.put("tokens", "long", {"n": 5}, owner="ada", ttl_s=0.3)
    await store.put("tokens", "long", {"n": 6}, owner="ada")
    await anyio.sleep(0.5)
    assert await store.get("tokens", "long") == {"n": 6}


@pytest.mark.anyio
async def test_non_positive_ttl_is_rejected(store: RecordStore):
    with pytest.raises(ValueError, match="ttl_s"):
        await store.put("tokens", "t", {}, ttl_s=0)


@pytest.mark.anyio
async def test_delete_returns_true_once(store: RecordStore):
    await store.put("tokens", "t1", {"x": 1}, owner="ada")
    assert await store.delete("tokens", "t1") is True
    assert await store.delete("tokens", "t1") is False
    assert await store.get("tokens", "t1") is None
    assert await store.list("tokens", owner="ada") == []
    assert await store.delete("tokens", "never-existed") is False


@pytest.mark.anyio
async def test_concurrent_deletes_consume_exactly_once(store: RecordStore):
    await store.put("refresh", "rt", {"family": "f1"}, owner="ada")
    results: list[bool] = []

    async def consume() -> None:
        results.append(await store.delete("refresh", "rt"))

    async with anyio.create_task_group() as tasks:
        for _ in range(10):
            tasks.start_soon(consume)
    assert sorted(results) == [False] * 9 + [True]


@pytest.mark.anyio
async def test_list_returns_only_the_owners_records_of_that_collection(store: RecordStore):
    await store.put("profiles", "p1", {"id": "p1"}, owner="ada")
    await store.put("profiles", "p2", {"id": "p2"}, owner="bob")
    await store.put("sessions", "s1", {"id": "s1"}, owner="ada")
    await store.put("profiles", "p3", {"id": "p3"}, owner="ada")
    await store.put("profiles", "p4", {"id": "p4"})
    assert await store.list("profiles", owner="ada") == [{"id": "p1"}, {"id": "p3"}]
    assert await store.list("profiles", owner="bob") == [{"id": "p2"}]
    assert await store.list("sessions", owner="ada") == [{"id": "s1"}]
    assert await store.list("sessions", owner="bob") == []
    assert await store.list("profiles", owner="nobody") == []


@pytest.mark.anyio
async def test_records_survive_reopening_the_store(open_store: OpenStore):
    first = await open_store()
    await first.put("users", "u1", {"name": "Ada"}, owner="ada")
    await first.put("users", "u2", {"name": "Bob"}, owner="ada", ttl_s=60)
    await first.close()
    second = await open_store()
    assert await second.get("users", "u1") == {"name": "Ada"}
    assert await second.list("users", owner="ada") == [{"name": "Ada"}, {"name": "Bob"}]
    assert await second.delete("users", "u1") is True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.anyio
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.text(), json_values, max_size=6))
async def test_any_json_document_round_trips_sqlite(tmp_path: Path, doc: dict):
    store = await make_record_store(Settings(store_backend="sqlite", sqlite_path=tmp_path / "property.db"))
    try:
        await store.put("docs", "d", doc, owner="o")
        assert await store.get("docs", "d") == doc
        assert await store.list("docs", owner="o") == [doc]
    finally:
        await store.close()


@pytest.mark.anyio
async def test_the_sqlite_file_is_its_owners_alone_and_keeps_no_trace_of_a_deleted_record(tmp_path: Path):
    path = tmp_path / "state" / "records.db"
    store = await make_record_store(Settings(store_backend="sqlite", sqlite_path=path))
    await store.put("profiles", "p_1", {"name": "Ada's voice at the office"}, owner="u_1")
    await store.put("profiles", "p_2", {"name": "kept"}, owner="u_1")
    files = [path, path.with_name("records.db-wal"), path.with_name("records.db-shm")]
    assert {file.name: file.stat().st_mode & 0o777 for file in files if file.exists()} == {
        file.name: 0o600 for file in files if file.exists()}
    assert await store.delete("profiles", "p_1")
    on_disk = b"".join(file.read_bytes() for file in files if file.exists())
    assert b"Ada's voice" not in on_disk and b"kept" in on_disk
    await store.close()


@pytest.mark.anyio
async def test_a_database_made_world_readable_by_an_older_version_is_made_private(tmp_path: Path):
    path = tmp_path / "records.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    store = await make_record_store(Settings(store_backend="sqlite", sqlite_path=path))
    assert path.stat().st_mode & 0o777 == 0o600
    await store.close()
