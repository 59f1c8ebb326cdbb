"""DynamoDB `RecordStore`: managed, serverless state for AWS deployments.

One table. Items: `pk` = "{collection}#{id}", `doc` (the JSON text, so no Decimal/float conversion
ever touches it), `created` (ns timestamp of the first put: the GSI sort key), `owner_key` =
"{collection}#{owner}" (absent without an owner, keeping the "by_owner" GSI sparse), `expires_at`
(epoch seconds, rounded up: DynamoDB's TTL attribute) and `expires_at_ms` (the exact expiry).
TTL deletion is lazy (up to days), so every read filters expired items itself. boto3 is synchronous:
each call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

_GSI = "by_owner"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _live(item: dict[str, Any], now_ms: int) -> bool:
    expires = item.get("expires_at_ms")
    return expires is None or int(expires["N"]) > now_ms


class DynamoRecordStore:
    def __init__(self, table: str, region: str, endpoint_url: str | None):
        self.table = table
        self._client = boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url)

    def ensure_table(self) -> None:
        """Create the table, its GSI and TTL if the table does not exist (idempotent)."""
        try:
            self._client.describe_table(TableName=self.table)
            return
        except self._client.exceptions.ResourceNotFoundException:
            pass
        try:
            self._client.create_table(
                TableName=self.table,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "owner_key", "AttributeType": "S"},
                    {"AttributeName": "created", "AttributeType": "N"},
                ],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                GlobalSecondaryIndexes=[{
                    "IndexName": _GSI,
                    "KeySchema": [{"AttributeName": "owner_key", "KeyType": "HASH"},
                                  {"AttributeName": "created", "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "ALL"},
                }],
            )
        except self._client.exceptions.ResourceInUseException:  # another replica is creating it
            self._client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
            return
        self._client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1})
        self._client.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )

    async def put(self, collection: str, id: str, doc: dict, *, owner: str | None = None,
                  ttl_s: float | None = None) -> None:
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
        now_ms = _now_ms()
        values: dict[str, Any] = {":doc": {"S": json.dumps(doc)}, ":now": {"N": str(now_ms)}}
        sets, removes = ["doc = :doc"], []
        if owner is None:
            removes.append("owner_key")
        else:
            sets.append("owner_key = :owner")
            values[":owner"] = {"S": f"{collection}#{owner}"}
        if ttl_s is None:
            removes += ["expires_at", "expires_at_ms"]
        else:
            expires_ms = now_ms + math.ceil(ttl_s * 1000)
            sets += ["expires_at = :exp", "expires_at_ms = :exp_ms"]
            values[":exp"] = {"N": str(math.ceil(expires_ms / 1000))}
            values[":exp_ms"] = {"N": str(expires_ms)}
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        key = {"pk": {"S": f"{collection}#{id}"}}

        def write() -> None:
            try:
                # Replace a live record in place, keeping `created` (its position in `list`).
                self._client.update_item(
                    TableName=self.table, Key=key, UpdateExpression=update, ExpressionAttributeValues=values,
                    ConditionExpression="attribute_exists(pk) AND"
                                        " (attribute_not_exists(expires_at_ms) OR expires_at_ms > :now)",
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                item = {**key, "created": {"N": str(time.time_ns())}, "doc": values[":doc"]}
                if owner is not None:
                    item["owner_key"] = values[":owner"]
                if ttl_s is not None:
                    item["expires_at"], item["expires_at_ms"] = values[":exp"], values[":exp_ms"]
                self._client.put_item(TableName=self.table, Item=item)

        await asyncio.to_thread(write)

    async def get(self, collection: str, id: str) -> dict | None:
        response = await asyncio.to_thread(
            self._client.get_item, TableName=self.table, Key={"pk": {"S": f"{collection}#{id}"}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None or not _live(item, _now_ms()):
            return None
        return json.loads(item["doc"]["S"])

    async def delete(self, collection: str, id: str) -> bool:
        response = await asyncio.to_thread(
            self._client.delete_item, TableName=self.table, Key={"pk": {"S": f"{collection}#{id}"}},
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes")
        return old is not None and _live(old, _now_ms())

    async def list(self, collection: str, *, owner: str) -> list[dict]:
        def query() -> list[dict[str, Any]]:
            paginator = self._client.get_paginator("query")
            pages = paginator.paginate(
                TableName=self.table, IndexName=_GSI, KeyConditionExpression="owner_key = :owner",
                ExpressionAttributeValues={":owner": {"S": f"{collection}#{owner}"}}, ScanIndexForward=True,
            )
            return [item for page in pages for item in page["Items"]]

        items = await asyncio.to_thread(query)
        now_ms = _now_ms()
        return [json.loads(item["doc"]["S"]) for item in items if _live(item, now_ms)]

    async def ping(self) -> bool:
        try:
            await asyncio.to_thread(self._client.describe_table, TableName=self.table)
        except (BotoCoreError, ClientError):
            return False
        return True

    async def close(self) -> None:
        self._client.close()
