"""Writes to the fleet: provisioning, connection state, admin limits and the desired state.

The desired state is the device's shadow on the platform side: a retained, versioned JSON
message on ``strata/v1/dev/{id}/desired`` that the device applies and echoes on
``reported``. Every change (an admin's, or the tier controller's) goes through
``publish_desired`` so that versions only ever increase.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import paho.mqtt.client as mqtt
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from audit.services import audit
from fleet.models import ConnectionChange, Device
from observability import metrics
from protocol import topics
from protocol.broker import BrokerURL
from protocol.payloads import MAX_TIER, MIN_TIER, Desired

log = logging.getLogger(__name__)


def provision_device(device_id: str, *, name: str = "", site: str = "") -> Device:
    """Create the device if it is new; an existing one keeps its settings."""
    device, _ = Device.objects.get_or_create(
        device_id=device_id, defaults={"name": name or device_id, "site": site}
    )
    return device


IDENTITY_FIELDS = ("name", "site", "is_active")


def update_identity(device: Device, by: AbstractBaseUser | None, **changes: Any) -> bool:
    """An admin renames a camera, moves it to a site or (de)activates it (an inactive
    camera is refused at ingest; its archive stays). Audited; returns False when nothing
    changed."""
    unknown = set(changes) - set(IDENTITY_FIELDS)
    if unknown:
        raise ValueError(f"not an identity field: {', '.join(sorted(unknown))}")
    before = {name: getattr(device, name) for name in IDENTITY_FIELDS}
    for name, value in changes.items():
        setattr(device, name, value.strip() if isinstance(value, str) else value)
    after = {name: getattr(device, name) for name in IDENTITY_FIELDS}
    if after == before:
        return False
    device.full_clean(exclude=["device_id"])
    with transaction.atomic():
        device.save(update_fields=list(IDENTITY_FIELDS))
        audit(by, "device.identity", f"device:{device.device_id}", before, after)
    return True


def mark_seen(device: Device, at: datetime | None = None) -> None:
    """A frame or heartbeat proves the device is up."""
    at = at or timezone.now()
    Device.objects.filter(pk=device.pk).update(online=True, last_seen_at=at)
    device.online, device.last_seen_at = True, at


@transaction.atomic
def set_online(device_id: str, online: bool, at: datetime | None = None) -> bool:
    """Apply a retained status message (online, or the Last Will's offline), and keep each
    change of state for the archive timeline.

    Returns False for an unknown device id, which is ignored.
    """
    at = at or timezone.now()
    device = Device.objects.select_for_update().filter(device_id=device_id).first()
    if device is None:
        return False
    if device.online != online:
        ConnectionChange.objects.create(device=device, at=at, online=online)
    fields: dict = {"online": online}
    if online:
        fields["last_seen_at"] = at
    Device.objects.filter(pk=device.pk).update(**fields)
    return True


# --- health ----------------------------------------------------------------------------------

GRACE_INTERVALS = 3  # missed check-ins before a camera counts as down
MIN_GRACE = timedelta(seconds=60)


class Health(StrEnum):
    ONLINE = "online"  # connected and heard from recently
    SLEEPING = "sleeping"  # disconnected, but within its grace period (duty-cycled cameras)
    OFFLINE = "offline"  # not heard from within the grace period
    NEVER = "never"  # never heard from


def grace_period(device: Device) -> timedelta:
    """How long after it was last seen a camera still counts as up: a few check-in intervals
    (heartbeat or duty cycle), so that a camera that sleeps between frames is not "broken"."""
    return max(MIN_GRACE, timedelta(seconds=GRACE_INTERVALS * device.checkin_interval_s))


def health(device: Device, now: datetime | None = None) -> Health:
    if device.last_seen_at is None:
        return Health.NEVER
    if (now or timezone.now()) - device.last_seen_at > grace_period(device):
        return Health.OFFLINE
    return Health.ONLINE if device.online else Health.SLEEPING


# --- desired and reported state --------------------------------------------------------------


def effective_tier(device: Device) -> int:
    """The tier to send: the admin's override, else the controller's choice, within limits."""
    tier = device.tier_override or device.desired_tier
    return max(device.min_tier, min(device.max_tier, tier))


def desired_state(device: Device) -> Desired:
    """The desired state the device is asked to run (``protocol.payloads.Desired``)."""
    return Desired(
        version=device.desired_version,
        tier=effective_tier(device),
        fps=device.fps,
        max_kbps=device.max_kbps,
        mode=device.capture_mode,
        deadline_ms=device.deadline_ms,
        key_request=device.key_request,
    )


def desired_payload(device: Device) -> dict[str, Any]:
    """The JSON of the desired state, as published."""
    return desired_state(device).to_dict()


@dataclass(frozen=True)
class Applied:
    """Whether the device runs what was last asked of it."""

    pending: bool  # the camera has not reported the state last published (yet)
    rejected: str  # the device's error for the last desired state, if it refused it
    reported_version: int | None
    foreign: bool = False  # it reports a version the platform never issued


def applied(device: Device) -> Applied:
    """Applied means the camera reported exactly the state the platform published last:
    its version and its values. A report of any other state (a newer version from a foreign
    client, or the platform's version number with other values) is not "applied"."""
    reported = device.reported or {}
    version = reported.get("version")
    version = version if isinstance(version, int) and not isinstance(version, bool) else None
    rejected = str(reported.get("error", ""))
    foreign = version is not None and version > device.desired_version
    matches = version == device.desired_version and all(
        reported.get(name) == value
        for name, value in desired_payload(device).items()
        # firmware older than key requests does not echo key_request: its settings count
        if name != "version" and (name != "key_request" or name in reported)
    )
    pending = device.desired_version > 0 and not rejected and not matches
    return Applied(
        pending=pending or foreign, rejected=rejected, reported_version=version, foreign=foreign
    )


class PublishRefused(ConnectionError):
    """The broker refused the platform's login or its publish (wrong account, ACL)."""


class Publisher:
    """Publishes retained desired state. One short-lived MQTT connection per change (an
    admin's save), or one for a whole controller round (``held``); no thread is kept around.

    It logs in with the account in ``settings.MQTT_URL``: in production the web's or the
    controller's, the only ones the broker lets write desired states. A refused login or
    publish raises ``PublishRefused`` instead of passing for done.
    """

    def __init__(self) -> None:
        self.url: str | None = None  # None: settings.MQTT_URL
        self.protocol = mqtt.MQTTv5
        self._held = threading.local()  # a connection kept for many publishes (``held``)

    def use(self, url: str, *, mqtt5: bool = True) -> None:
        """Point at another broker (the demo's embedded one, which speaks MQTT 3.1.1)."""
        self.url, self.protocol = url, mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311

    @contextmanager
    def session(self, timeout_s: float = 10.0) -> Iterator[mqtt.Client]:
        """A connected client with the platform's account; raises when the broker refuses."""
        broker = BrokerURL.parse(self.url or settings.MQTT_URL or settings.EMBEDDED_MQTT_URL)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=self.protocol)
        broker.configure(client)
        connected = threading.Event()
        answer: list[Any] = []

        def on_connect(_client, _userdata, _flags, reason_code, _properties=None) -> None:
            answer.append(reason_code)
            connected.set()

        client.on_connect = on_connect
        client.user_data_set({})  # PUBACK reason codes by message id (``_publish_on``)
        client.on_publish = lambda _c, acks, mid, reason_code, _p=None: acks.update(
            {mid: reason_code}
        )
        client.connect(broker.host, broker.port, keepalive=30)
        client.loop_start()
        try:
            if not connected.wait(timeout_s):
                raise ConnectionError(f"MQTT broker {broker} did not accept the connection")
            if answer[0].is_failure:
                raise PublishRefused(f"MQTT broker {broker} refused the login: {answer[0]}")
            yield client
        finally:
            client.disconnect()
            client.loop_stop()

    @contextmanager
    def held(self, timeout_s: float = 10.0) -> Iterator[None]:
        """Keep one connection for every publish of this thread inside the block: a
        controller round that switches hundreds of cameras pays one MQTT connect, not one
        each. Other threads (an admin's save) keep their own short-lived connections."""
        if getattr(self._held, "client", None) is not None:
            yield
            return
        with self.session(timeout_s) as client:
            self._held.client = client
            try:
                yield
            finally:
                self._held.client = None

    def publish(self, device_id: str, payload: dict[str, Any], timeout_s: float = 10.0) -> None:
        """Publish ``payload`` retained on the device's desired topic."""
        client = getattr(self._held, "client", None)
        if client is not None:
            self._publish_on(client, device_id, payload, timeout_s)
            return
        with self.session(timeout_s) as client:
            self._publish_on(client, device_id, payload, timeout_s)

    @staticmethod
    def _publish_on(
        client: mqtt.Client, device_id: str, payload: dict[str, Any], timeout_s: float
    ) -> None:
        info = client.publish(
            topics.topic(device_id, topics.Kind.DESIRED),
            json.dumps(payload),
            qos=1,
            retain=True,
        )
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise ConnectionError("MQTT broker did not acknowledge the publish")
        reason = client.user_data_get().pop(info.mid, None)
        if reason is not None and reason.is_failure:  # MQTT 5 PUBACK: not authorized
            raise PublishRefused(f"MQTT broker refused the desired state of {device_id}: {reason}")

    def retained(self, timeout_s: float = 10.0, quiet_s: float = 0.5) -> dict[str, bytes]:
        """Every device's retained desired message on the broker, by device id: what the
        cameras get when they (re)subscribe."""
        found: dict[str, bytes] = {}
        with self.session(timeout_s) as client:
            subscribed, last = threading.Event(), [time.monotonic()]

            def on_message(_client, _userdata, message: mqtt.MQTTMessage) -> None:
                last[0] = time.monotonic()
                try:
                    device_id = topics.parse(message.topic).device_id
                except topics.TopicError:
                    return
                if message.retain and message.payload:
                    found[device_id] = message.payload

            def on_subscribe(_client, _userdata, _mid, reason_codes, _properties=None) -> None:
                if any(code.is_failure for code in reason_codes):
                    answer.append(reason_codes)
                last[0] = time.monotonic()
                subscribed.set()

            answer: list[Any] = []
            client.on_message, client.on_subscribe = on_message, on_subscribe
            client.subscribe(topics.subscription(topics.Kind.DESIRED), qos=1)
            if not subscribed.wait(timeout_s):
                raise ConnectionError("MQTT broker did not answer the subscription")
            if answer:
                raise PublishRefused(f"MQTT broker refused to show desired states: {answer[0]}")
            deadline = time.monotonic() + timeout_s
            while time.monotonic() - last[0] < quiet_s and time.monotonic() < deadline:
                time.sleep(0.05)  # retained messages follow the SUBACK back to back
        return found


publisher = Publisher()


def publish_desired(device: Device, above: int = 0) -> dict[str, Any]:
    """Give the desired state a new version, store it and publish it (retained, QoS 1).

    The version is taken atomically in the database, so concurrent publishers (an admin and
    the controller) never reuse one; ``above`` makes it exceed a version seen elsewhere (a
    foreign one the camera applied). The publish happens after commit; if the broker is
    down or refuses it raises, and the next change (or a retry) publishes the latest state.
    """
    (published,) = publish_desired_many([(device, above)])
    if published.error is not None:
        raise published.error
    return published.payload


def foreign_desired(device: Device, retained: bytes | None) -> int | None:
    """If the broker holds, or the camera applied, a desired state the platform did not
    publish, the highest version involved (the repair must go above it); else None."""
    expected = desired_payload(device) if device.desired_version > 0 else None
    try:
        current = json.loads(retained) if retained else None
    except ValueError:
        current = {}
    seen = [device.desired_version]
    if current != expected:
        if current is None:  # cleared: the camera keeps what it has, but a newcomer gets nothing
            if expected is None:
                return None
        else:
            version = current.get("version") if isinstance(current, dict) else None
            seen.append(version if isinstance(version, int) and version >= 0 else 0)
        return max(seen)
    reported = applied(device).reported_version
    if reported is not None and reported > device.desired_version:
        return reported
    return None


def repair_desired() -> list[str]:
    """Find cameras whose retained desired state is not the platform's (another client
    wrote it, or cleared it) or that applied a version the platform never issued, and
    publish their stored state again under a version above the foreign one, so that the
    camera takes it. Returns the device ids repaired. Run when the controller starts and
    periodically (``python manage.py repair_desired``)."""
    read_at = timezone.now()
    retained = publisher.retained()
    repaired = []
    for device in Device.objects.filter(is_active=True):
        published = [t for t in (device.desired_at, device.key_asked_at) if t is not None]
        if published and max(published) >= read_at:
            continue  # published since the broker was read: compared next time
        foreign = foreign_desired(device, retained.get(device.device_id))
        if foreign is None:
            continue
        log.warning(
            "%s: a desired state that is not the platform's (version %d): republishing",
            device.device_id,
            foreign,
        )
        audit(None, "device.desired.repair", f"device:{device.device_id}", {}, {"foreign": foreign})
        publish_desired(device, above=foreign)
        repaired.append(device.device_id)
    return repaired


CONTROL_FIELDS = (
    "max_kbps",
    "min_tier",
    "max_tier",
    "tier_override",
    "fps",
    "capture_mode",
    "deadline_ms",
    "tier_policy",
)


def controls(device: Device) -> dict[str, Any]:
    return {name: getattr(device, name) for name in CONTROL_FIELDS}


def update_controls(
    device: Device, by: AbstractBaseUser | None, **changes: Any
) -> dict[str, Any] | None:
    """Apply an admin's limits, record them in the audit log and publish the new desired state.

    Returns the published payload, or None when nothing changed. Raises ``ValidationError``
    for limits that contradict each other.
    """
    unknown = set(changes) - set(CONTROL_FIELDS)
    if unknown:
        raise ValueError(f"not a control: {', '.join(sorted(unknown))}")
    before = controls(device)
    for name, value in changes.items():
        setattr(device, name, value)
    after = controls(device)
    if after == before:
        return None
    device.full_clean(exclude=["device_id"])
    if device.min_tier > device.max_tier:
        raise ValidationError({"min_tier": "The minimum tier is above the maximum."})
    if device.tier_override and not device.min_tier <= device.tier_override <= device.max_tier:
        raise ValidationError({"tier_override": "The fixed tier is outside min..max."})
    with transaction.atomic():
        device.save(update_fields=list(CONTROL_FIELDS))
        audit(by, "device.controls", f"device:{device.device_id}", before, after)
    return publish_desired(device)


def apply_controller_tier(
    device: Device, tier: int, reason: dict[str, Any], at: datetime | None = None
) -> dict[str, Any] | None:
    """The tier controller's decision for one camera (see ``apply_controller_tiers``).

    Returns the published payload, or None when the camera keeps its tier.
    """
    published = apply_controller_tiers([ControllerDecision(device, tier, reason)], at)
    if published and published[0].error:
        raise published[0].error
    return published[0].payload if published else None


@dataclass(frozen=True)
class ControllerDecision:
    device: Device
    tier: int
    reason: dict[str, Any]


@dataclass(frozen=True)
class Published:
    device: Device
    payload: dict[str, Any]
    error: Exception | None = None  # the broker refused or was away: stored, not delivered


def apply_controller_tiers(
    decisions: list[ControllerDecision], at: datetime | None = None
) -> list[Published]:
    """The tier controller's decisions: store them with their inputs (the camera page shows
    why) in one statement, and publish a new desired state for each camera whose tier to
    send changes (new versions taken in one statement too). A round over hundreds of
    cameras costs a handful of queries, not a few per camera.

    The admin's limits and override still apply (``effective_tier``). A publish that fails
    is returned with its error; the others go on.
    """
    at = at or timezone.now()
    changed: list[tuple[Device, int]] = []
    for decision in decisions:
        if not MIN_TIER <= decision.tier <= MAX_TIER:
            raise ValueError(f"tier must be {MIN_TIER}..{MAX_TIER}")
    for decision in decisions:
        device = decision.device
        before = effective_tier(device)
        device.desired_tier, device.tier_reason = decision.tier, decision.reason
        device.tier_decided_at = at
        if effective_tier(device) != before or device.desired_version == 0:
            changed.append((device, 0))
    _store_decisions(decisions, at)
    published = publish_desired_many(changed)
    # each decision covers the state it published: not "changed since decided" next round
    for result in published:
        result.device.tier_decided_at = result.device.desired_at
    Device.objects.filter(pk__in=[p.device.pk for p in published]).update(
        tier_decided_at=F("desired_at")
    )
    return published


def _store_decisions(decisions: list[ControllerDecision], at: datetime) -> None:
    """Each camera's new tier and reason, all in one statement. On PostgreSQL an
    ``UPDATE ... FROM unnest(arrays)``: Django's ``bulk_update`` builds a CASE per field and
    row, which cost about 0.5 s a round for 200 cameras (``bench.control``, 2 cores), the
    loop's largest share; other databases (the demo's SQLite) keep ``bulk_update``."""
    if not decisions:
        return
    if connection.vendor != "postgresql":
        Device.objects.bulk_update(
            [d.device for d in decisions], ["desired_tier", "tier_reason", "tier_decided_at"]
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Device._meta.db_table} AS d"
            " SET desired_tier = v.tier, tier_reason = v.reason::jsonb, tier_decided_at = %s"
            " FROM unnest(%s::bigint[], %s::smallint[], %s::text[]) AS v(id, tier, reason)"
            " WHERE d.id = v.id",
            [
                at,
                [d.device.pk for d in decisions],
                [d.tier for d in decisions],
                [json.dumps(d.reason) for d in decisions],
            ],
        )


def publish_desired_many(
    devices: list[tuple[Device, int]], *, settings_changed: bool = True
) -> list[Published]:
    """``publish_desired`` for many cameras: versions taken in one statement, then one
    publish each (on one connection inside ``publisher.held``). ``devices`` holds
    (camera, version to exceed) pairs. ``settings_changed`` stamps ``desired_at``, which
    the tier controller reads as the camera's last switch; a key request changes nothing
    it runs (``request_key_frames``), so it leaves it."""
    if not devices:
        return []
    with transaction.atomic():
        now = timezone.now()
        stamp = {"desired_at": now} if settings_changed else {}
        for above in {a for _, a in devices}:
            Device.objects.filter(pk__in=[d.pk for d, a in devices if a == above]).update(
                desired_version=Greatest(F("desired_version") + 1, above + 1), **stamp
            )
        fresh = {
            pk: (version, key_request)
            for pk, version, key_request in Device.objects.filter(
                pk__in=[d.pk for d, _ in devices]
            ).values_list("pk", "desired_version", "key_request")
        }
    results = []
    for device, _ in devices:
        # the key request counter too: an admin's copy loaded earlier must not lower it
        device.desired_version, device.key_request = fresh[device.pk]
        if settings_changed:
            device.desired_at = now
        payload = desired_payload(device)
        try:
            publisher.publish(device.device_id, payload)
        except (ConnectionError, OSError, ValueError) as exc:
            log.warning("%s: desired state not published: %s", device.device_id, exc)
            results.append(Published(device, payload, exc))
        else:
            results.append(Published(device, payload))
    return results


# --- key frames on request (issue 18) -------------------------------------------------------

KEY_REQUEST_TIMEOUT = timedelta(seconds=10)  # an unanswered request is asked again after this
KEY_REQUEST_FRAMES = 3  # ... or after this many frame periods, if longer (a slow camera)
LIVE_KEY_EVERY = timedelta(seconds=30)  # live views opening ask a camera at most this often


class KeyFrameReason(StrEnum):
    """Why the platform asks a camera for a key frame."""

    LOST = "lost"  # a predicted frame whose reference never reached the archive
    REFUSED = "refused"  # ingest refused one of its packets
    LIVE = "live"  # an operator opened a live view of it


def key_request_timeout(device: Device) -> timedelta:
    """How long a key frame asked for may take before it is asked for again: the link's
    round trip plus the next capture, which a slow camera (fps < 0.3) makes longer."""
    if device.fps > 0:
        return max(KEY_REQUEST_TIMEOUT, timedelta(seconds=KEY_REQUEST_FRAMES / device.fps))
    return KEY_REQUEST_TIMEOUT


def request_key_frame(device: Device, reason: KeyFrameReason) -> bool:
    """Ask ``device`` for a key frame (``request_key_frames`` for one camera): True when
    asked now, False when a request is still outstanding or the broker did not take it."""
    return bool(request_key_frames([device], reason))


def request_key_frames(
    devices: list[Device], reason: KeyFrameReason, at: datetime | None = None
) -> list[Device]:
    """Ask each camera for a key frame: ``key_request`` goes up by one in a new desired
    state (``protocol.payloads.Desired``), published as every desired state is.

    No storm: a camera with a request outstanding (asked, no key frame archived since:
    ``key_frame_arrived``) is asked again only after ``key_request_timeout``; for a live
    view, a camera asked within ``LIVE_KEY_EVERY`` is not asked (viewers opening pages one
    after another, an overview of many cameras: its stream is whole, only decoding the
    first frame may walk back further). Returns the cameras whose request was published;
    one the broker refused is logged and counts as not asked (the next loss or the next
    viewer asks again).
    """
    at = at or timezone.now()
    asked: list[Device] = []
    with transaction.atomic():
        locked = Device.objects.select_for_update().filter(
            pk__in=[d.pk for d in devices], is_active=True
        )
        for current in locked:
            since = current.key_requested_at
            if since is not None and at - since < key_request_timeout(current):
                continue
            last = current.key_asked_at
            if reason is KeyFrameReason.LIVE and last is not None and at - last < LIVE_KEY_EVERY:
                continue
            asked.append(current)
        Device.objects.filter(pk__in=[d.pk for d in asked]).update(
            key_request=F("key_request") + 1, key_requested_at=at, key_asked_at=at
        )
    if not asked:
        return []
    try:
        with publisher.held():
            published = publish_desired_many(
                [(device, 0) for device in asked], settings_changed=False
            )
    except (ConnectionError, OSError) as exc:  # the broker is away or refused our login
        log.warning("key frames not asked for: %s", exc)
        published = [Published(device, {}, exc) for device in asked]
    done = [p.device for p in published if p.error is None]
    failed = [p.device.pk for p in published if p.error is not None]
    metrics.count_key_requests(reason.value, len(done), len(failed))
    if failed:  # not delivered: not outstanding either, so the next occasion asks at once
        Device.objects.filter(pk__in=failed, key_requested_at=at).update(key_requested_at=None)
    for device in done:
        device.key_requested_at = device.key_asked_at = at
        log.info("%s: key frame asked for (%s)", device.device_id, reason)
    return done


def key_frame_arrived(device_pks: set[int]) -> int:
    """A key frame of these cameras reached the archive: their requests are answered (or
    overtaken by the camera's own key frame). Returns how many were outstanding."""
    if not device_pks:
        return 0
    return Device.objects.filter(pk__in=device_pks, key_requested_at__isnull=False).update(
        key_requested_at=None
    )


def record_reported(device_id: str, reported: dict[str, Any], at: datetime | None = None) -> bool:
    """Store what a device says it applied (its retained ``reported`` message).

    For ingest to call on ``strata/v1/dev/{id}/reported`` with a message that
    ``protocol.payloads.Reported.parse`` accepted. An older version than the one stored is
    ignored (retained replays arrive out of order), as is one without a version. Returns
    False when ignored.
    """
    version = reported.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return False
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(device_id=device_id).first()
        if device is None:
            return False
        stored = (device.reported or {}).get("version")
        if isinstance(stored, int) and version < stored:
            return False
        device.reported, device.reported_at = reported, at or timezone.now()
        device.save(update_fields=["reported", "reported_at"])
    return True
