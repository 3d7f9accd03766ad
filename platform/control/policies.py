"""Tier policies: pure functions of what the platform knows about a camera's link.

A policy sees a ``LinkState`` (the device's own measurements from its telemetry and the
archive's bytes per frame at each k for that camera's scene) and the admin's ``Limits``,
and returns a ``Decision`` with its inputs, so an admin can see why a tier was chosen.
Policies are registered by name so operators can choose one per fleet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import harmonic_mean

from protocol.payloads import MAX_TIER

CAP_SHARE = 0.85  # of the cap a tier's mean bitrate may use: frames vary, the camera's own
# cap enforcement (docs/control.md) then trims or drops only now and then
DEFAULT_POLICY = "robust"  # for a camera whose site and admin chose none


@dataclass(frozen=True)
class LinkState:
    """What the platform knows of one camera's uplink, newest sample last."""

    throughput_kbps: Sequence[float]  # the device's link capacity samples (its telemetry)
    backlog: int  # unacknowledged publishes on the device (its send buffer)
    max_backlog: int
    puback_ms: float | None  # mean publish->PUBACK latency
    bytes_per_frame: dict[int, float]  # k -> mean packet bytes at k for this camera's scene
    fps: float
    tier: int  # the tier in force
    since_switch_s: float  # seconds since the tier last changed
    deadline_ms: float | None = None  # the camera's live deadline, if the admin set one
    # k -> bytes of the largest frame tier k sends: with predicted frames the key frame, which
    # a tier change itself brings; None: every frame costs ``bytes_per_frame`` (intra only)
    largest_frame_bytes: dict[int, float] | None = None

    def kbps_at(self, k: int) -> float | None:
        """The bitrate tier k needs at the current frame rate, if measured."""
        size = self.bytes_per_frame.get(k)
        return None if size is None else size * 8 * self.fps / 1000

    def frame_bytes(self, k: int) -> float | None:
        """What one frame at tier k may cost (the deadline's measure): its key frame where
        the camera sends predicted frames, else its mean."""
        largest = (self.largest_frame_bytes or {}).get(k)
        return largest if largest is not None else self.bytes_per_frame.get(k)


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
    """Apply min/max tier and the bitrate cap: the highest tier whose measured bitrate fits
    ``CAP_SHARE`` of the cap."""
    tier = max(limits.min_tier, min(limits.max_tier, tier))
    if limits.max_kbps is None:
        return tier, None
    while (
        tier > limits.min_tier
        and (need := state.kbps_at(tier)) is not None
        and need > limits.max_kbps * CAP_SHARE
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
    inputs = {"tier": state.tier} | inputs  # the tier in force: what the decision changes
    if limits.override is not None:
        tier, _ = _bounded(limits.override, limits, state)
        return Decision(tier, f"manual override {limits.override}", inputs)
    tier, capped = _bounded(wanted, limits, state)
    if tier == wanted:
        return Decision(tier, why, inputs)
    # A limit decided, not the link: say which, and never "stepping up" for a drop.
    move = (
        "stepping down" if tier < state.tier else "holding" if tier == state.tier else "stepping up"
    )
    if capped is not None and tier < min(wanted, limits.max_tier):
        limit = f"the {capped} allows tier {tier} at most"
    elif tier < wanted:
        limit = f"the admin's maximum tier is {tier}"
    else:
        limit = f"the admin's minimum tier is {tier}"
    return Decision(tier, f"{limit}: {move} (the policy wanted tier {wanted})", inputs)


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

    - estimate = harmonic mean of the recent capacity samples / (1 + the largest recent
      relative prediction error), as robustMPC discounts a noisy link
    - target = the highest k whose bitrate (this scene, this frame rate, the mean frame)
      uses at most ``utilisation`` of the estimate, and whose largest frame (a key frame,
      with predicted frames) crosses the link in at most ``frame_share`` of the deadline
      (with the PUBACK time that transmission does not explain: round trip, broker), so
      queues drain and single frames are not late
    - down at once: to the target, and further while the send buffer fills or PUBACKs
      approach the deadline (frames are already late there)
    - up only after ``dwell_s`` since the last switch and only to a tier that fits with
      ``headroom`` to spare (hysteresis: a tier is not left for one that barely fits)
    - a switch costs ``switch_cost`` in the objective (log of the tier's bitrate, a quality
      proxy with diminishing returns), as robustMPC's smoothness term does: a tier is left
      for a higher one only if that carries at least e^cost more; a guarded camera keeps its
      tier while it needs at most ``hold_slack`` times its share of the estimate (its own
      guard trims the frames that would be late meanwhile)

    A camera with a live deadline guards it itself: it trims each frame that its own,
    fresher estimate says would be late. For such a camera the tier is the ceiling it trims
    from, so the policy takes the plain estimate and ``guarded_share`` of the deadline: a
    ceiling set too low would cost quality that no guard gives back.
    """

    dwell_s: float = 6.0
    utilisation: float = 0.8
    headroom: float = 1.15
    frame_share: float = 0.5
    guarded_share: float = 0.7
    switch_cost: float = 0.1
    hold_slack: float = 1.15
    deadline_ms: float = 1000.0  # when the camera has none: the live-view freshness aimed at
    window: int = 3
    errors: list[float] = field(default_factory=list)
    last_estimate: float | None = None

    def _estimate(self, samples: list[float], guarded: bool) -> float:
        if self.last_estimate:
            error = abs(samples[-1] - self.last_estimate) / samples[-1]
            self.errors = [*self.errors[-self.window + 1 :], error]
        self.last_estimate = harmonic_mean(samples)
        if guarded:
            return self.last_estimate
        return self.last_estimate / (1 + max(self.errors, default=0.0))

    def __call__(self, state: LinkState, limits: Limits) -> Decision:
        samples = [s for s in state.throughput_kbps[-self.window :] if s > 0]
        fill = state.backlog / max(1, state.max_backlog)
        inputs: dict = {"buffer_fill": round(fill, 3), "tier": state.tier, "samples": samples}
        if not samples:
            return _decide(state, limits, state.tier, "no link measurement yet: holding", inputs)
        guarded = state.deadline_ms is not None
        estimate = self._estimate(samples, guarded)
        deadline_s = (state.deadline_ms or self.deadline_ms) / 1000
        share = self.guarded_share if guarded else self.frame_share
        # PUBACK time not explained by the frame's transmission: round trip, broker, radio
        now_size = state.bytes_per_frame.get(state.tier)
        base_s = 0.0
        if state.puback_ms is not None and now_size is not None:
            base_s = max(0.0, state.puback_ms / 1000 - now_size * 8 / 1000 / estimate)

        def fits(k: int, margin: float = 1.0) -> bool:
            # the bitrate by the mean frame, the deadline by the largest (a key frame)
            need, size = state.kbps_at(k), state.frame_bytes(k)
            return (
                need is not None
                and size is not None
                and need * margin <= self.utilisation * estimate
                and base_s + size * 8 / 1000 / estimate <= share * deadline_s
            )

        target = max((k for k in range(1, MAX_TIER + 1) if fits(k)), default=1)
        inputs |= {
            "estimate_kbps": round(estimate, 2),
            "base_latency_ms": round(base_s * 1000),
            "target": target,
        }
        need_now = state.kbps_at(state.tier)
        inputs["need_kbps"] = round(need_now, 2) if need_now else None

        def worth(k: int) -> float:
            """The objective: log bitrate (quality with diminishing returns), less the
            switch cost for any tier but the one in force."""
            return math.log(state.kbps_at(k) or 1e-9) - (self.switch_cost if k != state.tier else 0)

        of_estimate = f"{self.utilisation * 100:.0f} % of the estimate"
        if fill >= 0.5:
            wanted = max(1, min(target, state.tier - max(1, round(fill * 4))))
            why = "send buffer filling: stepping down"
        elif state.puback_ms is not None and state.puback_ms > 0.6 * deadline_s * 1000:
            wanted = max(1, min(target, state.tier - 1))
            why = (
                f"PUBACK {state.puback_ms:.0f} ms near the {deadline_s * 1000:.0f} ms deadline:"
                " stepping down"
            )
        elif target < state.tier and guarded and fits(state.tier, 1 / self.hold_slack):
            wanted = state.tier
            why = f"over {of_estimate}, within the switch cost (the camera trims): holding"
        elif target < state.tier:
            wanted, why = target, f"over {of_estimate}: stepping down"
        elif target > state.tier and state.since_switch_s < self.dwell_s:
            wanted = state.tier
            why = f"link carries more, last switch {state.since_switch_s:.0f} s ago: holding"
        elif target > state.tier:
            roomy = [k for k in range(state.tier + 1, target + 1) if fits(k, self.headroom)]
            best = max(roomy, default=state.tier)
            if best == state.tier:
                wanted, why = state.tier, "a higher tier would not fit with room to spare: holding"
            elif worth(best) <= worth(state.tier):
                wanted, why = (
                    state.tier,
                    "a higher tier would gain too little for a switch: holding",
                )
            else:
                wanted, why = best, "link carries more: stepping up"
        else:
            wanted, why = state.tier, "holding"
        return _decide(state, limits, wanted, why, inputs)


POLICIES: dict[str, Callable[[], Callable[[LinkState, Limits], Decision]]] = {
    "robust": RobustController,
    "throughput": lambda: throughput_rule,
    "buffer": lambda: buffer_rule,
    "fixed-12": lambda: fixed(12),
    "fixed-6": lambda: fixed(6),
}


def plain_words(decision: Mapping) -> str:
    """A stored decision (``Decision.as_json``) as a sentence for the camera page, e.g.
    "Link estimate 84 kbit/s; tier 7 needs 61 kbit/s (73 %): holding"."""
    inputs = decision.get("inputs") or {}
    estimate, need, tier = inputs.get("estimate_kbps"), inputs.get("need_kbps"), inputs.get("tier")
    facts = []
    if estimate:
        facts.append(f"Link estimate {estimate:.0f} kbit/s")
    if need and tier:
        use = f" ({need / estimate * 100:.0f} %)" if estimate else ""
        facts.append(f"tier {tier} needs {need:.0f} kbit/s{use}")
    fill = inputs.get("buffer_fill")
    if fill:
        facts.append(f"send buffer {fill * 100:.0f} % full")
    words = str(decision.get("reason") or "no reason recorded")
    chosen = decision.get("tier")
    if tier and chosen and chosen != tier:
        words += f" (tier {tier} → {chosen})"
    sentence = f"{'; '.join(facts)}: {words}" if facts else words
    return sentence[:1].upper() + sentence[1:]
