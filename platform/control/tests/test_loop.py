"""The decision loop at fleet scale: its cost follows what changed, one controller leads."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive.services import store_packet
from control.leader import LeaderLock
from control.services import cameras_to_decide, control_round, record_telemetry
from fleet.models import Device
from fleet.services import provision_device, update_controls
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


def fleet_of(n: int, tag: str) -> list[Device]:
    Device.objects.all().update(is_active=False)
    devices = [provision_device(f"loop-{tag}-{i}") for i in range(n)]
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(tier_policy="fixed-12")
    for device in devices:
        for seq in range(3):
            store_packet(device, parse_packet(fake_packet(seq=seq)))
        record_telemetry(device, {"throughput_kbps": 40.0, "link_kbps": 50.0, "backlog": 1})
    return devices


def test_only_cameras_with_something_new_are_decided():
    quiet, heard, changed = fleet_of(3, "news")
    control_round(None, {}, everyone=True)  # a controller's first round: everyone
    assert not cameras_to_decide().exists()  # nothing new since
    record_telemetry(heard, {"throughput_kbps": 12.0})
    update_controls(Device.objects.get(pk=changed.pk), None, max_kbps=64)
    assert set(cameras_to_decide().values_list("device_id", flat=True)) == {
        heard.device_id,
        changed.device_id,
    }
    assert control_round(None, {}).decided == 2
    assert not cameras_to_decide().exists()
    Device.objects.filter(pk=quiet.pk).update(is_active=False)
    record_telemetry(quiet, {"throughput_kbps": 12.0})
    assert not cameras_to_decide().exists()  # deactivated cameras cost nothing


def _reads_per_round(n: int, tag: str) -> int:
    fleet_of(n, tag)
    control_round(None, {}, everyone=True)
    for device in Device.objects.filter(is_active=True):
        record_telemetry(device, {"throughput_kbps": 20.0})
    with CaptureQueriesContext(connection) as queries:
        done = control_round(None, {})
    assert done.decided == n and done.failed == 0
    return len(queries.captured_queries)


def test_a_rounds_queries_do_not_grow_with_the_cameras():
    """Link samples and scene sizes are read for all cameras at once, and the decisions
    stored in one statement."""
    assert _reads_per_round(3, "few") == _reads_per_round(12, "many")


def test_one_controller_leads_and_another_takes_over():
    if connection.vendor != "postgresql":
        pytest.fail("the leader lock is PostgreSQL's advisory lock: run against PostgreSQL")
    first, second = LeaderLock(), LeaderLock()
    try:
        assert first.acquire() and first.acquire()
        assert not second.acquire()
        first.release()  # the leader stops (or dies: its connection closes the same way)
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


@pytest.mark.django_db(transaction=True)  # the controller recycles its connection
def test_the_controller_repairs_a_foreign_desired_state_when_it_starts_leading():
    import json
    import threading
    import uuid

    import paho.mqtt.client as mqtt

    from control.services import run_controller
    from protocol import topics

    Device.objects.all().update(is_active=False)
    device = provision_device(f"loop-foreign-{uuid.uuid4().hex[:6]}")
    Device.objects.filter(pk=device.pk).update(tier_policy="fixed-12")
    intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    intruder.connect("127.0.0.1", 1883)
    intruder.loop_start()
    try:
        foreign = json.dumps({"version": 1_000_000, "tier": 1, "fps": 0})
        topic = topics.topic(device.device_id, topics.Kind.DESIRED)
        intruder.publish(topic, foreign, qos=1, retain=True).wait_for_publish(5)
        run_controller(None, 0.0, threading.Event(), once=True)
        assert Device.objects.get(pk=device.pk).desired_version > 1_000_000
    finally:
        intruder.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        intruder.loop_stop()
        intruder.disconnect()
