"""What the browser tests do the same way: sign in, take screenshots, see reported state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "browser-test-pw"
SCREENSHOTS = Path(os.environ.get("STRATA_SCREENSHOTS", "/tmp/strata-screenshots"))


def sign_in(page, base: str, username: str) -> None:
    """Through the sign-in form, as a person would."""
    page.goto(f"{base}/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class ReportedBridge:
    """Stands in for ingest until it stores ``reported`` messages: subscribes to one
    device's retained reported state and records it through ``fleet.services``."""

    device_id: str
    url: str

    def __enter__(self) -> ReportedBridge:
        import json

        import paho.mqtt.client as mqtt
        from django.db import connection

        from devices import topics
        from devices.mqtt_url import BrokerURL
        from fleet.services import record_reported

        def on_message(client, userdata, message) -> None:
            try:
                record_reported(self.device_id, json.loads(message.payload))
            finally:
                connection.close()  # this is paho's thread: leave no connection behind

        broker = BrokerURL.parse(self.url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        topic = topics.topic(self.device_id, topics.Kind.REPORTED)
        self.client.on_connect = lambda c, *args: c.subscribe(topic, 1)
        self.client.on_message = on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        return self

    def __exit__(self, *exc) -> None:
        self.client.disconnect()
        self.client.loop_stop()
