"""Key frames on request (issue 18): the platform raises ``key_request`` in a new desired
state, published to the real Mosquitto, at most once per camera until a key frame arrives
or the request times out."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from fleet.models import Device
from fleet.services import (
    LIVE_KEY_EVERY,
    KeyFrameReason,
    applied,
    desired_payload,
    key_frame_arrived,
    key_request_timeout,
    provision_device,
    publisher,
    record_reported,
    repair_desired,
    request_key_frame,
    request_key_frames,
    update_controls,
)
from fleet.tests.test_services import retained_desired
from protocol.payloads import Desired

pytestmark = pytest.mark.django_db


@pytest.fixture
def device() -> Device:
    return provision_device(f"keys-{uuid.uuid4().hex[:8]}")


def test_a_request_is_a_new_retained_desired_state_with_key_request_raised(device):
    assert request_key_frame(device, KeyFrameReason.LIVE)
    stored = Device.objects.get(pk=device.pk)
    assert (stored.key_request, stored.desired_version) == (1, 1)
    assert stored.key_requested_at is not None
    retained = retained_desired(device.device_id)
    assert retained == desired_payload(stored) and retained["key_request"] == 1
    # the device side: applying it over what it ran asks for exactly one key frame
    before = Desired()
    after = before.merged(retained)
    assert after.asks_key_frame(before) and not after.merged(retained).asks_key_frame(after)


def test_one_outstanding_request_per_camera_until_a_key_frame_or_the_timeout(device):
    now = timezone.now()
    assert request_key_frames([device], KeyFrameReason.LOST, at=now)
    # asked again while outstanding: nothing new is published
    assert not request_key_frames([device], KeyFrameReason.LOST, at=now + timedelta(seconds=1))
    assert Device.objects.get(pk=device.pk).desired_version == 1
    # unanswered past the timeout: asked again
    later = now + key_request_timeout(device)
    assert request_key_frames([device], KeyFrameReason.LOST, at=later)
    assert Device.objects.get(pk=device.pk).key_request == 2
    # a key frame arrived: the next loss asks at once
    assert key_frame_arrived({device.pk}) == 1 and key_frame_arrived({device.pk}) == 0
    assert request_key_frames([device], KeyFrameReason.LOST, at=later + timedelta(seconds=1))
    stored = Device.objects.get(pk=device.pk)
    assert (stored.key_request, stored.desired_version) == (3, 3)
    assert retained_desired(device.device_id)["key_request"] == 3


def test_a_slow_camera_gets_longer_to_answer(device):
    quick = key_request_timeout(device)
    device.fps = 0.05  # one frame every 20 s
    assert key_request_timeout(device) == timedelta(seconds=60) > quick


def test_an_admins_earlier_copy_does_not_take_the_request_back(device):
    stale = Device.objects.get(pk=device.pk)
    assert request_key_frame(device, KeyFrameReason.LIVE)
    payload = update_controls(stale, None, tier_override=4)
    assert payload["key_request"] == 1 and payload["version"] == 2
    assert retained_desired(device.device_id) == payload


def key_requests_counted(outcome: str) -> float:
    """``strata_key_requests_total`` for refused packets, as Prometheus would scrape it."""
    labels = {"reason": "refused", "outcome": outcome}
    return REGISTRY.get_sample_value("strata_key_requests_total", labels) or 0.0


def test_a_request_the_broker_does_not_take_is_not_outstanding(device):
    asked, failed = key_requests_counted("asked"), key_requests_counted("failed")
    url, protocol = publisher.url, publisher.protocol
    publisher.use("mqtt://127.0.0.1:1")  # nothing listens there
    try:
        assert not request_key_frame(device, KeyFrameReason.REFUSED)
    finally:
        publisher.url, publisher.protocol = url, protocol
    assert Device.objects.get(pk=device.pk).key_requested_at is None
    assert key_requests_counted("failed") == failed + 1
    assert key_requests_counted("asked") == asked
    assert request_key_frame(device, KeyFrameReason.REFUSED)  # the broker is back: asked
    assert key_requests_counted("asked") == asked + 1


def test_firmware_that_does_not_echo_key_request_still_counts_as_applied(device):
    assert request_key_frame(device, KeyFrameReason.LIVE)
    device.refresh_from_db()
    old = {k: v for k, v in desired_payload(device).items() if k != "key_request"}
    record_reported(device.device_id, {**old, "device": device.device_id, "ts": 1})
    device.refresh_from_db()
    assert not applied(device).pending
    wrong = {**old, "key_request": 0, "device": device.device_id, "ts": 2}
    record_reported(device.device_id, wrong)  # a device that echoes it must echo it right
    device.refresh_from_db()
    assert applied(device).pending


def test_live_views_opening_ask_a_camera_at_most_every_30_s(device):
    now = timezone.now()
    assert request_key_frames([device], KeyFrameReason.LIVE, at=now)
    key_frame_arrived({device.pk})  # answered at once (an intra-only camera, say)
    soon = now + timedelta(seconds=5)
    assert not request_key_frames([device], KeyFrameReason.LIVE, at=soon)  # another viewer
    assert request_key_frames([device], KeyFrameReason.LOST, at=soon)  # a loss is a loss
    key_frame_arrived({device.pk})
    assert request_key_frames([device], KeyFrameReason.LIVE, at=soon + LIVE_KEY_EVERY)
    assert Device.objects.get(pk=device.pk).key_request == 3


def test_a_request_is_no_switch_for_the_controller_nor_foreign_for_the_repair(device):
    update_controls(device, None, tier_override=6)
    switched = Device.objects.get(pk=device.pk).desired_at
    assert request_key_frame(device, KeyFrameReason.LOST)
    stored = Device.objects.get(pk=device.pk)
    assert stored.desired_at == switched  # the controller's hysteresis counts from the switch
    assert stored.desired_version == 2
    assert device.device_id not in repair_desired()  # the retained state is the platform's
