"""Roles, per-camera scoping, login rate limiting, and audited admin pages."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from access.models import LoginFailure
from access.services import (
    LIMITS,
    assign,
    can_view,
    login_lockout,
    record_login_failure,
    visible_devices,
)
from audit.models import AuditEntry
from fleet.services import provision_device

pytestmark = pytest.mark.django_db


@pytest.fixture
def cameras():
    return {
        "gate": provision_device("acc-gate", site="North farm"),
        "barn": provision_device("acc-barn", site="North farm"),
        "road": provision_device("acc-road", site="Depot"),
    }


def make_user(username: str, staff: bool = False):
    return get_user_model().objects.create_user(username, password="pw-for-tests", is_staff=staff)


def test_admin_sees_every_camera(cameras):
    admin = make_user("boss", staff=True)
    assert set(visible_devices(admin)) == set(cameras.values())


def test_operator_sees_only_assigned_cameras_and_sites(cameras):
    operator = make_user("op")
    assert not visible_devices(operator).exists()
    assign(operator, device=cameras["road"])
    assert list(visible_devices(operator)) == [cameras["road"]]
    assign(operator, site="North farm")
    assign(operator, site="North farm")  # idempotent
    assert set(visible_devices(operator)) == set(cameras.values())
    later = provision_device("acc-new", site="North farm")
    assert can_view(operator, later)  # a site assignment covers cameras added later


def test_inactive_user_sees_nothing(cameras):
    operator = make_user("gone")
    assign(operator, site="Depot")
    operator.is_active = False
    assert not visible_devices(operator).exists()


def test_assign_needs_exactly_one_target(cameras):
    with pytest.raises(ValueError):
        assign(make_user("x"), device=cameras["gate"], site="Depot")


def sign_in(username: str, password: str, ip: str, path: str = "/login/"):
    """A sign-in from ``ip`` (the peer address daphne reports)."""
    client = Client(REMOTE_ADDR=ip)
    response = client.post(path, {"username": username, "password": password})
    return response, client


def fail(username: str, ip: str, times: int) -> None:
    for _ in range(times):
        response, _ = sign_in(username, "wrong", ip)
        assert response.status_code == 200, "locked before the limit"


def test_wrong_passwords_lock_the_account_from_that_address_only():
    make_user("alice")
    fail("alice", "203.0.113.9", LIMITS.per_user_address)
    response, client = sign_in("Alice", "pw-for-tests", "203.0.113.9")  # even the right one
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    response, client = sign_in("alice", "pw-for-tests", "198.51.100.7")  # the owner, elsewhere
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_an_address_trying_many_accounts_is_throttled_but_no_admin_elsewhere():
    make_user("root-admin", staff=True)
    attacker = "203.0.113.66"
    for i in range(LIMITS.per_address - LIMITS.per_user_address):
        fail(f"user{i}", attacker, 1)
    fail("root-admin", attacker, LIMITS.per_user_address)  # twenty, five of them the admin's
    response, _ = sign_in("someone-else", "whatever", attacker)
    assert response.status_code == 429
    assert b"from your address" in response.content
    response, client = sign_in("root-admin", "pw-for-tests", "198.51.100.20")
    assert response.status_code == 302 and "_auth_user_id" in client.session
    response, client = sign_in("root-admin", "pw-for-tests", "198.51.100.20", "/admin/login/")
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_the_lock_message_says_when_it_ends():
    make_user("carol")
    fail("carol", "10.0.0.3", LIMITS.per_user_address)
    before = timezone.now()
    response, client = sign_in("carol", "pw-for-tests", "10.0.0.3")
    assert response.status_code == 429
    retry = int(response["Retry-After"])
    assert 0 < retry <= LIMITS.window.total_seconds()
    page = response.content.decode()
    ends = timezone.localtime(before + timedelta(seconds=retry))
    assert (
        f"Try again at {ends:%H:%M}" in page
        or f"Try again at {ends - timedelta(minutes=1):%H:%M}" in page
    )
    assert "manage.py unlock" in page
    assert "_auth_user_id" not in client.session


def test_the_window_passing_ends_the_lock():
    fail("dora", "10.0.0.4", LIMITS.per_user_address)
    assert login_lockout("dora", "10.0.0.4").scope == "account"
    LoginFailure.objects.update(at=timezone.now() - LIMITS.window - timedelta(seconds=1))
    assert login_lockout("dora", "10.0.0.4") is None


def test_unlock_command_ends_an_account_lock_and_an_address_lock():
    make_user("erin")
    fail("erin", "10.0.0.5", LIMITS.per_user_address)
    for i in range(LIMITS.per_address):
        record_login_failure(f"spray{i}", "10.0.0.6")
    assert login_lockout("erin", "10.0.0.5") and login_lockout("anyone", "10.0.0.6")
    out = io.StringIO()
    call_command("unlock", "Erin", stdout=out)
    assert "Unlocked Erin: 5 failed sign-in(s) forgotten" in out.getvalue()
    response, client = sign_in("erin", "pw-for-tests", "10.0.0.5")
    assert response.status_code == 302
    call_command("unlock", "--address", "10.0.0.6", stdout=io.StringIO())
    assert login_lockout("anyone", "10.0.0.6") is None
    with pytest.raises(CommandError):
        call_command("unlock", stdout=io.StringIO())


def test_successful_login_forgives_only_this_address():
    make_user("dave")
    record_login_failure("dave", "10.0.0.8")  # someone guessing elsewhere
    sign_in("dave", "wrong", "10.0.0.7")
    response, _ = sign_in("dave", "pw-for-tests", "10.0.0.7")
    assert response.status_code == 302
    assert list(LoginFailure.objects.filter(username="dave").values_list("ip", flat=True)) == [
        "10.0.0.8"
    ]


def test_admin_site_sign_in_is_rate_limited_too():
    make_user("eve", staff=True)
    for _ in range(LIMITS.per_user_address):
        sign_in("eve", "wrong", "10.0.0.9", "/admin/login/")
    response, client = sign_in("eve", "pw-for-tests", "10.0.0.9", "/admin/login/")
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_user_admin_edits_assignments(cameras):
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests")
    operator = make_user("field-op")
    assign(operator, site="Depot")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/auth/user/{operator.pk}/change/").content.decode()
    assert "assignments-TOTAL_FORMS" in page and 'value="Depot"' in page


def test_admin_site_changes_are_audited(cameras):
    root = get_user_model().objects.create_superuser("root2", password="pw-for-tests")
    client = Client()
    client.force_login(root)
    gate = cameras["gate"]
    form = {
        "device_id": gate.device_id,
        "name": "Renamed gate",
        "site": gate.site,
        "is_active": "on",
        "checkin_interval_s": "300",
    }
    assert client.post(f"/admin/fleet/device/{gate.pk}/change/", form).status_code == 302
    entry = AuditEntry.objects.get(action="fleet.device.change")
    assert entry.target == f"device:{gate.device_id}" and entry.username == "root2"
    assert entry.before == {"name": "acc-gate", "checkin_interval_s": 30}
    assert entry.after == {"name": "Renamed gate", "checkin_interval_s": 300}

    operator = make_user("inline-op")
    page = client.get(f"/admin/auth/user/{operator.pk}/change/").content.decode()
    fields = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', page))
    fields = {k: v for k, v in fields.items() if not k.startswith("assignments-")}
    fields.update(
        {
            "username": "inline-op",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "assignments-TOTAL_FORMS": "1",
            "assignments-INITIAL_FORMS": "0",
            "assignments-0-site": "Depot",
            "assignments-0-device": "",
        }
    )
    response = client.post(f"/admin/auth/user/{operator.pk}/change/", fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    added = AuditEntry.objects.get(action="access.assignment.add")
    assert added.after["site"] == "Depot" and added.after["user"] == operator.pk
    assert can_view(operator, cameras["road"])

    # Removing it in the inline: the entry names the assignment deleted, with what it was.
    fields.update(
        {
            "assignments-INITIAL_FORMS": "1",
            "assignments-0-id": str(added.target.split(":")[1]),
            "assignments-0-user": str(operator.pk),
            "assignments-0-DELETE": "on",
        }
    )
    response = client.post(f"/admin/auth/user/{operator.pk}/change/", fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    deleted = AuditEntry.objects.get(action="access.assignment.delete")
    assert deleted.target == added.target and deleted.before["site"] == "Depot"
    assert not can_view(operator, cameras["road"])
