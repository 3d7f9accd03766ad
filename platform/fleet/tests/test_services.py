"""Health with a grace period, the desired state (published to the real Mosquitto) and the
reported state."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEntry
from fleet.models import Device
from fleet.services import (
    Health,
    applied,
    desired_payload,
    effective_tier,
    health,
    provision_device,
    record_reported,
    set_online,
    update_controls,
)
from protocol import topics
from protocol.broker import BrokerURL
from protocol.payloads import CAPTURE_MODES
from protocol.payloads import Desired as Settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def device() -> Device:
    return provision_device(f"fleet-{uuid.uuid4().hex[:8]}")


def test_health_allows_a_grace_period(device):
    now = timezone.now()
    assert health(device, now) is Health.NEVER
    device.checkin_interval_s = 300  # wakes every five minutes
    device.online, device.last_seen_at = True, now - timedelta(seconds=20)
    assert health(device, now) is Health.ONLINE
    device.online, device.last_seen_at = False, now - timedelta(minutes=12)
    assert health(device, now) is Health.SLEEPING  # asleep between wake-ups, not broken
    device.last_seen_at = now - timedelta(minutes=16)
    assert health(device, now) is Health.OFFLINE
    device.online = True  # a stale retained "online" does not make it healthy
    assert health(device, now) is Health.OFFLINE


def test_effective_tier_obeys_limits(device):
    device.desired_tier, device.min_tier, device.max_tier = 12, 2, 8
    assert effective_tier(device) == 8
    device.desired_tier = 1
    assert effective_tier(device) == 2
    device.tier_override = 5
    assert effective_tier(device) == 5


def retained_desired(device_id: str, timeout_s: float = 10.0) -> dict:
    """Subscribe as the device would and return the retained desired state."""
    broker = BrokerURL.parse(settings.MQTT_URL)
    got: list[dict] = []
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, *a: c.subscribe(topics.topic(device_id, topics.Kind.DESIRED), 1)
    client.on_message = lambda c, u, msg: (got.append(json.loads(msg.payload)), done.set())
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert done.wait(timeout_s), "no retained desired state"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[-1]


def test_update_controls_audits_and_publishes_retained_versions(device):
    admin = get_user_model().objects.create_user("fleet-admin", is_staff=True)
    first = update_controls(device, admin, max_kbps=40, tier_override=6, deadline_ms=800)
    assert first == {
        "version": 1,
        "tier": 6,
        "fps": 1.0,
        "max_kbps": 40,
        "mode": "periodic",
        "deadline_ms": 800,
        "key_request": 0,
    }
    second = update_controls(device, admin, max_kbps=None, tier_override=None, max_tier=9)
    assert second["version"] == 2 and second["tier"] == 9 and second["max_kbps"] is None
    assert update_controls(device, admin, max_tier=9) is None  # nothing changed
    assert retained_desired(device.device_id) == second
    # What the device does with it: the payload is valid desired state.
    assert Settings().merged(second).max_kbps is None
    assert Settings().merged(second).deadline_ms == 800
    entries = list(AuditEntry.objects.filter(target=f"device:{device.device_id}"))
    assert [e.after for e in reversed(entries)] == [
        {"max_kbps": 40, "tier_override": 6, "deadline_ms": 800},
        {"max_kbps": None, "max_tier": 9, "tier_override": None},
    ]
    assert entries[0].username == "fleet-admin"
    assert applied(Device.objects.get(pk=device.pk)).pending


def test_contradicting_limits_are_refused(device):
    with pytest.raises(ValidationError):
        update_controls(device, None, min_tier=9, max_tier=4)
    with pytest.raises(ValidationError):
        update_controls(device, None, min_tier=2, max_tier=4, tier_override=7)
    assert Device.objects.get(pk=device.pk).desired_version == 0


def test_reported_state_is_kept_newest_first(device):
    device.desired_version, device.tier_override, device.max_kbps = 3, 6, 40
    device.save()
    report = {**desired_payload(device), "max_kbps": 40.0, "device": device.device_id}
    assert record_reported(device.device_id, report)
    assert not record_reported(device.device_id, {"version": 2, "tier": 12})  # stale replay
    assert not record_reported(device.device_id, {"tier": 1})  # no version
    assert not record_reported("no-such-device", {"version": 1})
    device.refresh_from_db()
    assert device.reported["tier"] == 6
    assert not applied(device).pending
    record_reported(device.device_id, {"version": 3, "tier": 6, "error": "'tier' must be…"})
    device.refresh_from_db()
    assert applied(device).rejected.startswith("'tier'")


def test_desired_payload_matches_the_device_contract(device):
    payload = desired_payload(device)
    assert set(payload) == {
        "version", "tier", "fps", "max_kbps", "mode", "deadline_ms", "key_request"
    }  # fmt: skip
    modes = {value for value, _ in Device._meta.get_field("capture_mode").choices}
    assert modes == set(CAPTURE_MODES)
    assert Settings().merged(payload).mode == "periodic"
    set_online(device.device_id, True)
    device.refresh_from_db()
    assert health(device) is Health.ONLINE


def test_controller_tier_is_published_when_it_changes_and_explained(device):
    from fleet.services import apply_controller_tier

    reason = {"throughput_kbps": 18.5, "bytes_per_frame_at_k": {"6": 1900}}
    first = apply_controller_tier(device, 6, reason)
    assert first["tier"] == 6 and first["version"] == 1
    assert apply_controller_tier(device, 6, reason) is None  # same tier: nothing to send
    update_controls(device, None, max_tier=4)  # the admin's limit wins: version 2, tier 4
    assert apply_controller_tier(device, 5, reason) is None  # still 4 within the limit
    device.refresh_from_db()
    assert device.tier_reason == reason and device.desired_tier == 5
    assert retained_desired(device.device_id)["tier"] == 4
    with pytest.raises(ValueError):
        apply_controller_tier(device, 13, reason)


def test_applied_is_only_what_the_camera_reported(device):
    """A report of a version the platform never issued, or of the platform's version with
    other values, is not "applied" (a foreign desired state held the camera there)."""
    device.desired_version = 2
    device.save()
    stored = desired_payload(device)
    device.reported = {**stored, "version": 1_000_000, "tier": 1}  # a foreign state applied
    assert applied(device).pending and applied(device).foreign
    device.reported = {**stored, "tier": 1}  # the platform's number, someone else's values
    assert applied(device).pending and not applied(device).foreign
    device.reported = {**stored, "device": device.device_id, "ts": 1}
    assert not applied(device).pending
