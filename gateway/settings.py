"""The one settings object. Sources, in order: defaults, `.env`, then `UNIVOICE_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNIVOICE_", env_file=".env", extra="ignore")

    # Triton
    model_repository: Path = REPO_ROOT / "model_repository"
    triton_host: str = "127.0.0.1"
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_start_timeout_s: float = 180.0
    # None: <model>/config.pbtxt (bundled CPU Triton); "gpu": <model>/configs/gpu.pbtxt (NGC image).
    triton_config_name: str | None = None

    # Real speech used by export parity gates, tests and benchmarks (LibriSpeech, CC BY 4.0).
    data_dir: Path = REPO_ROOT.parent / "shared" / "data" / "librispeech-train-clean-100"

    @property
    def triton_http_url(self) -> str:
        return f"{self.triton_host}:{self.triton_http_port}"

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
