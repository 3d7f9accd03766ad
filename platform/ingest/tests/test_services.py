import json

import pytest
import redis
from django.conf import settings

from archive.models import Frame
from archive.policy import watch
from fleet.models import Device
from fleet.services import provision_device
from ingest.models import Rejection
from ingest.services import handle_message
from protocol import topics
from tests.support.packets import fake_packet
from tests.support.processes import celery_key

pytestmark = pytest.mark.django_db


def frame_topic(device_id: str) -> str:
    return topics.topic(device_id, topics.Kind.FRAME)


def rejections(device_id: str) -> dict[str, int]:
    return dict(Rejection.objects.filter(device_id=device_id).values_list("reason", "count"))


def test_valid_frame_is_archived_and_queued_for_decoding(clean_redis):
    device = provision_device("cam-ingest-ok")
    watch([device.device_id])  # someone views it live (archive.policy: decoded at once)
    outcome = handle_message(frame_topic(device.device_id), fake_packet(seq=42))
    assert outcome is not None and outcome.enqueued and outcome.new_layers == 12
    assert Frame.objects.filter(device=device, seq=42, n_layers=12).exists()
    # The decode task really went to the Redis broker, on the live queue.
    assert redis.Redis.from_url(settings.REDIS_URL).llen(celery_key("live")) == 1
    device.refresh_from_db()
    assert device.online and device.last_seen_at is not None


def test_unknown_device_is_counted_not_archived():
    for _ in range(3):
        assert handle_message(frame_topic("cam-nobody"), fake_packet()) is None
    assert rejections("cam-nobody") == {"unknown_device": 3}
    assert not Frame.objects.exists()


def test_inactive_device_is_refused():
    Device.objects.create(device_id="cam-retired", is_active=False)
    handle_message(frame_topic("cam-retired"), fake_packet())
    assert rejections("cam-retired") == {"inactive_device": 1}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "bad_packet:Truncated"),
        (b"not a strata packet at all, just text", "bad_packet:BadMagic"),
        (fake_packet()[:-1] + bytes([fake_packet()[-1] ^ 0xFF]), "bad_packet:ChecksumMismatch"),
    ],
)
def test_malformed_packets_are_counted_by_reason(payload, reason):
    provision_device("cam-garbled")
    assert handle_message(frame_topic("cam-garbled"), payload) is None
    assert rejections("cam-garbled") == {reason: 1}
    assert not Frame.objects.exists()


def test_unknown_model_is_refused():
    provision_device("cam-oldfw")
    handle_message(frame_topic("cam-oldfw"), fake_packet(model_id=0xDEADBEEF))
    assert rejections("cam-oldfw") == {"unknown_model": 1}


def test_topic_outside_the_contract_is_counted():
    handle_message("strata/v1/dev/cam/unknown-kind", b"{}")
    assert Rejection.objects.get(device_id="?").reason == "bad_topic"


def test_status_and_last_will_set_online_state():
    device = provision_device("cam-status")
    status = topics.topic(device.device_id, topics.Kind.STATUS)
    handle_message(status, json.dumps({"state": "online"}).encode())
    device.refresh_from_db()
    assert device.online
    handle_message(status, json.dumps({"state": "offline"}).encode())
    device.refresh_from_db()
    assert not device.online
    handle_message(status, b"{broken")
    assert rejections(device.device_id) == {"bad_status": 1}
    handle_message(status, b"")  # a deleted retained message is not a status
    assert rejections(device.device_id) == {"bad_status": 1}


def test_reported_state_is_stored_newest_version_wins():
    device = provision_device("cam-reported")
    reported = topics.topic(device.device_id, topics.Kind.REPORTED)
    handle_message(reported, json.dumps({"version": 3, "tier": 6}).encode())
    handle_message(reported, json.dumps({"version": 2, "tier": 12}).encode())  # a late replay
    device.refresh_from_db()
    assert device.reported["version"] == 3 and device.reported["tier"] == 6
    handle_message(reported, b"[]")
    handle_message(reported, b"")  # deleted retained message: ignored
    assert rejections(device.device_id) == {"bad_reported": 1}
