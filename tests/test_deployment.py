"""The container deployment (docker-compose.yml, gateway/deploy/): valid, and wired the way the README says.

No Docker engine is needed: docker-compose validates the file, and the rest is read from the files.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from univoice_core.served import SERVED_MODELS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile(services) -> tuple[Path, list[tuple[str, str]]]:
    """The gateway's Dockerfile and its instructions as (KEYWORD, arguments), continuation lines joined."""
    build = services["gateway"]["build"]
    path = ROOT / build["context"] / build["dockerfile"]
    assert path.is_file(), f"the gateway builds from {path}, which does not exist"
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return path, [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def run_compose_config(env_secret: str | None) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("the docker-compose binary is not installed (Debian package docker-compose)")
    env = {k: v for k, v in os.environ.items() if k != "UNIVOICE_JWT_SECRET"}
    if env_secret is not None:
        env["UNIVOICE_JWT_SECRET"] = env_secret
    return subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid():
    result = run_compose_config(SECRET)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_jwt_secret():
    result = run_compose_config(None)
    assert result.returncode != 0
    assert "set a 32+ byte secret" in result.stderr


def test_triton_serves_the_gpu_configs_of_the_served_models_on_a_gpu(services):
    triton = services["triton"]
    # Triton 2.51 like the bundled build, plus what voice_clone imports
    dockerfile = (ROOT / triton["build"]["dockerfile"]).read_text()
    assert "FROM nvcr.io/nvidia/tritonserver:24.10-py3" in dockerfile and "pyworld" in dockerfile
    # The python models import only the shared core (tests/test_import_graph.py): nothing else is copied.
    assert [line for line in dockerfile.splitlines() if line.startswith("COPY")] == [
        "COPY univoice_core /opt/univoice/univoice_core"]
    command = triton["command"] if isinstance(triton["command"], list) else shlex.split(triton["command"])
    assert "--model-repository=/models" in command
    assert "--model-config-name=gpu" in command
    assert "--model-control-mode=explicit" in command
    assert "--strict-readiness=false" in command  # a failed publish must not leave the health check failing
    # By name: `--load-model=*` would also try .retired/ and .staging/ as models and fail the start.
    loaded = [arg.split("=", 1)[1] for arg in command if arg.startswith("--load-model=")]
    assert loaded == list(SERVED_MODELS)
    health = " ".join(triton["healthcheck"]["test"])
    asked = re.search(r"for m in ([\w ]+); do curl -fsS http://localhost:8000/v2/models/\$\$m/ready", health)
    assert asked and asked[1].split() == list(SERVED_MODELS), "the health check asks each served model"
    assert "./model_repository:/models:ro" in triton["volumes"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]} in devices
    assert triton["shm_size"]


@pytest.mark.parametrize("model", SERVED_MODELS)
def test_every_served_model_has_a_gpu_config(model):
    assert (ROOT / "model_repository" / model / "configs" / "gpu.pbtxt").is_file(), \
        "run `univoice models configs` and commit the result"


def test_every_service_has_a_healthcheck(services):
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"service {name} has no healthcheck"


def test_gateway_waits_for_healthy_dependencies_and_uses_them(compose, services):
    gateway = services["gateway"]
    depends = gateway["depends_on"]
    for dependency in ("triton", "redis", "localstack"):
        assert depends[dependency]["condition"] == "service_healthy", dependency
    env = gateway["environment"]
    assert env["UNIVOICE_TRITON_HOST"] == "triton"
    assert env["UNIVOICE_TRITON_EMBEDDED"] == "false"
    assert env["UNIVOICE_STORE_BACKEND"] == "redis" and "//redis:" in env["UNIVOICE_REDIS_URL"]
    assert env["UNIVOICE_BLOB_BACKEND"] == "s3" and env["UNIVOICE_AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert env["UNIVOICE_JWT_SECRET"].startswith("${UNIVOICE_JWT_SECRET:?")
    # The build dir (assembled Whisper, preset voice cache) is a named volume, so it survives restarts.
    mounts = {target: source for source, target in (v.split(":")[:2] for v in gateway["volumes"])}
    assert mounts[env["UNIVOICE_BUILD_DIR"]] in compose["volumes"]


def test_gateway_image_runs_uvicorn_as_a_non_root_user_without_torch(dockerfile):
    path, instructions = dockerfile
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, f"{path} has no USER instruction: the gateway would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    keywords = [keyword for keyword, _ in instructions]
    assert keywords.count("FROM") >= 2, "multi-stage: builder + slim runtime"
    assert [args for keyword, args in instructions if keyword == "FROM"][-1] == "python:3.11-slim-bookworm"
    assert "EXPOSE" in keywords and "HEALTHCHECK" in keywords
    cmd = [args for keyword, args in instructions if keyword == "CMD"][-1]
    assert "uvicorn" in cmd and "gateway.app:app_from_env" in cmd and "--factory" in cmd
    installs = " ".join(args for keyword, args in instructions if keyword == "RUN" and "pip install" in args)
    assert not re.search(r"\[[^]]*\b(export|dev)\b", installs), "the image gets the serving dependencies only"


def test_build_context_holds_what_the_dockerfile_copies_and_no_weights(dockerfile):
    _, instructions = dockerfile
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore should allow-list the context"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = [args.split()[:-1] for keyword, args in instructions if keyword == "COPY" and "--from" not in args]
    for source in (s.rstrip("/") for sources in copied for s in sources):
        assert source in included, f"COPY {source} is excluded from the build context by .dockerignore"
    assert "model_repository" not in included


def test_prometheus_scrapes_gateway_and_triton(services):
    prometheus = services["prometheus"]
    mount = next(v for v in prometheus["volumes"] if v.endswith("/etc/prometheus/prometheus.yml:ro"))
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    targets = {target for job in config["scrape_configs"] for static in job["static_configs"]
               for target in static["targets"]}
    assert {"gateway:8080", "triton:8002"} <= targets
