"""Killing ingest at any moment loses no acknowledged frame and duplicates none."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from archive.models import Frame, Layer
from fleet.services import provision_device
from ingest.models import Rejection
from protocol import topics
from tests.support.packets import fake_packet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def ingest_args(client_id: str, group: str) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "ingest",
        "--client-id",
        client_id,
        "--share-group",
        group,
        "--session-expiry",
        "120",
    ]


def publish_all(device_id: str, payloads: list[bytes], broker_port: int = 1883) -> None:
    """Publish with QoS 1 and wait until the broker has acknowledged every message."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    try:
        infos = [
            client.publish(topics.topic(device_id, topics.Kind.FRAME), p, qos=1) for p in payloads
        ]
        for info in infos:
            info.wait_for_publish(timeout=30)
    finally:
        client.loop_stop()
        client.disconnect()


def test_sigkill_mid_stream_loses_and_duplicates_nothing(service_env, spawn, clean_redis):
    device_id = f"dur-{uuid.uuid4().hex[:8]}"
    device = provision_device(device_id)
    client_id, group = f"ingest-dur-{os.getpid()}", f"dur-{uuid.uuid4().hex[:6]}"
    n = 900  # under Mosquitto's default queue of 1,000 messages for an offline session

    # Open the persistent session, then go away: the broker queues the stream for us.
    first = spawn("ingest-1", ingest_args(client_id, group), service_env)
    first.wait_for("connected to", 60)
    first.stop(signal.SIGKILL)
    # A few garbage messages in the stream must not stop anything either.
    payloads = [fake_packet(seq=i, channels=1 + i % 12) for i in range(n)]
    payloads[10] = b"garbage"
    payloads[20] = payloads[20][:-3]
    publish_all(device_id, payloads)

    second = spawn("ingest-2", ingest_args(client_id, group), service_env)
    deadline = time.monotonic() + 60
    while not Frame.objects.filter(device=device).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    second.stop(signal.SIGKILL)  # mid-stream, no chance to clean up
    archived_at_kill = Frame.objects.filter(device=device).count()
    assert 0 < archived_at_kill < n - 2, "the kill should land mid-stream"

    third = spawn("ingest-3", ingest_args(client_id, group), service_env)
    third.wait_for("connected to", 60)
    deadline = time.monotonic() + 120
    while Frame.objects.filter(device=device).count() < n - 2 and time.monotonic() < deadline:
        time.sleep(0.2)

    frames = Frame.objects.filter(device=device)
    assert frames.count() == n - 2
    assert sorted(frames.values_list("seq", flat=True)) == [
        i for i in range(n) if i not in (10, 20)
    ]
    expected_layers = sum(1 + i % 12 for i in range(n) if i not in (10, 20))
    assert Layer.objects.filter(frame__device=device).count() == expected_layers
    reasons = dict(Rejection.objects.filter(device_id=device_id).values_list("reason", "count"))
    # Garbage archived before the kill may be counted again after redelivery: at least once.
    assert set(reasons) == {"bad_packet:BadMagic", "bad_packet:Truncated"}


def test_database_connection_lost_mid_stream_loses_nothing(service_env, spawn, clean_redis):
    """PostgreSQL drops ingest's connections (as on a database restart) while frames flow:
    the failed batch stays unacknowledged, is delivered again, and lands exactly once."""
    from django.db import connection

    device_id = f"dbl-{uuid.uuid4().hex[:8]}"
    device = provision_device(device_id)
    client_id, group = f"ingest-dbl-{os.getpid()}", f"dbl-{uuid.uuid4().hex[:6]}"
    n = 900
    ingest = spawn("ingest", ingest_args(client_id, group), service_env)
    ingest.wait_for("connected to", 60)
    ingest.stop(signal.SIGKILL)
    publish_all(device_id, [fake_packet(seq=i) for i in range(n)])  # queued by the broker

    ingest = spawn("ingest-again", ingest_args(client_id, group), service_env)
    terminated = 0
    deadline = time.monotonic() + 60
    while terminated < 3 and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where datname = current_database() and pid <> pg_backend_pid()"
            )
            terminated += cursor.fetchone()[0]
        time.sleep(0.05)
    assert terminated >= 3, "ingest never connected to the database"

    deadline = time.monotonic() + 120
    while Frame.objects.filter(device=device).count() < n and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(Frame.objects.filter(device=device).values_list("seq", flat=True)) == list(
        range(n)
    )
    assert Layer.objects.filter(frame__device=device).count() == 12 * n
    assert "will deliver them again" in ingest.output()
