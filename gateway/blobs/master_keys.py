"""Master keys for envelope encryption. Every blob gets its own AES-256 data key; the data key is stored with the
blob, wrapped by a master key that never reaches the blob store. One small protocol, two kinds of master key:

- AES-256 keys (`AesKeyring`, the default): the `blob_key` setting, which like every secret setting may come from
  the environment, `.env`, or AWS Secrets Manager / SSM (`aws_secret_id`, `aws_ssm_prefix`); unset, a key made on
  first run into `<state_dir>/blob_key` (0600). It holds base64 keys, one per line: the first wraps new data keys,
  the others are retired keys, kept so that what they wrapped still opens until `univoice admin rotate-keys` has
  re-wrapped it. A key's id is its fingerprint.
- AWS KMS (`KmsMasterKey`, with `blob_kms_key_id`): KMS wraps and unwraps; the master key never leaves KMS.

Each wrapped data key carries its master key's id, so a blob names the key it needs: a missing or wrong master
key is an error that says which, never garbage.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Bound into every wrapping (GCM associated data, KMS encryption context): a wrapped data key opens only as one.
PURPOSE = "univoice-blob-data-key"
NONCE_BYTES = 12


class MasterKeyError(ValueError):
    """A data key cannot be wrapped or unwrapped: the master key is missing, wrong, or its service refused."""


class MasterKey(Protocol):
    key_id: str  # the master key that wraps new data keys

    async def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """The id of the master key that wrapped `data_key`, and the wrapped bytes."""

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes: ...


def parse_keys(text: str, source: str) -> list[bytes]:
    """AES-256 keys written as base64, one per line (or separated by commas); the first is the current one."""
    keys = []
    for word in filter(None, re.split(r"[\s,]+", text)):
        try:
            key = base64.b64decode(word, validate=True)
        except binascii.Error:
            key = b""
        if len(key) != 32:
            raise MasterKeyError(f"{source} must hold AES-256 keys: 32 bytes in base64 each, one per line "
                                 "(make one with `openssl rand -base64 32`)")
        keys.append(key)
    if not keys:
        raise MasterKeyError(f"{source} holds no key")
    return keys


def new_key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def local_key_id(key: bytes) -> str:
    """A key's name that does not reveal it: a fingerprint (what a wrong key is recognised by)."""
    return "local:" + hashlib.sha256(b"univoice master key id\0" + key).hexdigest()[:16]


class AesKeyring:
    """AES-256-GCM key wrapping with master keys held in memory; the first of `keys` wraps."""

    def __init__(self, keys: list[bytes], source: str):
        self.keys = {local_key_id(key): key for key in keys}
        self.key_id, self.source = local_key_id(keys[0]), source

    async def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return self.key_id, nonce + AESGCM(self.keys[self.key_id]).encrypt(nonce, data_key, PURPOSE.encode())

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise MasterKeyError(f"this data was encrypted under master key {key_id}, which {self.source} does not "
                                 f"hold (it holds {', '.join(self.keys)}): configure the key that wrote the data")
        try:
            return AESGCM(key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], PURPOSE.encode())
        except InvalidTag:
            raise MasterKeyError(f"a data key does not unwrap with master key {key_id}: it was altered") from None


class KmsMasterKey:
    """AWS KMS wraps each data key (Encrypt) and unwraps it (Decrypt); boto3 calls run in a thread."""

    def __init__(self, key_id: str, region: str, endpoint_url: str | None):
        """Blocking: resolves `key_id` (an id, ARN or alias) to the key's ARN, the id its wrappings carry."""
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        self._client = boto3.client("kms", region_name=region, endpoint_url=endpoint_url)
        try:
            self.key_id = self._client.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
        except (BotoCoreError, ClientError) as error:
            raise MasterKeyError(f"KMS key {key_id!r} cannot be used: {error} (check UNIVOICE_BLOB_KMS_KEY_ID "
                                 "and the gateway's kms:DescribeKey, kms:Encrypt and kms:Decrypt permissions)") from None

    async def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        answer = await self._call("Encrypt", self._client.encrypt, KeyId=self.key_id, Plaintext=data_key)
        return answer["KeyId"], answer["CiphertextBlob"]

    async def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return (await self._call("Decrypt", self._client.decrypt, KeyId=key_id, CiphertextBlob=wrapped))["Plaintext"]

    async def _call(self, operation: str, call, **arguments) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(call, EncryptionContext={"purpose": PURPOSE}, **arguments)
        except (BotoCoreError, ClientError) as error:
            raise MasterKeyError(f"KMS {operation} with key {arguments['KeyId']} failed: {error}") from None
