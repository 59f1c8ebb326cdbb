"""The audit trail of voice biometrics: every enrolment (with its consent), use in a stream, comparison and deletion
of a voice profile, as a record in the store (under the owner, outliving the profile) and a structured log line
("audit"). `GET /v1/audit` shows an account its own trail."""

from __future__ import annotations

import logging
import time
import uuid

from gateway.observability import log_event
from gateway.records import AuditEntry, from_document, to_document
from gateway.stores.base import RecordStore

AUDIT = "audit"
log = logging.getLogger("univoice.audit")


class AuditLog:
    def __init__(self, store: RecordStore, clock=time.time):
        self.store, self.clock = store, clock

    async def record(self, owner: str, action: str, profile_id: str, **details) -> AuditEntry:
        entry = AuditEntry(id=f"au_{uuid.uuid4().hex}", at=self.clock(), owner=owner, action=action,
                           profile_id=profile_id, details=details)
        await self.store.put(AUDIT, entry.id, to_document(entry), owner=owner)
        log_event(log, "audit", action=action, owner=owner, profile_id=profile_id, **details)
        return entry

    async def entries(self, owner: str) -> list[AuditEntry]:
        return [from_document(AuditEntry, d) for d in await self.store.list(AUDIT, owner=owner)]
