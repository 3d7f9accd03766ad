"""Roles, per-camera scoping and login rate limiting, as plain functions.

Roles: an *admin* is an active staff user and sees and steers the whole fleet; everyone
else signed in is an *operator* who sees only the cameras assigned to them, one by one or
by site. Every page, the image endpoint and the live WebSocket ask this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from access.models import Assignment, LoginFailure
from fleet.models import Device

AnyUser = AbstractBaseUser | AnonymousUser


def is_admin(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff)


def visible_devices(user: AnyUser) -> QuerySet[Device]:
    """The cameras ``user`` may see: all for an admin, the assigned ones for an operator."""
    if not user.is_authenticated or not user.is_active:
        return Device.objects.none()
    if is_admin(user):
        return Device.objects.all()
    assigned = Assignment.objects.filter(user=user)
    sites = assigned.exclude(site="").values("site")
    devices = assigned.filter(device__isnull=False).values("device")
    return Device.objects.filter(Q(pk__in=devices) | Q(site__in=sites))


def can_view(user: AnyUser, device: Device) -> bool:
    return visible_devices(user).filter(pk=device.pk).exists()


def assign(user: AbstractBaseUser, *, device: Device | None = None, site: str = "") -> Assignment:
    """Give an operator a camera or a whole site (idempotent)."""
    if (device is None) == (not site):
        raise ValueError("assign exactly one of a device or a site")
    assignment, _ = Assignment.objects.get_or_create(user=user, device=device, site=site)
    return assignment


# --- login rate limiting ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoginLimits:
    """Failed sign-ins allowed per window, per username (guessing one password) and per
    address (trying many usernames)."""

    per_username: int = 5
    per_ip: int = 20
    window: timedelta = timedelta(minutes=15)


LIMITS = LoginLimits()


def _locked_until(failures: QuerySet[LoginFailure], limit: int, window: timedelta) -> datetime:
    """When the ``limit``-th most recent failure leaves the window (the past if not locked)."""
    nth = list(failures.order_by("-at").values_list("at", flat=True)[limit - 1 : limit])
    return nth[0] + window if nth else datetime.min.replace(tzinfo=UTC)


def login_retry_after(username: str, ip: str | None, limits: LoginLimits = LIMITS) -> int:
    """Seconds until ``username`` may try to sign in again from ``ip``; 0 when allowed now."""
    now = timezone.now()
    recent = LoginFailure.objects.filter(at__gte=now - limits.window)
    until = _locked_until(
        recent.filter(username=username.lower()), limits.per_username, limits.window
    )
    if ip:
        until = max(until, _locked_until(recent.filter(ip=ip), limits.per_ip, limits.window))
    return max(0, int((until - now).total_seconds() + 0.999))


def record_login_failure(username: str, ip: str | None, limits: LoginLimits = LIMITS) -> None:
    """Count a failed sign-in; failures that no longer count are dropped on the way, so the
    table stays as small as the window."""
    LoginFailure.objects.filter(at__lt=timezone.now() - limits.window).delete()
    LoginFailure.objects.create(username=username.lower()[:150], ip=ip or None)


def clear_login_failures(username: str) -> None:
    """A successful sign-in forgives the username's earlier mistakes (not the address's)."""
    LoginFailure.objects.filter(username=username.lower()).delete()
