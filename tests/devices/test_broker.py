"""The embedded amqtt broker of the zero-service demo, driven by paho clients (MQTT 3.1.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.broker import EmbeddedBroker
from devices.camera import Camera
from devices.scenes import SyntheticScene
from protocol import topics
from tests.devices.conftest import connect_observer
from tests.devices.packets import SizedPacketEncoder

K = topics.Kind


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=0) as broker:
        yield broker


def test_camera_session_on_the_embedded_broker(embedded: EmbeddedBroker, device_id: str) -> None:
    other = f"{device_id}-other"
    observer = connect_observer(embedded.url, device_id)
    observer.publish_json(device_id, K.DESIRED, {"version": 7, "tier": 2})
    neighbour = connect_observer(embedded.url, other)  # someone subscribed to other topics
    neighbour.publish_json(other, K.DESIRED, {"version": 1, "tier": 12})
    camera = Camera(
        device_id, embedded.url, protocol="3.1.1", encoder=SizedPacketEncoder(50), heartbeat_s=60
    )
    camera.start()
    try:
        assert camera.wait_online(10)
        observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "online")
        assert observer.wait_for(device_id, K.REPORTED)["tier"] == 2
        frame = SyntheticScene("barnyard", (32, 32)).next_frame()
        assert [camera.send_frame(frame) for _ in range(3)] == ["sent"] * 3
        assert len(observer.wait_count(device_id, K.FRAME, 3)) == 3
        # only this device's retained desired state reached it (amqtt replays too much)
        assert camera.settings.version == 7
    finally:
        camera.kill()  # no DISCONNECT: amqtt must publish the retained Will
    will = observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "offline")
    assert will["reason"] == "connection-lost"
    late = connect_observer(embedded.url, device_id)
    assert late.wait_for(device_id, K.STATUS)["state"] == "offline"
    assert late.of(other, K.DESIRED) == []  # amqtt 0.12.1 alone would replay it here
    for client in (observer.client, late.client, neighbour.client):
        client.disconnect()
        client.loop_stop()


def test_amqtt_limits_that_docs_mqtt_md_states(embedded: EmbeddedBroker, device_id: str) -> None:
    """If these start failing, amqtt grew MQTT 5 or shared subscriptions: update the docs."""
    v5_connected = threading.Event()
    v5 = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{device_id}-v5", protocol=mqtt.MQTTv5)
    v5.on_connect = lambda c, u, f, rc, p: rc.is_failure or v5_connected.set()
    v5.connect_async("127.0.0.1", embedded.port)
    v5.loop_start()

    share_filter = topics.subscription(K.FRAME, device_id, share_group=topics.INGEST_SHARE_GROUP)
    shared = connect_observer(embedded.url, device_id)
    shared.client.subscribe(share_filter, qos=1)
    publisher = connect_observer(embedded.url, device_id)
    time.sleep(0.3)
    publisher.client.publish(topics.topic(device_id, K.FRAME), b"x", qos=1).wait_for_publish(5)
    assert len(publisher.wait_count(device_id, K.FRAME, 1)) == 1  # the plain filter matches
    try:
        assert not v5_connected.wait(1.5), "amqtt accepted an MQTT 5 CONNECT"
        assert len(shared.of(device_id, K.FRAME)) == 1, "amqtt delivered via $share/"
    finally:
        v5.loop_stop()
        for obs in (shared, publisher):
            obs.client.disconnect()
            obs.client.loop_stop()


def test_the_subscription_table_may_change_while_a_broadcast_walks_it():
    """amqtt walks its subscription table across awaits; a client subscribing meanwhile
    once ended that broadcast ("dictionary changed size during iteration")."""
    from devices.broker import _SnapshotDict

    table = _SnapshotDict({"a/#": [], "b/#": []})
    for key, _ in table.items():
        table[key + "/x"] = []  # a subscription arrives mid-walk
    for key in table:
        if key.endswith("/x"):
            del table[key]  # and leaves again
    assert sorted(table) == ["a/#", "b/#"]
