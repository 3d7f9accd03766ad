"""The MQTT side of ingest: subscribe, hand each message to the service, acknowledge after commit.

Messages are acknowledged manually (paho-mqtt ``manual_ack``) only once their rows are
committed, on a persistent session: if the process dies or the database fails, the broker
still holds the unacknowledged messages and delivers them again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import paho.mqtt.client as mqtt
from django.db import close_old_connections, connections
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import topics
from devices.mqtt_url import BrokerURL
from ingest.services import handle_message

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600  # the broker keeps our queue while we restart


class IngestConsumer:
    """One MQTT consumer; several processes share the frame stream through ``$share``."""

    def __init__(
        self,
        broker: BrokerURL,
        client_id: str | None = None,
        share_group: str | None = topics.INGEST_SHARE_GROUP,
        mqtt5: bool = True,
    ) -> None:
        self.broker = broker
        self.mqtt5 = mqtt5
        self.client_id = client_id or f"strata-ingest-{socket.gethostname()}-{os.getpid()}"
        # Shared subscriptions are MQTT 5; on a 3.1.1 broker one consumer takes everything.
        self.share_group = share_group if mqtt5 else None
        self.processed = 0
        self.failed = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            clean_session=None if mqtt5 else False,
            manual_ack=True,
        )
        broker.configure(self.client)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    def subscriptions(self) -> list[tuple[str, int]]:
        group = self.share_group
        return [
            (topics.subscription(topics.Kind.FRAME, share_group=group), 1),
            (topics.subscription(topics.Kind.TELEMETRY, share_group=group), 1),
            # Status is retained, and retained messages are not sent to shared subscriptions.
            (topics.subscription(topics.Kind.STATUS), 1),
        ]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused ingest: %s", self.broker, reason_code)
            return
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
        close_old_connections()
        try:
            handle_message(message.topic, message.payload)
        except Exception:
            # Not the message's fault (database down, broker for Celery down…): leave it
            # unacknowledged and reconnect, so that the broker delivers it again.
            self.failed += 1
            log.exception("could not ingest a message on %s; it will be redelivered", message.topic)
            for conn in connections.all():
                conn.close_if_unusable_or_obsolete()
            time.sleep(min(30, 2 ** min(self.failed, 5)))
            client.disconnect()
            return
        self.failed = 0
        self.processed += 1
        if message.qos > 0:
            client.ack(message.mid, message.qos)

    def connect(self) -> None:
        if not self.mqtt5:
            self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.broker.host, self.broker.port, keepalive=30, clean_start=False, properties=props
        )

    def run_forever(self) -> None:
        """Block, reconnecting after every failure, until ``stop()``."""
        self.connect()
        while not self._stop.is_set():
            try:
                self.client.loop_forever(retry_first_connection=True)
            except Exception:
                log.exception("ingest loop failed; restarting it")
                time.sleep(1)
            if not self._stop.is_set():
                time.sleep(1)
                try:
                    self.client.reconnect()
                except OSError:
                    pass

    def start(self) -> threading.Thread:
        """Run in a background thread (the embedded demo)."""
        thread = threading.Thread(target=self.run_forever, name="ingest", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self.client.disconnect()
