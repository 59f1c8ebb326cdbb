"""`univoice admin`: create-user bootstraps the first administrator in the configured store; rotate-keys re-wraps
every blob's data key under a new master key; apply-retention (also run at start-up) expires enrolment audio."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.settings import get_settings
from tests.faults.support import wait_until
from tests.gateway.api_support import PASSWORD, bearer, flac, make_client, signup_and_login


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


def words(output: str) -> str:
    """The console's output as one line (it wraps long lines at the terminal's width)."""
    return " ".join(output.split())


def enrol(api, tokens: dict, wav: np.ndarray) -> str:
    response = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("me.flac", flac(wav))},
                        data={"name": "me", "consent": "true"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_rotate_keys_rewraps_every_blob_under_a_new_master_key_and_is_audited(isolated_settings, utterances):
    with make_client(isolated_settings) as api:
        tokens = signup_and_login(api, "rotated")
        pid = enrol(api, tokens, utterances[0][1])
        owner = api.get("/v1/auth/me", headers=bearer(tokens)).json()["id"]
        embedding = api.portal.call(api.app.state.services.profiles.embedding, owner, pid)
    blob = isolated_settings.resolved_blob_dir() / "profiles" / pid / "embedding.npy"
    before = blob.read_bytes()

    made = CliRunner().invoke(app, ["admin", "rotate-keys", "--new-key"])
    assert made.exit_code == 0 and "restart the gateway" in words(made.output), made.output
    key_file = isolated_settings.blob_key_file()
    assert len(key_file.read_text().split()) == 2 and key_file.stat().st_mode & 0o777 == 0o600
    assert blob.read_bytes() == before  # a new key wraps nothing until the rotation runs
    result = CliRunner().invoke(app, ["admin", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "3 re-wrapped, 0 already current" in words(result.output)  # embedding, statistics, enrolment audio
    assert blob.read_bytes() != before and blob.read_bytes()[-64:] == before[-64:]  # the data is not re-sealed

    key_file.write_text(key_file.read_text().split()[0] + "\n")  # the retired key can go now
    with make_client(isolated_settings) as api:
        services = api.app.state.services
        assert np.array_equal(api.portal.call(services.profiles.embedding, owner, pid), embedding)
        rotations = [e for e in api.portal.call(services.audit.entries, "system") if e.action == "admin.keys_rotated"]
        assert rotations[-1].actor == "cli" and rotations[-1].details == {"rewrapped": 3}
    again = CliRunner().invoke(app, ["admin", "rotate-keys"])
    assert again.exit_code == 0 and "0 re-wrapped, 3 already current" in words(again.output), again.output


def test_rotate_keys_refuses_to_make_a_key_when_the_key_is_configured(isolated_settings, monkeypatch):
    monkeypatch.setenv("UNIVOICE_BLOB_KEY", "c2l4dGVlbiBieXRlcyBrZXkgc2l4dGVlbiBieXRlcyE=")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["admin", "rotate-keys", "--new-key"])
    assert result.exit_code == 2 and "put the new key there yourself" in words(result.output)


def test_retention_deletes_old_enrolment_recordings_at_start_up_and_by_command(isolated_settings, monkeypatch,
                                                                               utterances):
    with make_client(isolated_settings) as api:
        tokens = signup_and_login(api, "forgotten")
        old, new = enrol(api, tokens, utterances[0][1]), enrol(api, tokens, utterances[1][1])
        store = api.app.state.services.store
        record = api.portal.call(store.get, "profiles", old)
        record["created_at"] = time.time() - 8 * 86_400
        api.portal.call(lambda: store.put("profiles", old, record, owner=record["owner"]))
    blobs = isolated_settings.resolved_blob_dir() / "profiles"
    assert (blobs / old / "source.flac").exists()

    monkeypatch.setenv("UNIVOICE_ENROLMENT_AUDIO_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    with make_client(get_settings()) as api:  # applied when the gateway starts (in the background)
        wait_until(lambda: not (blobs / old / "source.flac").exists(), 30, "the old recording expiring")
        assert (blobs / new / "source.flac").exists()
        profiles = {p["id"]: p for p in api.get("/v1/profiles", headers=bearer(tokens)).json()}
        assert not profiles[old]["has_source_audio"] and profiles[new]["has_source_audio"]
        compare = api.post(f"/v1/profiles/{old}/compare", headers=bearer(tokens),
                           files={"file": ("b.flac", flac(utterances[0][1]))})
        assert compare.status_code == 200  # the profile still works without its recording
        trail = api.get("/v1/audit", headers=bearer(tokens)).json()
        assert [(e["resource_id"], e["actor"]) for e in trail if e["action"] == "profile.audio_expired"] == [
            (old, "system")]
        assert api.get(f"/v1/profiles/{old}", headers=bearer(tokens)).json()["has_source_audio"] is False
    result = CliRunner().invoke(app, ["admin", "apply-retention"])
    assert result.exit_code == 0 and "deleted 0 enrolment recording(s) older than 7 days" in words(result.output)
