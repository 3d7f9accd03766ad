"""The device's own estimate of its uplink, from PUBACK timing alone.

Firmware cannot see the radio's rate, but it sees when each publish was handed to the
network stack and when the broker acknowledged it. A frame's *service time* starts when
it was sent or when the frame ahead of it was acknowledged, whichever is later, and ends
at its PUBACK; its size over that time is a capacity sample. Unlike the acknowledged
throughput (which only shows the offered load), this measures what the link could carry,
busy or idle, so the platform's controller can raise a tier without probing.

With it the device can also predict when a frame it is about to send would arrive, and
trim channels (or skip the frame) so that it is not late: the *deadline guard* of
``docs/control.md``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from statistics import harmonic_mean

MIN_SERVICE_S = 0.002  # shorter service times are timer noise, not a rate
MAX_SERVICE_S = 2.0  # longer ones are an outage, not a rate (the stall check covers those)


@dataclass
class UplinkEstimator:
    """Capacity samples (kbit/s) of the last ``window`` acknowledged frames."""

    window: int = 4
    samples: deque[float] = field(default_factory=deque)
    _last_ack: float = 0.0

    def acknowledged(self, sent_at: float, acked_at: float, size: int) -> None:
        """Account for the PUBACK of a ``size``-byte frame sent at ``sent_at``."""
        start = max(sent_at, self._last_ack)
        self._last_ack = max(self._last_ack, acked_at)
        service = acked_at - start
        if MIN_SERVICE_S <= service <= MAX_SERVICE_S:
            self.samples.append(size * 8 / 1000 / service)
            while len(self.samples) > self.window:
                self.samples.popleft()

    def kbps(self) -> float | None:
        """The harmonic mean of the samples, or the latest if lower: a link that fades is
        believed at once, one that recovers over a few frames (late frames cost more than
        a tier lower does)."""
        if not self.samples:
            return None
        return min(harmonic_mean(self.samples), self.samples[-1])

    def arrival_s(
        self, size: int, queued_bytes: int, stalled: tuple[int, float] | None = None
    ) -> float | None:
        """Seconds until a ``size``-byte frame sent now would be acknowledged, behind
        ``queued_bytes`` not yet acknowledged. ``stalled`` is (size, age) of the oldest
        unacknowledged frame: when it has waited longer than the estimate allows, the link
        is slower than the estimate (an outage, a fade) and that age sets the rate instead.
        None while nothing has been measured."""
        kbps = self.kbps()
        if kbps is None:
            return None
        if stalled is not None:
            oldest_size, age = stalled
            if age > 0 and oldest_size * 8 / 1000 / kbps < age:
                kbps = min(kbps, oldest_size * 8 / 1000 / age)
        return (queued_bytes + size) * 8 / 1000 / max(kbps, 1e-6)
