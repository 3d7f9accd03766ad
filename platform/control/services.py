"""The controller's reads and writes: telemetry in, tier decisions out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import close_old_connections
from django.db.models import Avg, Subquery
from django.db.models.functions import Length
from django.utils import timezone

from archive.models import Frame, Layer
from control.models import LinkSample
from control.policies import POLICIES, Decision, Limits, LinkState
from fleet.models import Device
from fleet.services import apply_controller_tier, effective_tier
from mcucoder.bitstream import packet_size
from protocol.payloads import MAX_TIER, Telemetry

log = logging.getLogger(__name__)

SAMPLES = 10
SCENE_FRAMES = 120  # recent frames whose layer sizes stand for the camera's scene


def record_telemetry(device: Device, payload: bytes | dict) -> LinkSample:
    """Keep one telemetry message as a link sample (the device's own measurements).

    Raises ``PayloadError`` (a ``ValueError``) for a message that breaks the contract.
    """
    telemetry, raw = Telemetry.parse(payload)
    return LinkSample.objects.create(
        device=device,
        at=timezone.now(),
        throughput_kbps=telemetry.throughput_kbps,
        link_kbps=telemetry.link_kbps or None,
        backlog=telemetry.backlog,
        max_backlog=telemetry.max_backlog,
        puback_ms=telemetry.puback_ms.mean,
        frames_dropped=telemetry.frames_dropped,
        payload=raw,
    )


def bytes_per_frame(device: Device) -> dict[int, float]:
    """Mean packet bytes at each k over the camera's recent frames (its scene's cost)."""
    recent = Frame.objects.filter(device=device).order_by("-id").values("id")[:SCENE_FRAMES]
    means = dict(
        Layer.objects.filter(frame_id__in=Subquery(recent))
        .values("index")
        .annotate(mean=Avg(Length("data")))
        .values_list("index", "mean")
    )
    chunks: list[int] = []
    sizes = {}
    for k in range(1, MAX_TIER + 1):
        if k - 1 not in means:
            break
        chunks.append(round(float(means[k - 1])))
        sizes[k] = float(packet_size(chunks))
    return sizes


def extrapolated(sizes: dict[int, float]) -> dict[int, float]:
    """Sizes for the tiers above those measured (a camera held low sends no high channels):
    each further channel costs as much as the last measured one. Channels are ordered by
    importance, so later ones are no bigger: the guess errs high, never tempting a policy
    into a tier the link cannot carry."""
    if not sizes:
        return sizes
    top = max(sizes)
    step = sizes[top] - sizes.get(top - 1, packet_size([]))
    return sizes | {k: sizes[top] + step * (k - top) for k in range(top + 1, MAX_TIER + 1)}


def link_state(device: Device, now: datetime | None = None) -> LinkState:
    now = now or timezone.now()
    samples = list(LinkSample.objects.filter(device=device).order_by("-at")[:SAMPLES])[::-1]
    last = samples[-1] if samples else None
    switched = device.desired_at or device.created_at  # the last published change
    return LinkState(
        # capacity where the device measures it, else what it carried (older firmware)
        throughput_kbps=[s.link_kbps or s.throughput_kbps for s in samples],
        backlog=last.backlog if last else 0,
        max_backlog=last.max_backlog if last else 16,
        puback_ms=last.puback_ms if last else None,
        bytes_per_frame=extrapolated(bytes_per_frame(device)),
        fps=device.fps or 1.0,
        tier=effective_tier(device),
        since_switch_s=(now - switched).total_seconds(),
        deadline_ms=device.deadline_ms,
    )


def limits_of(device: Device) -> Limits:
    return Limits(
        min_tier=device.min_tier,
        max_tier=device.max_tier,
        max_kbps=device.max_kbps,
        override=device.tier_override,
    )


def decide_tier(device: Device, policy: Callable[[LinkState, Limits], Decision]) -> Decision:
    """Decide the device's tier and hand it to the fleet, which stores the decision's inputs
    (the camera page shows why) and publishes only when the tier to send changes."""
    decision = policy(link_state(device), limits_of(device))
    if apply_controller_tier(device, decision.tier, decision.as_json()) is not None:
        log.info("%s: tier %d (%s)", device.device_id, decision.tier, decision.reason)
    return decision


def prune_samples(keep: timedelta = timedelta(days=7)) -> int:
    deleted, _ = LinkSample.objects.filter(at__lt=timezone.now() - keep).delete()
    return deleted


def run_controller(
    policy: str | None, interval_s: float, stop: threading.Event, once: bool = False
) -> None:
    """Decide every active camera's tier each ``interval_s`` until ``stop`` is set, with
    ``policy`` for all, or (None) the policy each camera's admin chose.

    One policy instance per camera, since policies may keep state (prediction errors); a
    camera whose policy changes gets a fresh one.
    """
    if policy is not None:
        policy_factory(policy)  # an unknown name fails now, not on every round
    controllers: dict[tuple[int, str], Callable[[LinkState, Limits], Decision]] = {}
    rounds = 0
    while not stop.is_set():
        close_old_connections()
        for device in Device.objects.filter(is_active=True):
            name = policy or device.tier_policy
            try:
                if (device.pk, name) not in controllers:
                    controllers[(device.pk, name)] = policy_factory(name)()
                controller = controllers[(device.pk, name)]
                decide_tier(device, controller)
            except Exception:  # one camera (or a broker hiccup) must not stop the others
                log.exception("controller: deciding %s failed", device.device_id)
        rounds += 1
        if rounds % 720 == 0:
            prune_samples()
        if once:
            return
        stop.wait(interval_s)


def policy_factory(name: str) -> Callable[[], Callable[[LinkState, Limits], Decision]]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(POLICIES)}") from None
