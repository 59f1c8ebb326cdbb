"""S3 `BlobStore`: blobs for AWS deployments, every object written with server-side encryption.

Keys are stored under `prefix` in one bucket. boto3 is synchronous: each call runs in a worker thread.
"""

from __future__ import annotations

import asyncio

import boto3
from botocore.exceptions import BotoCoreError, ClientError


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str, region: str, endpoint_url: str | None, sse: str = "AES256",
                 kms_key_id: str | None = None):
        if kms_key_id and sse != "aws:kms":
            raise ValueError(f"an S3 KMS key id is set but server-side encryption is {sse!r}; use 'aws:kms'")
        self.bucket, self.prefix, self.region = bucket, prefix, region
        self._client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
        self._encryption = {"ServerSideEncryption": sse}
        if kms_key_id:
            self._encryption["SSEKMSKeyId"] = kms_key_id

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
                raise
        config = {} if self.region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": self.region}}
        try:
            self._client.create_bucket(Bucket=self.bucket, **config)
        except self._client.exceptions.BucketAlreadyOwnedByYou:  # another replica created it first
            pass

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        await asyncio.to_thread(self._client.put_object, Bucket=self.bucket, Key=self.prefix + key, Body=data,
                                ContentType=content_type, **self._encryption)

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            except self._client.exceptions.NoSuchKey:
                raise KeyError(key) from None
            with response["Body"] as body:
                return body.read()

        return await asyncio.to_thread(read)

    async def keys(self, prefix: str = "") -> list[str]:
        def walk() -> list[str]:
            return [obj["Key"].removeprefix(self.prefix)
                    for page in self._client.get_paginator("list_objects_v2").paginate(
                        Bucket=self.bucket, Prefix=self.prefix + prefix)
                    for obj in page.get("Contents", [])]

        return await asyncio.to_thread(walk)

    async def delete_prefix(self, prefix: str) -> int:
        def remove() -> int:
            deleted = 0
            for page in self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=self.prefix + prefix):
                objects = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if not objects:
                    continue
                response = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                if errors := response.get("Errors"):
                    raise RuntimeError(f"S3 refused to delete {len(errors)} object(s) under {prefix!r}: {errors[0]}")
                deleted += len(objects)
            return deleted

        return await asyncio.to_thread(remove)

    async def ping(self) -> bool:
        try:
            await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True
