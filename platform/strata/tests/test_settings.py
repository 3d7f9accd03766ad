"""Production settings must refuse to start when they are insecure, send the security headers,
and no command a user is told to run may run with DEBUG on (issue 13, finding 8)."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from strata.settings.placeholders import KNOWN_PLACEHOLDER_KEYS, secret_key_problem
from tests.support.processes import test_database_url as child_database_url

ROOT = Path(__file__).resolve().parents[3]
REAL_KEY = "k3Jq9-vLw2_Zp8Rt5yXc1Nb7Hm4Gd6Fs0Ae-QuIoP"


def load_prod(code: str = "print('started')", **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    full.update(DJANGO_SETTINGS_MODULE="strata.settings.prod", **env)
    return subprocess.run(
        [sys.executable, "-c", f"import django\ndjango.setup()\n{code}"],
        cwd=ROOT / "platform",
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": "x" * 50 + "abcdefghijkl", "DEBUG": "1"}, "DEBUG must be off"),
        ({}, "SECRET_KEY is missing or insecure"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is missing or insecure"),
    ],
)
def test_production_refuses_insecure_settings(env, message):
    result = load_prod(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_starts_with_a_real_secret():
    result = load_prod(SECRET_KEY=REAL_KEY)
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


# --- placeholders: every SECRET_KEY value written anywhere in the repository --------------

SECRET_KEY_VALUE = re.compile(
    r"""SECRET_KEY["']?\s*(?:[:=]|,)\s*["']?([^\s"'$}{)(]+)"""  # KEY: v, KEY=v, ("KEY", "v")
)


def repository_secret_keys() -> set[str]:
    """Every literal SECRET_KEY value in the settings, deploy files (compose, k8s, Docker)
    and docs: anyone can read them, so none may start production."""
    files = [
        *(ROOT / "platform/strata/settings").glob("*.py"),
        *(p for p in (ROOT / "deploy").rglob("*") if p.is_file()),
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *ROOT.glob(".env*"),
        *ROOT.glob("Makefile"),
    ]
    found = set()
    for path in files:
        for value in SECRET_KEY_VALUE.findall(path.read_text(errors="replace")):
            if len(value) >= 8 and not value.startswith(("os.", "env", "secret_key")):
                found.add(value)
    return found


def test_the_scan_finds_the_placeholders_we_know_of():
    found = repository_secret_keys()
    assert "CHANGE-ME-to-a-random-string-of-at-least-40-characters" in found  # deploy/k8s
    assert "insecure-dev-key-change-me" in found  # settings/base.py, the development default


@pytest.mark.parametrize("key", sorted(repository_secret_keys() | KNOWN_PLACEHOLDER_KEYS))
def test_every_key_in_the_repository_is_refused(key):
    assert secret_key_problem(key) is not None


def test_production_refuses_the_kubernetes_placeholder():
    """The placeholder of deploy/k8s is 54 characters of 30 different ones: long and varied
    enough for a length check, and public."""
    result = load_prod(SECRET_KEY="CHANGE-ME-to-a-random-string-of-at-least-40-characters")
    assert result.returncode != 0
    assert "SECRET_KEY is missing or insecure" in result.stderr
    assert "placeholder" in result.stderr


@pytest.mark.parametrize(
    "key",
    [
        "django-insecure-" + "a1b2c3d4e5f6g7h8i9j0" * 2,  # what startproject writes
        "your-secret-key-here-" + "0123456789abcdefghijklmnop",
        "x" * 60,
    ],
)
def test_common_placeholder_shapes_are_refused(key):
    assert secret_key_problem(key) is not None


def test_a_random_key_is_accepted():
    assert secret_key_problem(REAL_KEY) is None


# --- production headers --------------------------------------------------------------------

HEADERS = """
import json
from django.test import Client
c = Client()
plain = c.get("/login/")
tls = c.get("/no-such-page/", headers={"X-Forwarded-Proto": "https"})
print(json.dumps({"plain": [plain.status_code, plain.headers.get("Location")],
                  "tls": [tls.status_code, dict(tls.headers)]}))
"""


def test_production_redirects_to_https_and_sends_security_headers():
    result = load_prod(
        HEADERS,
        SECRET_KEY=REAL_KEY,
        ALLOWED_HOSTS="testserver",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["plain"] == [301, "https://testserver/login/"]
    status, headers = seen["tls"]
    assert status == 404  # a page that renders no static file: no manifest needed here
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


# --- DEBUG: off unless a user sets DEBUG=1 -------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_dashboard_command_runs_without_debug(spawn, transactional_db):
    """``python -m launchers.dashboard`` (daphne) as the README says, without DEBUG set: an
    unknown page is a bare 404, not Django's debug page (which lists settings and URLs)."""
    readme = (ROOT / "README.md").read_text()
    assert ".venv/bin/python -m launchers.dashboard &" in readme
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_SETTINGS_MODULE")}
    port = free_port()
    env.update(PORT=str(port), DATABASE_URL=child_database_url())  # it checks the database
    proc = spawn("dashboard", [sys.executable, "-m", "launchers.dashboard"], env)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/no-such-page/", timeout=5)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read().decode()
            break
        except OSError:
            assert proc.popen.poll() is None, proc.output()
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.3)
    assert status == 404
    assert "URLconf" not in body and "DEBUG = True" not in body


def test_development_settings_turn_debug_on_only_when_asked():
    code = "from django.conf import settings; print(settings.DEBUG)"
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_SETTINGS_MODULE")}
    for debug, expected in ((None, "False"), ("1", "True"), ("0", "False")):
        run_env = dict(env, DJANGO_SETTINGS_MODULE="strata.settings.dev")
        if debug is not None:
            run_env["DEBUG"] = debug
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.strip() == expected, result.stderr
