"""Settings: every field documented, sources layered in the documented order (AWS via moto)."""

from __future__ import annotations

import base64
import json
import re

import boto3

from gateway.blobs.master_keys import parse_keys
from gateway.settings import Settings
from univoice_core.config import REPO_ROOT


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^UNIVOICE_([A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    export_only = {"VOICE_CONVERTER_CHECKPOINT"}  # read by export from the environment (univoice_core.config)
    assert documented == {name.upper() for name in Settings.model_fields} | export_only


def test_env_example_values_parse(monkeypatch, tmp_path):
    lines = [line for line in (REPO_ROOT / ".env.example").read_text().splitlines() if line.startswith("UNIVOICE_")]
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    settings = Settings(_env_file=str(env))
    assert settings.store_backend == "sqlite" and settings.port == 8080
    # Empty values are "unset": the generated keys, plain HTTP.
    assert settings.jwt_secret is None and settings.blob_key is None and settings.tls_certfile is None


def test_environment_overrides_dotenv(monkeypatch, tmp_path):
    env = tmp_path / ".env"
    env.write_text("UNIVOICE_PORT=9000\nUNIVOICE_LOG_LEVEL=DEBUG\n")
    monkeypatch.setenv("UNIVOICE_PORT", "9100")
    settings = Settings(_env_file=str(env))
    assert settings.port == 9100 and settings.log_level == "DEBUG"


def test_aws_ssm_and_secrets_manager_override_the_environment(monkeypatch, moto_server):
    """SSM and Secrets Manager cannot run here: moto's local server mocks their APIs."""
    ssm = boto3.client("ssm", region_name="us-east-1", endpoint_url=moto_server)
    ssm.put_parameter(Name="/univoice/test/port", Value="9300", Type="String")
    ssm.put_parameter(Name="/univoice/test/jwt_audience", Value="from-ssm", Type="SecureString")
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=moto_server)
    master_keys = f"{base64.b64encode(b'n' * 32).decode()}\n{base64.b64encode(b'o' * 32).decode()}"  # new, retired
    secrets.create_secret(Name="univoice-test", SecretString=json.dumps({"jwt_secret": "s" * 40, "unknown": 1,
                                                                         "blob_key": master_keys}))
    monkeypatch.setenv("UNIVOICE_PORT", "9100")
    monkeypatch.setenv("UNIVOICE_AWS_SSM_PREFIX", "/univoice/test")
    monkeypatch.setenv("UNIVOICE_AWS_SECRET_ID", "univoice-test")
    monkeypatch.setenv("UNIVOICE_AWS_ENDPOINT_URL", moto_server)
    settings = Settings(_env_file=None)
    assert settings.port == 9300
    assert settings.jwt_audience == "from-ssm"
    assert settings.jwt_secret.get_secret_value() == "s" * 40
    assert parse_keys(settings.blob_master_keys(), "the secret") == [b"n" * 32, b"o" * 32]  # blobs' master keys
