"""An embedded pure-Python MQTT broker (amqtt) for the zero-service demo.

The demo must run on a machine with nothing but Python; production and the tests use a
real broker (Mosquitto, EMQX). amqtt speaks MQTT 3.1.1 only, so clients of this broker
must connect with MQTT 3.1.1 (``Camera(protocol="3.1.1")``, ``Fleet(mqtt="3.1.1")``) and
consumers must not rely on ``$share/`` subscriptions (see ``docs/mqtt.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import threading
from typing import Any

log = logging.getLogger(__name__)

# amqtt supports MQTT 3.1.1 only: clients must connect with this protocol
PROTOCOL = "3.1.1"


def broker_config(host: str, port: int, session_expiry_s: int = 3600) -> dict[str, Any]:
    """amqtt's configuration: one TCP listener, anonymous clients, no $SYS chatter."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "session_expiry_interval": session_expiry_s,
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _patched_broker_class() -> type:
    """amqtt's Broker with retained messages sent only to matching subscribers.

    amqtt 0.12.1 replays, to every client that connects, the retained messages matching
    *any* client's subscriptions (``Broker.client_connected`` loops over all of
    ``_subscriptions``): a camera would receive other cameras' retained state. Here a
    retained replay goes out only when the session itself holds that subscription, at
    the QoS it was granted.
    """
    from amqtt.broker import Broker

    class SubscriberScopedBroker(Broker):
        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            granted = [q for s, q in self._subscriptions.get(subscription[0], []) if s is session]
            if granted:
                await super()._publish_retained_messages_for_subscription(
                    (subscription[0], granted[0]), session
                )

    return SubscriberScopedBroker


class EmbeddedBroker:
    """amqtt in a daemon thread with its own asyncio loop: ``start()`` returns once it
    accepts connections, ``stop()`` shuts it down. ``url`` is what clients connect to."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        if self._thread is not None:
            return self
        if self.port == 0:
            self.port = free_port(self.host)
        for chatty in ("amqtt", "transitions"):  # INFO per packet and state change otherwise
            if logging.getLogger(chatty).level == logging.NOTSET:
                logging.getLogger(chatty).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._serve, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"embedded MQTT broker did not start on {self.url}")
        if self._error is not None:
            raise RuntimeError(f"embedded MQTT broker failed on {self.url}") from self._error
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s", self.url)
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._broker = _patched_broker_class()(broker_config(self.host, self.port), loop=loop)
            loop.run_until_complete(self._broker.start())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._thread is None or self._loop is None or self._loop.is_closed():
            return
        loop = self._loop

        async def shutdown() -> None:
            try:
                await asyncio.wait_for(self._broker.shutdown(), timeout_s)
            finally:
                loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(timeout_s + 1)
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests and throwaway brokers)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    """``python -m devices.broker --port 1883``: run the embedded broker until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Embedded MQTT 3.1.1 broker (amqtt) for demos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(args.host, args.port) as broker:
        print(f"MQTT broker listening on {broker.url} (MQTT {PROTOCOL}); Ctrl-C stops", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
