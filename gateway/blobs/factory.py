"""Pick the `BlobStore` backend named by `settings.blob_backend`.

Async because opening S3 may create the bucket (blocking boto3 calls, run in a thread)."""

from __future__ import annotations

import asyncio

from gateway.blobs.base import BlobStore
from gateway.blobs.encrypted import EncryptedBlobStore
from gateway.blobs.master_keys import AesKeyring, KmsMasterKey, MasterKey, parse_keys
from gateway.settings import Settings


async def make_blob_store(settings: Settings) -> EncryptedBlobStore:
    """The backend, envelope-encrypted (`EncryptedBlobStore`) under the gateway's master key."""
    return EncryptedBlobStore(await _backend(settings), await master_key(settings),
                              allow_plaintext=settings.allow_plaintext_blobs)


async def master_key(settings: Settings) -> MasterKey:
    if settings.blob_kms_key_id:
        return await asyncio.to_thread(KmsMasterKey, settings.blob_kms_key_id, settings.aws_region,
                                       settings.aws_endpoint_url)
    source = "UNIVOICE_BLOB_KEY" if settings.blob_key is not None else str(settings.blob_key_file())
    return AesKeyring(parse_keys(settings.blob_master_keys(), source), source)


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
