"""``python -m launchers.dashboard [--port N]``: the dashboard (HTTP and live WebSockets) alone.

daphne itself logs a busy port as one CRITICAL line among others and exits 0, and starts
happily without a database. This serves the same ASGI application with daphne, but checks
what it needs first and ends with status 1 and one line (``strata: cannot start: …``) when
it cannot start. ``serve`` is also how the demo serves, with its own orderly stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.dev")

DEFAULT_PORT = 8000


class CannotStart(Exception):
    """A reason the platform cannot start, said in one line."""


def default_port() -> int:
    """``PORT`` from the environment, else 8000."""
    value = os.environ.get("PORT", "")
    try:
        return int(value) if value else DEFAULT_PORT
    except ValueError:
        raise CannotStart(f"PORT={value!r} is not a port number") from None


def check_port(host: str, port: int) -> None:
    """Fail before starting anything when another process listens on the address."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CannotStart(
                f"cannot listen on {host}:{port}: {exc.strerror} "
                f"(another process uses it? choose one with --port N or PORT=N)"
            ) from None


def check_database() -> None:
    """Connect once: an unreachable or missing database is named, not a traceback."""
    from django.db import DatabaseError, connection

    try:
        connection.ensure_connection()
    except DatabaseError as exc:
        settings = connection.settings_dict
        where = f"{settings.get('HOST') or 'localhost'}:{settings.get('PORT') or '-'}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CannotStart(
            f"cannot reach the database {settings['NAME']} ({where}): {first}"
        ) from None
    finally:
        connection.close()


def check_redis(url: str) -> None:
    """Ping Redis (Celery's broker and the live channel layer) within 5 s."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise CannotStart(f"cannot reach Redis at {safe_url(url)}: {exc}") from None


def check_mqtt(url: str) -> None:
    """Log in to the MQTT broker once within 5 s (address and credentials)."""
    import paho.mqtt.client as mqtt

    from protocol.broker import BrokerURL

    try:
        broker = BrokerURL.parse(url)
    except ValueError as exc:
        raise CannotStart(str(exc)) from None
    answered = threading.Event()
    result: list[mqtt.ReasonCode] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    broker.configure(client)

    def on_connect(_client, _userdata, _flags, reason_code, _properties) -> None:
        result.append(reason_code)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=10)
    except OSError as exc:
        raise CannotStart(
            f"cannot reach the MQTT broker at {broker}: {exc.strerror or exc}"
        ) from None
    client.loop_start()
    try:
        if not answered.wait(5):
            raise CannotStart(f"the MQTT broker at {broker} did not answer in 5 s")
        if result[0].is_failure:
            raise CannotStart(f"the MQTT broker at {broker} refused the login: {result[0]}")
    finally:
        client.disconnect()
        client.loop_stop()


def safe_url(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def serve(
    host: str,
    port: int,
    ready: Callable[[], None],
    before_stop: Callable[[], None] = lambda: None,
) -> None:
    """Serve the ASGI application with daphne until SIGINT or SIGTERM; ``ready`` once it
    listens. On the signal, ``before_stop`` runs on a thread of its own while the server's
    event loop still runs (whatever it stops may still send live events through that
    loop), and only then the server stops: nothing can wait for a loop that has ended. A
    second signal ends the process at once."""
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server  # installs Twisted's asyncio reactor: import it first
    from twisted.internet import reactor

    from strata.asgi import application

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        signal_handlers=False,
        ready_callable=ready,
    )
    stopping = threading.Event()

    def stop_in_order() -> None:
        try:
            before_stop()
        finally:
            reactor.callFromThread(server.stop)

    def on_signal(signum: int, _frame: object) -> None:
        if stopping.is_set():
            print("strata: stopped without waiting (second signal)", file=sys.stderr, flush=True)
            os._exit(1)
        stopping.set()
        threading.Thread(target=stop_in_order, name="stop", daemon=True).start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if server.abort_start:
        raise CannotStart(f"cannot listen on {host}:{port} (choose one with --port N or PORT=N)")


def main(argv: list[str] | None = None) -> int:
    import django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, help=f"default: PORT or {DEFAULT_PORT}")
    args = parser.parse_args(argv)
    try:
        port = args.port if args.port is not None else default_port()
        django.setup()
        from django.conf import settings

        check_port(args.host, port)
        check_database()
        if settings.REDIS_URL:
            check_redis(settings.REDIS_URL)

        def ready() -> None:
            print(f"Strata dashboard on http://{args.host}:{port}/", flush=True)

        serve(args.host, port, ready)
    except CannotStart as exc:
        print(f"strata: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
