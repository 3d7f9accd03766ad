"""Writing and reading the audit log.

Callers name what they changed as ``kind:key`` strings (``device:cam-1``), so this module
needs none of their models and any app can record its changes without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

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


CONTROLLER, SYSTEM = "controller", "system"  # actors without an account
TIER_ACTION = "device.tier"  # the tier controller's decisions (control.services)


@dataclass(frozen=True)
class LogFilter:
    """What the admin area's audit page narrows the log to; empty fields do not filter."""

    target: str = ""  # "device:cam-1", "user:ana", "site:North farm"
    actor: str = ""  # a username, CONTROLLER (tier decisions) or SYSTEM (other automatic)
    action: str = ""  # a prefix: "device" matches device.controls, device.tier, ...
    since: datetime | None = None
    until: datetime | None = None


def audit_log(filters: LogFilter = LogFilter()) -> QuerySet[AuditEntry]:
    """The log, newest first, narrowed by ``filters``; the caller pages it."""
    entries = AuditEntry.objects.all()
    if filters.target:
        entries = entries.filter(target=filters.target)
    if filters.actor == CONTROLLER:  # the tier controller writes only TIER_ACTION entries
        entries = entries.filter(username="", action=TIER_ACTION)
    elif filters.actor == SYSTEM:
        entries = entries.filter(username="").exclude(action=TIER_ACTION)
    elif filters.actor:
        entries = entries.filter(username=filters.actor)
    if filters.action:
        entries = entries.filter(action__startswith=filters.action)
    if filters.since:
        entries = entries.filter(at__gte=filters.since)
    if filters.until:
        entries = entries.filter(at__lt=filters.until)
    return entries


def actions() -> list[str]:
    """The kinds of change the log holds, for a filter's choices."""
    return sorted(AuditEntry.objects.values_list("action", flat=True).distinct().order_by())


def actors() -> list[str]:
    """The usernames the log names, for a filter's choices (besides the automatic actors)."""
    names = AuditEntry.objects.exclude(username="").values_list("username", flat=True)
    return sorted(names.distinct().order_by())
