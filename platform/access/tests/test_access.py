"""Roles, per-camera scoping, login rate limiting, and audited admin pages."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from access.models import LoginFailure
from access.services import (
    LIMITS,
    assign,
    can_view,
    login_retry_after,
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


def test_failures_lock_the_username_then_the_window_passes():
    for _ in range(LIMITS.per_username - 1):
        record_login_failure("Alice", "10.0.0.1")
    assert login_retry_after("alice", "10.0.0.2") == 0
    record_login_failure("alice", "10.0.0.1")
    retry = login_retry_after("ALICE", "10.0.0.2")
    assert 0 < retry <= LIMITS.window.total_seconds()
    LoginFailure.objects.update(at=LoginFailure.objects.first().at - LIMITS.window)
    assert login_retry_after("alice", "10.0.0.2") == 0


def test_failures_from_one_address_lock_it_for_every_username():
    for i in range(LIMITS.per_ip):
        record_login_failure(f"user{i}", "10.9.9.9")
    assert login_retry_after("someone-else", "10.9.9.9") > 0
    assert login_retry_after("someone-else", "10.1.1.1") == 0


def test_login_view_refuses_with_429_after_too_many_failures():
    make_user("carol")
    client = Client()
    for _ in range(LIMITS.per_username):
        response = client.post("/login/", {"username": "carol", "password": "wrong"})
        assert response.status_code == 200
    # Locked: even the right password is refused, without being checked.
    response = client.post("/login/", {"username": "carol", "password": "pw-for-tests"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session


def test_successful_login_forgives_earlier_mistakes():
    make_user("dave")
    client = Client()
    client.post("/login/", {"username": "dave", "password": "wrong"})
    response = client.post("/login/", {"username": "dave", "password": "pw-for-tests"})
    assert response.status_code == 302
    assert not LoginFailure.objects.filter(username="dave").exists()


def test_admin_site_sign_in_is_rate_limited_too():
    make_user("eve", staff=True)
    client = Client()
    for _ in range(LIMITS.per_username):
        client.post("/admin/login/", {"username": "eve", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "eve", "password": "pw-for-tests"})
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
