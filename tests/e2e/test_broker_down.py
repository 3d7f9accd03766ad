"""With Redis unreachable, the pages that queue work say so instead of failing with 500.

daphne runs with ``REDIS_URL`` (Celery's broker and the channel layer) pointing at a port
nobody listens on; the database is the real one. Re-decoding answers 503 with the reason,
the frame page 503 with a message, and an export that could not be queued is marked failed
with the reason (never "queued" for ever) and the person is told.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta

import pytest

from archive.models import Export, Frame
from fleet.services import provision_device
from ingest.services import handle_batch
from protocol import topics
from tests.support.packets import fake_packet
from tests.support.processes import free_port, serve_platform

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNAVAILABLE = "job queue"  # what each answer names as the cause


@pytest.fixture
def platform_without_redis(service_env, spawn) -> str:
    dead = f"redis://127.0.0.1:{free_port()}/15"
    return serve_platform(spawn, {**service_env, "REDIS_URL": dead}, name="daphne-no-redis")


@pytest.fixture
def browser(platform_without_redis, admin_client):
    """A signed-in admin (session and CSRF cookies) against the platform without Redis."""
    jar = http.cookiejar.CookieJar()
    session = admin_client.cookies["sessionid"].value
    jar.set_cookie(http.cookiejar.Cookie(
        0, "sessionid", session, None, False, "127.0.0.1", False, False, "/", True,
        False, None, False, None, None, {},
    ))  # fmt: skip
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def fetch(opener, url: str, data: dict | None = None) -> tuple[int, str, float]:
    started = time.monotonic()
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    return status, text, time.monotonic() - started


@pytest.fixture
def frame():
    device = provision_device(f"nored-{uuid.uuid4().hex[:8]}")
    handle_batch([(topics.topic(device.device_id, topics.Kind.FRAME), fake_packet(seq=1))])
    return Frame.objects.get(device=device)


def test_redecode_answers_503_with_the_reason(browser, platform_without_redis, frame):
    url = f"{platform_without_redis}/frames/{frame.pk}/decode?k=3"
    status, body, seconds = fetch(browser, url)
    assert status == 503, body[:2000]
    assert UNAVAILABLE in json.loads(body)["error"]
    assert seconds < 15
    # Asked again, it tries again (the failed request is not remembered as pending).
    status, body, _ = fetch(browser, url)
    assert status == 503 and UNAVAILABLE in json.loads(body)["error"]


def test_frame_page_answers_503_with_a_message(browser, platform_without_redis, frame):
    status, body, _ = fetch(browser, f"{platform_without_redis}/frames/{frame.pk}/?k=3")
    assert status == 503, body[:2000]
    assert UNAVAILABLE in body
    assert f"/frames/{frame.pk}/latents.png" in body  # the rest of the page still shows


def test_export_that_cannot_be_queued_fails_with_the_reason(browser, platform_without_redis, frame):
    device_id = frame.device.device_id
    status, page, _ = fetch(browser, f"{platform_without_redis}/devices/{device_id}/archive/")
    assert status == 200, page[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    window = {
        "start": (frame.received_at - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "end": (frame.received_at + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "channels": "12",
        "csrfmiddlewaretoken": token,
    }
    status, page, seconds = fetch(
        browser, f"{platform_without_redis}/devices/{device_id}/exports", window
    )
    assert status == 200, page[:2000]  # redirected to the list, with the message
    assert "Export not started" in page and UNAVAILABLE in page
    assert seconds < 15
    export = Export.objects.get(device=frame.device)
    assert export.status == Export.Status.FAILED
    assert UNAVAILABLE in export.error


def test_live_socket_closes_with_try_again_later(platform_without_redis, admin_client):
    """The live view's WebSocket is accepted and closed at once, which the page retries,
    instead of failing its handshake with a 500. (1013 "try again later" when the consumer
    sees the error first; 1011 when channels' own receive loop does.)"""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    cookie = f"sessionid={admin_client.cookies['sessionid'].value}"
    url = platform_without_redis.replace("http://", "ws://") + "/ws/live/"
    with connect(url, additional_headers={"Cookie": cookie}, origin=platform_without_redis) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (1011, 1013)
