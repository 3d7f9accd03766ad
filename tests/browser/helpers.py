"""What the browser tests do the same way: sign in, take screenshots."""

from __future__ import annotations

import os
from pathlib import Path

PASSWORD = "browser-test-pw"
SCREENSHOTS = Path(os.environ.get("STRATA_SCREENSHOTS", "/tmp/strata-screenshots"))


def sign_in(page, base: str, username: str) -> None:
    """Through the sign-in form, as a person would."""
    page.goto(f"{base}/login/")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/")


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
