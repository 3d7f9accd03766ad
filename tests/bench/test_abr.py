"""The causal reference of ``bench/abr.py``: what a camera that knows its link up to now
could deliver, on hand-checked traces (a fluid FIFO queue, as TCP delivers)."""

from __future__ import annotations

import pytest

from bench.abr import causal_reference
from devices.traces import Trace

SIZES = {1: 500.0, 2: 1000.0, 3: 1500.0}  # bytes at k: 4, 8, 12 kbit


def steps(*rows: tuple[float, float]) -> Trace:
    return Trace("test", tuple(t for t, _ in rows), tuple(k for _, k in rows), 1000.0)


def test_steady_link_gets_the_highest_tier_that_arrives_in_time():
    link = steps((0, 10.0))  # 10 kbit/s: 8 kbit in 0.8 s, 12 kbit would take 1.2 s
    picks = causal_reference(link, [0.0, 1.0, 2.0], SIZES, 1.0)
    assert [k for k, _ in picks] == [2, 2, 2]
    assert [round(d, 2) for _, d in picks] == [0.8, 0.8, 0.8]


def test_safety_plans_more_channels_on_a_share_of_the_rate_one_channel_on_all_of_it():
    link = steps((0, 5.0))  # 4 kbit in 0.8 s at the whole rate; 8 kbit at half: 3.2 s
    assert causal_reference(link, [0.0], SIZES, 1.0, safety=0.5)[0][0] == 1
    fast = steps((0, 20.0))  # half of it, 10 kbit/s: 8 kbit in 0.8 s, 12 kbit in 1.2 s
    assert causal_reference(fast, [0.0], SIZES, 1.0, safety=0.5)[0][0] == 2
    assert causal_reference(fast, [0.0], SIZES, 1.0)[0][0] == 3


def test_a_frame_caught_by_an_outage_is_late_and_delays_the_next():
    # up at 10 kbit/s, out from 0.5 s to 2.0 s: the frame of t=0 (k=2, 8 kbit) has 5 kbit
    # through at 0.5 s and the rest 0.3 s after the link is back (2.3 s: late). The frame
    # of t=1 is taken in the outage: nothing is sent. At t=2.2 the first frame still has
    # 1 kbit to go.
    link = steps((0, 10.0), (0.5, 0.0), (2.0, 10.0))
    picks = causal_reference(link, [0.0, 1.0, 2.2], SIZES, 1.0)
    (k0, d0), (k1, d1), (k2, d2) = picks
    assert k0 == 2 and d0 == pytest.approx(2.3, abs=0.02)
    assert (k1, d1) == (0, None)
    # 1 kbit ahead of it at 10 kbit/s: k=2 (8 kbit) arrives 0.9 s after its capture
    assert k2 == 2 and d2 == pytest.approx(0.9, abs=0.02)


def test_the_cap_share_bounds_the_tier():
    link = steps((0, 100.0))
    assert causal_reference(link, [0.0], SIZES, 1.0, max_bytes=1200)[0][0] == 2
    assert causal_reference(link, [0.0], SIZES, 1.0)[0][0] == 3
