"""Screenshots of the dashboard's main pages for docs/img/, taken in real Chromium.

    .venv/bin/python scripts/screenshots.py            # into docs/img/
    .venv/bin/python scripts/screenshots.py --out /tmp/shots --warmup 90

Starts the demo (``python -m launchers.demo``: embedded broker, SQLite in a temporary folder,
the three demo cameras) on a free port, waits until every camera shows a live frame and the
archive has some to page through, signs in as the demo admin and saves each page as a JPEG
(1280x800, the browser tests' Chromium and helpers), then stops the demo. Regenerate the
pictures with this script after a change to the pages, never by hand.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: tests.browser.helpers from the checkout

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, sign_in  # noqa: E402

DEMO_PASSWORD = "strata-demo"  # launchers.demo's, printed in its banner
CAMERAS = ("demo-farm-1", "demo-yard-2", "demo-depot-3")  # launchers.demo.DEMO_CAMERAS
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Demo:
    """The demo in its own process and var folder; its output kept for a failure's report."""

    def __init__(self, var_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "LOG_LEVEL", "PORT")
        }
        env.update(
            STRATA_VAR_DIR=str(var_dir),
            STRATA_DEVICE_STATE=str(var_dir / "devices"),  # frame numbers from 0
            PYTHONUNBUFFERED="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "launchers.demo", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._up = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "Strata demo is up" in line:
                self._up.set()

    def wait_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._up.wait(0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.lines[-30:])
                raise SystemExit(f"screenshots: the demo did not come up:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up waiting for {what} after {timeout_s:g} s")
        time.sleep(1)


def shoot(page, out: Path, name: str, *, full_page: bool = False) -> None:
    path = out / f"{name}.jpg"
    page.screenshot(path=str(path), type="jpeg", quality=75, full_page=full_page)
    say(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
        f"({path.stat().st_size // 1024} KB)")  # fmt: skip


def save_export_frame(video: bytes, path: Path) -> None:
    """The export's last frame, with its burned-in camera and time; says how long it plays."""
    import io

    import av

    with av.open(io.BytesIO(video)) as container:
        frames = list(container.decode(video=0))
        duration_s = (container.duration or 0) / 1e6
    frames[-1].to_image().save(path, quality=85)
    span_s = frames[-1].time - frames[0].time
    say(f"export: {len(frames)} frames over {span_s:.1f} s of capture, plays {duration_s:.1f} s")
    say(f"saved {path.name} ({path.stat().st_size // 1024} KB)")


def take(base: str, out: Path, warmup_s: float) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        context.set_default_timeout(60_000)
        page = context.new_page()

        page.goto(f"{base}/login/")
        shoot(page, out, "sign-in")
        sign_in(page, base, "admin", DEMO_PASSWORD)

        for device_id in CAMERAS:  # a live frame from each camera, as its page shows it
            page.goto(f"{base}/devices/{device_id}/")
            say(f"waiting for a live frame from {device_id}")
            page.wait_for_function(
                "() => { const i = document.querySelector('img.live-frame');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=180_000,
            )
        say(f"letting the archive fill for {warmup_s:g} s")
        time.sleep(warmup_s)

        page.goto(f"{base}/")
        page.wait_for_load_state("networkidle")
        shoot(page, out, "fleet-overview", full_page=True)  # every site and camera

        for device_id, name in (("demo-farm-1", "camera-paddock-gate"),
                                ("demo-depot-3", "camera-front-entrance")):  # fmt: skip
            page.goto(f"{base}/devices/{device_id}/")
            page.wait_for_function(
                "() => { const i = document.querySelector('img.live-frame');"
                " return i && i.complete && i.naturalWidth > 0; }"
            )
            shoot(page, out, name)

        page.goto(f"{base}/devices/demo-yard-2/archive/")
        page.wait_for_load_state("networkidle")
        shoot(page, out, "archive")

        # one archived frame at k=4 beside k=3 of its 12 layers (the README's picture)
        page.locator("a[href*='/frames/']").first.click()
        page.wait_for_url("**/frames/*/")
        frame_url = page.url.split("?")[0]
        page.goto(f"{frame_url}?k=4&compare_k=3")
        page.click("#compare")
        page.wait_for_load_state("networkidle")
        wait_for(
            lambda: page.evaluate(
                "() => [...document.querySelectorAll('.panes img')]"
                ".filter(i => i.offsetParent !== null)"
                ".every(i => i.complete && i.naturalWidth > 0)"
            ),
            "the compared images",
            60,
        )
        shoot(page, out, "dashboard-compare")

        page.goto(f"{base}/devices/demo-yard-2/archive/")
        page.click(".export-form button")  # an MP4 of the hour, built on the archive queue
        page.wait_for_url(f"{base}/exports/")
        wait_for(
            lambda: page.reload() is not None and page.locator("td.state-done").count() > 0,
            "the export",
            240,
        )
        shoot(page, out, "exports")
        video = context.request.get(
            base + page.locator("a[href$='/video']").first.get_attribute("href")
        ).body()
        save_export_frame(video, out / "export-frame.jpg")

        for path, name in (("/manage/", "admin-people"), ("/manage/audit/", "admin-audit")):
            page.goto(f"{base}{path}")
            page.wait_for_load_state("networkidle")
            shoot(page, out, name)
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds of archive to collect first"
    )
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"screenshots: {CHROMIUM} is missing (scripts/ensure_browser.sh)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="strata-screenshots-") as tmp:
        say("starting the demo")
        demo = Demo(Path(tmp) / "var")
        try:
            demo.wait_up(240)
            say(f"demo up at {demo.base}")
            take(demo.base, args.out.resolve(), args.warmup)
        finally:
            demo.stop()
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
