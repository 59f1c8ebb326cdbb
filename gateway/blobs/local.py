"""Local-directory `BlobStore`: the default, for a single host; keys map to files under one root.

Writes go to a hidden temporary file in the target directory and are renamed into place, so a
reader never sees a half-written blob. Key components may not start with "." — that rules out
"..", ".", and hidden names, which are kept for those in-flight temporary files.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from univoice_core.atomic import atomic_write


def _parts(key: str, *, partial_last: bool) -> list[str]:
    """Split a key (or, with `partial_last`, a key prefix) into path components, rejecting unsafe ones."""
    if key.startswith("/"):
        raise ValueError(f"blob keys are relative paths, not absolute: {key!r}")
    parts = key.split("/")
    whole = parts[:-1] if partial_last else parts
    if any(not part for part in whole) or any(part.startswith(".") for part in parts) or "\0" in key:
        raise ValueError(f"invalid blob key {key!r}: components must be non-empty and not start with '.'")
    return parts


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_parts(key, partial_last=False))

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        await asyncio.to_thread(atomic_write, self._path(key), data)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    async def keys(self, prefix: str = "") -> list[str]:
        base = self.root.joinpath(*_parts(prefix, partial_last=True)[:-1]) if prefix else self.root

        def walk() -> list[str]:
            found = []
            for dirpath, _, filenames in os.walk(base):
                for name in filenames:
                    key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                    if key.startswith(prefix) and not name.startswith("."):
                        found.append(key)
            return sorted(found)

        return await asyncio.to_thread(walk)

    async def delete_prefix(self, prefix: str) -> int:
        base = self.root.joinpath(*_parts(prefix, partial_last=True)[:-1])

        def remove() -> int:
            deleted = 0
            for dirpath, _, filenames in os.walk(base, topdown=False):
                directory = Path(dirpath)
                for name in filenames:
                    key = (directory / name).relative_to(self.root).as_posix()
                    if key.startswith(prefix) and not name.startswith("."):
                        (directory / name).unlink(missing_ok=True)
                        deleted += 1
                if directory != self.root and (directory.relative_to(self.root).as_posix() + "/").startswith(prefix):
                    try:
                        directory.rmdir()
                    except OSError:  # not empty: holds keys outside the prefix or a write in flight
                        pass
            return deleted

        return await asyncio.to_thread(remove)

    async def ping(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK)
