"""The controller's reads and writes: telemetry in, tier decisions out."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import close_old_connections, transaction
from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Length, RowNumber
from django.utils import timezone

from archive.models import Frame, Layer
from audit.services import TIER_ACTION, audit, audit_many
from control.leader import leader_lock
from control.models import LinkSample, SitePolicy, TierChange
from control.policies import DEFAULT_POLICY, POLICIES, Decision, Limits, LinkState, plain_words
from fleet.models import Device
from fleet.services import (
    ControllerDecision,
    Published,
    apply_controller_tiers,
    effective_tier,
    publisher,
    repair_desired,
)
from mcucoder.bitstream import FRAME_INTRA, FRAME_PREDICTED, VERSION, VERSION_2, packet_size
from observability import metrics
from protocol.payloads import MAX_TIER, Telemetry

log = logging.getLogger(__name__)

SAMPLES = 10
SCENE_FRAMES = 120  # recent frames whose layer sizes stand for the camera's scene
REPAIR_EVERY_S = 60.0  # between checks of the retained desired states
SWITCH_RATE_WINDOW = timedelta(minutes=10)  # the switch rate operators see: over this window


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


@dataclass(frozen=True)
class FrameSizes:
    """A camera's packet bytes at each k, by what its recent frames cost.

    With predicted frames (issue 18) a packet's size depends on its type and the scene's
    motion, not only on k: a P frame of a still scene is a fraction of a key frame, and a
    tier change itself sends a key frame. ``mean`` is the bitrate's measure (bytes per frame
    over the recent mix of key and P frames); ``largest`` is what one frame at k may cost,
    the key frame (the deadline's measure). For an intra-only camera the two are equal."""

    mean: dict[int, float]
    largest: dict[int, float]
    key_share: float = 1.0  # of the recent frames, the key frames' share

    @classmethod
    def of(cls, by_type: dict[int, tuple[int, dict[int, float]]]) -> FrameSizes:
        """From (frames, packet bytes at k) per frame type; a type's tiers above those it
        was seen at are extrapolated (``extrapolated``) before they are mixed."""
        keys, key_sizes = by_type.get(FRAME_INTRA, (0, {}))
        ps, predicted_sizes = by_type.get(FRAME_PREDICTED, (0, {}))
        key, predicted = extrapolated(key_sizes), extrapolated(predicted_sizes)
        if not predicted:
            return cls(key, key)
        if not key:  # no key frame among the recent ones: the P frames are all we know
            return cls(predicted, predicted, 0.0)
        share = keys / (keys + ps)
        mean = {k: share * key[k] + (1 - share) * predicted[k] for k in key if k in predicted}
        largest = {k: max(key[k], predicted.get(k, 0.0)) for k in key}
        return cls(mean, largest, share)


def bytes_per_frame(device: Device) -> dict[int, float]:
    """Mean packet bytes at each k over the camera's recent frames (its scene's cost)."""
    found = scene_sizes([device.pk]).get(device.pk)
    return found.mean if found else {}


def scene_sizes(device_pks: Sequence[int]) -> dict[int, FrameSizes]:
    """``FrameSizes`` for many cameras in one query: each camera's ``SCENE_FRAMES`` most
    recent frames, mean layer bytes per frame type and index, as packet sizes at each k.
    A camera that sends predicted frames sends version 2 packets, its key frames too (the
    encoders' rule); an intra-only one version 1. (Reading each frame's version from its
    stored header instead cost the round ~110 ms at 200 cameras: ``bench.control``.)"""
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
        .values("frame__device_id", "frame__frame_type", "index")
        .annotate(mean=Avg(Length("data")), n=Count("id"))
        .values_list("frame__device_id", "frame__frame_type", "index", "mean", "n")
    )
    means: dict[int, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    frames: dict[tuple[int, int], int] = defaultdict(int)
    for device_pk, frame_type, index, mean, n in rows:
        means[device_pk][frame_type][index] = float(mean)
        if index == 0:
            frames[(device_pk, frame_type)] = n  # every frame has its first layer
    out: dict[int, FrameSizes] = {}
    for device_pk, by_type in means.items():
        version = VERSION_2 if FRAME_PREDICTED in by_type else VERSION
        sized: dict[int, tuple[int, dict[int, float]]] = {}
        for frame_type, by_index in by_type.items():
            chunks: list[int] = []
            sizes: dict[int, float] = {}
            for k in range(1, MAX_TIER + 1):
                if k - 1 not in by_index:
                    break
                chunks.append(round(by_index[k - 1]))
                sizes[k] = float(packet_size(chunks, version))
            sized[frame_type] = (frames[(device_pk, frame_type)], sizes)
        out[device_pk] = FrameSizes.of(sized)
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
    sizes: FrameSizes | None = None,
) -> LinkState:
    """What the policy sees of one camera; ``samples`` and ``sizes`` when read in bulk."""
    now = now or timezone.now()
    if samples is None:
        samples = recent_samples([device.pk]).get(device.pk, [])
    if sizes is None:
        sizes = scene_sizes([device.pk]).get(device.pk) or FrameSizes({}, {})
    last = samples[-1] if samples else None
    switched = device.desired_at or device.created_at  # the last published change
    return LinkState(
        # capacity where the device measures it, else what it carried (older firmware)
        throughput_kbps=[s.link_kbps or s.throughput_kbps for s in samples],
        backlog=last.backlog if last else 0,
        max_backlog=last.max_backlog if last else 16,
        puback_ms=last.puback_ms if last else None,
        bytes_per_frame=extrapolated(sizes.mean),
        largest_frame_bytes=extrapolated(sizes.largest),
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
    """Decide one device's tier as a round does: the fleet stores the decision's inputs
    (the camera page shows why) and publishes only when the tier to send changes; a change
    is recorded (switch rate, audit trail)."""
    decision = policy(state or link_state(device), limits_of(device))
    _store(
        [(ControllerDecision(device, decision.tier, decision.as_json()), effective_policy(device))],
        Round(),
    )
    return decision


def set_site_policy(site: str, policy: str, *, by: AbstractBaseUser | None) -> bool:
    """The policy a site's cameras run unless a camera has its own (``""``: the default,
    ``DEFAULT_POLICY``). Audited; the controller takes it up at its next round
    (``cameras_to_decide``). Returns False when nothing changed."""
    site = site.strip()
    if not site:
        raise ValidationError("A site needs a name.")
    if policy and policy not in POLICIES:
        raise ValidationError(f"unknown policy {policy!r}; choose from {sorted(POLICIES)}")
    current = SitePolicy.objects.filter(site=site).first()
    before = current.policy if current else ""
    if before == policy:
        return False
    with transaction.atomic():
        if policy:
            SitePolicy.objects.update_or_create(site=site, defaults={"policy": policy})
        else:
            SitePolicy.objects.filter(site=site).delete()
        audit(by, "site.policy", f"site:{site}", {"policy": before}, {"policy": policy})
    return True


def with_policy(devices: QuerySet[Device]) -> QuerySet[Device]:
    """Annotate each camera's site policy (``SitePolicy``), so that ``effective_policy``
    resolves the camera's own choice, else its site's, else ``DEFAULT_POLICY`` for any
    number of cameras without a query each."""
    site = SitePolicy.objects.filter(site=OuterRef("site")).values("policy")[:1]
    return devices.annotate(site_policy=Subquery(site))


def effective_policy(device: Device) -> str:
    """The policy that decides this camera (``with_policy`` read it, or one query)."""
    if device.tier_policy:
        return device.tier_policy
    if not hasattr(device, "site_policy"):
        found = SitePolicy.objects.filter(site=device.site).values_list("policy", flat=True)
        device.site_policy = found.first()
    return device.site_policy or DEFAULT_POLICY


def cameras_to_decide() -> QuerySet[Device]:
    """Active cameras with something new since their last decision: telemetry, a change of
    their controls (cap, limits, policy, deadline: each publishes a new desired state) or
    of their site's policy. A camera that sent nothing costs nothing."""
    newer_sample = LinkSample.objects.filter(
        device=OuterRef("pk"), at__gt=OuterRef("tier_decided_at")
    )
    any_sample = LinkSample.objects.filter(device=OuterRef("pk"))
    site_changed = SitePolicy.objects.filter(
        site=OuterRef("site"), updated_at__gt=OuterRef("tier_decided_at")
    )
    return with_policy(
        Device.objects.filter(is_active=True).filter(
            Q(tier_decided_at__isnull=True, desired_version=0)
            | Q(tier_decided_at__isnull=True) & Exists(any_sample)
            | Exists(newer_sample)
            | Q(desired_at__gt=F("tier_decided_at"))
            | Q(tier_policy="") & Exists(site_changed)
        )
    )


def switch_rates(device_pks: Sequence[int], now: datetime | None = None) -> dict[int, float]:
    """Tier switches per minute over the last ``SWITCH_RATE_WINDOW`` for each camera (0 for
    none), in one query: what operators watch to see that tiers stay calm."""
    since = (now or timezone.now()) - SWITCH_RATE_WINDOW
    counts = dict(
        TierChange.objects.filter(device_id__in=device_pks, at__gt=since)
        .values("device_id")
        .annotate(n=Count("id"))
        .values_list("device_id", "n")
    )
    minutes = SWITCH_RATE_WINDOW.total_seconds() / 60
    return {pk: counts.get(pk, 0) / minutes for pk in device_pks}


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
    everyone_active = with_policy(Device.objects.filter(is_active=True))
    devices = list(everyone_active if everyone else cameras_to_decide())
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
    sizes: dict[int, FrameSizes],
    now: datetime,
    done: Round,
) -> None:
    """Ask each camera's policy (``policy``, or each camera's effective one), then store and
    publish all the decisions together."""
    decisions: list[tuple[ControllerDecision, str]] = []
    for device in devices:
        name = policy or effective_policy(device)
        try:
            if (device.pk, name) not in controllers:
                controllers[(device.pk, name)] = policy_factory(name)()
            found = sizes.get(device.pk) or FrameSizes({}, {})
            state = link_state(device, now, samples.get(device.pk, []), found)
            decision = controllers[(device.pk, name)](state, limits_of(device))
            decisions.append((ControllerDecision(device, decision.tier, decision.as_json()), name))
        except Exception:  # one camera (a bad policy name, say) must not stop the others
            done.failed += 1
            metrics.count_decisions(0, 0, failed=1)
            log.exception("controller: deciding %s failed", device.device_id)
    _store(decisions, done, now)


def _store(
    decisions: list[tuple[ControllerDecision, str]], done: Round, now: datetime | None = None
) -> None:
    """Hand the decisions to the fleet (stored in one statement, changed tiers published)
    and record each change of the tier a camera is asked to send: a ``TierChange`` (the
    switch rate) and an entry in the audit trail, by the controller; one statement each for
    all the round's changes. Rounds that change nothing write neither."""
    before = {d.device.pk: effective_tier(d.device) for d, _ in decisions}
    published = apply_controller_tiers([d for d, _ in decisions], now)
    done.decided = len(decisions)
    names = {d.device.pk: name for d, name in decisions}
    changes = [p for p in published if p.payload["tier"] != before[p.device.pk]]
    metrics.count_decisions(len(changes), len(decisions) - len(changes))
    _record_changes(changes, before, names, now or timezone.now())
    for result in published:
        if result.error is not None:
            done.failed += 1
            continue
        done.published += 1
        reason = result.device.tier_reason.get("reason", "")
        log.info("%s: tier %d (%s)", result.device.device_id, result.payload["tier"], reason)


def _record_changes(
    changes: list[Published], before: dict[int, int], names: dict[int, str], at: datetime
) -> None:
    rows, entries = [], []
    for result in changes:
        device, tier = result.device, result.payload["tier"]
        words = plain_words(device.tier_reason)
        rows.append(
            TierChange(
                device=device,
                at=at,
                from_tier=before[device.pk],
                to_tier=tier,
                policy=names[device.pk],
                reason=words[:300],
            )
        )
        detail = {"tier": tier, "actor": "controller", "policy": names[device.pk], "why": words}
        if result.error is not None:
            detail["published"] = f"not yet: {result.error}"
        entries.append((f"device:{device.device_id}", {"tier": before[device.pk]}, detail))
    TierChange.objects.bulk_create(rows)
    audit_many(None, TIER_ACTION, entries)


def prune_samples(keep: timedelta = timedelta(days=7)) -> int:
    """Forget link samples and tier changes older than ``keep`` (the audit trail keeps
    the changes)."""
    deleted, _ = LinkSample.objects.filter(at__lt=timezone.now() - keep).delete()
    changes, _ = TierChange.objects.filter(at__lt=timezone.now() - keep).delete()
    return deleted + changes


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
    next_repair = 0.0
    with leader_lock() as lock:
        while not stop.is_set():
            close_old_connections()
            if lock.acquire():
                if time.monotonic() >= next_repair:
                    _repair()
                    next_repair = time.monotonic() + REPAIR_EVERY_S
                with metrics.CONTROL_CYCLE.time():
                    control_round(policy, controllers, everyone=rounds == 0)
                rounds += 1
                if rounds % 720 == 0:
                    prune_samples()
            if once:
                return
            stop.wait(interval_s)


def _repair() -> None:
    """A desired state that is not the platform's is put right when the controller starts
    leading and then every ``REPAIR_EVERY_S`` (``fleet.services.repair_desired``)."""
    try:
        repair_desired()
    except Exception:  # the broker away: the rounds go on, the next repair tries again
        log.exception("controller: checking the retained desired states failed")


def policy_factory(name: str) -> Callable[[], Callable[[LinkState, Limits], Decision]]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(POLICIES)}") from None
