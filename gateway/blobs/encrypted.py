"""Envelope encryption around any `BlobStore`: voice embeddings, voice statistics and enrolment audio are
biometric data, so what reaches the disk (or S3, which adds its own SSE) is ciphertext.

Every blob has its own AES-256-GCM data key, stored with it wrapped by a master key (`master_keys`):

    UVB2 | key id length (2 bytes) | key id | wrapped key length (2 bytes) | wrapped data key | nonce (12) | sealed

The blob's name is the associated data, so a blob copied under another name (another profile's) fails to open
instead of being read as that profile's. Rotating the master key re-wraps the data keys only (`rewrap`): the
sealed data stays as it is. A blob without the `UVB2` prefix (plaintext, written before encryption, or slipped
into the store) is refused, unless `allow_plaintext_blobs` is on while an old data directory is migrated
(`rewrap` encrypts such blobs).
"""

from __future__ import annotations

import logging
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.blobs.base import BlobStore
from gateway.blobs.master_keys import NONCE_BYTES, MasterKey, MasterKeyError

log = logging.getLogger("univoice.blobs")
MAGIC = b"UVB2"
_LENGTH = struct.Struct(">H")
_DATA_KEYS_KEPT = 256  # unwrapped data keys cached, so a KMS master key is not asked on every read


@dataclass(frozen=True)
class Envelope:
    key_id: str
    wrapped_key: bytes
    nonce: bytes
    sealed: bytes

    def to_bytes(self) -> bytes:
        key_id = self.key_id.encode()
        return b"".join((MAGIC, _LENGTH.pack(len(key_id)), key_id, _LENGTH.pack(len(self.wrapped_key)),
                         self.wrapped_key, self.nonce, self.sealed))

    @classmethod
    def parse(cls, name: str, stored: bytes) -> Envelope:
        try:
            at = len(MAGIC)
            (size,) = _LENGTH.unpack_from(stored, at)
            key_id, at = stored[at + 2: at + 2 + size].decode(), at + 2 + size
            (size,) = _LENGTH.unpack_from(stored, at)
            wrapped, at = stored[at + 2: at + 2 + size], at + 2 + size
            nonce, sealed = stored[at: at + NONCE_BYTES], stored[at + NONCE_BYTES:]
        except (struct.error, UnicodeDecodeError):
            raise MasterKeyError(f"blob {name} has a damaged encryption header") from None
        if len(wrapped) != size or len(nonce) != NONCE_BYTES or not sealed:
            raise MasterKeyError(f"blob {name} is truncated")
        return cls(key_id, wrapped, nonce, sealed)


class EncryptedBlobStore:
    def __init__(self, inner: BlobStore, master_key: MasterKey, *, allow_plaintext: bool = False):
        self.inner, self.master_key, self.allow_plaintext = inner, master_key, allow_plaintext
        self._data_keys: OrderedDict[bytes, bytes] = OrderedDict()

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        await self.inner.put(key, await self._seal(key, data), "application/octet-stream")

    async def _seal(self, key: str, data: bytes) -> bytes:
        data_key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(NONCE_BYTES)
        key_id, wrapped = await self.master_key.wrap(data_key)
        return Envelope(key_id, wrapped, nonce, AESGCM(data_key).encrypt(nonce, data, key.encode())).to_bytes()

    async def get(self, key: str) -> bytes:
        return await self._open(key, await self.inner.get(key))

    async def _open(self, key: str, stored: bytes) -> bytes:
        if not stored.startswith(MAGIC):
            if not self.allow_plaintext:
                raise MasterKeyError(f"blob {key} is not encrypted; refusing it (set "
                                     "UNIVOICE_ALLOW_PLAINTEXT_BLOBS=true only while migrating blobs written before "
                                     "encryption, then run `univoice admin rotate-keys` to encrypt them)")
            log.warning("blob %s is not encrypted (written before blob encryption): run `univoice admin rotate-keys`",
                        key)
            return stored
        envelope = Envelope.parse(key, stored)
        data_key = await self._data_key(envelope)
        try:
            return AESGCM(data_key).decrypt(envelope.nonce, envelope.sealed, key.encode())
        except InvalidTag:
            raise MasterKeyError(f"blob {key} does not decrypt: it was altered, or moved from another name") from None

    async def _data_key(self, envelope: Envelope) -> bytes:
        cache_key = envelope.key_id.encode() + b"\0" + envelope.wrapped_key
        if (data_key := self._data_keys.get(cache_key)) is None:
            data_key = await self.master_key.unwrap(envelope.key_id, envelope.wrapped_key)
            self._data_keys[cache_key] = data_key
            if len(self._data_keys) > _DATA_KEYS_KEPT:
                self._data_keys.popitem(last=False)
        return data_key

    async def rewrap(self, key: str) -> Literal["rewrapped", "current", "encrypted"]:
        """Put blob `key`'s data key under the current master key (an unencrypted blob, allowed while migrating,
        is encrypted). Re-reading and re-writing only the header keeps the sealed data as it was."""
        stored = await self.inner.get(key)
        if not stored.startswith(MAGIC):
            await self.put(key, await self._open(key, stored))
            return "encrypted"
        envelope = Envelope.parse(key, stored)
        if envelope.key_id == self.master_key.key_id:
            return "current"
        key_id, wrapped = await self.master_key.wrap(await self._data_key(envelope))
        await self.inner.put(key, Envelope(key_id, wrapped, envelope.nonce, envelope.sealed).to_bytes())
        return "rewrapped"

    async def keys(self, prefix: str = "") -> list[str]:
        return await self.inner.keys(prefix)

    async def delete_prefix(self, prefix: str) -> int:
        return await self.inner.delete_prefix(prefix)

    async def ping(self) -> bool:
        return await self.inner.ping()
