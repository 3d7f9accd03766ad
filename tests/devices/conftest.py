"""Fixtures for device tests: the real Mosquitto on 127.0.0.1:1883 and an observer client."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from protocol import topics
from protocol.broker import BrokerURL


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The real broker (``MQTT_URL``, default the local Mosquitto); fail loudly if absent."""
    url = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")
    broker = BrokerURL.parse(url)
    try:
        socket.create_connection((broker.host, broker.port), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"no MQTT broker at {url}: start Mosquitto ({exc})")
    return url


@pytest.fixture
def device_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass
class Observer:
    """A platform-side client that records everything under one device's topics."""

    client: mqtt.Client
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def of(self, device_id: str, kind: topics.Kind) -> list[mqtt.MQTTMessage]:
        wanted = topics.topic(device_id, kind)
        with self.cond:
            return [m for m in self.messages if m.topic == wanted]

    def wait_for(
        self,
        device_id: str,
        kind: topics.Kind,
        predicate: Callable[[dict], bool] = lambda payload: True,
        timeout_s: float = 10.0,
    ) -> dict:
        """The first JSON payload of ``kind`` satisfying ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for m in self.of(device_id, kind):
                    if m.payload and predicate(payload := json.loads(m.payload)):
                        return payload
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [m.payload[:200] for m in self.of(device_id, kind)]
                    raise AssertionError(
                        f"no matching {kind.value} message in {timeout_s}s: {seen}"
                    )
                self.cond.wait(left)

    def wait_count(
        self, device_id: str, kind: topics.Kind, n: int, timeout_s: float = 10.0
    ) -> list[mqtt.MQTTMessage]:
        """Wait until at least ``n`` messages of ``kind`` arrived; return them all."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while len(found := self.of(device_id, kind)) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(found)} of {n} {kind.value} messages in {timeout_s}s"
                    )
                self.cond.wait(left)
        return found

    def publish_json(self, device_id: str, kind: topics.Kind, payload: dict) -> None:
        info = self.client.publish(
            topics.topic(device_id, kind), json.dumps(payload), qos=1, retain=True
        )
        info.wait_for_publish(5)


def connect_observer(broker_url: str, device_id: str) -> Observer:
    broker = BrokerURL.parse(broker_url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"obs-{uuid.uuid4().hex[:10]}",
        protocol=mqtt.MQTTv311,
    )
    broker.configure(client)
    observer = Observer(client)
    client.on_message = observer.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(broker.host, broker.port)
    client.subscribe(f"{topics.ROOT}/{device_id}/#", qos=1)
    client.loop_start()
    assert subscribed.wait(5), "observer could not subscribe"
    return observer


def clear_retained(observer: Observer, device_id: str) -> None:
    """Leave no retained state behind on the shared broker."""
    for kind in (topics.Kind.STATUS, topics.Kind.DESIRED, topics.Kind.REPORTED):
        observer.client.publish(
            topics.topic(device_id, kind), b"", qos=1, retain=True
        ).wait_for_publish(5)


@pytest.fixture
def observer(broker_url: str, device_id: str) -> Iterator[Observer]:
    obs = connect_observer(broker_url, device_id)
    yield obs
    clear_retained(obs, device_id)
    obs.client.disconnect()
    obs.client.loop_stop()


@pytest.fixture(scope="session")
def codec():
    """The real shared codec, loaded once for the session (imports torch)."""
    from devices.fleet import load_codec

    return load_codec()
