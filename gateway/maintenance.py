"""Administrators' operations on the stored data, for `univoice admin` (and retention, also at start-up): re-wrap
every blob's data key under the current master key, make a new local master key, expire enrolment recordings.
Each leaves an audit event under `SYSTEM`."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

from gateway.audit import SYSTEM, AuditLog
from gateway.blobs.encrypted import EncryptedBlobStore
from gateway.blobs.master_keys import MasterKeyError, local_key_id, new_key_text, parse_keys
from gateway.profiles import ProfileService
from gateway.settings import Settings
from univoice_core.atomic import atomic_write


def add_local_master_key(settings: Settings) -> str:
    """Put a new AES-256 master key first in `<state_dir>/blob_key`; the others stay, retired (they still unwrap
    until everything is re-wrapped). Returns the new key's id."""
    if settings.blob_kms_key_id or settings.blob_key is not None:
        raise MasterKeyError("--new-key makes a key in <state_dir>/blob_key; this gateway's master key is configured "
                             "(UNIVOICE_BLOB_KEY or UNIVOICE_BLOB_KMS_KEY_ID): put the new key there yourself "
                             "(UNIVOICE_BLOB_KEY: the new key on the first line, the old ones after), then rotate")
    path = settings.blob_key_file()
    current = settings.blob_master_keys()  # made on first use
    parse_keys(current, str(path))
    new = new_key_text()
    atomic_write(path, f"{new}\n{current}\n".encode())  # a private temporary file renamed: 0600 like the first
    os.chmod(path, 0o600)
    return local_key_id(parse_keys(new, str(path))[0])


async def rotate_blob_keys(blobs: EncryptedBlobStore, profiles: ProfileService, audit: AuditLog, *, actor: str,
                           on_blob: Callable[[int, int], None] = lambda done, total: None) -> Counter[str]:
    """Re-wrap every blob's data key under the current master key: how many were re-wrapped, already current,
    encrypted for the first time (plaintext, while migrating), or erased (their profile was deleted meanwhile: a
    re-wrap must not bring a deleted voice back). `on_blob(done, total)` reports progress."""
    keys = await blobs.keys()
    counts: Counter[str] = Counter()
    for done, key in enumerate(keys, 1):
        try:
            outcome = await blobs.rewrap(key)
        except KeyError:  # deleted since it was listed
            outcome = "erased"
        profile_id = profile_of(key)
        if outcome != "current" and profile_id and not await profiles.exists(profile_id):
            await blobs.delete_prefix(f"profiles/{profile_id}/")
            outcome = "erased"
        counts[outcome] += 1
        on_blob(done, len(keys))
    await audit.record(SYSTEM, "admin.keys_rotated", blobs.master_key.key_id, actor=actor, **counts)
    return counts


def profile_of(key: str) -> str:
    """The profile id of a blob key (`profiles/<id>/<name>`)."""
    return key.split("/")[1] if key.startswith("profiles/") and key.count("/") >= 2 else ""


async def apply_retention(settings: Settings, profiles: ProfileService, audit: AuditLog, *, actor: str) -> int:
    """Delete enrolment recordings past `enrolment_audio_retention_days`; how many (0 with no retention set)."""
    days = settings.enrolment_audio_retention_days
    if days is None:
        return 0
    expired = await profiles.expire_enrolment_audio(days * 86_400, actor=actor)
    await audit.record(SYSTEM, "admin.retention_applied", "-", actor=actor, retention_days=days,
                       recordings_deleted=expired)
    return expired
