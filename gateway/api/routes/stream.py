"""`/v1/sessions/{id}/stream`: parse and validate WebSocket messages, forward them to the pipeline.

No model logic here. The connection owns four things: authentication (its expiry, and a re-check every
`stream_recheck_s` through the store, so a logout, a deleted API key or a session closed over REST ends the
stream on every replica), the bounded queue of outgoing messages (a slow client loses audio chunks, never
memory), admission (open sockets per address, streams per account) and the per-message and per-session limits.
Every bad message gets an `error` event and the stream goes on; only problems with the session itself
(credentials, ownership, state, admission) close it, with a 44xx code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from gateway.api.deps import Services, authenticate
from gateway.api.stream_protocol import (
    AuthMessage,
    ConfigMessage,
    FlushMessage,
    PingMessage,
    StopMessage,
    audio_frame,
    auth_ok_message,
    error_message,
    event_message,
    parse_client_message,
    pong_message,
    ready_message,
    stopped_message,
)
from gateway.audio import pcm16_to_float
from gateway.observability import ACTIVE_SESSIONS, client_address, correlation_id, log_event
from gateway.pipeline.events import PipelineEvent
from gateway.pipeline.factory import StreamRequest, start_live_translation
from gateway.pipeline.live import LiveTranslation
from gateway.ratelimit import ConcurrencyLimit, address_key
from gateway.security import SCOPE_STREAM, Principal
from univoice_core.audio import OUTPUT_RATE
from univoice_core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    UniVoiceError,
)

router = APIRouter()
log = logging.getLogger("univoice.stream")

CLOSE_NORMAL, CLOSE_POLICY, CLOSE_INTERNAL = 1000, 1008, 1011
CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_CONFLICT, CLOSE_TIMEOUT = 4401, 4403, 4404, 4409, 4408
CLOSE_TOO_MANY = 4429


class CloseStream(Exception):
    def __init__(self, code: int, error: UniVoiceError):
        super().__init__(error.message)
        self.code, self.error = code, error


@router.websocket("/v1/sessions/{session_id}/stream")
async def stream(websocket: WebSocket, session_id: str) -> None:
    await websocket.accept()
    token = correlation_id.set(f"{session_id}")
    address = client_address.set(websocket.client.host if websocket.client else "-")
    connection = StreamConnection(websocket, websocket.app.state.services, session_id)
    ACTIVE_SESSIONS.inc()
    try:
        await connection.run()
    finally:
        ACTIVE_SESSIONS.dec()
        client_address.reset(address)
        correlation_id.reset(token)


class StreamConnection:
    def __init__(self, websocket: WebSocket, services: Services, session_id: str):
        self.ws, self.services, self.session_id = websocket, services, session_id
        self.settings = services.settings
        self.outbox: asyncio.Queue[tuple[str, object] | None] = asyncio.Queue(self.settings.stream_send_queue)
        self.sequence = 0
        self.principal: Principal | None = None
        self.expires_at: float | None = None
        self.pipeline: LiveTranslation | None = None
        self.started = time.monotonic()
        self.received_seconds = 0.0
        self.credential: tuple[str | None, str | None] = (None, None)  # (bearer token, API key) last accepted
        self.address = address_key(client_address.get())  # set by `stream` for this connection
        self.admitted = contextlib.ExitStack()  # the admission slots this connection holds
        self.stopping = False

    # --- outgoing ----------------------------------------------------------------------------------
    async def send_message(self, message: dict) -> None:
        await self.outbox.put(("json", message))

    async def send_event(self, event: PipelineEvent) -> None:
        await self.send_message(event_message(event))

    async def send_error(self, error: UniVoiceError) -> None:
        await self.send_message(error_message(error))

    async def send_audio(self, samples: np.ndarray) -> bool:
        """Audio is what gives way under backpressure: a full outbox drops the chunk. A dropped chunk still takes
        its sequence number, so the client sees the gap."""
        frame, self.sequence = audio_frame(self.sequence, samples), self.sequence + 1
        try:
            self.outbox.put_nowait(("bytes", frame))
        except asyncio.QueueFull:
            return False
        return True

    async def _sender(self) -> None:
        while (item := await self.outbox.get()) is not None:
            kind, payload = item
            if kind == "json":
                await self.ws.send_json(payload)
            else:
                await self.ws.send_bytes(payload)

    # --- the connection ----------------------------------------------------------------------------
    async def run(self) -> None:
        sender = asyncio.create_task(self._sender())
        close_code, reason = CLOSE_NORMAL, "done"
        try:
            self._admit(self.services.connections_per_address, self.address)
            await self._authenticate_from_headers()
            await self._configure()
            await _first_of(self._receive_loop(), self._recheck())
        except CloseStream as close:
            await self.send_error(close.error)
            close_code, reason = close.code, close.error.code
        except WebSocketDisconnect:
            close_code = None
        except Exception:
            log.exception("stream %s failed", self.session_id)
            await self.send_error(UniVoiceError("the stream failed on the server; reconnect", code="internal_error"))
            close_code, reason = CLOSE_INTERNAL, "internal_error"
        finally:
            self.admitted.close()
            if self.pipeline is not None:
                await self.pipeline.cancel()
            await self.outbox.put(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, timeout=10)
            sender.cancel()
            if close_code is not None:
                with contextlib.suppress(Exception):
                    await self.ws.close(close_code, reason)
            log_event(log, "stream closed", session_id=self.session_id, close_code=close_code,
                      seconds=round(time.monotonic() - self.started, 1), audio_seconds=round(self.received_seconds, 1))

    async def _authenticate_from_headers(self) -> None:
        header = self.ws.headers.get("authorization", "")
        api_key = self.ws.headers.get("x-api-key")
        token = header[7:] if header.lower().startswith("bearer ") else None
        if token or api_key:
            await self._set_principal(token, api_key)

    async def _set_principal(self, token: str | None, api_key: str | None) -> None:
        try:
            principal = await authenticate(self.services, token, api_key)
        except Unauthorized as error:
            raise CloseStream(CLOSE_UNAUTHORIZED, error) from None
        if self.principal is not None and principal.subject != self.principal.subject:
            raise CloseStream(CLOSE_FORBIDDEN, Forbidden("the new token belongs to another account",
                                                         code="forbidden"))
        try:
            principal.require(SCOPE_STREAM)
        except Forbidden as error:
            raise CloseStream(CLOSE_FORBIDDEN, error) from None
        if self.principal is None:
            self._admit(self.services.streams_per_user, principal.subject)
        self.principal = principal
        self.expires_at = principal.expires_at
        self.credential = (token, api_key)

    def _admit(self, limit: ConcurrencyLimit, key: str) -> None:
        try:
            self.admitted.enter_context(limit.hold(key))
        except RateLimited as error:
            raise CloseStream(CLOSE_TOO_MANY, error) from None

    async def _recheck(self) -> None:
        """Every `stream_recheck_s`: is the credential still good (not logged out, not a deleted key) and the
        session still open (not closed over REST)? Runs beside the receive loop; closes the stream when not."""
        while True:
            await asyncio.sleep(self.settings.stream_recheck_s)
            if self.stopping:  # answering what was heard after `stop`: let it finish
                continue
            try:
                await authenticate(self.services, *self.credential)
                await self.services.sessions.get_open(self.principal.subject, self.session_id)
            except Unauthorized as error:
                raise CloseStream(CLOSE_UNAUTHORIZED, error) from None
            except Conflict as error:
                raise CloseStream(CLOSE_CONFLICT, error) from None
            except NotFound as error:
                raise CloseStream(CLOSE_NOT_FOUND, error) from None
            except Exception as error:  # the store is down, say: the stream goes on, the next check retries
                log_event(log, "stream re-check failed", level=logging.WARNING, session_id=self.session_id,
                          error=repr(error))

    async def _configure(self) -> None:
        """Until a config message starts the pipeline: one deadline for the whole phase, so pings or bad
        messages cannot hold an unconfigured socket open."""
        deadline = time.monotonic() + self.settings.stream_config_timeout_s
        while True:
            message = await self._next_message(
                timeout=max(0.0, deadline - time.monotonic()),
                timed_out=f"no config message within {self.settings.stream_config_timeout_s:.0f} s of connecting")
            if isinstance(message, bytes):
                await self.send_error(BadRequest('send the JSON {"type": "config", ...} message before any audio',
                                                 code="not_configured"))
                continue
            if message is None:
                continue  # a malformed message was already answered with an error event
            if not isinstance(message, ConfigMessage):
                await self._control(message)
                continue
            if self.principal is None:
                if not message.token:
                    raise CloseStream(CLOSE_UNAUTHORIZED, Unauthorized(
                        "no credentials: send `Authorization: Bearer <token>` or put `token` in the config message",
                        code="missing_credentials"))
                await self._set_principal(message.token, None)
            try:
                await self._start_pipeline(message)
                return
            except (NotFound, BadRequest) as error:
                if error.code == "session_not_found":
                    raise CloseStream(CLOSE_NOT_FOUND, error) from None
                await self.send_error(error)  # e.g. an unknown profile: the client may send a corrected config

    async def _start_pipeline(self, config: ConfigMessage) -> None:
        try:
            self.pipeline = await start_live_translation(
                StreamRequest(self.principal.subject, self.session_id, config.voice_profile_id,
                              config.source_language, config.target_language,
                              config.audio.sample_rate if config.audio else None),
                settings=self.settings, sessions=self.services.sessions, profiles=self.services.profiles,
                speech=self.services.speech, emit=self.send_event, emit_audio=self.send_audio)
        except Conflict as error:
            if error.code == "session_ended":
                raise CloseStream(CLOSE_CONFLICT, error) from None
            raise
        live = self.pipeline.settings
        self.input_rate = live.input_rate
        await self.send_message(ready_message(
            session_id=self.session_id, source_language=live.source_language, target_language=live.target_language,
            voice=live.voice.name, input_rate=self.input_rate, output_rate=OUTPUT_RATE,
            max_frame_bytes=self.settings.stream_max_frame_bytes, max_session_seconds=self.settings.stream_max_session_s))

    async def _receive_loop(self) -> None:
        while True:
            message = await self._next_message(timeout=self.settings.stream_idle_timeout_s)
            if message is None:
                continue
            if isinstance(message, bytes):
                await self._audio(message)
            elif isinstance(message, StopMessage):
                self.stopping = True
                await self.pipeline.finish()
                await self.send_message(stopped_message(self.session_id))
                return
            elif isinstance(message, ConfigMessage):
                await self.send_error(BadRequest("the stream is already configured; open a new stream to change it",
                                                 code="already_configured"))
            else:
                await self._control(message)

    async def _control(self, message) -> None:
        if isinstance(message, PingMessage):
            await self.send_message(pong_message(message.id))
        elif isinstance(message, AuthMessage):
            await self._set_principal(message.token, None)
            await self.send_message(auth_ok_message(round(self.expires_at - time.time()) if self.expires_at else None))
        elif isinstance(message, FlushMessage):
            if self.pipeline is None:
                await self.send_error(BadRequest("nothing to flush before the config message", code="not_configured"))
            else:
                await self.pipeline.flush()
        elif isinstance(message, StopMessage):
            raise CloseStream(CLOSE_NORMAL, UniVoiceError("stopped before the stream was configured", code="stopped"))

    async def _audio(self, frame: bytes) -> None:
        if len(frame) > self.settings.stream_max_frame_bytes:
            await self.send_error(PayloadTooLarge(
                f"audio frames are limited to {self.settings.stream_max_frame_bytes} bytes; this one had {len(frame)}."
                " Send 20-100 ms of audio per frame", code="frame_too_large"))
            return
        try:
            samples = pcm16_to_float(frame)
        except UniVoiceError as error:
            await self.send_error(error)
            return
        self.received_seconds += len(samples) / self.input_rate
        if time.monotonic() - self.started > self.settings.stream_max_session_s:
            raise CloseStream(CLOSE_POLICY, UniVoiceError(
                f"streams are limited to {self.settings.stream_max_session_s} s; reconnect to continue",
                code="session_limit"))
        await self.pipeline.push(samples)

    async def _next_message(self, timeout: float, timed_out: str | None = None) -> bytes | object | None:
        """The next client message: bytes, a parsed control message, or None after answering a bad one."""
        until_expiry = None if self.expires_at is None else max(0.0, self.expires_at - time.time())
        expiry_first = until_expiry is not None and until_expiry <= timeout
        try:
            raw = await asyncio.wait_for(self.ws.receive(), timeout=until_expiry if expiry_first else timeout)
        except asyncio.TimeoutError:
            if expiry_first:
                raise CloseStream(CLOSE_UNAUTHORIZED, Unauthorized(
                    'the access token expired; send {"type": "auth", "token": ...} before it does',
                    code="token_expired")) from None
            raise CloseStream(CLOSE_TIMEOUT, UniVoiceError(timed_out or f"no message for {timeout:.0f} s",
                                                           code="idle_timeout")) from None
        if raw["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(raw.get("code", 1000))
        if raw.get("bytes") is not None:
            return raw["bytes"]
        try:
            return parse_client_message(raw.get("text") or "")
        except UniVoiceError as error:
            await self.send_error(error)
            return None


async def _first_of(*coroutines):
    """Run them together; the first to finish (or fail) ends the others. Its result, or its exception."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return done.pop().result()
