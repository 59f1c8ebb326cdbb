"""TritonClient's reading of the server's answers (a stand-in for the gRPC client: the real server's side is in
tests/export/test_publish.py and tests/gateway/api/test_api.py)."""

from __future__ import annotations

import pytest

from gateway.triton.client import TritonClient

pytestmark = pytest.mark.anyio


class RepositoryIndex:
    """What Triton's repository index lists after a rollback: the serving version and the retired one."""

    async def get_model_repository_index(self, as_json: bool):
        return {"models": [{"name": "speaker_encoder", "version": "1", "state": "READY"},
                           {"name": "speaker_encoder", "version": "2", "state": "UNAVAILABLE"},
                           {"name": "translator", "version": "1", "state": "UNAVAILABLE"},
                           {"name": "voice_clone", "version": "", "state": ""}]}


async def test_a_model_is_ready_when_a_version_is_even_if_a_retired_one_is_listed_after_it():
    client = TritonClient("127.0.0.1:1")
    client._client = RepositoryIndex()
    assert await client.model_states() == {"speaker_encoder": "READY", "translator": "UNAVAILABLE"}
