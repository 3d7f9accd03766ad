"""An embedded pure-Python MQTT broker (amqtt) for the zero-service demo.

The demo must run on a machine with nothing but Python; production and the tests use a
real broker (Mosquitto, EMQX). amqtt speaks MQTT 3.1.1 only, so clients of this broker
must connect with MQTT 3.1.1 (``Camera(protocol="3.1.1")``, ``Fleet(mqtt="3.1.1")``) and
consumers must not rely on ``$share/`` subscriptions (see ``docs/mqtt.md``).

With ``accounts`` (what the demo passes) anonymous clients are refused, a camera's client id
must be its username, and each account publishes and subscribes only where its role allows
(``Account``): the same rules as ``deploy/mosquitto``. Without accounts the broker is open,
for tests of the broker itself only.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.plugins.topic_checking import TopicAccessControlListPlugin

from protocol import topics

log = logging.getLogger(__name__)

# amqtt supports MQTT 3.1.1 only: clients must connect with this protocol
PROTOCOL = "3.1.1"


@dataclass(frozen=True)
class Account:
    """One login of the embedded broker and what it may do (topic filters, ``+`` allowed)."""

    password: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    bind_client_id: bool = False  # a camera: its client id must be its username

    @classmethod
    def camera(cls, device_id: str, password: str) -> Account:
        """A camera: its own topics only, as ``deploy/mosquitto``'s generated ACL."""
        own = topics.Kind
        return cls(
            password,
            publish=tuple(
                topics.topic(device_id, kind)
                for kind in (own.FRAME, own.STATUS, own.TELEMETRY, own.REPORTED)
            ),
            subscribe=(topics.topic(device_id, own.DESIRED),),
            bind_client_id=True,
        )

    @classmethod
    def ingest(cls, password: str) -> Account:
        """The platform's ingest: reads what cameras send; writes desired states only to ask
        for key frames (``fleet.services.request_key_frames``), reads none."""
        kinds = (topics.Kind.FRAME, topics.Kind.STATUS, topics.Kind.TELEMETRY, topics.Kind.REPORTED)
        return cls(
            password,
            publish=(topics.subscription(topics.Kind.DESIRED),),
            subscribe=tuple(topics.subscription(kind) for kind in kinds),
        )

    @classmethod
    def publisher(cls, password: str) -> Account:
        """The platform's web and controller: the only writers of desired states (and readers
        of them, to find and repair a foreign retained one)."""
        desired = topics.subscription(topics.Kind.DESIRED)
        return cls(password, publish=(desired,), subscribe=(desired,))


class AccountsPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt authentication and topic rules from ``Account``s (one plugin, both checks)."""

    @dataclass
    class Config:
        accounts: dict[str, Account] = field(default_factory=dict)

    async def authenticate(self, *, session: Any) -> bool:
        account = self.config.accounts.get(session.username or "")
        if account is None or not hmac.compare_digest(
            (session.password or "").encode(), account.password.encode()
        ):
            return False
        return not account.bind_client_id or session.client_id == session.username

    async def topic_filtering(
        self, *, session: Any = None, topic: str | None = None, action: Action | None = None
    ) -> bool:
        if action is Action.RECEIVE:  # the subscription was checked when it was made
            return True
        account = self.config.accounts.get(session.username or "") if session else None
        if account is None or not topic:
            return False
        allowed = account.publish if action is Action.PUBLISH else account.subscribe
        return any(TopicAccessControlListPlugin.topic_ac(topic, rule) for rule in allowed)


def broker_config(
    host: str,
    port: int,
    session_expiry_s: int = 3600,
    accounts: Mapping[str, Account] | None = None,
) -> dict[str, Any]:
    """amqtt's configuration: one TCP listener, no $SYS chatter; logins and topic rules from
    ``accounts`` (anonymous clients refused), or an open broker without them."""
    if accounts is None:
        plugins: dict[str, Any] = {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
        }
    else:
        plugins = {f"{__name__}.AccountsPlugin": {"accounts": dict(accounts)}}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "session_expiry_interval": session_expiry_s,
        "plugins": plugins,
    }


def _patched_broker_class() -> type:
    """amqtt's Broker with retained messages sent only to matching subscribers.

    amqtt 0.12.1 replays, to every client that connects, the retained messages matching
    *any* client's subscriptions (``Broker.client_connected`` loops over all of
    ``_subscriptions``): a camera would receive other cameras' retained state. Here a
    retained replay goes out only when the session itself holds that subscription, at
    the QoS it was granted.

    It also walks its subscription table over snapshots: amqtt iterates the table across
    ``await``s (each broadcast) while clients subscribe and leave, and "dictionary changed
    size during iteration" ended that broadcast, losing a message already acknowledged.
    """
    from amqtt.broker import Broker

    class SubscriberScopedBroker(Broker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._subscriptions = _SnapshotDict(self._subscriptions)

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            granted = [q for s, q in self._subscriptions.get(subscription[0], []) if s is session]
            if granted:
                await super()._publish_retained_messages_for_subscription(
                    (subscription[0], granted[0]), session
                )

    return SubscriberScopedBroker


class _SnapshotDict(dict):
    """A dict whose iteration walks a copy, so it may change while a walk awaits."""

    def __iter__(self):
        return iter(list(super().__iter__()))

    def keys(self):
        return list(super().keys())

    def items(self):
        return list(super().items())

    def values(self):
        return list(super().values())


class EmbeddedBroker:
    """amqtt in a daemon thread with its own asyncio loop: ``start()`` returns once it
    accepts connections, ``stop()`` shuts it down. ``url`` is what clients connect to."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        accounts: Mapping[str, Account] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.accounts = accounts
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
            self._broker = _patched_broker_class()(
                broker_config(self.host, self.port, accounts=self.accounts), loop=loop
            )
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


def accounts_from_json(path: Path) -> dict[str, Account]:
    """The CLI's accounts file: cameras by device id, and the platform's two roles."""
    spec = json.loads(path.read_text())
    accounts = {d: Account.camera(d, pw) for d, pw in spec.get("cameras", {}).items()}
    if spec.get("ingest"):
        accounts["strata-ingest"] = Account.ingest(spec["ingest"])
    if spec.get("publisher"):
        accounts["strata-control"] = Account.publisher(spec["publisher"])
    return accounts


def main(argv: list[str] | None = None) -> None:
    """``python -m devices.broker --port 1883``: run the embedded broker until Ctrl-C."""
    parser = argparse.ArgumentParser(description="Embedded MQTT 3.1.1 broker (amqtt) for demos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument(
        "--accounts",
        type=Path,
        required=True,
        help='JSON {"cameras": {device_id: password}, "ingest": password, "publisher": '
        "password}; the platform logs in as strata-ingest and strata-control",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(args.host, args.port, accounts_from_json(args.accounts)) as broker:
        print(f"MQTT broker listening on {broker.url} (MQTT {PROTOCOL}); Ctrl-C stops", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
