"""What operators see of the controller: tier changes (the switch rate, the audit trail),
and policies chosen per site with the camera's own choice first, resolved set-based."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEntry
from control.models import SitePolicy, TierChange
from control.services import (
    cameras_to_decide,
    control_round,
    effective_policy,
    record_telemetry,
    switch_rates,
    with_policy,
)
from fleet.models import Device
from fleet.services import provision_device

pytestmark = pytest.mark.django_db


def cameras(n: int, site: str, **fields) -> list[Device]:
    Device.objects.all().update(is_active=False)
    tag = uuid.uuid4().hex[:6]
    devices = [provision_device(f"calm-{tag}-{i}", site=site) for i in range(n)]
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(**fields)
    return devices


def test_a_tier_change_is_recorded_and_audited_by_the_controller_a_hold_is_not():
    (camera,) = cameras(1, "yard", tier_policy="fixed-6")
    control_round(None, {}, everyone=True)  # first publish: tier 12 -> 6
    change = TierChange.objects.get(device=camera)
    assert (change.from_tier, change.to_tier, change.policy) == (12, 6, "fixed-6")
    assert change.reason == "Fixed k=6 (tier 12 → 6)"
    entry = AuditEntry.objects.get(target=f"device:{camera.device_id}", action="device.tier")
    assert entry.user is None and entry.before["tier"] == 12
    assert entry.after["tier"] == 6 and entry.after["actor"] == "controller"
    assert entry.after["why"] == change.reason
    for _ in range(3):  # rounds that keep the tier: nothing more is written
        record_telemetry(camera, {"throughput_kbps": 30.0})
        assert control_round(None, {}).decided == 1
    assert TierChange.objects.filter(device=camera).count() == 1
    assert AuditEntry.objects.filter(target=f"device:{camera.device_id}").count() == 1


def test_switch_rates_count_the_last_ten_minutes_per_camera():
    calm, busy = cameras(2, "yard")
    now = timezone.now()
    TierChange.objects.bulk_create(
        [
            TierChange(device=busy, at=now - timedelta(minutes=m), from_tier=5, to_tier=6,
                       policy="robust", reason="")
            for m in (1, 2, 3, 4, 5, 11)  # the last one is outside the window
        ]
    )  # fmt: skip
    assert switch_rates([calm.pk, busy.pk], now) == {calm.pk: 0.0, busy.pk: 0.5}


def test_a_camera_runs_its_own_policy_else_its_sites_else_robust():
    own, follows, elsewhere = cameras(3, "farm")
    Device.objects.filter(pk=own.pk).update(tier_policy="fixed-12")
    Device.objects.filter(pk=elsewhere.pk).update(site="barn")
    SitePolicy.objects.create(site="farm", policy="fixed-6")
    with CaptureQueriesContext(connection) as queries:
        found = {
            d.pk: effective_policy(d) for d in with_policy(Device.objects.filter(is_active=True))
        }
    assert len(queries.captured_queries) == 1  # resolved in the query, not per camera
    assert found == {own.pk: "fixed-12", follows.pk: "fixed-6", elsewhere.pk: "robust"}
    control_round(None, {}, everyone=True)
    tiers = dict(Device.objects.filter(is_active=True).values_list("pk", "desired_tier"))
    assert (tiers[own.pk], tiers[follows.pk]) == (12, 6)


def test_a_site_policy_change_brings_its_cameras_up_for_decision():
    own, follows = cameras(2, "orchard")
    Device.objects.filter(pk=own.pk).update(tier_policy="fixed-12")
    control_round(None, {}, everyone=True)
    assert not cameras_to_decide().exists()
    SitePolicy.objects.create(site="orchard", policy="fixed-6")
    assert list(cameras_to_decide().values_list("pk", flat=True)) == [follows.pk]
    control_round(None, {})
    assert Device.objects.get(pk=follows.pk).desired_tier == 6
    assert not cameras_to_decide().exists()


def test_an_admin_sets_a_sites_policy_in_the_admin_area_audited():
    from django.contrib.auth import get_user_model
    from django.test import Client

    root = get_user_model().objects.create_superuser(f"root-{uuid.uuid4().hex[:6]}", "", "pw")
    client = Client()
    client.force_login(root)
    refused = client.post("/admin/control/sitepolicy/add/", {"site": "quay", "policy": "magic"})
    assert refused.status_code == 200 and not SitePolicy.objects.filter(site="quay").exists()
    client.post("/admin/control/sitepolicy/add/", {"site": "quay", "policy": "throughput"})
    assert SitePolicy.objects.get(site="quay").policy == "throughput"
    entry = AuditEntry.objects.get(target="sitepolicy:quay")
    assert entry.username == root.username and entry.after["policy"] == "throughput"


def _queries_to_switch(n: int) -> int:
    devices = cameras(n, "dock", tier_policy="fixed-12")
    control_round(None, {}, everyone=True)
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(tier_policy="fixed-6")
    for device in devices:
        record_telemetry(device, {"throughput_kbps": 20.0})
    with CaptureQueriesContext(connection) as queries:
        assert control_round(None, {}).published == n
    assert TierChange.objects.filter(device__in=devices, to_tier=6).count() == n
    assert AuditEntry.objects.filter(action="device.tier", after__tier=6).count() >= n
    return len(queries.captured_queries)


def test_recording_a_rounds_tier_changes_does_not_grow_with_the_changes():
    """Switch records and audit entries are written in one statement each per round."""
    assert _queries_to_switch(2) == _queries_to_switch(7)
