"""The send policy on its own: the cap window, a frame's share, the deadline fit (no MQTT)."""

import math

import pytest

from devices.send_policy import (
    CAP_WINDOW_S,
    GUARD_MARGIN_S,
    HEARTBEAT_WAIT_S,
    START_CHANNELS,
    UP_DWELL_S,
    UP_HEADROOM,
    SendPolicy,
    cap_share,
    heartbeat_waits,
    trim_channels,
    worth_holding,
)
from protocol.payloads import Desired

SIZES = [300, 560, 820, 1080, 1340, 1600]  # bytes of a packet keeping 1, 2, ... channels


def settings(**kw) -> Desired:
    return Desired().merged({"version": 1, "tier": len(SIZES), "fps": 1.0, **kw})


def trim(packet: bytes, channels: int) -> bytes:
    assert len(packet) >= SIZES[channels - 1]  # only ever trims down
    return bytes(SIZES[channels - 1])


def fit(policy, s, *, elapsed_s=0.0, measured=True, arrival=lambda size: None, start=None):
    k = start or len(SIZES)
    packet, channels, outcome = policy.fit(
        bytes(SIZES[k - 1]),
        k,
        s,
        capture_s=100.0,
        elapsed_s=elapsed_s,
        measured=measured,
        arrival_s=arrival,
        trim=trim,
    )
    assert len(packet) == SIZES[channels - 1]
    return channels, outcome


def test_cap_share_is_the_cap_over_the_frame_rate():
    assert cap_share(settings()) == math.inf
    assert cap_share(settings(max_kbps=8, fps=0)) == math.inf
    assert cap_share(settings(max_kbps=8, fps=2.0)) == 500.0


def test_the_cap_window_forgets_frames_captured_a_window_ago():
    policy = SendPolicy()
    policy.sent(100.0 - CAP_WINDOW_S, 700)  # exactly one window old: out
    policy.sent(99.0, 400)
    assert policy.cap_allows(settings(max_kbps=8), 100.0) == 8000 / 8 * CAP_WINDOW_S - 400
    assert list(policy.sent_window) == [(99.0, 400)]
    assert policy.cap_allows(settings(), 101.5) == math.inf  # no cap; the window still slides
    assert not policy.sent_window


def test_no_cap_no_deadline_sends_the_whole_tier_without_asking_the_link():
    def arrival(size):
        raise AssertionError("no deadline: the estimate is not needed")

    assert fit(SendPolicy(), settings(), arrival=arrival) == (len(SIZES), "sent")


def test_the_cap_trims_to_the_share_and_drops_what_the_window_cannot_hold():
    # 8 kbit/s at 1 frame/s: a 1,000 B share, so 3 channels (820 B) go
    assert fit(SendPolicy(), settings(max_kbps=8)) == (3, "sent")
    policy = SendPolicy()
    policy.sent(99.5, 1800)  # 200 B left in the window: not even one channel
    assert fit(policy, settings(max_kbps=8)) == (1, "rate")
    policy = SendPolicy()
    policy.sent(99.5, 1650)  # 350 B left: one channel may use it although over the share
    assert fit(policy, settings(max_kbps=8, fps=30)) == (1, "sent")


def test_nothing_measured_yet_starts_small():
    channels, outcome = fit(SendPolicy(), settings(deadline_ms=1000), measured=False)
    assert (channels, outcome) == (START_CHANNELS, "sent")


def test_the_deadline_keeps_the_channels_that_arrive_in_time():
    asked = []

    def arrival(size):
        asked.append(size)
        return size / 4000  # a 4 kB/s link, nothing queued

    s = settings(deadline_ms=1000)  # half of it kept as margin
    # 450 ms left: 1,600 B take 0.4 s
    assert fit(SendPolicy(), s, elapsed_s=0.05, arrival=arrival) == (6, "sent")
    # 200 ms left: 820 B take 0.205 s (late), 560 B 0.14 s
    asked.clear()
    assert fit(SendPolicy(), s, elapsed_s=0.3, arrival=arrival) == (2, "sent")
    assert asked == SIZES[1:][::-1]


def test_one_channel_may_use_the_margin_and_is_dropped_beyond_it():
    s = settings(deadline_ms=1000)
    left = 1.0 * (1 - GUARD_MARGIN_S) - 0.2
    in_margin = left + 1.0 * GUARD_MARGIN_S - 0.01
    assert fit(SendPolicy(), s, elapsed_s=0.2, arrival=lambda n: in_margin) == (1, "sent")
    beyond = left + 1.0 * GUARD_MARGIN_S + 0.01
    assert fit(SendPolicy(), s, elapsed_s=0.2, arrival=lambda n: beyond) == (1, "deadline")


def test_with_nothing_unacknowledged_one_late_channel_goes_as_a_probe():
    """One slow PUBACK can leave the estimate below a single channel: without a probe the
    camera would skip every frame and never measure the link again."""
    s, beyond = settings(deadline_ms=1000), 2.0
    kw = dict(capture_s=100.0, elapsed_s=0.2, measured=True, trim=trim)
    kw["arrival_s"] = lambda n: beyond
    _, channels, outcome = SendPolicy().fit(bytes(SIZES[-1]), len(SIZES), s, idle=True, **kw)
    assert (channels, outcome) == (1, "sent")
    _, channels, outcome = SendPolicy().fit(bytes(SIZES[-1]), len(SIZES), s, idle=False, **kw)
    assert (channels, outcome) == (1, "deadline")  # behind other messages: still skipped


def test_over_the_cap_is_a_rate_drop_before_the_deadline_is_asked():
    policy = SendPolicy()
    policy.sent(99.9, 2000)

    def arrival(size):
        raise AssertionError("over the cap: no arrival estimate needed")

    assert fit(policy, settings(max_kbps=8, deadline_ms=1000), arrival=arrival) == (1, "rate")


def test_the_guard_keeps_more_channels_only_after_a_dwell_and_with_headroom():
    """Hysteresis: a steady link holds the channels of the last frame; a frame keeps more
    only ``UP_DWELL_S`` after the last change and arriving ``UP_HEADROOM`` early."""
    s = settings(deadline_ms=1000)  # 450 ms left at 50 ms after capture

    def arrival(size):
        return size / 4000  # every tier arrives in time without hysteresis (1,600 B: 0.4 s)

    policy = SendPolicy()
    policy.sent(99.0, 300, 1)  # the first frame, a probe: no dwell after it
    assert fit(policy, s, elapsed_s=0.05, arrival=arrival) == (4, "sent")  # with headroom
    policy.sent(99.0, 820, 3)  # 3 channels, 1 s before this capture (at 100 s)
    assert fit(policy, s, elapsed_s=0.05, arrival=arrival) == (3, "sent")  # within the dwell
    policy.sent(100.0 - UP_DWELL_S - 0.1, 820, 2)  # changed to 2 before the dwell
    # up with headroom: arrival within 450 ms - 150 ms = 0.3 s: 1,080 B (0.27 s), not 1,340
    assert 1080 / 4000 <= 0.45 - UP_HEADROOM < 1340 / 4000
    assert fit(policy, s, elapsed_s=0.05, arrival=arrival) == (4, "sent")
    policy.sent(99.9, 1600, 6)  # fewer channels at once: 2 arrive, 6 do not
    assert fit(policy, s, elapsed_s=0.3, arrival=arrival) == (2, "sent")


def test_the_guard_hysteresis_needs_a_deadline():
    policy = SendPolicy()
    policy.sent(99.9, 300, 1)
    assert fit(policy, settings(), arrival=lambda n: 0.0) == (len(SIZES), "sent")


def test_trim_channels_keeps_a_valid_lower_tier():
    bitstream = pytest.importorskip("mcucoder.bitstream")
    chunks = tuple(bytes([i]) * (50 + i) for i in range(4))
    packet = bitstream.Packet(1, 0, 0x5354524A, 7, 1764086400123, 224, 224, 2, 0, 0, chunks)
    trimmed = bitstream.parse_packet(trim_channels(packet.to_bytes(), 2))
    assert trimmed.chunks == chunks[:2] and trimmed.seq == 7


def test_a_frame_skipped_for_what_is_ahead_of_it_is_worth_holding_while_it_can_be_in_time():
    s = settings(deadline_ms=1000)
    assert worth_holding(s, elapsed_s=0.2, alone_s=0.7)  # the link free now: 0.9 s, in time
    assert not worth_holding(s, elapsed_s=0.4, alone_s=0.7)  # 1.1 s even alone: skip it
    assert not worth_holding(s, elapsed_s=0.0, alone_s=None)  # nothing measured
    assert not worth_holding(settings(), elapsed_s=0.0, alone_s=0.1)  # no deadline, no guard


def test_a_heartbeat_waits_for_a_gap_between_frames_on_a_guarded_camera():
    s = settings(deadline_ms=1000)
    # its PUBACK 0.6 s away, the next capture in 0.4 s: the frame would queue behind it
    assert heartbeat_waits(s, arrival_s=0.6, until_frame_s=0.4, overdue_s=0.0)
    assert not heartbeat_waits(s, arrival_s=0.3, until_frame_s=0.4, overdue_s=0.0)
    # never longer than HEARTBEAT_WAIT_S; nothing measured or no deadline: no wait
    assert not heartbeat_waits(s, arrival_s=0.6, until_frame_s=0.4, overdue_s=HEARTBEAT_WAIT_S)
    # nor longer than its own period (2 s: the controller wants its telemetry)
    assert heartbeat_waits(s, arrival_s=0.6, until_frame_s=0.4, overdue_s=1.9, period_s=2.0)
    assert not heartbeat_waits(s, arrival_s=0.6, until_frame_s=0.4, overdue_s=2.0, period_s=2.0)
    # a fast link: the heartbeat alone crosses in 20 ms, it delays no frame and goes when due
    assert heartbeat_waits(s, arrival_s=0.6, until_frame_s=0.4, overdue_s=0.0, alone_s=0.3)
    assert not heartbeat_waits(s, arrival_s=0.6, until_frame_s=0.4, overdue_s=0.0, alone_s=0.02)
    assert not heartbeat_waits(s, arrival_s=None, until_frame_s=0.4, overdue_s=0.0)
    assert not heartbeat_waits(settings(), arrival_s=0.6, until_frame_s=0.4, overdue_s=0.0)
