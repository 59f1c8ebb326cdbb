"""AES-256-GCM around any `BlobStore`: voice embeddings, voice statistics and enrolment audio are biometric data,
so what reaches the disk (or S3, which adds its own SSE) is ciphertext.

A stored blob is `UVB1 | nonce (12 bytes) | ciphertext + tag`; the blob's key is the associated data, so a blob
copied under another key (another profile's) fails to decrypt instead of being read as that profile's. A blob
without the `UVB1` prefix (plaintext, written before encryption, or slipped into the store) is refused, unless
`allow_plaintext_blobs` is on while an old data directory is migrated.
"""

from __future__ import annotations

import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.blobs.base import BlobStore

log = logging.getLogger("univoice.blobs")
MAGIC = b"UVB1"
NONCE_BYTES = 12


class EncryptedBlobStore:
    def __init__(self, inner: BlobStore, key: bytes, *, allow_plaintext: bool = False):
        if len(key) != 32:
            raise ValueError(f"the blob key must be 32 bytes (AES-256), not {len(key)}; see UNIVOICE_BLOB_KEY")
        self.inner, self._aead, self.allow_plaintext = inner, AESGCM(key), allow_plaintext

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        nonce = os.urandom(NONCE_BYTES)
        sealed = MAGIC + nonce + self._aead.encrypt(nonce, data, key.encode())
        await self.inner.put(key, sealed, "application/octet-stream")

    async def get(self, key: str) -> bytes:
        stored = await self.inner.get(key)
        if not stored.startswith(MAGIC):
            if not self.allow_plaintext:
                raise ValueError(f"blob {key} is not encrypted; refusing it (set UNIVOICE_ALLOW_PLAINTEXT_BLOBS=true "
                                 "only while migrating blobs written before encryption)")
            log.warning("blob %s is not encrypted (written before blob encryption); re-enrol to encrypt it", key)
            return stored
        nonce, sealed = stored[len(MAGIC): len(MAGIC) + NONCE_BYTES], stored[len(MAGIC) + NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, sealed, key.encode())
        except InvalidTag:
            raise ValueError(f"blob {key} does not decrypt with this gateway's blob key (tampered, moved, or "
                             "another key): check UNIVOICE_BLOB_KEY") from None

    async def delete_prefix(self, prefix: str) -> int:
        return await self.inner.delete_prefix(prefix)

    async def ping(self) -> bool:
        return await self.inner.ping()
