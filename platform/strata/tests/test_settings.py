"""Production settings must refuse to start when they are insecure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def load_prod(**env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    full.update(DJANGO_SETTINGS_MODULE="strata.settings.prod", **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
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
    result = load_prod(SECRET_KEY="k3Jq9-vLw2_Zp8Rt5yXc1Nb7Hm4Gd6Fs0Ae-QuIoP")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
