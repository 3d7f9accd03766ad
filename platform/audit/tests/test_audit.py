"""The audit log: what an entry keeps, the trail a page shows, the audited admin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.contrib.admin import AdminSite
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import RequestFactory

from audit.auditing import AuditedAdmin, snapshot
from audit.models import AuditEntry
from audit.services import audit, audit_trail

pytestmark = pytest.mark.django_db


def make_user(username: str, staff: bool = False):
    return get_user_model().objects.create_user(username, password="pw-for-tests", is_staff=staff)


def test_audit_keeps_only_what_changed():
    admin = make_user("auditor", staff=True)
    entry = audit(admin, "device.controls", "device:x", {"a": 1, "b": 2}, {"a": 1, "b": 3})
    assert (entry.before, entry.after, entry.username) == ({"b": 2}, {"b": 3}, "auditor")
    assert AuditEntry.objects.count() == 1


def test_system_changes_and_deleted_users_keep_a_name():
    assert audit(None, "device.tier", "device:x", {}, {"tier": 3}).username == ""
    user = make_user("leaver")
    entry = audit(user, "device.controls", "device:x", {}, {"fps": 2})
    user.delete()
    entry.refresh_from_db()
    assert entry.user is None and entry.username == "leaver"


def test_trail_is_one_targets_latest_changes_newest_first():
    for value in range(4):
        audit(None, "device.controls", "device:a", {"fps": value}, {"fps": value + 1})
    audit(None, "device.controls", "device:b", {}, {"fps": 9})
    trail = audit_trail("device:a", limit=3)
    assert [entry.after["fps"] for entry in trail] == [4, 3, 2]


def test_snapshot_shows_a_password_change_without_the_hash():
    user = make_user("snap")
    values = snapshot(user)
    assert values["username"] == "snap" and values["password"].startswith("sha256:")
    assert user.password not in values.values()
    assert snapshot(None) == {}


def test_audited_admin_records_adds_changes_and_deletes():
    root = make_user("root", staff=True)
    request = RequestFactory().post("/admin/")
    request.user = root
    group_admin = AuditedAdmin(Group, AdminSite())
    group = Group(name="night shift")
    group_admin.save_model(request, group, form=None, change=False)
    group.name = "day shift"
    group_admin.save_model(request, group, form=None, change=True)
    pk = group.pk
    group_admin.delete_model(request, group)  # clears group.pk: the entry names it still
    entries = list(AuditEntry.objects.filter(target=f"group:{pk}").order_by("pk"))
    assert [e.action for e in entries] == [
        "auth.group.add",
        "auth.group.change",
        "auth.group.delete",
    ]
    assert entries[1].before == {"name": "night shift"} and entries[1].after == {
        "name": "day shift"
    }
    assert {e.username for e in entries} == {"root"}


def test_the_audit_app_imports_no_other_strata_app():
    """A leaf: every app may record its changes here without an import circle."""
    others = {"fleet", "access", "archive", "ingest", "control", "dashboard"}
    app = Path(__file__).resolve().parents[1]
    for path in app.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {name.split(".")[0] for name in names} & others, path
