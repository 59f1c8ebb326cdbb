"""Every request body capped while it streams in: 64 KB for JSON, the upload limit (+ multipart overhead) for the
two upload routes. A declared `Content-Length` over the cap is answered at once, before a byte is read; a body
without one is counted as it comes and refused (413 `payload_too_large`) as soon as it passes the cap."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.errors import error_response

JSON_BODY_BYTES = 64 * 1024  # the largest JSON body any route takes (a sign-up, a session) is under 1 KB
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and the text fields around an uploaded file
UPLOAD_ROUTES = ("/v1/profiles",)  # POST /v1/profiles and POST /v1/profiles/{id}/compare


def _refusal(limit: int) -> str:
    return f"the request body is larger than this route takes ({limit} bytes); send less"


class BodyLimit:
    def __init__(self, app: ASGIApp, upload_bytes: int):
        self.app, self.upload_limit = app, upload_bytes + MULTIPART_OVERHEAD_BYTES

    def limit(self, scope: Scope) -> int:
        upload = scope["method"] == "POST" and scope["path"].startswith(UPLOAD_ROUTES)
        return self.upload_limit if upload else JSON_BODY_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await error_response(413, "payload_too_large", _refusal(limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # raised inside the route: the app's handler answers it
                    raise HTTPException(413, _refusal(limit))
            return message

        await self.app(scope, counted, send)
