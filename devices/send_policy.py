"""How many channels of a frame a camera sends, if any: its local fallback.

A device must not queue without limit when the link cannot carry its tier, so it decides
per frame, before publishing: the ``max_kbps`` cap (over every ``CAP_WINDOW_S`` window of
capture times, with each frame held to its fair share) and, with ``deadline_ms`` set, the
*deadline guard* (``docs/control.md``): keep the most channels that still arrive in time
by the device's own PUBACK-based estimate, or skip the frame; with hysteresis (more channels
than the last frame only after a dwell and with headroom), so a steady link holds its tier. These are pure rules on
numbers handed in (the clock, the estimate, the settings), kept apart from the MQTT
session so that they can be tested, and compared with the firmware's, without a broker.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from protocol.payloads import CAP_WINDOW_S, Desired

GUARD_MARGIN_S = 0.5  # of the deadline, kept for the broker, ingest and a fading link
START_CHANNELS = 1  # deadline guard, nothing measured yet: a small first frame measures the link
# hysteresis of the deadline guard: a frame may keep more channels than the last one sent
# only UP_DWELL_S (capture time) after the last change, and only if it arrives UP_HEADROOM of
# the deadline earlier than needed; fewer channels are taken at once (frames stay on time)
UP_DWELL_S = 3.0
UP_HEADROOM = 0.15


HOLD_POLL_S = 0.05  # how often a held frame or heartbeat asks the link again
HEARTBEAT_WAIT_S = 10.0  # the longest a heartbeat waits for a gap between frames
HEARTBEAT_SHARE = 0.1  # of the deadline: a heartbeat that crosses the link faster never waits


def worth_holding(settings: Desired, elapsed_s: float, alone_s: float | None) -> bool:
    """Whether a frame the guard skips for what is ahead of it (``deadline``) should wait on
    the camera instead: if it would still arrive in time were the link free now (``alone_s``:
    its own transfer at the estimate). After an outage the camera learns that the link is
    back only from the PUBACK of the frame the outage caught; a frame captured just before
    that PUBACK is skipped by the guard although the link could carry it. Held, it goes the
    moment it is predicted on time, or is dropped once it cannot be."""
    deadline = settings.deadline_ms
    return deadline is not None and alone_s is not None and alone_s <= deadline / 1000 - elapsed_s


def heartbeat_waits(
    settings: Desired,
    arrival_s: float | None,
    until_frame_s: float,
    overdue_s: float,
    period_s: float = HEARTBEAT_WAIT_S,
    alone_s: float | None = None,
) -> bool:
    """Whether a heartbeat that is due should wait: on a camera with a deadline, on a link
    slow enough that the heartbeat alone (``alone_s``) takes ``HEARTBEAT_SHARE`` of the
    deadline, while it would still be crossing the link when the next frame is captured
    (``arrival_s``: its PUBACK, behind what is unacknowledged; ``until_frame_s``: to the
    next capture). On NB-IoT a heartbeat is as big as a channel or two, and a frame queued
    behind it is late; it goes right after a frame instead, and never waits longer than
    its own period (``period_s``, at most ``HEARTBEAT_WAIT_S``): the controller lives on
    heartbeats. On a fast link a heartbeat delays nobody and goes when due."""
    deadline = settings.deadline_ms
    if deadline is None or arrival_s is None or overdue_s >= min(period_s, HEARTBEAT_WAIT_S):
        return False
    if alone_s is not None and alone_s < HEARTBEAT_SHARE * deadline / 1000:
        return False
    return arrival_s > until_frame_s


def trim_channels(packet: bytes, channels: int) -> bytes:
    """Keep the first ``channels`` latent channels of a packet (a valid lower tier)."""
    from mcucoder.bitstream import parse_packet

    return parse_packet(packet).with_channels(channels).to_bytes()


def cap_share(settings: Desired) -> float:
    """A frame's fair share of the cap in bytes (cap / fps): a frame over it loses channels
    even while the window has room, so one big frame does not leave the next ones nothing;
    a single channel may still use what the window has left."""
    if settings.max_kbps is None or settings.fps <= 0:
        return math.inf
    return settings.max_kbps * 1000 / 8 / settings.fps


class SendPolicy:
    """The cap window (what was sent, by capture time), the channels of the last frame sent
    (the guard's hysteresis) and the per-frame decision."""

    def __init__(self) -> None:
        self.sent_window: deque[tuple[float, int]] = deque()  # (capture s, bytes)
        self.kept = 0  # channels of the last frame sent (0: none yet)
        self.kept_since_s = -math.inf  # capture time at which ``kept`` last changed

    def sent(self, capture_s: float, size: int, channels: int = 0) -> None:
        """Count a frame that was published against the cap (and, with ``channels``,
        remember them: the next frame keeps more only after the guard's dwell)."""
        self.sent_window.append((capture_s, size))
        if channels and channels != self.kept:
            if self.kept:  # the first frame is a probe (``START_CHANNELS``): no dwell after it
                self.kept_since_s = capture_s
            self.kept = channels

    def cap_allows(self, settings: Desired, capture_s: float) -> float:
        """Bytes the ``max_kbps`` cap still allows for a frame captured at ``capture_s``
        (the packet's capture time, s): the cap holds over every ``CAP_WINDOW_S`` window of
        capture times, not just on average, as anyone can check from the packets."""
        window = self.sent_window
        while window and window[0][0] <= capture_s - CAP_WINDOW_S:
            window.popleft()
        if settings.max_kbps is None:
            return math.inf
        return settings.max_kbps * 1000 / 8 * CAP_WINDOW_S - sum(n for _, n in window)

    def fit(
        self,
        packet: bytes,
        channels: int,
        settings: Desired,
        *,
        capture_s: float,
        elapsed_s: float,
        measured: bool,
        arrival_s: Callable[[int], float | None],
        trim: Callable[[bytes, int], bytes] = trim_channels,
        idle: bool = False,
    ) -> tuple[bytes, int, str]:
        """Trim ``packet`` (``channels`` channels) to the most channels that the cap and the
        deadline allow. ``capture_s``: the packet's own capture time; ``elapsed_s``: since
        the capture; ``measured``: whether the uplink has an estimate yet;
        ``arrival_s(size)``: when a frame that size sent now would be acknowledged (None
        while nothing is measured). Returns (packet, channels, ``sent`` | ``rate`` |
        ``deadline``), the latter two meaning: skip the frame. ``idle``: nothing is
        unacknowledged, so one channel predicted late still goes, as a probe: it delays no
        other message, and its PUBACK renews an estimate that one slow acknowledgement left
        too low (without it, a camera would skip every frame and never measure again)."""
        allowed, share = self.cap_allows(settings, capture_s), cap_share(settings)
        deadline = settings.deadline_ms
        left = None
        if deadline is not None:
            left = deadline / 1000 * (1 - GUARD_MARGIN_S) - elapsed_s
            if not measured and channels > START_CHANNELS:
                channels = START_CHANNELS  # nothing measured yet: start small, like TCP
                packet = trim(packet, channels)
        while True:
            over_cap = len(packet) > allowed or (channels > 1 and len(packet) > share)
            arrival = None if left is None or over_cap else arrival_s(len(packet))
            # the margin guards the estimate; one channel goes if it can still be in time
            margin = deadline / 1000 * GUARD_MARGIN_S if deadline and channels == 1 else 0.0
            if deadline and 0 < self.kept < channels:  # more than the last frame: calm down
                if capture_s - self.kept_since_s < UP_DWELL_S:
                    margin = -math.inf
                else:
                    margin -= deadline / 1000 * UP_HEADROOM
            late = arrival is not None and left is not None and arrival > left + margin
            if not over_cap and not late:
                return packet, channels, "sent"
            if channels == 1:
                if late and idle:
                    return packet, channels, "sent"  # a probe (see ``idle``)
                return packet, channels, "rate" if over_cap else "deadline"
            # the next lower tier that could fit, by the size of the channels kept
            channels -= 1
            packet = trim(packet, channels)
