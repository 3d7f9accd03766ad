"""Telemetry into link samples, and decisions published as the device's desired state."""

import json

import paho.mqtt.client as mqtt
import pytest

from archive.services import store_packet
from control.models import LinkSample
from control.policies import RobustController
from control.services import bytes_per_frame, decide_tier, extrapolated, link_state
from fleet.models import Device
from fleet.services import provision_device
from ingest.models import Rejection
from ingest.services import handle_message
from mcucoder.bitstream import parse_packet
from protocol import topics
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


def telemetry(**kw) -> bytes:
    body = {"throughput_kbps": 12.5, "backlog": 3, "max_backlog": 16, "puback_ms": {"mean": 80.0}}
    return json.dumps({**body, **kw}).encode()


def test_telemetry_becomes_a_link_sample():
    device = provision_device("cam-telemetry")
    handle_message(topics.topic(device.device_id, topics.Kind.TELEMETRY), telemetry())
    sample = LinkSample.objects.get(device=device)
    assert (sample.throughput_kbps, sample.backlog, sample.puback_ms) == (12.5, 3, 80.0)
    assert sample.link_kbps is None  # older firmware: no capacity estimate
    handle_message(topics.topic(device.device_id, topics.Kind.TELEMETRY), telemetry(link_kbps=31.0))
    assert link_state(device).throughput_kbps[-1] == 31.0  # capacity, where measured
    handle_message(topics.topic(device.device_id, topics.Kind.TELEMETRY), b"{not json")
    handle_message(topics.topic(device.device_id, topics.Kind.TELEMETRY), telemetry(backlog="many"))
    assert Rejection.objects.get(device_id=device.device_id).count == 2
    assert LinkSample.objects.filter(device=device).count() == 2


def test_bytes_per_frame_comes_from_the_archived_layers():
    device = provision_device("cam-scene")
    for seq in range(3):
        store_packet(device, parse_packet(fake_packet(seq=seq)))
    sizes = bytes_per_frame(device)
    # the whole packet at each k, to the byte, as the camera would send it trimmed to k
    packet = parse_packet(fake_packet(seq=0))
    assert sizes == {k: len(packet.with_channels(k).to_bytes()) for k in range(1, 13)}


def test_tiers_above_those_measured_are_extrapolated_high():
    measured = {1: 400.0, 2: 700.0, 3: 900.0}
    sizes = extrapolated(measured)
    assert sizes[3] == 900.0 and sizes[4] == 1100.0 and sizes[12] == 900.0 + 9 * 200
    # one tier measured: the next channels cost what the first one did (header aside)
    assert extrapolated({1: 433.0})[3] == 433.0 + 2 * 400
    assert extrapolated({}) == {}


def test_a_decision_is_stored_with_its_inputs_and_published_retained():
    device = provision_device("cam-decide")
    for seq in range(3):
        store_packet(device, parse_packet(fake_packet(seq=seq)))
    for _ in range(5):
        handle_message(
            topics.topic(device.device_id, topics.Kind.TELEMETRY),
            telemetry(backlog=14, throughput_kbps=0.1),
        )
    device.refresh_from_db()
    assert link_state(device).backlog == 14

    decision = decide_tier(device, RobustController())
    device.refresh_from_db()
    assert decision.tier < 12 and device.desired_tier == decision.tier
    assert device.tier_reason["reason"] == decision.reason
    assert device.tier_reason["inputs"]["buffer_fill"] == pytest.approx(14 / 16)

    received: list[dict] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"check-{device.pk}")
    client.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    client.connect("127.0.0.1", 1883)
    client.subscribe(topics.topic(device.device_id, topics.Kind.DESIRED), qos=1)
    client.loop_start()
    try:
        import time

        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert received and received[-1]["tier"] == decision.tier
    assert received[-1]["version"] == Device.objects.get(pk=device.pk).desired_version


@pytest.mark.django_db(transaction=True)  # the loop closes stale connections, as in production
def test_each_camera_runs_the_policy_its_admin_chose():
    import threading

    from control.services import run_controller

    Device.objects.all().update(is_active=False)
    low, high = provision_device("cam-policy-low"), provision_device("cam-policy-high")
    broken = provision_device("cam-policy-unknown")
    Device.objects.filter(pk=low.pk).update(tier_policy="fixed-6")
    Device.objects.filter(pk=high.pk).update(tier_policy="fixed-12", desired_tier=3)
    Device.objects.filter(pk=broken.pk).update(tier_policy="no-such-policy")
    run_controller(None, 0.0, threading.Event(), once=True)  # a bad name stops no one else
    tiers = dict(Device.objects.values_list("device_id", "desired_tier"))
    assert (tiers["cam-policy-low"], tiers["cam-policy-high"]) == (6, 12)
    # one policy for all (the command's --policy) overrides the cameras' own choice
    run_controller("fixed-6", 0.0, threading.Event(), once=True)
    assert Device.objects.get(pk=high.pk).desired_tier == 6
    with pytest.raises(ValueError, match="unknown policy"):
        run_controller("no-such-policy", 0.0, threading.Event(), once=True)
