"""The audit trail: sign-ins (and refused ones), sign-outs, API keys made and deleted, every enrolment (with its
consent), use in a stream, comparison, expiry and deletion of a voice profile, account creation and deletion, and
administrators' actions. Each is a record in the store, appended and never changed (under the account it concerns,
outliving what it names), and a structured log line ("audit"). Who acted, from which address, and the request's
correlation id come with it. `GET /v1/audit` shows an account its own trail."""

from __future__ import annotations

import logging
import time
import uuid

from gateway.observability import client_address, correlation_id, log_event
from gateway.records import AUDIT_ACTIONS, AuditEntry, from_document, to_document
from gateway.stores.base import RecordStore

AUDIT = "audit"
SYSTEM = "system"  # the owner of actions on the whole gateway (key rotation, retention)
log = logging.getLogger("univoice.audit")


class AuditLog:
    def __init__(self, store: RecordStore, clock=time.time):
        self.store, self.clock = store, clock

    async def record(self, owner: str, action: str, resource_id: str = "-", *, actor: str | None = None,
                     result: str = "ok", **details) -> AuditEntry:
        if action not in AUDIT_ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; add it to records.AUDIT_ACTIONS")
        entry = AuditEntry(id=f"au_{uuid.uuid4().hex}", at=self.clock(), owner=owner, actor=actor or owner,
                           action=action, resource_id=resource_id, result=result, address=client_address.get(),
                           correlation_id=correlation_id.get(), details=details)
        await self.store.put(AUDIT, entry.id, to_document(entry), owner=owner)
        document = to_document(entry)
        del document["correlation_id"]  # every log line has it already
        log_event(log, "audit", **document)
        return entry

    async def entries(self, owner: str) -> list[AuditEntry]:
        return [from_document(AuditEntry, d) for d in await self.store.list(AUDIT, owner=owner)]
