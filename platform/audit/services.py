"""Writing and reading the audit log.

Callers name what they changed as ``kind:key`` strings (``device:cam-1``), so this module
needs none of their models and any app can record its changes without an import circle.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from audit.models import AuditEntry


def audit(
    user: AbstractBaseUser | None,
    action: str,
    target: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> AuditEntry:
    """Record a change by ``user`` (None for the system) to ``target``.

    Only the fields that changed are kept, so an entry reads as the change itself and the
    log stays small however wide the snapshots are.
    """
    entry = _entry(user, action, target, before, after)
    entry.save()
    return entry


def audit_many(
    user: AbstractBaseUser | None,
    action: str,
    changes: list[tuple[str, dict[str, Any], dict[str, Any]]],
) -> list[AuditEntry]:
    """``audit`` for many targets at once, (target, before, after) each, in one statement:
    a controller round that changes hundreds of cameras' tiers costs one insert."""
    return AuditEntry.objects.bulk_create(
        [_entry(user, action, target, before, after) for target, before, after in changes]
    )


def _entry(
    user: AbstractBaseUser | None,
    action: str,
    target: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> AuditEntry:
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return AuditEntry(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        target=target,
        before={k: before.get(k) for k in changed},
        after={k: after.get(k) for k in changed},
    )


def audit_trail(target: str, limit: int = 10) -> list[AuditEntry]:
    """The latest ``limit`` changes to one target, newest first: what a page shows beside
    the object so that an admin sees who set it so."""
    return list(AuditEntry.objects.filter(target=target)[:limit])
