"""Finding 1 of issue 13, end to end: poison messages published on the real Mosquitto to a
running ``manage.py ingest`` are set aside, and the next good frame is archived."""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from archive.models import Frame
from fleet.services import provision_device
from ingest.models import DeadLetter, Rejection
from mcucoder import registry
from mcucoder.bitstream import build_packet
from protocol import topics
from tests.support.packets import fake_packet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def publish(messages: list[tuple[str, bytes, bool]]) -> None:
    """Publish (topic, payload, retain) with QoS 1; wait for every PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=r) for t, p, r in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.loop_stop()
        client.disconnect()


def test_poison_messages_never_stop_the_archive(ingest_process):
    device_id = f"poison-{uuid.uuid4().hex[:8]}"
    device = provision_device(device_id)
    telemetry = topics.topic(device_id, topics.Kind.TELEMETRY)
    reported = topics.topic(device_id, topics.Kind.REPORTED)
    frame = topics.topic(device_id, topics.Kind.FRAME)
    late = build_packet(
        model_id=registry.default_model_id(),
        width=64,
        height=48,
        seq=99,
        capture_time_ms=2**63,
        chunks=[b"\x01" * 4] * 12,
    )
    poison = [
        (telemetry, b'{"backlog": 1e400}', False),
        (telemetry, b'{"backlog": 1e20}', False),
        (telemetry, b'{"backlog": 100000000000}', False),
        (telemetry, b'{"throughput_kbps": NaN}', False),
        (telemetry, b'{"device": "x\\u0000"}', False),
        (telemetry, b'{"note": 1e400}', False),
        (reported, b'{"version": 1, "error": "\\u0000"}', True),  # retained: every new ingest
        (frame, late, False),
    ]
    try:
        publish([*poison, (frame, fake_packet(seq=1), False)])
        deadline = time.monotonic() + 30
        while not Frame.objects.filter(device=device).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(Frame.objects.filter(device=device).values_list("seq", flat=True)) == [1]

        # Every poison message was set aside once, with its bytes, and the process lives on.
        deadline = time.monotonic() + 10
        while DeadLetter.objects.filter(device_id=device_id).count() < len(poison):
            assert time.monotonic() < deadline, list(DeadLetter.objects.values_list("reason"))
            time.sleep(0.1)
        kept = set(DeadLetter.objects.filter(device_id=device_id).values_list("payload", flat=True))
        assert {bytes(p) for p in kept} == {p for _, p, _ in poison}
        assert sum(
            Rejection.objects.filter(device_id=device_id).values_list("count", flat=True)
        ) == len(poison)
        assert ingest_process.popen.poll() is None

        publish([(frame, fake_packet(seq=2), False)])  # and the next one
        deadline = time.monotonic() + 30
        while Frame.objects.filter(device=device).count() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(Frame.objects.filter(device=device).values_list("seq", flat=True)) == [1, 2]
    finally:
        publish([(reported, b"", True)])  # delete the retained poison
