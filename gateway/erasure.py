"""Erasing an account (`DELETE /v1/auth/me`): its voice profiles (blobs included), sessions and their history, API
keys and tokens, then the account itself. The audit trail keeps the account's events and one `account.deleted`."""

from __future__ import annotations

from gateway.accounts import AccountService
from gateway.audit import AuditLog
from gateway.profiles import ProfileService
from gateway.sessions import SessionService


async def erase_account(user_id: str, *, accounts: AccountService, sessions: SessionService,
                        profiles: ProfileService, audit: AuditLog) -> dict[str, int]:
    """What was erased, counted. Credentials go first: nothing can enrol, stream or save history meanwhile."""
    await accounts.revoke_credentials(user_id)
    erased = {"profiles": 0, "sessions": 0}
    for profile in await profiles.list(user_id):
        await profiles.delete(user_id, profile.id)
        erased["profiles"] += 1
    for session in await sessions.list(user_id):
        await sessions.delete(user_id, session.id)
        erased["sessions"] += 1
    await accounts.delete_user(user_id)
    await audit.record(user_id, "account.deleted", user_id, **erased)
    return erased
