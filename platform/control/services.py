"""The controller's reads and writes: telemetry in, tier decisions out."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections
from django.db.models import Avg, Exists, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Length, RowNumber
from django.utils import timezone

from archive.models import Frame, Layer
from control.leader import leader_lock
from control.models import LinkSample
from control.policies import POLICIES, Decision, Limits, LinkState
from fleet.models import Device
from fleet.services import (
    ControllerDecision,
    apply_controller_tier,
    apply_controller_tiers,
    effective_tier,
    publisher,
    repair_desired,
)
from mcucoder.bitstream import packet_size
from protocol.payloads import MAX_TIER, Telemetry

log = logging.getLogger(__name__)

SAMPLES = 10
SCENE_FRAMES = 120
REPAIR_EVERY = 60  # rounds between checks of the retained desired states  # recent frames whose layer sizes stand for the camera's scene


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
    return scene_sizes([device.pk]).get(device.pk, {})


def scene_sizes(device_pks: Sequence[int]) -> dict[int, dict[int, float]]:
    """``bytes_per_frame`` for many cameras in one query: each camera's ``SCENE_FRAMES``
    most recent frames, mean layer bytes per index, as packet sizes at each k."""
    if not device_pks:
        return {}
    recent = (
        Frame.objects.filter(device_id__in=device_pks)
        .annotate(rank=Window(RowNumber(), partition_by=[F("device_id")], order_by=F("id").desc()))
        .filter(rank__lte=SCENE_FRAMES)
        .values("id")
    )
    rows = (
        Layer.objects.filter(frame_id__in=Subquery(recent))
        .values("frame__device_id", "index")
        .annotate(mean=Avg(Length("data")))
        .values_list("frame__device_id", "index", "mean")
    )
    means: dict[int, dict[int, float]] = defaultdict(dict)
    for device_pk, index, mean in rows:
        means[device_pk][index] = float(mean)
    out: dict[int, dict[int, float]] = {}
    for device_pk, by_index in means.items():
        chunks: list[int] = []
        sizes: dict[int, float] = {}
        for k in range(1, MAX_TIER + 1):
            if k - 1 not in by_index:
                break
            chunks.append(round(by_index[k - 1]))
            sizes[k] = float(packet_size(chunks))
        out[device_pk] = sizes
    return out


def recent_samples(device_pks: Sequence[int]) -> dict[int, list[LinkSample]]:
    """Each camera's ``SAMPLES`` newest link samples, oldest first, in one query."""
    if not device_pks:
        return {}
    rows = (
        LinkSample.objects.filter(device_id__in=device_pks)
        .annotate(rank=Window(RowNumber(), partition_by=[F("device_id")], order_by=F("at").desc()))
        .filter(rank__lte=SAMPLES)
        .defer("payload")
        .order_by("device_id", "at")
    )
    out: dict[int, list[LinkSample]] = defaultdict(list)
    for sample in rows:
        out[sample.device_id].append(sample)
    return out


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


def link_state(
    device: Device,
    now: datetime | None = None,
    samples: list[LinkSample] | None = None,
    sizes: dict[int, float] | None = None,
) -> LinkState:
    """What the policy sees of one camera; ``samples`` and ``sizes`` when read in bulk."""
    now = now or timezone.now()
    if samples is None:
        samples = recent_samples([device.pk]).get(device.pk, [])
    if sizes is None:
        sizes = bytes_per_frame(device)
    last = samples[-1] if samples else None
    switched = device.desired_at or device.created_at  # the last published change
    return LinkState(
        # capacity where the device measures it, else what it carried (older firmware)
        throughput_kbps=[s.link_kbps or s.throughput_kbps for s in samples],
        backlog=last.backlog if last else 0,
        max_backlog=last.max_backlog if last else 16,
        puback_ms=last.puback_ms if last else None,
        bytes_per_frame=extrapolated(sizes),
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


def decide_tier(
    device: Device,
    policy: Callable[[LinkState, Limits], Decision],
    state: LinkState | None = None,
) -> Decision:
    """Decide the device's tier and hand it to the fleet, which stores the decision's inputs
    (the camera page shows why) and publishes only when the tier to send changes."""
    decision = policy(state or link_state(device), limits_of(device))
    if apply_controller_tier(device, decision.tier, decision.as_json()) is not None:
        log.info("%s: tier %d (%s)", device.device_id, decision.tier, decision.reason)
    return decision


def cameras_to_decide() -> QuerySet[Device]:
    """Active cameras with something new since their last decision: telemetry, or a
    change of their controls (cap, limits, policy, deadline: each publishes a new desired
    state). A camera that sent nothing costs nothing."""
    newer_sample = LinkSample.objects.filter(
        device=OuterRef("pk"), at__gt=OuterRef("tier_decided_at")
    )
    any_sample = LinkSample.objects.filter(device=OuterRef("pk"))
    return Device.objects.filter(is_active=True).filter(
        Q(tier_decided_at__isnull=True, desired_version=0)
        | Q(tier_decided_at__isnull=True) & Exists(any_sample)
        | Exists(newer_sample)
        | Q(desired_at__gt=F("tier_decided_at"))
    )


@dataclass
class Round:
    """What one controller round did (for logs and the benchmark)."""

    decided: int = 0
    published: int = 0
    failed: int = 0


def control_round(
    policy: str | None,
    controllers: dict[tuple[int, str], Callable[[LinkState, Limits], Decision]],
    now: datetime | None = None,
    everyone: bool = False,
) -> Round:
    """Decide the tier of every camera that has something new (``everyone``: every active
    camera, as a controller's first round does), from link samples and scene sizes read for
    all of them at once. ``controllers`` keeps one policy instance per camera across
    rounds (policies may keep state); a camera whose policy changes gets a fresh one."""
    now = now or timezone.now()
    devices = list(Device.objects.filter(is_active=True) if everyone else cameras_to_decide())
    pks = [d.pk for d in devices]
    samples, sizes = recent_samples(pks), scene_sizes(pks)
    done = Round()
    with _one_connection(bool(devices)):
        _decide_all(devices, policy, controllers, samples, sizes, now, done)
    return done


@contextlib.contextmanager
def _one_connection(wanted: bool) -> Iterator[None]:
    """The round's publishes share one broker connection; with the broker away the
    decisions are still stored, and each publish fails (and is retried) on its own."""
    held = publisher.held()
    try:
        if wanted:
            held.__enter__()
    except (ConnectionError, OSError) as exc:
        log.warning("controller: broker unavailable (%s); decisions are stored", exc)
        wanted = False
    try:
        yield
    finally:
        if wanted:
            held.__exit__(None, None, None)


def _decide_all(
    devices: list[Device],
    policy: str | None,
    controllers: dict[tuple[int, str], Callable[[LinkState, Limits], Decision]],
    samples: dict[int, list[LinkSample]],
    sizes: dict[int, dict[int, float]],
    now: datetime,
    done: Round,
) -> None:
    """Ask each camera's policy, then store and publish all the decisions together."""
    decisions: list[tuple[ControllerDecision, Decision]] = []
    for device in devices:
        name = policy or device.tier_policy
        try:
            if (device.pk, name) not in controllers:
                controllers[(device.pk, name)] = policy_factory(name)()
            state = link_state(device, now, samples.get(device.pk, []), sizes.get(device.pk, {}))
            decision = controllers[(device.pk, name)](state, limits_of(device))
            decisions.append(
                (ControllerDecision(device, decision.tier, decision.as_json()), decision)
            )
        except Exception:  # one camera (a bad policy name, say) must not stop the others
            done.failed += 1
            log.exception("controller: deciding %s failed", device.device_id)
    published = apply_controller_tiers([d for d, _ in decisions], now)
    done.decided = len(decisions)
    why = {d.device.pk: decision for d, decision in decisions}
    for result in published:
        if result.error is not None:
            done.failed += 1
            continue
        done.published += 1
        decision = why[result.device.pk]
        log.info("%s: tier %d (%s)", result.device.device_id, decision.tier, decision.reason)


def prune_samples(keep: timedelta = timedelta(days=7)) -> int:
    deleted, _ = LinkSample.objects.filter(at__lt=timezone.now() - keep).delete()
    return deleted


def run_controller(
    policy: str | None, interval_s: float, stop: threading.Event, once: bool = False
) -> None:
    """Run ``control_round`` each ``interval_s`` until ``stop`` is set, with ``policy`` for
    all cameras, or (None) the policy each camera's admin chose.

    Several controller processes may run: only the one holding the leader lock decides;
    the others wait and take over when it stops (``leader_lock``). The first round decides
    every active camera; later rounds only those with something new (``cameras_to_decide``).
    """
    if policy is not None:
        policy_factory(policy)  # an unknown name fails now, not on every round
    controllers: dict[tuple[int, str], Callable[[LinkState, Limits], Decision]] = {}
    rounds = 0
    with leader_lock() as lock:
        while not stop.is_set():
            close_old_connections()
            if lock.acquire():
                if rounds % REPAIR_EVERY == 0:
                    _repair()
                control_round(policy, controllers, everyone=rounds == 0)
                rounds += 1
                if rounds % 720 == 0:
                    prune_samples()
            if once:
                return
            stop.wait(interval_s)


def _repair() -> None:
    """A desired state that is not the platform's is put right when the controller starts
    leading and then every ``REPAIR_EVERY`` rounds (``fleet.services.repair_desired``)."""
    try:
        repair_desired()
    except Exception:  # the broker away: the rounds go on, the next repair tries again
        log.exception("controller: checking the retained desired states failed")


def policy_factory(name: str) -> Callable[[], Callable[[LinkState, Limits], Decision]]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(POLICIES)}") from None
