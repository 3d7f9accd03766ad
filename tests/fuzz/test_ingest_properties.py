"""Properties of ingest over hostile input: ``parse_frame`` turns any bytes into a bounded
packet or ``Rejected``, nothing else; and no message, on any topic, stops the next frame
from being archived (``handle_batch`` against the real PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.models import Frame
from fleet.services import provision_device
from ingest.services import MAX_CAPTURE_TIME_MS, Rejected, handle_batch, parse_frame
from mcucoder import registry
from mcucoder.bitstream import MAX_CHANNELS, build_packet
from protocol import topics
from protocol.payloads import MAX_TIER
from tests.fuzz.strategies import payloads
from tests.support.packets import fake_packet

MODEL_ID = registry.default_model_id()

# Well-formed packets (valid CRC) with every header field anywhere in its range.
packets = st.builds(
    lambda width, height, seq, t, n, size, model: build_packet(
        model_id=model, width=width, height=height, seq=seq, capture_time_ms=t,
        chunks=[b"\x5a" * size] * n,
    ),
    st.integers(1, 0xFFFF), st.integers(1, 0xFFFF), st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1) | st.sampled_from([0, MAX_CAPTURE_TIME_MS, MAX_CAPTURE_TIME_MS + 1]),
    st.integers(1, MAX_CHANNELS), st.integers(0, 40),
    st.sampled_from([MODEL_ID, MODEL_ID, 0xDEADBEEF]),
)  # fmt: skip


def mutated(data: bytes, position: int, byte: int) -> bytes:
    i = position % (len(data) + 1)
    return data[:i] + bytes([byte]) + data[i + 1 :]


frame_bytes = st.one_of(
    st.binary(max_size=200),
    packets,
    st.builds(mutated, packets, st.integers(0, 10_000), st.integers(0, 255)),
    st.builds(lambda p, cut: p[:cut], packets, st.integers(0, 100)),
)


@settings(max_examples=600, deadline=None)
@given(frame_bytes)
def test_parse_frame_gives_a_bounded_packet_or_rejected(data: bytes) -> None:
    try:
        packet = parse_frame(data)
    except Rejected as exc:
        assert exc.reason and exc.detail
        return
    assert packet.model_id in registry.known_model_ids()
    assert 0 <= packet.capture_time_ms <= MAX_CAPTURE_TIME_MS < 2**63
    assert packet.width * packet.height <= django_settings.STRATA_MAX_FRAME_PIXELS
    assert 1 <= packet.n_channels <= MAX_TIER
    assert 0 <= packet.seq < 2**32


@pytest.mark.django_db
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.tuples(st.sampled_from(list(topics.Kind)), payloads | frame_bytes), max_size=4))
def test_no_message_stops_the_next_frame(messages) -> None:
    device = provision_device(f"fuzz-{uuid.uuid4().hex[:10]}")
    good = fake_packet(seq=2**32 - 1)
    batch = [(topics.topic(device.device_id, kind), payload) for kind, payload in messages]
    outcome = handle_batch([*batch, (topics.topic(device.device_id, topics.Kind.FRAME), good)])
    assert Frame.objects.filter(device=device, seq=2**32 - 1).exists()
    assert any(f.seq == 2**32 - 1 for f in outcome.frames)
