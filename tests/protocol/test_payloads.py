"""The payload contract: each message's validator accepts what devices send and names the
field of what it refuses."""

from __future__ import annotations

import json

import pytest

from mcucoder.models import N_CHANNELS
from protocol.payloads import (
    COUNTERS,
    MAX_TIER,
    Desired,
    PayloadError,
    PubackStats,
    Reported,
    Status,
    Telemetry,
)


def test_the_tier_range_is_the_codecs_channel_count() -> None:
    assert MAX_TIER == N_CHANNELS
    Desired(version=1, tier=N_CHANNELS)
    with pytest.raises(PayloadError) as err:
        Desired(version=1, tier=N_CHANNELS + 1)
    assert err.value.field == "tier"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"tier": 3}, "version"),
        ({"version": -1}, "version"),
        ({"version": 2, "tier": 0}, "tier"),
        ({"version": 2, "tier": 4.0}, "tier"),
        ({"version": 2, "tier": True}, "tier"),
        ({"version": 2, "fps": 31}, "fps"),
        ({"version": 2, "max_kbps": 0}, "max_kbps"),
        ({"version": 2, "mode": "burst"}, "mode"),
        ({"version": 2, "deadline_ms": 99}, "deadline_ms"),
        ({"version": 2, "deadline_ms": "1000"}, "deadline_ms"),
        ({"version": 2, "key_request": -1}, "key_request"),
        ({"version": 2, "key_request": 1.0}, "key_request"),
        ({"version": 2, "key_request": True}, "key_request"),
        ({"version": 2, "key_request": "3"}, "key_request"),
    ],
)
def test_desired_refuses_each_bad_field_by_name(message: dict, field: str) -> None:
    with pytest.raises(PayloadError) as err:
        Desired().merged(message)
    assert err.value.field == field
    assert f"'{field}'" in str(err.value)


def test_desired_merge_keeps_absent_fields_and_normalises_numbers() -> None:
    base = Desired().merged({"version": 1, "tier": 6, "max_kbps": 48, "deadline_ms": 1000})
    after = base.merged(b'{"version": 2, "fps": 2}')
    assert after == Desired(2, 6, 2.0, 48.0, "periodic", 1000.0)
    assert json.loads(after.to_json()) == {
        "version": 2, "tier": 6, "fps": 2.0, "max_kbps": 48.0, "mode": "periodic",
        "deadline_ms": 1000.0, "key_request": 0,
    }  # fmt: skip


def test_a_key_request_is_answered_once_and_older_payloads_keep_it() -> None:
    base = Desired().merged({"version": 1, "tier": 6})
    asked = base.merged({"version": 2, "key_request": 1})
    assert asked.asks_key_frame(base) and asked.tier == 6
    # a later state without the field (an older platform) keeps the counter: no new request
    later = asked.merged({"version": 3, "tier": 4})
    assert later.key_request == 1 and not later.asks_key_frame(asked)
    # a device that restarted (counter 0) and gets the retained request sends a key frame
    assert Desired().merged({"version": 3, "key_request": 1}).asks_key_frame(Desired())


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"version": NaN}', b'{"version": 1, "mode": "a\\u0000"}'],
)
def test_messages_that_are_not_clean_json_objects_are_refused(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        Desired().merged(payload)
    with pytest.raises(PayloadError):
        Telemetry.parse(payload)
    with pytest.raises(PayloadError):
        Reported.parse(payload)


def test_telemetry_round_trip_and_defaults_for_older_firmware() -> None:
    sent = Telemetry(
        device="cam-1",
        ts=1_764_086_420_456,
        uptime_s=12.5,
        seq=9,
        counters={name: i for i, name in enumerate(COUNTERS)},
        backlog=2,
        max_backlog=16,
        puback_ms=PubackStats(120.0, 180.5, 8),
        throughput_kbps=42.0,
        link_kbps=64.0,
        applied=Desired(version=3, tier=6),
    )
    parsed, raw = Telemetry.parse(sent.to_json())
    assert raw == sent.to_dict()
    assert parsed.link_kbps == 64.0 and parsed.puback_ms.mean == 120.0
    assert parsed.frames_dropped == COUNTERS.index("frames_dropped")
    old, _ = Telemetry.parse(b'{"throughput_kbps": 10}')
    assert (old.backlog, old.max_backlog, old.link_kbps) == (0, 16, None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"backlog": 1e400}', "backlog"),
        (b'{"backlog": 1e20}', "backlog"),
        (b'{"backlog": -1}', "backlog"),
        (b'{"throughput_kbps": "fast"}', "throughput_kbps"),
        (b'{"link_kbps": 1e300}', "link_kbps"),
        (b'{"puback_ms": {"mean": "x"}}', "puback_ms.mean"),
        (b'{"puback_ms": 5}', "puback_ms"),
    ],
)
def test_telemetry_refuses_numbers_that_cannot_be_stored(payload: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as err:
        Telemetry.parse(payload)
    assert err.value.field == field


def test_status_and_last_will() -> None:
    will = Status.last_will("cam-1")
    assert json.loads(will.to_json()) == {
        "state": "offline", "device": "cam-1", "reason": "connection-lost",
    }  # fmt: skip
    online = Status("online", "cam-1", 5, firmware="fw", mqtt="5", resolution=(224, 224))
    assert Status.parse(online.to_json()).state == "online"
    with pytest.raises(PayloadError) as err:
        Status.parse(b'{"state": "asleep"}')
    assert err.value.field == "state"


def test_reported_carries_the_error_of_a_refused_desired_state() -> None:
    report = Reported("cam-1", 7, Desired(version=4), "'tier' must be…", '{"tier": 0}')
    stored = Reported.parse(report.to_json())
    assert stored["version"] == 4 and stored["error"].startswith("'tier'")
    with pytest.raises(PayloadError) as err:
        Reported.parse(b'{"version": 4, "tier": 99}')
    assert err.value.field == "tier"


def test_a_device_id_never_ends_in_a_newline() -> None:
    from protocol import topics

    assert topics.valid_device_id("cam-007")
    assert not topics.valid_device_id("cam-007\n")
