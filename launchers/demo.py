"""``python -m launchers.demo``: the whole platform and a simulated fleet in one process.

On the embedded default (no ``MQTT_URL``/``REDIS_URL``) it starts an embedded MQTT broker,
runs ingest in a thread, runs Celery tasks in-process and serves the dashboard with daphne.
With ``MQTT_URL`` it uses that broker; with ``REDIS_URL`` it starts a real Celery worker.
It migrates the database first, so it runs from an empty one.

It is quiet: warnings and errors only, each once, and the banner (address and logins) is
the last thing it prints at start-up; ``--verbose`` (or ``LOG_LEVEL=INFO``/``DEBUG``) shows
the routine logs. When it cannot start (port taken, database, Redis or broker unreachable)
it says why in one line and exits with status 1; Ctrl-C or SIGTERM ends it within seconds.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.dev")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the INT8 encoder's runtime chatter

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils.log import configure_logging  # noqa: E402

import decoder_worker.tasks  # noqa: E402, F401  (in-process decoding on the embedded default)
from access.services import assign, unlock  # noqa: E402
from archive.decoding import warm_decoder  # noqa: E402
from control.services import run_controller  # noqa: E402
from decoder_worker.celery import host_workers  # noqa: E402
from devices.broker import Account, EmbeddedBroker, free_port  # noqa: E402
from devices.camera import add_key_interval_argument  # noqa: E402
from devices.fleet import Fleet  # noqa: E402
from fleet.credentials import issue_credentials  # noqa: E402
from fleet.services import publisher  # noqa: E402
from ingest.consumer import IngestConsumer  # noqa: E402
from launchers.dashboard import (  # noqa: E402
    CannotStart,
    check_database,
    check_mqtt,
    check_port,
    check_redis,
    default_port,
    serve,
)
from protocol.broker import BrokerURL  # noqa: E402

DEMO_PASSWORD = "strata-demo"
DEMO_CAMERAS = [  # (device id, camera name, site, scene of devices.scenes it looks at)
    ("demo-farm-1", "Paddock gate", "North farm", "paddock"),
    ("demo-yard-2", "Barn yard", "North farm", "barnyard"),
    ("demo-depot-3", "Front entrance", "Depot", "entrance"),
    ("demo-depot-4", "Car park", "Depot", "carpark"),  # --cameras 4: two cores run three well
]
DEMO_CAMERA_COUNT = 3
DEMO_OPERATOR_SITE = "North farm"


def ensure_demo_users() -> None:
    """An admin and an operator with a known password, printed at start-up; the operator
    sees the cameras of one site only."""
    users = get_user_model()
    for username, staff in (("admin", True), ("operator", False)):
        user, _ = users.objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = staff
        user.set_password(DEMO_PASSWORD)
        user.save()
        unlock(username)  # a lockout from an earlier run does not outlive a restart
        if not staff:
            assign(user, site=DEMO_OPERATOR_SITE)


def quiet_logging(verbose: bool) -> None:
    """Warnings and errors only unless asked (``--verbose``, ``LOG_LEVEL``): per-frame and
    per-decision logs would scroll the banner away."""
    if verbose or "LOG_LEVEL" in os.environ:
        return
    # In the settings themselves: serving sets Django up again (get_asgi_application), which
    # applies settings.LOGGING once more.
    config = settings.LOGGING
    config["root"]["level"] = "WARNING"
    # Celery's in-process ("memory://") broker warns of its missing host name on every start.
    config["loggers"]["kombu.connection"] = {"level": "ERROR"}
    configure_logging(settings.LOGGING_CONFIG, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, help="dashboard port (default: PORT or 8000)")
    parser.add_argument(
        "--cameras", type=int, default=DEMO_CAMERA_COUNT, help=f"up to {len(DEMO_CAMERAS)} named"
    )
    parser.add_argument("--fps", type=float, default=1.0)
    add_key_interval_argument(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="routine logs too (or LOG_LEVEL=INFO)"
    )
    args = parser.parse_args(argv)
    quiet_logging(args.verbose)
    try:
        port = args.port if args.port is not None else default_port()
        check_port(args.host, port)
        check_database()
        if settings.REDIS_URL:
            check_redis(settings.REDIS_URL)
        if settings.MQTT_URL:
            check_mqtt(settings.MQTT_URL)
        call_command("migrate", interactive=False, verbosity=0)
        run(args.host, port, args.cameras, args.fps, args.key_interval)
    except CannotStart as exc:
        print(f"strata: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


def run(host: str, port: int, cameras: int, fps: float, key_interval: int) -> None:
    """Start every part, serve until Ctrl-C, then stop them in order."""
    ensure_demo_users()
    specs = [DEMO_CAMERAS[i % len(DEMO_CAMERAS)] for i in range(cameras)]
    device_ids = [
        spec[0] if i < len(DEMO_CAMERAS) else f"{spec[0]}-{i + 1}" for i, spec in enumerate(specs)
    ]
    # every camera gets its own login, as `manage.py provision` gives a real one
    passwords = {
        device_id: issue_credentials(device_id, name=name, site=site).password
        for device_id, (_, name, site, _) in zip(device_ids, specs, strict=True)
    }

    broker = None
    if settings.MQTT_URL:
        broker_url = ingest_url = publisher_url = settings.MQTT_URL
        mqtt5 = True
    else:
        # No anonymous clients: the cameras, ingest and the publisher each log in with their
        # own account and rights (the same rules as deploy/mosquitto).
        ingest_password, publisher_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        accounts = {d: Account.camera(d, pw) for d, pw in passwords.items()}
        accounts["strata-ingest"] = Account.ingest(ingest_password)
        accounts["strata-control"] = Account.publisher(publisher_password)
        broker = EmbeddedBroker("127.0.0.1", free_port(), accounts=accounts).start()
        broker_url, mqtt5 = broker.url, False  # amqtt speaks MQTT 3.1.1
        address = f"{broker.host}:{broker.port}"
        ingest_url = f"mqtt://strata-ingest:{ingest_password}@{address}"
        publisher_url = f"mqtt://strata-control:{publisher_password}@{address}"
    publisher.use(publisher_url, mqtt5=mqtt5)  # admins' changes reach the cameras here

    # With Redis: a decode worker reserved for live views beside one for the archive.
    workers = [
        subprocess.Popen(w.args, cwd=Path(settings.PROJECT_DIR), env=os.environ | w.env)
        for w in (host_workers("demo", loglevel="WARNING") if settings.REDIS_URL else [])
    ]

    if not workers:
        # Decoding runs in this process: load the decoder before frames arrive, or the first
        # batch waits seconds on it, past the embedded broker's 5 s PUBACK timeout.
        warm_decoder()
    consumer = IngestConsumer(
        BrokerURL.parse(ingest_url), client_id="strata-demo-ingest", mqtt5=mqtt5
    )
    ingest_thread = consumer.start()
    fleet = Fleet(
        device_ids,
        broker_url,
        fps=fps,
        source=[f"synthetic:{scene}" for *_, scene in specs],  # at 320x240, as a CCTV camera
        mqtt="5" if mqtt5 else "3.1.1",
        credentials=lambda device_id: (device_id, passwords[device_id]),
        key_interval=key_interval,
    )
    fleet.start()

    stop_control = threading.Event()
    threading.Thread(
        target=run_controller, args=(None, 5.0, stop_control), name="control", daemon=True
    ).start()

    def announce() -> None:
        """Printed once daphne listens: a launcher may connect as soon as it reads it."""
        print(
            f"\nStrata demo is up.\n"
            f"  Dashboard: http://{host}:{port}/\n"
            f"  Sign in:   admin / {DEMO_PASSWORD}   (or operator / {DEMO_PASSWORD}: {DEMO_OPERATOR_SITE} only)\n"
            f"  MQTT:      {broker_url}  ({len(device_ids)} simulated cameras at {fps:g} fps)\n"
            f"  Database:  {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
            f"   Celery: {'live and archive workers on Redis' if workers else 'in-process'}\n"
            f"Press Ctrl-C to stop.\n",
            flush=True,
        )

    def stop_producers() -> None:
        """Stop what makes frames and live events while the server's loop still runs: the
        in-memory channel layer hands each live event to that loop, so an ingest writer
        stopped after it would wait for ever (and the interpreter's exit with it)."""
        if stop_control.is_set():
            return
        stop_control.set()
        fleet.stop()
        consumer.stop()
        ingest_thread.join(10)

    try:
        serve(host, port, announce, before_stop=stop_producers)
    finally:
        # Every thread that may be inside torch is stopped before the interpreter
        # finalises (a daemon thread woken during finalisation aborts the process).
        stop_producers()
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(10)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
