"""The README's run command: ``python -m launchers.demo`` (``make demo``) on the embedded default (SQLite, amqtt,
in-process Celery, in-memory channel layer) brings up a dashboard with live cameras."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo(tmp_path, spawn):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="strata.settings.dev",
        STRATA_VAR_DIR=str(tmp_path / "var"),
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    proc = spawn("demo", [sys.executable, "-m", "launchers.demo", "--port", str(port)], env)
    proc.wait_for("Strata demo is up", timeout_s=120)
    return proc, f"http://127.0.0.1:{port}"


def sign_in(base: str) -> tuple[urllib.request.OpenerDirector, http.cookiejar.CookieJar]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(f"{base}/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = {
        "username": "admin",
        "password": "strata-demo",
        "csrfmiddlewaretoken": token,
        "next": "/",
    }
    request = urllib.request.Request(
        f"{base}/login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": f"{base}/login/"},
    )
    opener.open(request, timeout=30).read()
    return opener, jar


def test_demo_serves_three_live_cameras(demo):
    proc, base = demo
    assert "admin / strata-demo" in proc.output()
    opener, jar = sign_in(base)

    deadline = time.monotonic() + 90
    images: list[str] = []
    while time.monotonic() < deadline:
        page = opener.open(f"{base}/", timeout=30).read().decode()
        images = re.findall(r'src="(/frames/\d+/image\?k=\d+)"', page.replace("&amp;", "&"))
        if len(images) >= 3:
            break
        time.sleep(1)
    assert len(images) == 3, f"cameras with a decoded frame: {images}\n{proc.output()[-3000:]}"
    for url in images:
        body = opener.open(base + url, timeout=30).read()
        assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"

    # Live view: the WebSocket announces new frames from the threads beside the server.
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    host = base.removeprefix("http://")
    with ws_connect(
        f"ws://{host}/ws/live/",
        additional_headers={"Cookie": cookie, "Origin": base},
        open_timeout=30,
    ) as ws:
        event = json.loads(ws.recv(timeout=30))
    assert event["type"] == "frame"
    assert event["device_id"] in {"demo-farm-1", "demo-yard-2", "demo-road-3"}
    assert opener.open(base + event["image_url"], timeout=30).status == 200

    # Without a session the live socket is refused at the handshake.
    with pytest.raises(InvalidStatus, match="403"):
        ws_connect(f"ws://{host}/ws/live/", additional_headers={"Origin": base}, open_timeout=30)
