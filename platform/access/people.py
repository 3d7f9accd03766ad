"""Managing people: accounts, roles, sign-in locks and camera scope, each change audited.

What the admin area calls. A password is generated here and returned once, to be handed
to its owner; only Django's hash is kept and the audit log never sees it. An admin cannot
lock or demote their own account, so the last admin cannot shut everyone out by a slip.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from access.models import Assignment
from access.services import assign, is_admin, unlock
from audit.services import audit
from fleet.models import Device

ADMIN, OPERATOR = "admin", "operator"
ROLES = (ADMIN, OPERATOR)


def role_of(user: AbstractBaseUser) -> str:
    return ADMIN if user.is_staff else OPERATOR


def new_password() -> str:
    """A password to hand over once: 16 URL-safe characters, ~96 bits."""
    return secrets.token_urlsafe(12)


def _target(user: AbstractBaseUser) -> str:
    return f"user:{user.get_username()}"


def _state(user: AbstractBaseUser) -> dict[str, Any]:
    return {"role": role_of(user), "active": user.is_active, "email": user.email}


def create_person(
    username: str, *, role: str, email: str = "", by: AbstractBaseUser | None
) -> tuple[AbstractBaseUser, str]:
    """A new account with a generated password, returned once with the user."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
    users = get_user_model()
    username = username.strip()
    if users.objects.filter(username__iexact=username).exists():
        raise ValidationError(f"There is already an account named {username}.")
    password = new_password()
    with transaction.atomic():
        user = users(username=username, email=email, is_staff=role == ADMIN)
        user.full_clean(exclude=["password"])
        user.set_password(password)
        user.save()
        audit(by, "user.create", _target(user), {}, _state(user))
    return user, password


def _not_self(user: AbstractBaseUser, by: AbstractBaseUser | None, what: str) -> None:
    if by is not None and user.pk == by.pk:
        raise ValidationError(f"You cannot {what} your own account; ask another admin.")


def set_role(user: AbstractBaseUser, role: str, *, by: AbstractBaseUser | None) -> bool:
    """Make ``user`` an admin (every camera, the admin area) or an operator (assigned
    cameras). Returns False when it already had the role."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}")
    if role == role_of(user):
        return False
    _not_self(user, by, "change the role of")
    before = _state(user)
    with transaction.atomic():
        user.is_staff = role == ADMIN
        user.save(update_fields=["is_staff"])
        audit(by, "user.role", _target(user), before, _state(user))
    return True


def set_locked(user: AbstractBaseUser, locked: bool, *, by: AbstractBaseUser | None) -> bool:
    """Lock an account (it cannot sign in; open pages lose access at their next request) or
    unlock it, which also ends any sign-in lockout after failed passwords. Returns False
    when nothing changed."""
    if locked:
        _not_self(user, by, "lock")
    before = _state(user)
    forgiven = 0 if locked else unlock(user.get_username())
    if user.is_active == (not locked):
        if forgiven:
            audit(by, "user.unlock", _target(user), {"failed_sign_ins": forgiven}, {})
        return bool(forgiven)
    with transaction.atomic():
        user.is_active = not locked
        user.save(update_fields=["is_active"])
        audit(by, "user.lock" if locked else "user.unlock", _target(user), before, _state(user))
    return True


def reset_password(user: AbstractBaseUser, *, by: AbstractBaseUser | None) -> str:
    """A new generated password, returned once; the old one stops working at once."""
    password = new_password()
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit(by, "user.password", _target(user), {"password": "old"}, {"password": "reset"})
    unlock(user.get_username())  # a fresh password starts with a clean count
    return password


def add_scope(
    user: AbstractBaseUser,
    *,
    device: Device | None = None,
    site: str = "",
    by: AbstractBaseUser | None,
) -> Assignment:
    """Give an operator one camera or a whole site (idempotent; admins see everything)."""
    if is_admin(user):
        raise ValidationError("Admins see every camera; scope is for operators.")
    assignment = assign(user, device=device, site=site.strip())
    what = {"camera": device.device_id} if device else {"site": assignment.site}
    audit(by, "user.scope.add", _target(user), {}, what)
    return assignment


def remove_scope(assignment: Assignment, *, by: AbstractBaseUser | None) -> None:
    what = (
        {"camera": assignment.device.device_id} if assignment.device else {"site": assignment.site}
    )
    with transaction.atomic():
        assignment.delete()
        audit(by, "user.scope.remove", _target(assignment.user), what, {})
