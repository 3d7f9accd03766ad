"""The device's own uplink estimate from PUBACK timing (pure: no broker)."""

from __future__ import annotations

import pytest

from devices.uplink import UplinkEstimator


def test_a_frame_alone_on_the_link_measures_its_own_transfer():
    uplink = UplinkEstimator()
    uplink.acknowledged(sent_at=10.0, acked_at=10.5, size=1000)  # 8 kbit in 0.5 s
    assert uplink.kbps() == pytest.approx(16.0)


def test_a_queued_frame_is_timed_from_the_ack_of_the_one_ahead():
    uplink = UplinkEstimator()
    uplink.acknowledged(sent_at=0.0, acked_at=1.0, size=2000)  # 16 kbit/s
    # sent at 0.1 behind the first: its transfer started only at 1.0
    uplink.acknowledged(sent_at=0.1, acked_at=2.0, size=2000)
    assert list(uplink.samples) == pytest.approx([16.0, 16.0])


def test_a_fading_link_is_believed_at_once_an_outage_is_not_a_rate():
    uplink = UplinkEstimator(window=4)
    for t in range(3):
        uplink.acknowledged(sent_at=t, acked_at=t + 0.25, size=1000)  # 32 kbit/s
    uplink.acknowledged(sent_at=3.0, acked_at=4.0, size=1000)  # 8 kbit/s: the link faded
    assert uplink.kbps() == pytest.approx(8.0)
    uplink.acknowledged(sent_at=5.0, acked_at=15.0, size=1000)  # 10 s: an outage
    assert len(uplink.samples) == 4  # not taken as a rate


def test_arrival_counts_the_queue_and_a_stalled_link():
    uplink = UplinkEstimator()
    assert uplink.arrival_s(1000, 0) is None  # nothing measured: no prediction
    uplink.acknowledged(sent_at=0.0, acked_at=0.5, size=1000)  # 16 kbit/s
    assert uplink.arrival_s(1000, queued_bytes=1000) == pytest.approx(1.0)
    # the frame ahead should have taken 0.5 s but has waited 4 s: the link is slower now
    assert uplink.arrival_s(1000, 1000, stalled=(1000, 4.0)) == pytest.approx(8.0)
    # one still within its expected time changes nothing
    assert uplink.arrival_s(1000, 1000, stalled=(1000, 0.2)) == pytest.approx(1.0)
