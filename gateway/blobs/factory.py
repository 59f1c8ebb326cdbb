"""Pick the `BlobStore` backend named by `settings.blob_backend`.

Async because opening S3 may create the bucket (blocking boto3 calls, run in a thread)."""

from __future__ import annotations

import asyncio

from gateway.blobs.base import BlobStore
from gateway.blobs.encrypted import EncryptedBlobStore
from gateway.settings import Settings


async def make_blob_store(settings: Settings) -> BlobStore:
    """The backend, wrapped in AES-256-GCM (`EncryptedBlobStore`) with the gateway's blob key."""
    return EncryptedBlobStore(await _backend(settings), settings.blob_encryption_key(),
                              allow_plaintext=settings.allow_plaintext_blobs)


async def _backend(settings: Settings) -> BlobStore:
    if settings.blob_backend == "local":
        from gateway.blobs.local import LocalBlobStore

        return LocalBlobStore(settings.resolved_blob_dir())
    if settings.blob_backend == "s3":
        from gateway.blobs.s3 import S3BlobStore

        store = S3BlobStore(settings.s3_bucket, settings.s3_prefix, settings.aws_region, settings.aws_endpoint_url,
                            settings.s3_sse, settings.s3_kms_key_id)
        await asyncio.to_thread(store.ensure_bucket)
        return store
    raise ValueError(f"unknown blob_backend {settings.blob_backend!r} (expected local or s3)")
