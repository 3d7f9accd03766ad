"""Properties of every JSON payload validator (``protocol.payloads``), over hostile input:
it raises ``PayloadError`` and nothing else, and what it accepts can be stored as it is:
strict JSON (finite numbers), valid UTF-8 text without NUL, typed fields in range."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.payloads import (
    MAX_BACKLOG,
    MAX_COUNTER,
    MAX_FPS,
    MAX_TIER,
    MIN_TIER,
    STATES,
    Desired,
    PayloadError,
    Reported,
    Status,
    Telemetry,
)
from tests.fuzz.strategies import assert_storable, objects, payloads

messages = payloads | objects  # bytes on the wire, or a mapping handed over by Python code


def assert_desired_in_range(d: Desired) -> None:
    assert isinstance(d.version, int) and 0 <= d.version <= MAX_COUNTER
    assert isinstance(d.tier, int) and MIN_TIER <= d.tier <= MAX_TIER
    assert math.isfinite(d.fps) and 0 <= d.fps <= MAX_FPS
    assert d.max_kbps is None or (math.isfinite(d.max_kbps) and d.max_kbps > 0)
    assert d.deadline_ms is None or math.isfinite(d.deadline_ms)
    assert_storable(d.to_dict())


@settings(max_examples=400, deadline=None)
@given(messages)
def test_desired_merged_refuses_with_payload_error_or_gives_a_valid_state(message) -> None:
    try:
        state = Desired(version=3, tier=6).merged(message)
    except PayloadError:
        return
    assert_desired_in_range(state)
    assert Desired.merged(Desired(), state.to_json()) == state  # what a device re-reads


@settings(max_examples=400, deadline=None)
@given(messages)
def test_reported_parse_refuses_with_payload_error_or_gives_a_storable_object(message) -> None:
    try:
        stored = Reported.parse(message)
    except PayloadError:
        return
    assert isinstance(stored["version"], int) and 0 <= stored["version"] <= MAX_COUNTER
    assert_storable(stored)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_telemetry_parse_refuses_with_payload_error_or_gives_storable_values(message) -> None:
    try:
        telemetry, raw = Telemetry.parse(message)
    except PayloadError:
        return
    assert_storable(raw)
    assert 0 <= telemetry.backlog <= MAX_BACKLOG and 0 <= telemetry.max_backlog <= MAX_BACKLOG
    for number in (telemetry.throughput_kbps, telemetry.uptime_s, telemetry.link_kbps or 0.0):
        assert math.isfinite(number) and number >= 0
    for value in (telemetry.puback_ms.mean, telemetry.puback_ms.p95):
        assert value is None or (math.isfinite(value) and value >= 0)
    assert all(0 <= n <= MAX_COUNTER for n in telemetry.counters.values())
    assert isinstance(telemetry.device, str)
    assert_storable(telemetry.device)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_status_parse_refuses_with_payload_error_or_gives_a_known_state(message) -> None:
    try:
        status = Status.parse(message)
    except PayloadError:
        return
    assert status.state in STATES
    assert_storable(status.device)


@given(st.sampled_from([Reported.parse, Status.parse, Desired().merged]))
def test_oversized_and_deep_messages_are_refused(parse) -> None:
    for message in (b"{" + b" " * 20_000 + b"}", b'{"a":' * 200 + b"1" + b"}" * 200):
        try:
            parse(message)
        except PayloadError:
            continue
        raise AssertionError(f"accepted {message[:20]!r}...")
