"""Camera logins from the admin area and the broker files they produce (no broker here:
tests/e2e/test_device_identity.py runs them against a real Mosquitto)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditEntry
from fleet.credentials import check_mosquitto_hash, issue_credentials, revoke_credentials
from fleet.models import DeviceCredential
from fleet.services import provision_device

pytestmark = pytest.mark.django_db


def test_the_admin_issues_a_login_once_and_revokes_it(client, settings, tmp_path: Path) -> None:
    settings.MQTT_AUTH_DIR = str(tmp_path)
    device = provision_device(f"adm-{uuid.uuid4().hex[:8]}")
    admin = get_user_model().objects.create_superuser("cred-admin", "a@example.org", "pw-x")
    client.force_login(admin)
    changelist = reverse("admin:fleet_device_changelist")
    page = client.post(
        changelist,
        {"action": "issue_mqtt_login", "_selected_action": [device.pk]},
        follow=True,
    )
    shown = re.search(r"\{&quot;device_id.*?\}", page.content.decode()).group(0)
    issued = json.loads(shown.replace("&quot;", '"'))
    assert issued["username"] == device.device_id
    stored = DeviceCredential.objects.get(device=device)
    assert check_mosquitto_hash(issued["password"], stored.password_hash)
    assert f"user {device.device_id}\n" in (tmp_path / "devices.acl").read_text()
    assert issued["password"] not in client.get(changelist).content.decode()  # shown once
    client.post(changelist, {"action": "revoke_mqtt_login", "_selected_action": [device.pk]})
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert device.device_id not in (tmp_path / "devices.passwd").read_text()
    actions = AuditEntry.objects.filter(target=f"device:{device.device_id}")
    assert {"device.credentials.issue", "device.credentials.revoke"} <= {a.action for a in actions}
    assert all(issued["password"] not in json.dumps(a.after) for a in actions)


def test_reissuing_rotates_and_the_platforms_names_are_refused(settings, tmp_path) -> None:
    settings.MQTT_AUTH_DIR = str(tmp_path)
    device_id = f"rot-{uuid.uuid4().hex[:8]}"
    first = issue_credentials(device_id)
    assert revoke_credentials(device_id) and not revoke_credentials(device_id)
    second = issue_credentials(device_id)
    stored = DeviceCredential.objects.get(username=device_id)
    assert stored.revoked_at is None and first.password != second.password
    assert not check_mosquitto_hash(first.password, stored.password_hash)
    for bad in ("strata-ingest", "a/b", "+"):
        with pytest.raises(ValidationError):
            issue_credentials(bad)
    with pytest.raises(CommandError, match="platform"):
        call_command("provision", "strata-web")
    with pytest.raises(CommandError, match="no active MQTT login"):
        call_command("revoke", f"none-{uuid.uuid4().hex[:8]}")
