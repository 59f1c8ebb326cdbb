"""`RecordStore`: JSON documents by (collection, id), each with an optional owner and expiry.

Every backend (SQLite, Redis, DynamoDB) implements exactly this; the typed stores on top of it
(users, tokens, sessions, profiles) exist once. Semantics every backend must honour, and which
`tests/gateway/stores/test_record_stores.py` checks against each:

* `put` creates or replaces; `ttl_s` makes the record expire (expired records are invisible).
* `get` returns the stored dict (a copy) or None.
* `delete` returns True only for the caller that actually removed an existing record, so it
  doubles as an atomic "consume once" (refresh-token rotation relies on it).
* `list(collection, owner=...)` returns the owner's live records oldest first (by first put).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class RecordStore(Protocol):
    async def put(self, collection: str, id: str, doc: dict, *, owner: str | None = None,
                  ttl_s: float | None = None) -> None: ...

    async def get(self, collection: str, id: str) -> dict | None: ...

    async def delete(self, collection: str, id: str) -> bool: ...

    async def list(self, collection: str, *, owner: str) -> list[dict]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
