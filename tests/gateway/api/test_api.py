"""The REST API over HTTP (FastAPI TestClient), wired to the real Triton and real stores."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import soundfile

from gateway.sessions import SessionService
from gateway.triton.launcher import free_port
from tests.gateway.api_support import api_error, bearer, flac, make_client, signup_and_login

# --- auth -----------------------------------------------------------------------------------------

def test_signup_login_refresh_logout(api):
    user = api.post("/v1/auth/signup", json={"username": "ada", "password": "correct horse battery"})
    assert user.status_code == 201 and user.json()["username"] == "ada"
    login = api.post("/v1/auth/token", data={"username": "ada", "password": "correct horse battery"})
    assert login.status_code == 200
    tokens = login.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    assert api.get("/v1/auth/me", headers=bearer(tokens)).json()["id"] == user.json()["id"]

    rotated = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert api.get("/v1/auth/me", headers=bearer(new)).status_code == 200

    out = api.post("/v1/auth/logout", headers=bearer(new), json={"refresh_token": new["refresh_token"]})
    assert out.status_code == 204
    assert api_error(api.get("/v1/auth/me", headers=bearer(new)), 401) == "token_revoked"
    assert api_error(api.post("/v1/auth/refresh", json={"refresh_token": new["refresh_token"]}), 401) == "invalid_token"


def test_reusing_a_refresh_token_signs_out_every_session(api):
    tokens = signup_and_login(api, "grace")
    first = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    replay = api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert api_error(replay, 401) == "refresh_token_reused"
    # The legitimately rotated token was revoked too: a stolen token cannot outlive the theft.
    assert api_error(api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401) == "invalid_token"


def test_wrong_password_and_duplicate_username(api):
    signup_and_login(api, "alan")
    bad = api.post("/v1/auth/token", data={"username": "alan", "password": "wrong password!!"})
    assert api_error(bad, 401) == "invalid_credentials"
    again = api.post("/v1/auth/signup", json={"username": "ALAN", "password": "another password"})
    assert api_error(again, 409) == "username_taken"


def test_tampered_missing_and_expired_tokens_are_rejected(gateway_settings, triton):
    with make_client(gateway_settings.model_copy(update={"access_token_ttl_s": 1})) as api:
        tokens = signup_and_login(api, "edsger")
        header, payload, signature = tokens["access_token"].split(".")
        flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
        tampered = {"Authorization": f"Bearer {header}.{flipped}.{signature}"}
        assert api_error(api.get("/v1/auth/me", headers=tampered), 401) == "invalid_token"
        missing = api.get("/v1/sessions")
        assert api_error(missing, 401) == "missing_credentials"
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        time.sleep(2.1)
        assert api_error(api.get("/v1/auth/me", headers=bearer(tokens)), 401) == "token_expired"


def test_api_keys_authenticate_with_their_own_scopes(api, utterances):
    tokens = signup_and_login(api, "barbara")
    created = api.post("/v1/api-keys", headers=bearer(tokens), json={"name": "bridge", "scopes": ["stream"]})
    assert created.status_code == 201
    key = {"X-API-Key": created.json()["key"]}
    session = api.post("/v1/sessions", headers=key, json={"source_language": "es", "target_language": "en"})
    assert session.status_code == 201
    enrol = api.post("/v1/profiles", headers=key, files={"file": ("a.flac", flac(utterances[0][1]))},
                     data={"name": "x", "consent": "true"})
    assert api_error(enrol, 403) == "insufficient_scope"
    listed = api.get("/v1/api-keys", headers=bearer(tokens)).json()
    assert [k["name"] for k in listed] == ["bridge"] and "key" not in listed[0]
    assert api.delete(f"/v1/api-keys/{created.json()['id']}", headers=bearer(tokens)).status_code == 204
    assert api_error(api.get("/v1/sessions", headers=key), 401) == "invalid_api_key"


def test_admin_route_needs_models_admin_scope(api, admin_headers):
    tokens = signup_and_login(api, "linus")
    assert api_error(api.get("/v1/admin/models", headers=bearer(tokens)), 403) == "insufficient_scope"
    models = api.get("/v1/admin/models", headers=admin_headers)
    assert models.status_code == 200 and models.json()["voice_embedding"] == "READY"


# --- sessions (on every store backend) -----------------------------------------------------------

def test_session_lifecycle_and_history(store_api):
    api, service_of = store_api
    tokens = signup_and_login(api, "tim")
    created = api.post("/v1/sessions", headers=bearer(tokens), json={
        "source_language": "es", "target_language": "en",
        "audio_format": {"encoding": "pcm16", "sample_rate": 48000, "channels": 1},
    })
    assert created.status_code == 201, created.text
    session = created.json()
    assert session["state"] == "created" and session["audio_format"]["sample_rate"] == 48000
    assert api.get(f"/v1/sessions/{session['id']}", headers=bearer(tokens)).json() == session
    assert [s["id"] for s in api.get("/v1/sessions", headers=bearer(tokens)).json()] == [session["id"]]

    service: SessionService = service_of(api).sessions
    owner = api.get("/v1/auth/me", headers=bearer(tokens)).json()["id"]
    api.portal.call(service.activate, owner, session["id"])  # the stream (issue 4) does this
    for text in ("hola", "adiós"):
        api.portal.call(service.append_utterance, owner, session["id"], text, text.upper())
    history = api.get(f"/v1/sessions/{session['id']}/history", headers=bearer(tokens)).json()
    assert [u["transcript"] for u in history] == ["hola", "adiós"]
    assert history[0]["translation"] == "HOLA"

    closed = api.post(f"/v1/sessions/{session['id']}/close", headers=bearer(tokens)).json()
    assert closed["state"] == "closed"


def test_sessions_expire_after_their_ttl(gateway_settings, triton):
    with make_client(gateway_settings.model_copy(update={"session_ttl_s": 1})) as api:
        tokens = signup_and_login(api, "ken")
        session = api.post("/v1/sessions", headers=bearer(tokens),
                           json={"source_language": "en", "target_language": "es"}).json()
        time.sleep(1.2)
        assert api.get(f"/v1/sessions/{session['id']}", headers=bearer(tokens)).json()["state"] == "expired"


def test_invalid_session_requests_get_validation_errors(api):
    tokens = signup_and_login(api, "niklaus")
    bad_language = api.post("/v1/sessions", headers=bearer(tokens), json={"source_language": "xx", "target_language": "en"})
    assert api_error(bad_language, 422) == "validation_error"
    bad_rate = api.post("/v1/sessions", headers=bearer(tokens), json={
        "source_language": "en", "target_language": "es", "audio_format": {"sample_rate": 11025}})
    assert api_error(bad_rate, 422) == "validation_error"
    unknown_profile = api.post("/v1/sessions", headers=bearer(tokens), json={
        "source_language": "en", "target_language": "es", "voice_profile_id": "p_nope"})
    assert api_error(unknown_profile, 404) == "profile_not_found"


# --- isolation ------------------------------------------------------------------------------------

def test_users_cannot_touch_each_others_sessions_or_profiles(api, utterances):
    alice, bob = signup_and_login(api, "alice"), signup_and_login(api, "bob")
    session = api.post("/v1/sessions", headers=bearer(alice), json={"source_language": "es", "target_language": "en"}).json()
    profile = api.post("/v1/profiles", headers=bearer(alice), files={"file": ("a.flac", flac(utterances[0][1]))},
                       data={"name": "alice", "consent": "true"}).json()
    sid, pid = session["id"], profile["id"]
    for method, path in [("get", f"/v1/sessions/{sid}"), ("post", f"/v1/sessions/{sid}/close"),
                         ("get", f"/v1/sessions/{sid}/history"), ("get", f"/v1/profiles/{pid}"),
                         ("delete", f"/v1/profiles/{pid}")]:
        assert getattr(api, method)(path, headers=bearer(bob)).status_code == 404, path
    compare = api.post(f"/v1/profiles/{pid}/compare", headers=bearer(bob), files={"file": ("b.flac", flac(utterances[1][1]))})
    assert api_error(compare, 404) == "profile_not_found"
    use = api.post("/v1/sessions", headers=bearer(bob), json={
        "source_language": "es", "target_language": "en", "voice_profile_id": pid})
    assert api_error(use, 404) == "profile_not_found"
    assert api.get("/v1/sessions", headers=bearer(bob)).json() == []
    assert api.get("/v1/profiles", headers=bearer(bob)).json() == []
    assert api.get(f"/v1/sessions/{sid}", headers=bearer(alice)).json()["state"] == "created"
    assert api.get(f"/v1/profiles/{pid}", headers=bearer(alice)).status_code == 200


# --- voice profiles -------------------------------------------------------------------------------

def test_enrolled_profiles_rank_their_own_speaker_first(api, utterances):
    """Enrol three real speakers on the first half of their recording; compare with the second halves."""
    tokens = signup_and_login(api, "margaret")
    speakers = sorted(utterances, key=lambda u: len(u[1]))[-3:]  # the longest: each half holds >= 3 s of speech
    profiles = []
    for speaker, wav in speakers:
        response = api.post("/v1/profiles", headers=bearer(tokens),
                            files={"file": (f"{speaker}.flac", flac(wav[: len(wav) // 2]))},
                            data={"name": speaker, "consent": "true"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert 3 <= body["speech_seconds"] <= body["total_seconds"] + 1e-6
        profiles.append(body["id"])
    scores = np.zeros((3, 3))
    for j, (_, wav) in enumerate(speakers):
        for i, pid in enumerate(profiles):
            result = api.post(f"/v1/profiles/{pid}/compare", headers=bearer(tokens),
                              files={"file": ("judge.flac", flac(wav[len(wav) // 2 :]))})
            assert result.status_code == 200, result.text
            scores[i, j] = result.json()["score"]
    assert (scores.argmax(axis=0) == np.arange(3)).all(), scores.round(3)
    assert (scores.argmax(axis=1) == np.arange(3)).all(), scores.round(3)


def test_enrolment_accepts_stereo_44k_wav(api, utterances):
    tokens = signup_and_login(api, "stereo")
    import soxr

    wav = soxr.resample(utterances[3][1], 16_000, 44_100).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([wav, wav * 0.8], axis=1), 44_100, format="WAV", subtype="PCM_16")
    response = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("s.wav", buffer.getvalue())},
                        data={"name": "stereo", "consent": "true"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda u: flac((np.random.default_rng(0).standard_normal(16_000 * 8) * 0.03).astype(np.float32)), "no_speech"),
        (lambda u: flac(u[0][1][: 16_000 * 2]), "too_little_speech"),
        (lambda u: b"this is not audio at all, just text", "unsupported_audio"),
        (lambda u: flac(np.clip(u[0][1] * 30, -1, 1)), "clipped"),
    ],
    ids=["noise-only", "too-short", "not-audio", "clipped"],
)
def test_enrolment_rejects_bad_uploads_with_specific_codes(api, utterances, make, code):
    tokens = signup_and_login(api, f"reject-{code}")
    response = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("x.flac", make(utterances))},
                        data={"name": "x", "consent": "true"})
    assert api_error(response, 422) == code
    assert api.get("/v1/profiles", headers=bearer(tokens)).json() == []


def test_enrolment_needs_consent_and_respects_the_size_limit(gateway_settings, triton, utterances):
    with make_client(gateway_settings.model_copy(update={"max_upload_bytes": 50_000})) as api:
        tokens = signup_and_login(api, "consent")
        no = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1][:80_000]))},
                      data={"name": "x", "consent": "false"})
        assert api_error(no, 422) == "consent_required"
        big = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[0][1]))},
                       data={"name": "x", "consent": "true"})
        assert api_error(big, 413) == "payload_too_large"


def test_deleting_a_profile_deletes_its_blobs(api, utterances, gateway_settings):
    tokens = signup_and_login(api, "deleter")
    pid = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[4][1]))},
                   data={"name": "d", "consent": "true"}).json()["id"]
    blob_dir = gateway_settings.resolved_blob_dir() / "profiles" / pid
    assert (blob_dir / "embedding.npy").exists() and (blob_dir / "source.flac").exists()
    assert api.delete(f"/v1/profiles/{pid}", headers=bearer(tokens)).status_code == 204
    assert not any(blob_dir.glob("*")) if blob_dir.exists() else True
    assert api_error(api.get(f"/v1/profiles/{pid}", headers=bearer(tokens)), 404) == "profile_not_found"


# --- persistence ----------------------------------------------------------------------------------

def test_restart_keeps_users_sessions_and_profiles(store_settings, utterances):
    with make_client(store_settings) as api:
        tokens = signup_and_login(api, "persist")
        session = api.post("/v1/sessions", headers=bearer(tokens), json={"source_language": "en", "target_language": "es"}).json()
        profile = api.post("/v1/profiles", headers=bearer(tokens), files={"file": ("a.flac", flac(utterances[5][1]))},
                           data={"name": "p", "consent": "true"}).json()
    with make_client(store_settings) as api:  # a new process would see the same
        again = api.post("/v1/auth/token", data={"username": "persist", "password": "correct horse battery"})
        assert again.status_code == 200
        headers = bearer(again.json())
        assert api.get(f"/v1/sessions/{session['id']}", headers=headers).json()["id"] == session["id"]
        assert api.get(f"/v1/profiles/{profile['id']}", headers=headers).json()["name"] == "p"
        # tokens issued before the restart stay valid: the signing key persists too
        assert api.get("/v1/auth/me", headers=bearer(tokens)).status_code == 200


# --- operations -----------------------------------------------------------------------------------

def test_rate_limit_answers_429_with_retry_after(gateway_settings, triton):
    limited = gateway_settings.model_copy(update={"rate_limit_burst": 3, "rate_limit_per_minute": 6})
    with make_client(limited) as api:
        tokens = signup_and_login(api, "hasty")
        statuses = [api.get("/v1/sessions", headers=bearer(tokens)) for _ in range(4)]
        assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
        assert api_error(statuses[3], 429) == "rate_limited"
        assert int(statuses[3].headers["Retry-After"]) >= 1


def test_errors_carry_the_gateways_own_correlation_id(api):
    response = api.get("/v1/sessions", headers={"X-Correlation-ID": "trace-me-123"})
    assert response.status_code == 401
    assert response.json()["correlation_id"] == response.headers["X-Correlation-ID"] != "trace-me-123"
    assert response.headers["X-Client-Correlation-ID"] == "trace-me-123"  # the client's, echoed beside it
    forged = api.get("/v1/sessions", headers={"X-Correlation-ID": '{"level": "forged"} ' + "x" * 80})
    assert "X-Client-Correlation-ID" not in forged.headers
    unknown = api.get("/v1/nothing-here")
    assert api_error(unknown, 404) == "not_found"
    assert unknown.json()["correlation_id"] == unknown.headers["X-Correlation-ID"]


def test_health_readiness_and_metrics(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["triton:voice_embedding"] == "READY"
    api.get("/v1/sessions")
    metrics = api.get("/metrics").text
    assert 'univoice_http_requests_total{method="GET",route="/v1/sessions",status="401"}' in metrics
    assert "univoice_triton_request_seconds" in metrics


def test_readiness_fails_when_triton_is_unreachable(gateway_settings):
    with make_client(gateway_settings.model_copy(update={"triton_grpc_port": free_port()})) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False


def test_openapi_lists_every_route_with_examples(api):
    spec = api.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/v1/auth/signup", "/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout", "/v1/sessions",
            "/v1/sessions/{session_id}", "/v1/sessions/{session_id}/close", "/v1/sessions/{session_id}/history",
            "/v1/profiles", "/v1/profiles/{profile_id}", "/v1/profiles/{profile_id}/compare", "/v1/api-keys",
            "/healthz", "/readyz", "/metrics"} <= paths
    schemas = spec["components"]["schemas"]
    for name in ("SignupRequest", "TokenPair", "SessionCreate", "RefreshRequest", "CompareResult"):
        assert "examples" in schemas[name], name
    assert api.get("/docs").status_code == 200


def test_languages_lists_the_pairs_and_unsupported_pairs_are_refused(api, gateway_settings):
    headers = bearer(signup_and_login(api, "polyglot"))
    listed = api.get("/v1/languages").json()
    pairs = {(p["source"], p["target"]): p for p in listed["pairs"]}
    assert listed["languages"] == ["en", "es", "de", "fr"]
    assert pairs[("es", "en")]["engine"] == "apertium" and pairs[("en", "en")]["engine"] == "passthrough"
    assert ("en", "de") not in pairs  # this gateway translates with Apertium, which has no German
    response = api.post("/v1/sessions", headers=headers, json={"source_language": "en", "target_language": "de"})
    assert api_error(response, 400) == "unsupported_language_pair"
    assert "en-es" in response.json()["message"] and "es-en" in response.json()["message"]
    assert api.post("/v1/sessions", headers=headers,
                    json={"source_language": "es", "target_language": "en"}).status_code == 201

    with make_client(gateway_settings.model_copy(update={"translation_provider": "llm"})) as llm_api:
        llm_pairs = {(p["source"], p["target"]): p for p in llm_api.get("/v1/languages").json()["pairs"]}
    assert (llm_pairs[("es", "en")]["engine"], llm_pairs[("es", "en")]["fallback"]) == ("llm", "apertium")
    assert (llm_pairs[("en", "de")]["engine"], llm_pairs[("en", "de")]["fallback"]) == ("llm", None)
