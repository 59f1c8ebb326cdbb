"""Translation sessions: created -> active -> closed, or expired after their TTL; per-utterance history."""

from __future__ import annotations

import dataclasses
import time
import uuid

from gateway.records import AudioFormat, HistoryEntry, Session, SessionState, from_document, to_document
from gateway.stores.base import RecordStore
from univoice_core.errors import Conflict, NotFound

SESSIONS, HISTORY = "sessions", "session_history"
# Records outlive their session by a day so that clients can still read an expired session's history.
RETENTION_S = 24 * 3600
LIVE: tuple[SessionState, ...] = ("created", "active")  # may still take speech, until the TTL
ENDED: tuple[SessionState, ...] = ("closed", "expired")


class SessionService:
    def __init__(self, store: RecordStore, ttl_s: int, clock=time.time):
        self.store = store
        self.ttl_s = ttl_s
        self.clock = clock

    async def create(self, owner: str, source_language: str, target_language: str,
                     voice_profile_id: str | None, audio_format: AudioFormat) -> Session:
        now = self.clock()
        session = Session(id=f"s_{uuid.uuid4().hex}", owner=owner, state="created", source_language=source_language,
                          target_language=target_language, voice_profile_id=voice_profile_id,
                          audio_format=audio_format, created_at=now, updated_at=now, expires_at=now + self.ttl_s)
        await self.store.put(SESSIONS, session.id, to_document(session), owner=owner, ttl_s=self.ttl_s + RETENTION_S)
        return session

    async def get(self, owner: str, session_id: str) -> Session:
        """The caller's own session; someone else's is reported as not found (no existence leak)."""
        document = await self.store.get(SESSIONS, session_id)
        if document is None or document["owner"] != owner:
            raise NotFound(f"no session {session_id!r} for this account", code="session_not_found")
        return self._with_expiry(from_document(Session, document))

    async def get_open(self, owner: str, session_id: str) -> Session:
        """The caller's session while it can still take speech: a closed or expired one is a Conflict."""
        session = await self.get(owner, session_id)
        if session.state in ENDED:
            raise Conflict(f"session {session_id} is {session.state}; create a new one", code="session_ended")
        return session

    async def list(self, owner: str) -> list[Session]:
        return [self._with_expiry(from_document(Session, d)) for d in await self.store.list(SESSIONS, owner=owner)]

    async def activate(self, owner: str, session_id: str) -> Session:
        return await self._transition(owner, session_id, "active", allowed_from=LIVE)

    async def close(self, owner: str, session_id: str) -> Session:
        return await self._transition(owner, session_id, "closed", allowed_from=(*LIVE, "closed"))

    async def append_utterance(self, owner: str, session_id: str, transcript: str, translation: str,
                               timings_ms: dict[str, float] | None = None) -> HistoryEntry:
        session = await self.get_open(owner, session_id)
        entry = HistoryEntry(id=f"ut_{uuid.uuid4().hex}", transcript=transcript, translation=translation,
                             source_language=session.source_language, target_language=session.target_language,
                             created_at=self.clock(), timings_ms=timings_ms or {})
        await self.store.put(HISTORY, entry.id, to_document(entry), owner=session_id, ttl_s=self._retention(session))
        return entry

    async def history(self, owner: str, session_id: str) -> list[HistoryEntry]:
        await self.get(owner, session_id)
        return [from_document(HistoryEntry, d) for d in await self.store.list(HISTORY, owner=session_id)]

    async def delete(self, owner: str, session_id: str) -> None:
        """The session and its whole history, gone (an open stream of it ends at its next re-check)."""
        await self.get(owner, session_id)
        for entry in await self.store.list(HISTORY, owner=session_id):
            await self.store.delete(HISTORY, entry["id"])
        await self.store.delete(SESSIONS, session_id)

    async def _transition(self, owner: str, session_id: str, state: SessionState,
                          allowed_from: tuple[SessionState, ...]) -> Session:
        session = await self.get(owner, session_id)
        if session.state not in allowed_from:
            raise Conflict(f"session {session_id} is {session.state} and cannot become {state}",
                           code="invalid_session_state")
        session = dataclasses.replace(session, state=state, updated_at=self.clock())
        await self.store.put(SESSIONS, session_id, to_document(session), owner=owner, ttl_s=self._retention(session))
        return session

    def _retention(self, session: Session) -> float:
        return max(1.0, session.expires_at - self.clock() + RETENTION_S)

    def _with_expiry(self, session: Session) -> Session:
        if session.state in LIVE and self.clock() >= session.expires_at:
            return dataclasses.replace(session, state="expired")
        return session
