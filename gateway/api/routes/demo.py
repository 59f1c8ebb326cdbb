"""The browser demo at `/demo`: one page, one script, one stylesheet from gateway/web/ (no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from univoice_core.errors import NotFound

WEB = Path(__file__).resolve().parents[2] / "web"
# An explicit list, so that nothing else in the package can be fetched through this route.
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
# Assets change with the code; the browser should revalidate instead of running a stale script.
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["demo"], include_in_schema=False)


@router.get("/demo")
async def demo_page() -> FileResponse:
    return FileResponse(WEB / "index.html", media_type="text/html", headers=NO_CACHE)


@router.get("/demo/static/{name}")
async def demo_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"no demo asset named {name!r}")
    return FileResponse(WEB / name, media_type=ASSETS[name], headers=NO_CACHE)
