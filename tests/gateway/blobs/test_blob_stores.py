"""The `BlobStore` contract, held against the local directory and S3 by one set of tests.

S3 cannot run here; moto's server is a local mock of that cloud service's API. Every store is built by
`make_blob_store`, so the factory (and the bucket creation it does) is covered.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from gateway.blobs.base import BlobStore
from gateway.blobs.encrypted import EncryptedBlobStore
from gateway.blobs.factory import make_blob_store
from gateway.blobs.local import LocalBlobStore
from gateway.blobs.s3 import S3BlobStore
from gateway.settings import Settings

REGION = "us-east-1"


@pytest.fixture(params=["local", "s3"])
async def blobs(request, anyio_backend, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return await make_blob_store(Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path))
    return await make_blob_store(Settings(blob_backend="s3", s3_bucket=f"univoice-test-{uuid.uuid4().hex[:12]}",
                                          state_dir=tmp_path,
                                    s3_prefix="tenant/", aws_region=REGION,
                                    aws_endpoint_url=request.getfixturevalue("moto_server")))


@pytest.fixture
def s3(moto_server: str):
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_server)


@pytest.mark.anyio
async def test_put_get_round_trip_and_overwrite(blobs: BlobStore):
    assert isinstance(blobs, BlobStore)
    assert await blobs.ping()
    data = bytes(range(256)) * 10
    await blobs.put("profiles/p1/embedding.npy", data)
    assert await blobs.get("profiles/p1/embedding.npy") == data
    await blobs.put("profiles/p1/embedding.npy", b"second", content_type="application/x-npy")
    assert await blobs.get("profiles/p1/embedding.npy") == b"second"
    await blobs.put("profiles/p1/empty.bin", b"")
    assert await blobs.get("profiles/p1/empty.bin") == b""


@pytest.mark.anyio
async def test_missing_key_raises_key_error(blobs: BlobStore):
    with pytest.raises(KeyError):
        await blobs.get("profiles/nobody/embedding.npy")
    await blobs.put("profiles/p1/embedding.npy", b"x")
    with pytest.raises(KeyError):
        await blobs.get("profiles/p1")


@pytest.mark.anyio
async def test_delete_prefix_deletes_only_that_prefix_and_counts(blobs: BlobStore):
    keys = ["profiles/a/embedding.npy", "profiles/a/audio/1.wav", "profiles/ab/embedding.npy",
            "profiles/b/embedding.npy", "other/a/embedding.npy"]
    for key in keys:
        await blobs.put(key, key.encode())
    assert await blobs.delete_prefix("profiles/a/") == 2
    for key in keys[:2]:
        with pytest.raises(KeyError):
            await blobs.get(key)
    for key in keys[2:]:
        assert await blobs.get(key) == key.encode()
    assert await blobs.delete_prefix("profiles/a/") == 0
    assert await blobs.delete_prefix("profiles/") == 2
    assert await blobs.get("other/a/embedding.npy") == b"other/a/embedding.npy"
    await blobs.put("profiles/a/embedding.npy", b"again")
    assert await blobs.get("profiles/a/embedding.npy") == b"again"


@pytest.mark.anyio
async def test_s3_objects_are_encrypted_at_rest_under_the_prefix(moto_server: str, s3, tmp_path: Path):
    store = await make_blob_store(Settings(blob_backend="s3", s3_bucket=f"univoice-test-{uuid.uuid4().hex[:12]}",
                                     s3_prefix="tenant/", aws_region=REGION, aws_endpoint_url=moto_server,
                                     state_dir=tmp_path))
    assert isinstance(store, EncryptedBlobStore) and isinstance(store.inner, S3BlobStore)
    await store.put("profiles/p1/embedding.npy", b"vector")
    key = "tenant/profiles/p1/embedding.npy"
    head = s3.head_object(Bucket=store.inner.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert b"vector" not in s3.get_object(Bucket=store.inner.bucket, Key=key)["Body"].read()  # and ours inside


@pytest.mark.anyio
async def test_s3_kms_encryption_uses_the_configured_key(moto_server: str, s3):
    key_id = boto3.client("kms", region_name=REGION, endpoint_url=moto_server).create_key()["KeyMetadata"]["KeyId"]
    store = S3BlobStore(f"univoice-test-{uuid.uuid4().hex[:12]}", "", REGION, moto_server, "aws:kms", key_id)
    store.ensure_bucket()
    await store.put("k", b"secret")
    head = s3.head_object(Bucket=store.bucket, Key="k")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    with pytest.raises(ValueError, match="aws:kms"):
        S3BlobStore("b", "", REGION, moto_server, "AES256", key_id)


@pytest.mark.anyio
async def test_s3_delete_prefix_pages_past_a_thousand_objects(moto_server: str, s3):
    store = S3BlobStore(f"univoice-test-{uuid.uuid4().hex[:12]}", "", REGION, moto_server)
    store.ensure_bucket()
    for i in range(1005):
        s3.put_object(Bucket=store.bucket, Key=f"bulk/{i:04d}", Body=b"")
    assert await store.delete_prefix("bulk/") == 1005
    assert s3.list_objects_v2(Bucket=store.bucket)["KeyCount"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "./x", "a/.hidden", ""])
async def test_local_rejects_keys_that_escape_or_are_not_plain_paths(tmp_path: Path, key: str):
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="key"):
        await store.put(key, b"x")
    with pytest.raises(ValueError, match="key"):
        await store.get(key)
    assert not (tmp_path / "x").exists()


@pytest.mark.anyio
async def test_local_delete_prefix_rejects_escaping_prefixes_and_leaves_no_temporary_files(tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="key"):
        await store.delete_prefix("../")
    await store.put("profiles/p1/embedding.npy", b"v")
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == ["embedding.npy"]
    assert await store.delete_prefix("profiles/p1/") == 1
    assert not (tmp_path / "blobs" / "profiles" / "p1").exists()
    assert outside.read_bytes() == b"keep"


@pytest.mark.anyio
async def test_local_blobs_are_ciphertext_on_disk_bound_to_their_key(tmp_path: Path):
    settings = Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path)
    store = await make_blob_store(settings)
    embedding = b"\x93NUMPY speaker embedding of Ada"
    await store.put("profiles/p1/embedding.npy", embedding)
    on_disk = (tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy").read_bytes()
    assert b"Ada" not in on_disk and on_disk.startswith(b"UVB1")
    assert await store.get("profiles/p1/embedding.npy") == embedding
    assert (tmp_path / "blob_key").stat().st_mode & 0o777 == 0o600

    (tmp_path / "blobs" / "profiles" / "p2").mkdir()  # another profile's blob, swapped in: refused, not read
    (tmp_path / "blobs" / "profiles" / "p2" / "embedding.npy").write_bytes(on_disk)
    with pytest.raises(ValueError, match="does not decrypt"):
        await store.get("profiles/p2/embedding.npy")

    restarted = await make_blob_store(settings)  # the same key from <state_dir>/blob_key after a restart
    assert await restarted.get("profiles/p1/embedding.npy") == embedding
    other_key = await make_blob_store(Settings(blob_backend="local", blob_dir=tmp_path / "blobs",
                                               state_dir=tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="UNIVOICE_BLOB_KEY"):
        await other_key.get("profiles/p1/embedding.npy")


@pytest.mark.anyio
async def test_a_plaintext_blob_is_refused_unless_migrating(tmp_path: Path):
    (tmp_path / "blobs" / "profiles" / "old").mkdir(parents=True)
    (tmp_path / "blobs" / "profiles" / "old" / "embedding.npy").write_bytes(b"plain")
    settings = Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path)
    with pytest.raises(ValueError, match="not encrypted"):
        await (await make_blob_store(settings)).get("profiles/old/embedding.npy")
    migrating = await make_blob_store(settings.model_copy(update={"allow_plaintext_blobs": True}))
    assert await migrating.get("profiles/old/embedding.npy") == b"plain"


def test_a_configured_blob_key_must_be_32_bytes(tmp_path: Path):
    with pytest.raises(ValueError, match="32 bytes"):
        Settings(state_dir=tmp_path, blob_key="c2hvcnQ=").blob_encryption_key()
