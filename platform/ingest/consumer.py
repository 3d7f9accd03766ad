"""The MQTT side of ingest: subscribe, batch, hand each batch to the service, acknowledge.

Messages are acknowledged manually (paho-mqtt ``manual_ack``) only once the batch that holds
them is committed, on a persistent session: if the process dies or the database fails, the
broker still holds the unacknowledged messages and delivers them again. The network thread
only queues messages; a writer thread drains the queue in batches (up to ``max_batch``
messages or ``max_wait_s`` after the first), so that one transaction and one decode task
serve many frames.

Identity: the client id is stable per host and slot (``strata-ingest-<hostname>-<slot>``,
``default_client_id``), never per process. The broker keeps a session, and its share of the
shared subscription, for ``SESSION_EXPIRY_S`` after a consumer goes away; a restarted process
with the same identity takes that session over and receives everything queued in it, so a
restart (killed or graceful) strands nothing. Two live processes must never share an
identity (the broker would hand the session back and forth between them): ``claim_identity``
refuses a second one on the same host.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import paho.mqtt.client as mqtt
from django.db import close_old_connections, connections
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.key_frames import KeyFrameWatch
from ingest.services import handle_batch
from observability import metrics
from protocol import topics
from protocol.broker import BrokerURL

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600  # the broker keeps our queue while we restart
RECEIVE_MAXIMUM = 2000  # unacknowledged messages the broker may send us (MQTT 5)
DRAIN_S = 10.0  # on a graceful stop, time to archive what was delivered before it


def default_client_id(slot: int = 0) -> str:
    """The consumer identity of ingest slot ``slot`` on this host: the same after a restart,
    so the new process takes over the old one's broker session and everything queued in it."""
    return f"strata-ingest-{socket.gethostname()}-{slot}"


class IdentityInUse(RuntimeError):
    """Another process on this host already consumes as this client id."""


def claim_identity(client_id: str) -> IO[str]:
    """Hold ``client_id`` for this process (an exclusive lock the kernel releases when the
    process ends, however it ends); keep the returned file open while consuming."""
    path = Path(tempfile.gettempdir()) / f"{client_id.replace(os.sep, '_')}.ingest.lock"
    lock = path.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        raise IdentityInUse(
            f"ingest {client_id} already runs on this host (pid {holder})"
        ) from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int  # acknowledgements are only valid on the connection that received it


class IngestConsumer:
    """One MQTT consumer; several processes share the frame stream through ``$share``."""

    def __init__(
        self,
        broker: BrokerURL,
        client_id: str | None = None,
        slot: int = 0,
        share_group: str | None = topics.INGEST_SHARE_GROUP,
        mqtt5: bool = True,
        max_batch: int = 500,
        max_wait_s: float = 0.05,
        session_expiry_s: int = SESSION_EXPIRY_S,
    ) -> None:
        self.broker = broker
        self.mqtt5 = mqtt5
        self.client_id = client_id or default_client_id(slot)
        # Shared subscriptions are MQTT 5; on a 3.1.1 broker one consumer takes everything.
        self.share_group = share_group if mqtt5 else None
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.session_expiry_s = session_expiry_s
        self.processed = 0
        self.batches = 0
        self.failures = 0
        self.connected = threading.Event()
        self._stopping = threading.Event()  # stop() was called: drain, then disconnect
        self._stop = threading.Event()  # disconnected for good: the network loop ends
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._connection = 0
        self.key_frames = KeyFrameWatch()  # broken predicted streams: ask for key frames
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            clean_session=None if mqtt5 else False,
            manual_ack=True,
        )
        self.client.max_inflight_messages_set(RECEIVE_MAXIMUM)
        broker.configure(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    # --- network thread -------------------------------------------------------------------
    def subscriptions(self) -> list[tuple[str, int]]:
        group = self.share_group
        return [
            (topics.subscription(topics.Kind.FRAME, share_group=group), 1),
            (topics.subscription(topics.Kind.TELEMETRY, share_group=group), 1),
            # Status and reported state are retained, and retained messages are not sent to
            # shared subscriptions: every ingest process applies them (idempotent).
            (topics.subscription(topics.Kind.STATUS), 1),
            (topics.subscription(topics.Kind.REPORTED), 1),
        ]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused ingest: %s", self.broker, reason_code)
            return
        self._connection += 1
        client.subscribe(self.subscriptions())
        log.info(
            "ingest %s connected to %s (session present: %s)",
            self.client_id,
            self.broker,
            flags.session_present,
        )
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(
            Received(message.topic, message.payload, message.mid, message.qos, self._connection)
        )

    # --- writer thread --------------------------------------------------------------------
    def _take_batch(self) -> list[Received]:
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._inbox.get(timeout=remaining)
                    if remaining > 0
                    else self._inbox.get_nowait()
                )
            except queue.Empty:
                break
        return batch

    def _write(self) -> None:
        while not self._stopping.is_set():
            batch = self._take_batch()
            if batch and not self.process(batch):
                self._stopping.wait(min(30, 2 ** min(self.failures, 5)))
            elif not batch:
                self.ask_key_frames()  # a break seen last may be due while no frame comes
        if not self._stop.is_set():
            self._drain()
            self._stop.set()
            self.client.disconnect()  # the session stays: the broker keeps what is left for us

    def _drain(self) -> None:
        """Archive and acknowledge what the broker delivered before the stop (within
        ``DRAIN_S``); anything later, or left on failure, stays in our session."""
        left = self._inbox.qsize()
        deadline = time.monotonic() + DRAIN_S
        while left > 0 and time.monotonic() < deadline:
            batch = self._take_batch()[:left]
            if not batch or not self.process(batch):
                break
            left -= len(batch)

    def process(self, batch: list[Received]) -> bool:
        """Archive one batch, then acknowledge it; on failure leave it all to the broker."""
        close_old_connections()
        started = time.perf_counter()
        try:
            handle_batch([(m.topic, m.payload) for m in batch], self.key_frames)
        except Exception:
            self.failures += 1
            log.exception(
                "could not ingest %d messages; the broker will deliver them again", len(batch)
            )
            for conn in connections.all():
                conn.close_if_unusable_or_obsolete()
            self._redeliver_everything()
            return False
        log.debug(
            "ingested %d messages in %.1f ms", len(batch), (time.perf_counter() - started) * 1e3
        )
        metrics.INGEST_BATCH.observe(time.perf_counter() - started)
        self.key_frames.batch_took(time.perf_counter() - started)
        self.failures = 0
        self.batches += 1
        self.processed += len(batch)
        for m in batch:
            if m.qos > 0 and m.connection == self._connection:
                self.client.ack(m.mid, m.qos)
        self.ask_key_frames()
        return True

    def ask_key_frames(self) -> None:
        """Ask for the key frames due (``ingest.key_frames``), after the batch is safe:
        a failure here costs a request, which the next frame or the timeout asks again."""
        try:
            self.key_frames.ask()
        except Exception:
            log.exception("could not ask for key frames")

    def _redeliver_everything(self) -> None:
        """Drop what we hold unacknowledged and reconnect: the broker sends it all again."""
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        self._connection += 1  # acks for messages of the old connection are now void
        self.client.disconnect()

    # --- lifecycle ------------------------------------------------------------------------
    def connect(self) -> None:
        if not self.mqtt5:
            self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(
            self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props
        )

    def run_forever(self) -> None:
        """Block, reconnecting after every failure, until ``stop()`` has drained."""
        writer = threading.Thread(target=self._write, name="ingest-writer", daemon=True)
        writer.start()
        self.connect()
        while not self._stop.is_set():
            try:
                self.client.loop_forever(retry_first_connection=True)
            except Exception:
                log.exception("ingest network loop failed; restarting it")
            if not self._stop.is_set():
                time.sleep(1)
                try:
                    self.client.reconnect()
                except OSError:
                    pass
        writer.join(DRAIN_S)

    def start(self) -> threading.Thread:
        """Run in a background thread (the embedded demo)."""
        thread = threading.Thread(target=self.run_forever, name="ingest", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop gracefully; returns at once (safe in a signal handler). The writer archives
        and acknowledges what was already delivered, then disconnects keeping the session:
        what the broker still holds for us comes back when this identity reconnects."""
        self._stopping.set()
