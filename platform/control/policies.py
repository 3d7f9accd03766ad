"""Tier policies: pure functions of what the platform knows about a camera's link.

A policy sees a ``LinkState`` (the device's own measurements from its telemetry and the
archive's bytes per frame at each k for that camera's scene) and the admin's ``Limits``,
and returns a ``Decision`` with its inputs, so an admin can see why a tier was chosen.
Policies are registered by name so operators can choose one per fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import harmonic_mean

MAX_TIER = 12


@dataclass(frozen=True)
class LinkState:
    """What the platform knows of one camera's uplink, newest sample last."""

    throughput_kbps: Sequence[float]  # acknowledged throughput samples the device reported
    backlog: int  # unacknowledged publishes on the device (its send buffer)
    max_backlog: int
    puback_ms: float | None  # mean publish->PUBACK latency
    bytes_per_frame: dict[int, float]  # k -> mean packet bytes at k for this camera's scene
    fps: float
    tier: int  # the tier in force
    since_switch_s: float  # seconds since the tier last changed

    def kbps_at(self, k: int) -> float | None:
        """The bitrate tier k needs at the current frame rate, if measured."""
        size = self.bytes_per_frame.get(k)
        return None if size is None else size * 8 * self.fps / 1000


@dataclass(frozen=True)
class Limits:
    """The admin's hard limits."""

    min_tier: int = 1
    max_tier: int = MAX_TIER
    max_kbps: float | None = None
    override: int | None = None


@dataclass(frozen=True)
class Decision:
    tier: int
    reason: str
    inputs: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return asdict(self)


def _bounded(tier: int, limits: Limits, state: LinkState) -> tuple[int, str | None]:
    """Apply min/max tier and the bitrate cap: the highest tier whose measured bitrate fits."""
    tier = max(limits.min_tier, min(limits.max_tier, tier))
    if limits.max_kbps is None:
        return tier, None
    while (
        tier > limits.min_tier
        and (need := state.kbps_at(tier)) is not None
        and need > limits.max_kbps
    ):
        tier -= 1
    return tier, f"cap {limits.max_kbps:g} kbit/s"


def _highest_fitting(state: LinkState, budget_kbps: float, floor: int = 1) -> int:
    """The highest k whose measured bitrate fits the budget (k unmeasured: not chosen)."""
    best = floor
    for k in range(floor, MAX_TIER + 1):
        need = state.kbps_at(k)
        if need is not None and need <= budget_kbps:
            best = k
    return best


def _decide(state: LinkState, limits: Limits, wanted: int, why: str, inputs: dict) -> Decision:
    if limits.override is not None:
        tier, _ = _bounded(limits.override, limits, state)
        return Decision(tier, f"manual override {limits.override}", inputs)
    tier, capped = _bounded(wanted, limits, state)
    reason = why if tier == wanted or capped is None else f"{why}; limited by {capped}"
    return Decision(tier, reason, inputs)


def fixed(k: int) -> Callable[[LinkState, Limits], Decision]:
    def decide(state: LinkState, limits: Limits) -> Decision:
        return _decide(state, limits, k, f"fixed k={k}", {})

    return decide


def throughput_rule(state: LinkState, limits: Limits, safety: float = 0.9) -> Decision:
    """dash.js-style: the highest tier under the harmonic mean of recent throughput."""
    samples = [s for s in state.throughput_kbps[-5:] if s > 0]
    if not samples:
        return _decide(state, limits, state.tier, "no throughput yet: keep", {})
    estimate = harmonic_mean(samples) * safety
    wanted = _highest_fitting(state, estimate)
    return _decide(
        state, limits, wanted, f"harmonic mean {estimate:.1f} kbit/s", {"estimate_kbps": estimate}
    )


def buffer_rule(
    state: LinkState, limits: Limits, reservoir: float = 0.2, cushion: float = 0.7
) -> Decision:
    """BBA-style: the fuller the device's send buffer, the lower the tier (linear map)."""
    fill = state.backlog / max(1, state.max_backlog)
    if fill <= reservoir:
        wanted = MAX_TIER
    elif fill >= cushion:
        wanted = 1
    else:
        wanted = round(MAX_TIER - (fill - reservoir) / (cushion - reservoir) * (MAX_TIER - 1))
    return _decide(state, limits, wanted, f"send buffer {fill:.0%} full", {"buffer_fill": fill})


@dataclass
class RobustController:
    """Strata's policy: robustMPC's throughput estimate, BOLA/BBA's buffer signal, the
    camera's own bytes per k, hysteresis and a minimum dwell time.

    - estimate = harmonic mean of recent samples / (1 + max recent relative prediction error)
    - PUBACK latency near the frame deadline shrinks frames in proportion at once
    - a filling send buffer steps down at once (it means frames will be late); a queue
      with a tier that needs more than the estimate goes to the highest tier that fits
    - an empty buffer with fast PUBACKs probes one tier up after ``dwell_s`` (throughput
      samples only show what was sent, so an underused link must be probed)
    - up-switches need ``headroom`` spare capacity and ``dwell_s`` since the last switch
    """

    dwell_s: float = 10.0
    headroom: float = 1.2
    deadline_ms: float = 1000.0  # a frame later than this from capture is late
    window: int = 5
    errors: list[float] = field(default_factory=list)
    last_estimate: float | None = None

    def __call__(self, state: LinkState, limits: Limits) -> Decision:
        samples = [s for s in state.throughput_kbps[-self.window :] if s > 0]
        fill = state.backlog / max(1, state.max_backlog)
        inputs: dict = {"buffer_fill": round(fill, 3), "tier": state.tier, "samples": samples}
        if samples and self.last_estimate:
            self.errors = [
                *self.errors[-self.window + 1 :],
                abs(samples[-1] - self.last_estimate) / samples[-1],
            ]
        estimate = harmonic_mean(samples) / (1 + max(self.errors, default=0)) if samples else None
        self.last_estimate = harmonic_mean(samples) if samples else None
        inputs["estimate_kbps"] = round(estimate, 2) if estimate else None
        need_now = state.kbps_at(state.tier)
        inputs["need_kbps"] = round(need_now, 2) if need_now else None

        if fill >= 0.5:
            wanted, why = (
                max(1, state.tier - max(1, round(fill * 4))),
                "send buffer filling: step down",
            )
        elif fill > 0 and estimate is not None and need_now is not None and need_now > estimate:
            # Samples only show what was sent: with an empty buffer the link kept up, so
            # only a queue proves that the tier needs more than the link gives.
            wanted, why = _highest_fitting(state, estimate), "tier needs more than the link gives"
        elif (
            state.puback_ms is not None
            and state.puback_ms > 0.6 * self.deadline_ms
            and (size := state.bytes_per_frame.get(state.tier))
        ):
            # Frames take too long to get through: shrink them in proportion.
            target = size * 0.4 * self.deadline_ms / state.puback_ms
            fitting = [k for k, b in state.bytes_per_frame.items() if b <= target]
            wanted = max(1, min(state.tier - 1, max(fitting, default=1)))
            why = f"PUBACK {state.puback_ms:.0f} ms near the {self.deadline_ms:.0f} ms deadline"
        elif state.since_switch_s < self.dwell_s:
            wanted, why = state.tier, "dwell: hold"
        elif (
            fill == 0
            and state.tier < MAX_TIER
            and (
                estimate is None
                or (nxt := state.kbps_at(state.tier + 1)) is None
                or nxt * self.headroom <= estimate
                or (state.puback_ms is not None and state.puback_ms < 0.2 * self.deadline_ms)
            )
            and (state.puback_ms is None or state.puback_ms < 0.3 * self.deadline_ms)
        ):
            wanted, why = state.tier + 1, "link idle: probe one tier up"
        else:
            wanted, why = state.tier, "steady"
        return _decide(state, limits, wanted, why, inputs)


POLICIES: dict[str, Callable[[], Callable[[LinkState, Limits], Decision]]] = {
    "robust": RobustController,
    "throughput": lambda: throughput_rule,
    "buffer": lambda: buffer_rule,
    "fixed-12": lambda: fixed(12),
    "fixed-6": lambda: fixed(6),
}
