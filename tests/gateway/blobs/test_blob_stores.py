"""The `BlobStore` contract, held against the local directory and S3 by one set of tests.

S3 cannot run here; moto's server is a local mock of that cloud service's API. Every store is built by
`make_blob_store`, so the factory (and the bucket creation it does) is covered.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
from pathlib import Path

import boto3
import pytest
from pydantic import SecretStr

from gateway.blobs.base import BlobStore
from gateway.blobs.encrypted import EncryptedBlobStore, Envelope
from gateway.blobs.factory import make_blob_store
from gateway.blobs.local import LocalBlobStore
from gateway.blobs.master_keys import MasterKeyError
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
    assert b"Ada" not in on_disk and on_disk.startswith(b"UVB2")
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
    with pytest.raises(MasterKeyError, match=r"encrypted under master key local:\w+, which .*elsewhere.* does not hold"):
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


@pytest.mark.anyio
async def test_a_configured_blob_key_must_be_32_bytes(tmp_path: Path):
    with pytest.raises(MasterKeyError, match="32 bytes"):
        await make_blob_store(Settings(state_dir=tmp_path, blob_backend="local", blob_key="c2hvcnQ="))


@pytest.mark.anyio
async def test_keys_lists_every_blob_under_a_prefix(blobs: BlobStore):
    for key in ("profiles/a/embedding.npy", "profiles/a/source.flac", "profiles/ab/embedding.npy", "other/x"):
        await blobs.put(key, b"x")
    assert await blobs.keys("profiles/a/") == ["profiles/a/embedding.npy", "profiles/a/source.flac"]
    assert sorted(await blobs.keys("profiles/")) == ["profiles/a/embedding.npy", "profiles/a/source.flac",
                                                     "profiles/ab/embedding.npy"]
    assert sorted(await blobs.keys()) == sorted([*await blobs.keys("profiles/"), "other/x"])


def _keys(*keys: bytes) -> str:
    return "\n".join(base64.b64encode(key).decode() for key in keys)


@pytest.mark.anyio
async def test_rotation_rewraps_data_keys_under_the_new_master_key_and_keeps_the_data(tmp_path: Path):
    old, new = os.urandom(32), os.urandom(32)
    settings = Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path, blob_key=_keys(old))
    store = await make_blob_store(settings)
    await store.put("profiles/p1/embedding.npy", b"Ada's embedding")
    before = (tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy").read_bytes()

    rotating = await make_blob_store(settings.model_copy(update={"blob_key": SecretStr(_keys(new, old))}))
    assert await rotating.get("profiles/p1/embedding.npy") == b"Ada's embedding"  # retired keys still unwrap
    assert await rotating.rewrap("profiles/p1/embedding.npy") == "rewrapped"
    assert await rotating.rewrap("profiles/p1/embedding.npy") == "current"
    after = (tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy").read_bytes()
    assert after[-len(b"Ada's embedding") - 16:] == before[-len(b"Ada's embedding") - 16:]  # data not re-encrypted

    rotated = await make_blob_store(settings.model_copy(update={"blob_key": SecretStr(_keys(new))}))
    assert await rotated.get("profiles/p1/embedding.npy") == b"Ada's embedding"  # the old key can go
    with pytest.raises(MasterKeyError, match="does not hold"):
        await store.get("profiles/p1/embedding.npy")


@pytest.mark.anyio
async def test_an_altered_data_key_is_an_error_not_garbage(tmp_path: Path):
    store = await make_blob_store(Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path))
    await store.put("profiles/p1/embedding.npy", b"Ada's embedding")
    path = tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy"
    stored = bytearray(path.read_bytes())
    stored[4 + 2 + 22 + 2 + 14] ^= 1  # a byte of the wrapped data key (after a 22-character key id and the nonce)
    path.write_bytes(bytes(stored))
    with pytest.raises(MasterKeyError, match="does not unwrap .* altered"):
        await store.get("profiles/p1/embedding.npy")
    path.write_bytes(bytes(stored[:40]))
    with pytest.raises(MasterKeyError, match="truncated|damaged"):
        await store.get("profiles/p1/embedding.npy")


@pytest.mark.anyio
async def test_rewrap_encrypts_plaintext_blobs_while_migrating(tmp_path: Path):
    (tmp_path / "blobs" / "profiles" / "old").mkdir(parents=True)
    (tmp_path / "blobs" / "profiles" / "old" / "embedding.npy").write_bytes(b"plain")
    settings = Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path,
                        allow_plaintext_blobs=True)
    store = await make_blob_store(settings)
    assert await store.rewrap("profiles/old/embedding.npy") == "encrypted"
    assert (tmp_path / "blobs" / "profiles" / "old" / "embedding.npy").read_bytes().startswith(b"UVB2")
    strict = await make_blob_store(settings.model_copy(update={"allow_plaintext_blobs": False}))
    assert await strict.get("profiles/old/embedding.npy") == b"plain"


@pytest.mark.anyio
async def test_kms_wraps_the_data_keys_and_rotates_to_another_kms_key(moto_server: str, tmp_path: Path):
    """KMS cannot run here: moto's server stands in for its API (Encrypt, Decrypt, DescribeKey)."""
    kms = boto3.client("kms", region_name=REGION, endpoint_url=moto_server)
    first, second = (kms.create_key()["KeyMetadata"] for _ in range(2))
    kms.create_alias(AliasName=f"alias/univoice-{uuid.uuid4().hex[:8]}", TargetKeyId=second["KeyId"])
    settings = Settings(blob_backend="local", blob_dir=tmp_path / "blobs", state_dir=tmp_path,
                        blob_kms_key_id=first["KeyId"], aws_region=REGION, aws_endpoint_url=moto_server)
    store = await make_blob_store(settings)
    await store.put("profiles/p1/embedding.npy", b"Ada's embedding")
    stored = (tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy").read_bytes()
    assert first["Arn"].encode() in stored and b"Ada" not in stored
    assert not (tmp_path / "blob_key").exists()  # no local key is made when KMS holds the master key

    moved = await make_blob_store(settings.model_copy(update={"blob_kms_key_id": second["Arn"]}))
    assert await moved.rewrap("profiles/p1/embedding.npy") == "rewrapped"
    assert second["Arn"].encode() in (tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy").read_bytes()
    assert await (await make_blob_store(settings)).get("profiles/p1/embedding.npy") == b"Ada's embedding"

    path = tmp_path / "blobs" / "profiles" / "p1" / "embedding.npy"
    envelope = Envelope.parse("profiles/p1/embedding.npy", path.read_bytes())
    path.write_bytes(dataclasses.replace(envelope, wrapped_key=envelope.wrapped_key[:-1] + b"?").to_bytes())
    with pytest.raises(MasterKeyError, match="KMS Decrypt"):  # KMS refuses an altered data key
        await (await make_blob_store(settings)).get("profiles/p1/embedding.npy")
    with pytest.raises(MasterKeyError, match="cannot be used"):
        await make_blob_store(settings.model_copy(update={"blob_kms_key_id": "alias/no-such-key"}))
