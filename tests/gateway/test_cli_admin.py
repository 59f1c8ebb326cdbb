"""`univoice admin create-user` bootstraps the first administrator in the configured store."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.settings import get_settings
from tests.gateway.api_support import PASSWORD, bearer, make_client


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch, triton):
    monkeypatch.setenv("UNIVOICE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("UNIVOICE_TRITON_GRPC_PORT", str(triton.server.grpc_port))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_created_admin_can_log_in_with_every_scope(isolated_settings):
    result = CliRunner().invoke(app, ["admin", "create-user", "root", "--password", "-"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "models:admin" in result.output
    with make_client(isolated_settings) as api:
        tokens = api.post("/v1/auth/token", data={"username": "root", "password": PASSWORD}).json()
        assert set(tokens["scope"].split()) == {"stream", "profiles:write", "models:admin"}
        assert api.get("/v1/admin/models", headers=bearer(tokens)).status_code == 200


def test_create_user_refuses_weak_passwords_unknown_scopes_and_duplicates(isolated_settings):
    runner = CliRunner()
    weak = runner.invoke(app, ["admin", "create-user", "root", "--password", "short"])
    assert weak.exit_code == 2 and "at least 10" in weak.output
    guessable = runner.invoke(app, ["admin", "create-user", "root", "--password", "password12"])
    assert guessable.exit_code == 2 and "most guessed" in guessable.output
    scope = runner.invoke(app, ["admin", "create-user", "root", "--password", PASSWORD, "--scope", "god"])
    assert scope.exit_code == 2 and "Unknown scope" in scope.output
    assert runner.invoke(app, ["admin", "create-user", "root", "--password", PASSWORD]).exit_code == 0
    again = runner.invoke(app, ["admin", "create-user", "ROOT", "--password", PASSWORD])
    assert again.exit_code == 1 and "taken" in again.output
