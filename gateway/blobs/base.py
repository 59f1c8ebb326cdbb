"""`BlobStore`: bytes by key ("profiles/<id>/embedding.npy"). Local directory (default) or S3 (SSE)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    async def get(self, key: str) -> bytes:
        """Raises KeyError when the key does not exist."""

    async def keys(self, prefix: str = "") -> list[str]:
        """The key of every blob whose key starts with `prefix` (for key rotation and retention)."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with `prefix`; returns how many were deleted."""

    async def ping(self) -> bool: ...
