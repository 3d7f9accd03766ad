"""What the browser tests (and ``scripts/screenshots.py``) do the same way: start Debian's
Chromium, sign in, take screenshots."""

from __future__ import annotations

import os
from pathlib import Path

PASSWORD = "browser-test-pw"
SCREENSHOTS = Path(os.environ.get("STRATA_SCREENSHOTS", "/tmp/strata-screenshots"))
CHROMIUM = Path(os.environ.get("STRATA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def sign_in(page, base: str, username: str, password: str = PASSWORD) -> None:
    """Through the sign-in form, as a person would."""
    page.goto(f"{base}/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
