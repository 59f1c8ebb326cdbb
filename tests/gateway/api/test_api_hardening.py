"""Cheap denial of service, refused cheaply: bodies capped while they stream in, uploads authenticated before they
are read, decompression bombs refused by their header, one rate-limit bucket per account (issue 12)."""

from __future__ import annotations

import datetime
import functools
import http.client
import io
import ipaddress
import re
import ssl
import time
from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest
import soundfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.embedded import gateway_in_thread
from tests.gateway.api_support import PASSWORD, api_error, bearer, flac, make_client, signup_and_login

MB = 1024 * 1024


def _send_head_and_a_little(base: str, path: str, headers: dict, declared: int) -> tuple[int, float]:
    """Declare a body of `declared` bytes, send 1 KB of it, and see how soon (and what) the gateway answers."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=20)
    started = time.monotonic()
    connection.putrequest("POST", path)
    for name, value in {**headers, "Content-Length": str(declared)}.items():
        connection.putheader(name, value)
    connection.endheaders(b"x" * 1024)
    response = connection.getresponse()
    status = response.status
    connection.close()
    return status, time.monotonic() - started


@pytest.mark.parametrize(("path", "content_type", "declared", "status"), [
    # Within the upload cap but with no credentials: refused before the form is read.
    ("/v1/profiles", "multipart/form-data; boundary=xyz", 10 * MB, 401),
    ("/v1/profiles", "multipart/form-data; boundary=xyz", 200 * MB, 413),  # over the cap: refused on its length
    ("/v1/auth/signup", "application/json", 200 * MB, 413),
])
def test_a_declared_body_is_answered_without_being_read(live_gateway, path, content_type, declared, status):
    base, _ = live_gateway
    answered, _ = _send_head_and_a_little(base, path, {"Content-Type": content_type}, declared)
    # Had the gateway waited for the body it announced, getresponse() would have timed out instead.
    assert answered == status


def test_a_json_body_over_the_cap_is_refused_while_it_streams_in(api):
    def chunks():  # no Content-Length: only counting the bytes as they come can refuse it
        for _ in range(200):
            yield b" " * 1024

    response = api.post("/v1/auth/signup", content=chunks(), headers={"Content-Type": "application/json"})
    assert api_error(response, 413) == "payload_too_large"


def test_an_upload_over_its_cap_is_refused_with_413(gateway_settings, triton):
    with make_client(gateway_settings.model_copy(update={"max_upload_bytes": 100_000})) as api:
        tokens = signup_and_login(api, "big-upload")
        response = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", b"\0" * 400_000)},
                            data={"name": "x", "consent": "true"})
        assert api_error(response, 413) == "payload_too_large"


def test_a_decompression_bomb_is_refused_by_its_header(api, utterances):
    tokens = signup_and_login(api, "bomber")
    bomb = flac(np.zeros((192_000 * 20, 8), np.int16), 192_000)  # ~100 KB of FLAC that decodes to 123 MB of float32
    response = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("bomb.flac", bomb)},
                        data={"name": "x", "consent": "true"})
    assert api_error(response, 422) == "unsupported_sample_rate"
    assert "48000" in response.json()["message"]


def test_an_upload_without_its_fields_is_a_validation_error(api):
    tokens = signup_and_login(api, "formless")
    response = api.post("/v1/profiles", headers=bearer(tokens), files={"other": ("a.flac", b"123")})
    assert api_error(response, 422) == "validation_error"
    message = response.json()["message"]
    assert "file" in message and "name" in message and "consent" in message


def test_one_account_has_one_rate_limit_bucket_whatever_credential_it_uses(gateway_settings, triton):
    with make_client(gateway_settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 6})) as api:
        tokens = signup_and_login(api, "many-keys")
        keys = [api.post("/v1/api-keys", headers=bearer(tokens), json={"name": f"k{i}"}).json()["key"]
                for i in range(3)]
        statuses = [api.get("/v1/sessions", headers={"X-API-Key": key}).status_code for key in keys * 3]
        assert 429 in statuses and statuses.index(429) <= 3  # the burst was spent by the token, not per key
        assert api.get("/v1/sessions", headers=bearer(tokens)).status_code == 429


def test_every_use_of_a_voice_profile_is_in_its_owners_audit_trail_and_outlives_it(api, utterances):
    tokens = signup_and_login(api, "audited")
    pid = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1]))},
                   data={"name": "me", "consent": "true"}).json()["id"]
    assert api.post(f"/v1/profiles/{pid}/compare", headers=bearer(tokens),
                    files={"file": ("b.flac", flac(utterances[0][1]))}).status_code == 200
    assert api.delete(f"/v1/profiles/{pid}", headers=bearer(tokens)).status_code == 204
    trail = [e for e in api.get("/v1/audit", headers=bearer(tokens)).json() if e["action"].startswith("profile.")]
    assert [(e["action"], e["resource_id"]) for e in trail] == [
        ("profile.enrolled", pid), ("profile.compared", pid), ("profile.deleted", pid)]
    assert trail[0]["details"]["consent"] is True and trail[1]["details"]["score"] > 0.8
    shown = api.get("/v1/profiles/consent").json()  # what the speaker agreed to, kept with the enrolment
    assert (trail[0]["details"]["consent_text"], trail[0]["details"]["consent_version"]) == (shown["text"],
                                                                                             shown["version"])
    outdated = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1]))},
                        data={"name": "me", "consent": "true", "consent_version": "2019-01-01"})
    assert api_error(outdated, 400) == "consent_outdated"
    stranger = api.get("/v1/audit", headers=bearer(signup_and_login(api, "stranger"))).json()
    assert {e["action"] for e in stranger} == {"account.created", "auth.signed_in"}


def test_sign_ins_refusals_sign_outs_and_api_keys_are_audited_with_address_and_correlation_id(api):
    tokens = signup_and_login(api, "watched")
    refused = api.post("/v1/auth/token", data={"username": "watched", "password": "not the password"})
    assert refused.status_code == 401
    created = api.post("/v1/api-keys", headers=bearer(tokens), json={"name": "ci"})
    key_id = created.json()["id"]
    assert api.delete(f"/v1/api-keys/{key_id}", headers=bearer(tokens)).status_code == 204
    api.post("/v1/auth/token", data={"username": "nobody-here", "password": PASSWORD})  # the gateway's own trail
    gateway_trail = api.portal.call(api.app.state.services.audit.entries, "system")
    assert [(e.action, e.result, e.details) for e in gateway_trail] == [
        ("auth.sign_in_refused", "denied", {"reason": "unknown username"})]

    trail = api.get("/v1/audit", headers=bearer(tokens)).json()
    user_id = trail[0]["resource_id"]
    assert [(e["action"], e["result"]) for e in trail] == [
        ("account.created", "ok"), ("auth.signed_in", "ok"), ("auth.sign_in_refused", "denied"),
        ("api_key.created", "ok"), ("api_key.deleted", "ok")]
    assert all(e["actor"] == user_id and e["address"] == "testclient" for e in trail)
    assert trail[2]["correlation_id"] == refused.headers["X-Correlation-ID"]
    assert trail[3]["resource_id"] == trail[4]["resource_id"] == key_id
    assert trail[3]["details"] == {"name": "ci", "scopes": created.json()["scopes"]}
    assert api.post("/v1/auth/logout", headers=bearer(tokens)).status_code == 204
    again = api.post("/v1/auth/token", data={"username": "watched", "password": PASSWORD}).json()
    assert [e["action"] for e in api.get("/v1/audit", headers=bearer(again)).json()][-2:] == [
        "auth.signed_out", "auth.signed_in"]


def assert_no_plaintext(stored: dict[str, bytes], embedding: np.ndarray) -> None:
    """Nothing stored holds the embedding's bytes (any 32 of them) or decodes as audio."""
    raw = np.asarray(embedding, np.float32).tobytes()
    for name, data in stored.items():
        assert not any(raw[i: i + 32] in data for i in range(0, len(raw) - 32, 32)), name
        with pytest.raises(soundfile.LibsndfileError):
            soundfile.read(io.BytesIO(data))


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_after_enrolment_no_stored_file_holds_the_embedding_or_audio(gateway_settings, utterances, backend,
                                                                      request):
    settings = gateway_settings
    if backend == "s3":
        settings = settings.model_copy(update={"blob_backend": "s3", "s3_bucket": "univoice-plaintext-check",
                                               "aws_endpoint_url": request.getfixturevalue("moto_server")})
    with make_client(settings) as api:
        tokens = signup_and_login(api, "private")
        pid = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1]))},
                       data={"name": "me", "consent": "true"}).json()["id"]
        owner = api.get("/v1/auth/me", headers=bearer(tokens)).json()["id"]
        embedding = api.portal.call(api.app.state.services.profiles.embedding, owner, pid)
    stored = {str(p): p.read_bytes() for p in settings.state_dir.rglob("*") if p.is_file()}
    if backend == "s3":
        s3 = boto3.client("s3", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        objects = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=f"profiles/{pid}/")["Contents"]
        assert len(objects) == 3
        stored |= {o["Key"]: s3.get_object(Bucket=settings.s3_bucket, Key=o["Key"])["Body"].read() for o in objects}
    assert any(f"profiles/{pid}/source.flac" in name for name in stored)
    assert_no_plaintext(stored, embedding)


def test_responses_carry_security_headers_and_do_not_name_the_server(live_gateway):
    base, _ = live_gateway
    with httpx.Client(base_url=base) as client:
        for path in ("/healthz", "/demo", "/v1/sessions"):
            headers = client.get(path).headers
            assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff" and "server" not in headers
            assert "strict-transport-security" not in headers  # plain HTTP: HSTS would be meaningless


def test_the_api_docs_load_nothing_from_another_origin(api):
    page = api.get("/docs").text
    assert not re.findall(r"(?:src|href)=['\"]?(?:https?:)?//", page) and "/docs/static/swagger-ui-bundle.js" in page
    assert api.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def test_cors_answers_the_configured_origins_only(gateway_settings, triton):
    allowed = "https://app.example.com"
    with make_client(gateway_settings.model_copy(update={"cors_origins": [allowed]})) as api:
        for origin, expected in ((allowed, allowed), ("https://evil.example.com", None)):
            preflight = api.options("/v1/sessions", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                             "Access-Control-Request-Headers": "authorization"})
            assert preflight.headers.get("access-control-allow-origin") == expected


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def test_with_a_certificate_the_gateway_speaks_tls_1_3_only(gateway_settings, certificate):
    cert, key = certificate
    with gateway_in_thread(gateway_settings.model_copy(update={"tls_certfile": cert, "tls_keyfile": key})) as (base, _):
        assert base.startswith("https://")
        modern = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=base, verify=modern) as client:
            response = client.get("/healthz")
            assert response.status_code == 200 and "max-age" in response.headers["strict-transport-security"]
        old = ssl.create_default_context(cafile=str(cert))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with httpx.Client(base_url=base, verify=old) as client, pytest.raises(httpx.ConnectError):
            client.get("/healthz")


@pytest.mark.parametrize("password", ["password12", "correcthorse-weak", "aaaaaaaaaaaa", "Welcome2024!"])
def test_guessable_passwords_are_refused(api, password):
    username = "correcthorse" if "correcthorse" in password else "sam"
    response = api.post("/v1/auth/signup", json={"username": username, "password": password})
    assert api_error(response, 400) == "weak_password"


def test_asking_for_a_scope_the_account_lacks_is_invalid_scope(api):
    signup_and_login(api, "modest")
    response = api.post("/v1/auth/token", data={"username": "modest", "password": PASSWORD, "scope": "models:admin"})
    assert api_error(response, 400) == "invalid_scope"


def test_a_replayed_refresh_token_also_ends_the_access_tokens_already_out(api):
    tokens = signup_and_login(api, "replayed")
    assert api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    replay = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert api_error(replay, 401) == "refresh_token_reused"
    assert api_error(api.get("/v1/sessions", headers=bearer(tokens)), 401) == "token_revoked"
    assert api.get("/v1/sessions", headers=bearer(signup_and_login(api, "replayed-fresh"))).status_code == 200


def test_logout_without_a_body_also_revokes_the_refresh_token_issued_with_the_access_token(api):
    tokens = signup_and_login(api, "leaving")
    assert api.post("/v1/auth/logout", headers=bearer(tokens)).status_code == 204
    assert api_error(api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401) == "invalid_token"


def test_logout_with_a_malformed_refresh_token_still_revokes_the_access_token(api):
    tokens = signup_and_login(api, "clumsy")
    api.post("/v1/auth/logout", headers=bearer(tokens), json={"refresh_token": "not-a-refresh-token"})
    assert api_error(api.get("/v1/sessions", headers=bearer(tokens)), 401) == "token_revoked"


def test_comparing_voices_needs_the_profiles_scope(api, utterances):
    tokens = signup_and_login(api, "scoped")
    key = api.post("/v1/api-keys", headers=bearer(tokens), json={"name": "streamer", "scopes": ["stream"]}).json()
    response = api.post("/v1/profiles/p_x/compare", headers={"X-API-Key": key["key"]},
                        files={"file": ("a.flac", flac(utterances[0][1][:48_000]))})
    assert api_error(response, 403) == "insufficient_scope"


@pytest.mark.parametrize("name", ["evil\u202eexe.flac", "zero\u200bwidth", "bell\x07"])
def test_names_with_control_or_bidi_characters_are_refused(api, utterances, name):
    tokens = signup_and_login(api, f"namer-{len(name)}-{ord(name[4])}")
    assert api_error(api.post("/v1/api-keys", headers=bearer(tokens), json={"name": name}), 422) == "validation_error"
    response = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1]))},
                        data={"name": name, "consent": "true"})
    assert api_error(response, 422) == "validation_error"


def test_deleting_an_account_erases_its_voices_sessions_and_credentials_and_is_audited(api, utterances,
                                                                                       gateway_settings):
    tokens = signup_and_login(api, "erased")
    user_id = api.get("/v1/auth/me", headers=bearer(tokens)).json()["id"]
    pid = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1]))},
                   data={"name": "me", "consent": "true"}).json()["id"]
    session_id = api.post("/v1/sessions", headers=bearer(tokens),
                          json={"source_language": "en", "target_language": "en"}).json()["id"]
    key = api.post("/v1/api-keys", headers=bearer(tokens), json={"name": "k"}).json()["key"]
    services = api.app.state.services
    api.portal.call(services.sessions.append_utterance, user_id, session_id, "hello", "hello")

    assert api.delete("/v1/auth/me", headers=bearer(tokens)).status_code == 204
    assert api_error(api.get("/v1/sessions", headers=bearer(tokens)), 401) == "token_revoked"
    assert api_error(api.get("/v1/sessions", headers={"X-API-Key": key}), 401) == "invalid_api_key"
    login = api.post("/v1/auth/token", data={"username": "erased", "password": PASSWORD})
    assert api_error(login, 401) == "invalid_credentials"
    assert not any((gateway_settings.resolved_blob_dir() / "profiles" / pid).glob("*"))
    assert api.portal.call(functools.partial(services.store.list, "session_history", owner=session_id)) == []
    trail = api.portal.call(services.audit.entries, user_id)
    assert [e.action for e in trail][-2:] == ["profile.deleted", "account.deleted"]
    assert trail[-1].details == {"profiles": 1, "sessions": 1}
    signup_and_login(api, "erased")  # the name is free again


def test_deleting_a_session_erases_its_history(api):
    tokens = signup_and_login(api, "forgetful")
    user_id = api.get("/v1/auth/me", headers=bearer(tokens)).json()["id"]
    session_id = api.post("/v1/sessions", headers=bearer(tokens),
                          json={"source_language": "en", "target_language": "en"}).json()["id"]
    services = api.app.state.services
    api.portal.call(services.sessions.append_utterance, user_id, session_id, "hola", "hello")
    history = functools.partial(services.store.list, "session_history", owner=session_id)
    assert len(api.portal.call(history)) == 1
    assert api.delete(f"/v1/sessions/{session_id}", headers=bearer(tokens)).status_code == 204
    assert api.portal.call(history) == []
    assert api_error(api.get(f"/v1/sessions/{session_id}/history", headers=bearer(tokens)), 404) == "session_not_found"


def test_password_guessing_is_throttled_per_address(gateway_settings, triton):
    limited = gateway_settings.model_copy(update={"auth_attempts_per_minute": 1, "auth_attempts_burst": 3})
    with make_client(limited) as api:
        api.post("/v1/auth/signup", json={"username": "target", "password": PASSWORD})
        guesses = [api.post("/v1/auth/token", data={"username": "target", "password": f"guess {i}"}).status_code
                   for i in range(4)]
        assert guesses == [401, 401, 401, 429]  # the address's three attempts, then no more checks
        assert int(api.post("/v1/auth/token", data={"username": "target", "password": PASSWORD})
                   .headers["Retry-After"]) >= 1
