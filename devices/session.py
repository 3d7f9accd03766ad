"""A camera's MQTT session, and what the device learns about its link from it.

One paho-mqtt client per device (client id = device id, QoS 1, persistent session,
retained Last Will): connect and reconnect in the background, subscribe to the device's
``desired`` topic, publish. Each publish is remembered until its PUBACK, because the
PUBACKs are all a device can measure of its uplink: the unacknowledged backlog, the
publish-to-PUBACK latency, the acknowledged throughput and the capacity estimate
(``devices/uplink.py``). Kept apart from the capture loop so that what the network thread
touches, and the lock it takes, are in one place. Topics: ``docs/mqtt.md``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.uplink import UplinkEstimator
from protocol import topics
from protocol.broker import BrokerURL
from protocol.payloads import Status

log = logging.getLogger(__name__)

QOS = 1


@dataclass
class LinkStats:
    """Counters a device keeps about its own uplink (published as telemetry)."""

    frames_captured: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_acked: int = 0
    bytes_acked: int = 0
    frames_dropped: int = 0  # not sent at all: backlog full, over the cap, or sure to be late
    dropped_backlog: int = 0
    dropped_rate: int = 0
    dropped_deadline: int = 0
    frames_trimmed: int = 0  # sent with fewer channels than the tier asked for
    frames_still: int = 0  # motion mode: looked at, nothing moved, not sent
    connects: int = 0
    disconnects: int = 0
    puback_ms: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    acked: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=4096))

    def throughput_kbps(self, now: float, window_s: float = 10.0) -> float:
        """Acknowledged kbit/s over the last ``window_s``: what the link really carried."""
        recent = sum(n for t, n in self.acked if t >= now - window_s)
        return recent * 8 / 1000 / window_s


@dataclass
class Pending:
    """A message published and not yet acknowledged."""

    sent_at: float
    size: int
    kind: topics.Kind

    @property
    def is_frame(self) -> bool:
        return self.kind is topics.Kind.FRAME


class Session:
    """The device's MQTT client and its PUBACK accounting.

    ``on_online()`` runs on paho's network thread after each successful connect (the
    subscription to ``desired`` is already asked for); ``on_desired(payload)`` for each
    message on the device's ``desired`` topic. PUBACKs of frames update ``stats`` and
    ``uplink`` under ``lock``: hold it to read them from another thread.
    """

    def __init__(
        self,
        device_id: str,
        broker: BrokerURL,
        *,
        stats: LinkStats,
        uplink: UplinkEstimator,
        on_online: Callable[[], None],
        on_desired: Callable[[bytes], None],
        max_backlog: int = 16,
        keepalive_s: int = 30,
        session_expiry_s: int = 3600,
        protocol: str = "5",
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
    ) -> None:
        self.device_id = device_id
        self.broker = broker
        self.stats = stats
        self.uplink = uplink
        self.on_online = on_online
        self.on_desired = on_desired
        self.max_backlog = max_backlog
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.protocol = protocol
        self.online = False
        self.local_address: tuple[str, int] | None = None
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.pending: dict[int, Pending] = {}
        self._early_acks: dict[int, float] = {}  # PUBACKs that beat publish() returning
        self._topic = {kind: topics.topic(device_id, kind) for kind in topics.Kind}
        self.client = self._make_client(username, password, ca_certs)

    def _make_client(
        self, username: str | None, password: str | None, ca_certs: str | None
    ) -> mqtt.Client:
        v5 = self.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        self.broker.configure(client, username, password, ca_certs)
        will = Status.last_will(self.device_id).to_json()
        client.will_set(self._topic[topics.Kind.STATUS], will, qos=QOS, retain=True)
        # paho must not hold frames back on its own: the backlog bound is the limit
        client.max_inflight_messages_set(self.max_backlog + 8)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- connection -------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho's network thread reconnects on its own)."""
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry_s
        self.client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.keepalive_s,
            clean_start=False if self.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()

    def stop(self, timeout_s: float, goodbye: Callable[[], mqtt.MQTTMessageInfo]) -> None:
        """Flush what is in flight (up to ``timeout_s``), publish ``goodbye()`` (the retained
        offline status), disconnect."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.online:
            deadline = time.monotonic() + timeout_s
            while self.backlog and time.monotonic() < deadline:
                time.sleep(0.02)
            info = goodbye()
            with contextlib.suppress(RuntimeError, ValueError):  # lost connection meanwhile
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        self.online = False

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, as a power cut would (the Will fires)."""
        self.stopped.set()
        sock = self.client.socket()
        self.client.loop_stop()
        if sock is not None:
            sock.close()
        self.online = False

    def wait_online(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.online and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.online

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s: connection refused: %s", self.device_id, reason_code)
            return
        self.stats.connects += 1
        self.online = True
        with contextlib.suppress(OSError, AttributeError):  # which link is ours (emulator)
            self.local_address = client.socket().getsockname()[:2]
        client.subscribe(self._topic[topics.Kind.DESIRED], qos=QOS)
        self.on_online()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.online and not self.stopped.is_set():
            self.stats.disconnects += 1  # links lost, not our own goodbye
        self.online = False
        if not self.stopped.is_set():
            log.info("%s: disconnected (%s), reconnecting", self.device_id, reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._topic[topics.Kind.DESIRED]:
            self.on_desired(message.payload)

    # --- publishing and PUBACK accounting ---------------------------------------------

    def publish(
        self, kind: topics.Kind, payload: bytes, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        """Publish at QoS 1 on the device's ``kind`` topic; pending until its PUBACK."""
        sent_at = time.monotonic()
        info = self.client.publish(self._topic[kind], payload, qos=QOS, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        pending = Pending(sent_at, len(payload), kind)
        with self.lock:
            acked_at = self._early_acks.pop(info.mid, None)
            if acked_at is None:
                self.pending[info.mid] = pending
            else:
                self._acknowledged(pending, acked_at)
        return info

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        now = time.monotonic()
        with self.lock:
            pending = self.pending.pop(mid, None)
            if pending is None:
                self._early_acks[mid] = now
            else:
                self._acknowledged(pending, now)

    def _acknowledged(self, pending: Pending, acked_at: float) -> None:
        """Account for a PUBACK (the caller holds ``lock``: telemetry reads these deques)."""
        if not pending.is_frame:
            return
        self.stats.frames_acked += 1
        self.stats.bytes_acked += pending.size
        self.stats.puback_ms.append((acked_at - pending.sent_at) * 1000)
        self.stats.acked.append((acked_at, pending.size))
        self.uplink.acknowledged(pending.sent_at, acked_at, pending.size)

    @property
    def backlog(self) -> int:
        """Frames published but not yet acknowledged by the broker."""
        with self.lock:
            return sum(p.is_frame for p in self.pending.values())

    def waiting(self, kind: topics.Kind) -> bool:
        """Whether a ``kind`` message is still waiting for its PUBACK."""
        with self.lock:
            return any(p.kind is kind for p in self.pending.values())

    def arrival_s(self, size: int, now: float) -> float | None:
        """When a ``size``-byte frame sent at ``now`` would be acknowledged, behind all that
        is unacknowledged (``UplinkEstimator.arrival_s``; None while nothing is measured)."""
        with self.lock:
            frames = [p for p in self.pending.values() if p.is_frame]
            queued = sum(p.size for p in self.pending.values())
            oldest = min(frames, key=lambda p: p.sent_at, default=None)
            stalled = None if oldest is None else (oldest.size, now - oldest.sent_at)
            return self.uplink.arrival_s(size, queued, stalled)
