"""Dead letters: every refused message is kept with its bytes, bounded, and readable in the
admin; the counters (``Rejection``) keep the full count."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from fleet.services import provision_device
from ingest.models import DeadLetter, Rejection
from ingest.services import handle_batch
from protocol import topics

pytestmark = pytest.mark.django_db


def telemetry(device_id: str) -> str:
    return topics.topic(device_id, topics.Kind.TELEMETRY)


def test_dead_letters_keep_the_newest_per_device_and_reason_and_count_all() -> None:
    device = provision_device(f"dl-{uuid.uuid4().hex[:8]}")
    keep = DeadLetter.KEEP_PER_REASON
    for batch in range(3):
        handle_batch(
            [
                (telemetry(device.device_id), b'{"backlog": -%d}' % (batch * 100 + i + 1))
                for i in range(keep)
            ]
        )
    letters = DeadLetter.objects.filter(device_id=device.device_id).order_by("id")
    assert letters.count() == keep
    assert bytes(letters.last().payload) == b'{"backlog": -%d}' % (200 + keep)
    assert bytes(letters.first().payload) == b'{"backlog": -201}'
    assert (
        Rejection.objects.get(device_id=device.device_id, reason="bad_telemetry").count == 3 * keep
    )


def test_dead_letters_are_bounded_in_all(monkeypatch) -> None:
    monkeypatch.setattr(DeadLetter, "KEEP_TOTAL", 5)
    ids = [f"dl-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    for device_id in ids:  # unknown devices: any topic level is a device id to an attacker
        handle_batch([(topics.topic(device_id, topics.Kind.FRAME), b"junk")])
    assert list(DeadLetter.objects.order_by("id").values_list("device_id", flat=True)) == ids[-5:]
    assert Rejection.objects.filter(device_id__in=ids).count() == 8


def test_a_large_message_is_kept_cut_with_its_size() -> None:
    device = provision_device(f"dl-{uuid.uuid4().hex[:8]}")
    payload = b"SF" + bytes(300 * 1024)
    handle_batch([(topics.topic(device.device_id, topics.Kind.FRAME), payload)])
    letter = DeadLetter.objects.get(device_id=device.device_id)
    assert letter.reason == "oversized" and letter.size == len(payload)
    assert bytes(letter.payload) == payload[: DeadLetter.PAYLOAD_LIMIT]


def test_a_message_on_a_topic_outside_the_contract_is_kept() -> None:
    handle_batch([("strata/v1/dev/a b/frame", b"x")])
    letter = DeadLetter.objects.get(device_id="?")
    assert (letter.topic, letter.reason, bytes(letter.payload)) == (
        "strata/v1/dev/a b/frame",
        "bad_topic",
        b"x",
    )


def test_the_admin_shows_a_dead_letter_read_only(client) -> None:
    device = provision_device(f"dl-{uuid.uuid4().hex[:8]}")
    handle_batch([(telemetry(device.device_id), b'{"note": "nul \\u0000 here", "x": "\xff"}')])
    letter = DeadLetter.objects.get(device_id=device.device_id)
    admin = get_user_model().objects.create_superuser("dl-admin", "a@example.org", "pw-dl-admin")
    client.force_login(admin)
    page = client.get(reverse("admin:ingest_deadletter_change", args=[letter.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "bad_telemetry" in body and "nul \\\\u0000 here" in body and "\\xff" in body
    assert "7b 226e 6f74" not in body and "7b226e6f 7465" in body  # hex, in groups of 4 bytes
    listing = client.get(reverse("admin:ingest_deadletter_changelist"))
    assert listing.status_code == 200 and device.device_id in listing.content.decode()
    assert client.get(reverse("admin:ingest_deadletter_add")).status_code == 403
