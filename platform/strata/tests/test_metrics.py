"""/metrics: the platform's gauges read at scrape time, and who may read them."""

from __future__ import annotations

import re
import uuid

import pytest
import redis

import strata.metrics
from archive import coordination
from archive.models import RetentionPolicy
from fleet.services import provision_device
from ingest.services import handle_message
from protocol import topics
from strata.metrics import queue_keys
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


def value(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def test_metrics_show_devices_queues_and_archive_bytes_by_band(client, settings, monkeypatch):
    monkeypatch.setattr(strata.metrics, "DISK_EVERY_S", -1)  # no figures cached by others
    monkeypatch.setattr(strata.metrics, "BUDGET_EVERY_S", -1)
    device = provision_device(f"m-{uuid.uuid4().hex[:8]}")
    RetentionPolicy.objects.create(device=device, budget_bytes=1000)
    device.online = True
    device.save(update_fields=["online"])
    frame_topic = topics.topic(device.device_id, topics.Kind.FRAME)
    assert handle_message(frame_topic, fake_packet(seq=1, channels=12)) is not None
    handle_message(frame_topic, b"not a packet")
    r = redis.Redis.from_url(settings.REDIS_URL)
    key = queue_keys()["archive:backfill"]
    r.delete(key)
    r.rpush(key, b"a", b"b")
    coordination.client()  # the collector's client
    try:
        text = client.get("/metrics").content.decode()
    finally:
        r.delete(key)
    assert value(text, "strata_devices_online") >= 1
    assert value(text, "strata_devices") >= value(text, "strata_devices_online")
    assert value(text, "strata_queue_length", '{queue="archive:backfill"}') == 2
    assert value(text, "strata_archive_bytes", '{table="layer"}') > 0
    bands = [value(text, "strata_archive_layer_bytes", f'{{band="{b}"}}') for b in ("k1-3", "k4-6", "k7-12")]  # fmt: skip
    assert all(b > 0 for b in bands)
    used = sum(3 + i for i in range(12)) / 1000
    assert (
        value(text, "strata_retention_budget_use_ratio", f'{{policy="camera {device.device_id}"}}')
        == used
    )
    # counted in this process: the frame, its 12 layers, the bad packet
    assert value(text, "strata_ingest_frames_total") >= 1
    assert value(text, "strata_ingest_layers_total") >= 12
    assert value(text, "strata_ingest_rejected_total", '{reason="bad_packet:BadMagic"}') >= 1


def test_metrics_need_a_token_staff_or_an_allowed_network(client, settings, django_user_model):
    settings.STRATA_METRICS_TOKEN = "s3cret-token"
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **outside).status_code == 404
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **outside)
    assert wrong.status_code == 404
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token", **outside)
    assert right.status_code == 200 and b"strata_devices" in right.content
    assert client.get("/metrics").status_code == 200  # loopback, by default
    user = django_user_model.objects.create_user("plain", password="x-very-long-pass-1")
    client.force_login(user)
    assert client.get("/metrics", **outside).status_code == 404
    user.is_staff = True
    user.save()
    assert client.get("/metrics", **outside).status_code == 200
