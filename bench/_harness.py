"""What the benchmarks share: a bench database on the real services, child processes,
and the one JSON line every benchmark prints last."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BENCH_ENV = {
    "DATABASE_URL": os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/strata_bench"
    ),
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "MQTT_URL": os.environ.get("BENCH_MQTT_URL", "mqtt://127.0.0.1:1883"),
    "DJANGO_SETTINGS_MODULE": "strata.settings.dev",
    "DEBUG": "0",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}


def setup_django() -> dict[str, str]:
    """Point this process at the bench services, create and migrate the bench database."""
    os.environ.update(BENCH_ENV)
    import psycopg

    admin_url = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    name = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return dict(os.environ)  # children import the editable install: no PYTHONPATH


@contextmanager
def child(args: list[str], env: dict[str, str], log_name: str) -> Iterator[subprocess.Popen]:
    log = open(f"/tmp/strata-bench-{log_name}.log", "wb")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_log(log_name: str, text: str, timeout_s: float = 60) -> None:
    path = Path(f"/tmp/strata-bench-{log_name}.log")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{log_name} did not print {text!r}: see {path}")


def machine() -> str:
    import platform as stdlib_platform

    return f"{os.cpu_count()} cores, {stdlib_platform.processor() or stdlib_platform.machine()}"


def report(figures: dict) -> None:
    """Print the figures as the last line, as one JSON object."""
    print(json.dumps(figures, sort_keys=True))


@contextmanager
def mosquitto_broker() -> Iterator[str]:
    """A private Mosquitto on a free port, queueing like our deployed broker (a subscriber
    that falls behind is queued for, not dropped), so a benchmark measures us."""
    import shutil
    import socket
    import tempfile

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = Path(tempfile.mkdtemp()) / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 0\nmessage_size_limit 262144\n"
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
