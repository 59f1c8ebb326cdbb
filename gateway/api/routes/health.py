"""Liveness, readiness, Prometheus metrics, and the admin view of Triton's models."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import Services, require, services
from gateway.observability import REGISTRY
from gateway.schemas import Readiness
from gateway.security import SCOPE_MODELS_ADMIN, Principal
from univoice_core.errors import UniVoiceError
from univoice_core.served import SERVED_MODELS

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}},
            summary="Triton models READY and the stores reachable")
async def readyz(svc: Services = Depends(services)) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        states = await svc.triton.model_states()
        for model in SERVED_MODELS:
            checks[f"triton:{model}"] = states.get(model, "NOT_LOADED")
    except UniVoiceError as error:
        checks["triton"] = error.message
    for name, probe in (("store", svc.store.ping), ("blobs", svc.blobs.ping)):
        try:
            checks[name] = "ok" if await probe() else "unreachable"
        except Exception as error:  # any failure of a dependency means not ready
            checks[name] = f"unreachable: {type(error).__name__}"
    ready = all(v in ("ok", "READY") for v in checks.values())
    return JSONResponse(Readiness(ready=ready, checks=checks).model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/admin/models", summary="Triton model states (models:admin)")
async def models(who: Principal = Depends(require(SCOPE_MODELS_ADMIN)), svc: Services = Depends(services)) -> dict:
    return await svc.triton.model_states()
