"""Probes: /healthz answers without the database; /readyz answers 503 naming the part that
is down, so an orchestrator stops sending users to the process (docs/operations.md)."""

import socket

import pytest


@pytest.mark.django_db
def test_healthz_and_readyz_answer_without_a_login(client):
    live = client.get("/healthz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert "no-cache" in ready.headers["Cache-Control"]


@pytest.mark.django_db
def test_readyz_names_redis_when_it_does_not_answer(client, settings):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "down": ["redis"]}
    assert str(port) not in ready.content.decode()  # details go to the log, not to anyone


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
