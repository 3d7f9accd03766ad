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
#
# Two locks, neither of which a stranger can use to shut an account out everywhere:
#  - per (username, address): five wrong passwords for one account from one address lock that
#    account *from that address* only; its owner elsewhere still signs in;
#  - per address: twenty failures from one address (any usernames) lock that address, for
#    every account, and no other address.
# Both end a window after the failure that set them; ``unlock`` ends them at once.


@dataclass(frozen=True)
class LoginLimits:
    """Failed sign-ins allowed per window: per account and address (guessing one password)
    and per address (trying many usernames)."""

    per_user_address: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)


LIMITS = LoginLimits()


@dataclass(frozen=True)
class Lockout:
    """Sign-in is refused until ``until``; ``scope`` says for whom, for the message."""

    until: datetime
    scope: str  # "account" (this account from this address) or "address" (every account)

    def retry_after(self, now: datetime | None = None) -> int:
        """Whole seconds until it ends (at least 1)."""
        left = (self.until - (now or timezone.now())).total_seconds()
        return max(1, int(left + 0.999))


def _locked_until(failures: QuerySet[LoginFailure], limit: int, window: timedelta) -> datetime:
    """When the ``limit``-th most recent failure leaves the window (the past if not locked)."""
    nth = list(failures.order_by("-at").values_list("at", flat=True)[limit - 1 : limit])
    return nth[0] + window if nth else datetime.min.replace(tzinfo=UTC)


def _from(ip: str | None) -> Q:
    return Q(ip=ip) if ip else Q(ip__isnull=True)


def login_lockout(username: str, ip: str | None, limits: LoginLimits = LIMITS) -> Lockout | None:
    """The lock that stops ``username`` signing in from ``ip`` now, or None."""
    now = timezone.now()
    recent = LoginFailure.objects.filter(_from(ip), at__gte=now - limits.window)
    by_address = _locked_until(recent, limits.per_address, limits.window)
    by_account = _locked_until(
        recent.filter(username=username.lower()), limits.per_user_address, limits.window
    )
    if by_address > now and by_address >= by_account:
        return Lockout(by_address, "address")
    if by_account > now:
        return Lockout(by_account, "account")
    return None


def record_login_failure(username: str, ip: str | None, limits: LoginLimits = LIMITS) -> None:
    """Count a failed sign-in; failures that no longer count are dropped on the way, so the
    table stays as small as the window."""
    LoginFailure.objects.filter(at__lt=timezone.now() - limits.window).delete()
    LoginFailure.objects.create(username=username.lower()[:150], ip=ip or None)


def clear_login_failures(username: str, ip: str | None) -> None:
    """A successful sign-in forgives the account's mistakes from this address only: it must
    not give a guesser elsewhere a fresh count."""
    LoginFailure.objects.filter(_from(ip), username=username.lower()).delete()


def unlock(username: str | None = None, ip: str | None = None) -> int:
    """End the locks on an account (every address) and/or on an address (every account), now:
    what ``manage.py unlock`` and the demo call. Returns the failures forgotten."""
    if not username and not ip:
        raise ValueError("unlock a username, an address or both")
    failures = LoginFailure.objects.all()
    if username:
        failures = failures.filter(username=username.lower())
    if ip:
        failures = failures.filter(ip=ip)
    deleted, _ = failures.delete()
    return deleted
