"""Browser tests: Debian's Chromium, headless, driven by Playwright, against daphne serving
the platform (HTTP and WebSockets) on the test database and the real Redis and Mosquitto.

``make test`` installs Chromium (``scripts/ensure_browser.sh``); where it is missing these
tests are skipped, never downloaded by Playwright.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

import pytest

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
TABLET = {"width": 1024, "height": 768}  # the field tablet, landscape

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    """One Chromium per module. Playwright's sync API keeps an event loop on this thread
    while it runs, so Django's async-safety check is lifted for that time only (the ORM
    calls the tests make between browser steps are ordinary blocking calls)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make test` (scripts/ensure_browser.sh)")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=TABLET, device_scale_factor=1)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def web(service_env, spawn) -> str:
    """daphne serving the platform on a free port; returns its base URL."""
    port = free_port()
    env = {k: v for k, v in service_env.items() if k != ASYNC_UNSAFE}  # daphne keeps its checks
    proc = spawn(
        "daphne",
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "strata.asgi:application",
        ],
        env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"http://127.0.0.1:{port}"
        if proc.popen.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"daphne did not listen on {port}:\n{proc.output()[-3000:]}")


@pytest.fixture
def make_user(transactional_db) -> Callable[..., object]:
    from django.contrib.auth import get_user_model

    def make(username: str, *, staff: bool = False):
        return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=staff)

    return make
