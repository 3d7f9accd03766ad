"""Finding 1 of issue 13: one message whose content cannot be stored must never stall ingest.

Each poison message goes through ``handle_batch`` together with a good frame, against the
real PostgreSQL: the good frame is archived, the poison is counted, kept as a dead letter
and never raised (raising would leave the whole batch to the broker, which delivers it
again for ever).
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection

from archive.models import Frame
from control.models import LinkSample
from fleet.models import Device
from fleet.services import provision_device
from ingest.models import DeadLetter, Rejection
from ingest.services import handle_batch
from mcucoder import registry
from mcucoder.bitstream import build_packet
from protocol import topics
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


def topic(device_id: str, kind: topics.Kind) -> str:
    return topics.topic(device_id, kind)


def packet(**overrides) -> bytes:
    fields = dict(
        model_id=registry.default_model_id(),
        width=64,
        height=48,
        seq=7,
        capture_time_ms=1_700_000_000_000,
        chunks=[bytes([i + 1]) * 4 for i in range(12)],
    )
    return build_packet(**(fields | overrides))


POISON = {
    "telemetry-overflowing-float": (topics.Kind.TELEMETRY, b'{"backlog": 1e400}'),
    "telemetry-float-backlog": (topics.Kind.TELEMETRY, b'{"backlog": 1e20}'),
    "telemetry-int-backlog-past-int32": (topics.Kind.TELEMETRY, b'{"backlog": 100000000000}'),
    "telemetry-nan": (topics.Kind.TELEMETRY, b'{"throughput_kbps": NaN}'),
    "telemetry-nul": (topics.Kind.TELEMETRY, b'{"device": "cam\\u0000"}'),
    "telemetry-nul-in-unknown-field": (topics.Kind.TELEMETRY, b'{"note": {"x": "\\u0000"}}'),
    "telemetry-infinite-unknown-field": (topics.Kind.TELEMETRY, b'{"note": 1e999}'),
    "telemetry-lone-surrogate": (topics.Kind.TELEMETRY, b'{"note": "\\ud800"}'),
    "reported-nul": (topics.Kind.REPORTED, b'{"version": 1, "error": "a\\u0000b"}'),
    "reported-nul-in-key": (topics.Kind.REPORTED, b'{"version": 1, "a\\u0000": 1}'),
    "reported-infinite-unknown-field": (topics.Kind.REPORTED, b'{"version": 1, "x": -1e400}'),
    "reported-lone-surrogate": (topics.Kind.REPORTED, b'{"version": 1, "error": "\\udfff"}'),
    "reported-not-utf8": (topics.Kind.REPORTED, b'{"version": 1, "error": "\xff"}'),
    "status-nul": (topics.Kind.STATUS, b'{"state": "online", "reason": "\\u0000"}'),
    "frame-capture-time-2^63": (topics.Kind.FRAME, packet(capture_time_ms=2**63)),
    "frame-capture-time-past-year-9999": (topics.Kind.FRAME, packet(capture_time_ms=2**62)),
    "frame-too-many-pixels": (topics.Kind.FRAME, packet(width=4096, height=4096)),
}


@pytest.mark.parametrize("name", sorted(POISON))
def test_a_poison_message_is_set_aside_and_the_next_frame_archived(name: str) -> None:
    device = provision_device(f"poison-{uuid.uuid4().hex[:8]}")
    kind, payload = POISON[name]
    good = fake_packet(seq=1)

    outcome = handle_batch(
        [
            (topic(device.device_id, kind), payload),
            (topic(device.device_id, topics.Kind.FRAME), good),
        ]
    )
    # The good frame of the same batch is archived ...
    assert [f.seq for f in outcome.frames] == [1]
    # ... and so is the next one, in a batch of its own.
    handle_batch([(topic(device.device_id, topics.Kind.FRAME), fake_packet(seq=2))])
    assert sorted(Frame.objects.filter(device=device).values_list("seq", flat=True)) == [1, 2]

    # The poison is counted once, kept with its bytes, and nothing of it was stored.
    reasons = dict(
        Rejection.objects.filter(device_id=device.device_id).values_list("reason", "count")
    )
    assert sum(reasons.values()) == 1, reasons
    letter = DeadLetter.objects.get(device_id=device.device_id)
    assert bytes(letter.payload) == payload and letter.size == len(payload)
    assert letter.topic == topic(device.device_id, kind)
    assert letter.reason in reasons
    assert not LinkSample.objects.filter(device=device).exists()
    assert Device.objects.get(pk=device.pk).reported in (None, {})


def test_poison_retained_on_reported_does_not_stop_a_fresh_ingest() -> None:
    """A retained poison is delivered to every new ingest process first: each of them must
    set it aside and go on (the same call, twice, as after a restart)."""
    device = provision_device(f"poison-{uuid.uuid4().hex[:8]}")
    reported = topic(device.device_id, topics.Kind.REPORTED)
    poison = json.dumps({"version": 9, "error": "x\u0000"}).encode()
    for seq in (1, 2):
        handle_batch(
            [(reported, poison), (topic(device.device_id, topics.Kind.FRAME), fake_packet(seq=seq))]
        )
    assert Frame.objects.filter(device=device).count() == 2
    assert Rejection.objects.get(device_id=device.device_id).count == 2


def test_a_database_error_from_one_message_sets_aside_only_that_message() -> None:
    """Content the validators let through but the database refuses (here a CHECK constraint
    added for the test, on the real table) costs that one message, not its batch."""
    device = provision_device(f"poison-{uuid.uuid4().hex[:8]}")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE archive_frame ADD CONSTRAINT test_no_seq_13 CHECK (seq <> 13)")
        cursor.execute(
            "ALTER TABLE control_linksample ADD CONSTRAINT test_no_backlog_13 CHECK (backlog <> 13)"
        )
    frame_topic = topic(device.device_id, topics.Kind.FRAME)
    telemetry = topic(device.device_id, topics.Kind.TELEMETRY)
    outcome = handle_batch(
        [(frame_topic, fake_packet(seq=s)) for s in (11, 12, 13, 14)]
        + [(telemetry, b'{"backlog": 13}'), (telemetry, b'{"backlog": 2}')]
    )
    assert sorted(f.seq for f in outcome.frames) == [11, 12, 14]
    assert sorted(Frame.objects.filter(device=device).values_list("seq", flat=True)) == [11, 12, 14]
    assert list(LinkSample.objects.filter(device=device).values_list("backlog", flat=True)) == [2]
    letters = DeadLetter.objects.filter(device_id=device.device_id)
    assert sorted(letters.values_list("reason", flat=True)) == ["unstorable", "unstorable"]
    assert {bytes(p) for p in letters.values_list("payload", flat=True)} == {
        fake_packet(seq=13),
        b'{"backlog": 13}',
    }
