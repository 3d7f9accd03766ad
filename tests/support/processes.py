"""Real processes for end-to-end tests: ``manage.py ingest`` and a ``celery worker``.

They run against the test database that pytest-django created (so tests using them need
``transactional_db``), the real Redis (database 15) and the real Mosquitto.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    """A child process whose combined output goes to a log file we can wait on."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(
            f"{self.name} did not print {text!r} in {timeout_s}s:\n{self.output()[-4000:]}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def camera_args(device_id: str, broker_url: str, *options: str) -> list[str]:
    """The command line of one simulated camera (``python -m devices.camera``) at 224×224."""
    return [
        sys.executable, "-m", "devices.camera", "--device-id", device_id,
        "--broker", broker_url, "--size", "224x224", *options,
    ]  # fmt: skip


def test_database_url() -> str:
    """The URL of the database pytest-django set up, for child processes."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    auth = f"{user}:{db['PASSWORD']}" if db.get("PASSWORD") else user
    return (
        f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    )


@pytest.fixture
def service_env(transactional_db) -> dict[str, str]:
    """Environment for child processes: same settings and services as this test."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="strata.settings.test",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        MQTT_URL=settings.MQTT_URL,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start child processes that are stopped (SIGTERM, then SIGKILL) after the test."""
    procs: list[Proc] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> Proc:
        log_path = tmp_path / f"{name}.log"
        log = log_path.open("wb")
        popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log_path)
        procs.append(proc)
        return proc

    yield start
    for proc in reversed(procs):
        proc.stop()


def celery_key(name: str) -> str:
    """The Redis key of a Celery queue of this test run (runs have their own key prefix)."""
    from django.conf import settings

    return settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + name


@pytest.fixture
def clean_redis() -> None:
    """Empty Celery queues, so that no task of an earlier test reaches this test's worker."""
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=celery_key("*")))
    if keys:
        client.delete(*keys)


@pytest.fixture
def ingest_process(service_env, spawn, clean_redis) -> Proc:
    proc = spawn(
        "ingest",
        [
            sys.executable,
            "manage.py",
            "ingest",
            "--client-id",
            f"strata-ingest-test-{os.getpid()}",
            # A group of its own: another ingest on the same broker must not take our frames.
            "--session-expiry",
            "120",
            "--share-group",
            f"strata-test-{os.getpid()}",
        ],
        service_env,
    )
    proc.wait_for("connected to", timeout_s=60)
    return proc


@pytest.fixture
def decoder_worker_process(service_env, spawn, clean_redis) -> Proc:
    from decoder_worker.celery import worker_command

    proc = spawn("celery", worker_command(name=f"test-{os.getpid()}@%h"), service_env)
    proc.wait_for("ready.", timeout_s=90)
    return proc


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_platform(spawn: Callable[..., Proc], env: dict[str, str], name: str = "daphne") -> str:
    """Start daphne serving the platform (HTTP and WebSockets) on a free port with ``env``;
    returns its base URL once it listens."""
    port = free_port()
    env = {k: v for k, v in env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    proc = spawn(name, [*args, "strata.asgi:application"], env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.popen.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}"
        time.sleep(0.2)
    raise AssertionError(f"daphne did not listen on {port}:\n{proc.output()[-3000:]}")


@pytest.fixture
def daphne_server(service_env, spawn) -> str:
    """daphne on this test's database, Redis and Mosquitto; returns its base URL."""
    return serve_platform(spawn, service_env)
