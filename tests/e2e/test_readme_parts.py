"""README "Running the parts separately", run as written: the test reads the README's code
block (so the two cannot drift) and runs every line with bash, in order, from an empty
database to a decoded frame on the dashboard and a re-decode answered by the worker.

What the test changes, and only that: the values the block's ``export`` line sets (a fresh
PostgreSQL database, a private Redis and Mosquitto, a free port, so that nothing else on this
machine shares its queues, topics or port); the database name in the ``createdb`` line,
which must be the one the README's ``DATABASE_URL`` names; and the working directory, a
temporary folder that links ``.venv`` and ``manage.py`` from the repository (so
``cameras.jsonl`` does not land in the checkout). Lines ending in ``&`` run in the
background and are stopped at the end.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SECTION = "## Running the parts separately"


def readme_commands() -> list[str]:
    """The lines of the section's first ``sh`` block, continuation lines joined."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    block = section[section.index("```sh\n") + 6 :]
    block = block[: block.index("```")]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def without_comment(line: str) -> str:
    """The command without its trailing comment (`` # …``, as the README writes them)."""
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def wait_listening(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert proc.poll() is None, f"{what} exited"
        assert time.monotonic() < deadline, f"{what} did not listen on {port}"
        time.sleep(0.1)


@pytest.fixture
def private_services(tmp_path: Path, spawn) -> dict[str, str]:
    """A Redis and a Mosquitto of this test only (anonymous, as the README's broker)."""
    redis_port, mqtt_port = free_port(), free_port()
    redis = spawn(
        "redis",
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        dict(os.environ),
    )
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n")
    mosquitto = spawn("mosquitto", ["mosquitto", "-c", str(conf)], dict(os.environ))
    wait_listening(redis_port, redis.popen, "redis-server")
    wait_listening(mqtt_port, mosquitto.popen, "mosquitto")
    return {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
    }


@pytest.fixture
def fresh_database() -> str:
    """The name of a database that does not exist yet (the README's createdb makes it)."""
    name = f"strata_readme_{os.getpid()}_{int(time.time())}"
    yield name
    with psycopg.connect("postgres://postgres@127.0.0.1/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sign_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(f"{base}/login/", timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
    request = urllib.request.Request(
        f"{base}/login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": f"{base}/login/"},
    )
    page = opener.open(request, timeout=30)
    assert not page.url.endswith("/login/"), f"{username} could not sign in"
    return opener


def test_readme_parts_run_as_written(tmp_path, fresh_database, spawn, private_services):
    commands = readme_commands()
    export, *steps = commands
    assert export.startswith("export "), export
    readme_env = dict(item.split("=", 1) for item in shlex.split(export)[1:])
    assert set(readme_env) == {"DATABASE_URL", "REDIS_URL", "MQTT_URL", "PORT"}, readme_env
    readme_db = urllib.parse.urlsplit(readme_env["DATABASE_URL"]).path.lstrip("/")
    port = free_port()
    ours = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1/{fresh_database}",
        "PORT": str(port),
        **private_services,
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DEBUG", "LOG_LEVEL", "PYTHONPATH")
    }
    env.update(
        ours,
        PYTHONUNBUFFERED="1",
        TMPDIR=str(tmp_path),  # ingest's per-host identity lock: not another run's
        STRATA_DEVICE_STATE=str(tmp_path / "devices"),  # the simulated cameras' "flash"
        STRATA_VAR_DIR=str(tmp_path / "var"),
    )
    work = tmp_path / "checkout"
    work.mkdir()
    for name in (".venv", "manage.py"):
        (work / name).symlink_to(ROOT / name)

    background = []
    password = username = None
    for step in steps:
        command = without_comment(step)
        if command.startswith("createdb "):
            assert command.split()[-1] == readme_db, "createdb makes another database"
            command = command.rsplit(" ", 1)[0] + " " + fresh_database
        if "createsuperuser" in command:
            password = re.search(r"DJANGO_SUPERUSER_PASSWORD=(\S+)", command).group(1)
            username = re.search(r"--username (\S+)", command).group(1)
        if command.endswith("&"):
            name = command.split()[0].rsplit("/", 1)[-1] + f"-{len(background)}"
            script = f"cd {shlex.quote(str(work))} && exec {command[:-1].strip()}"
            background.append(spawn(name, ["bash", "-c", script], env))
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert username and password, "the README creates no dashboard user"
    assert len((work / "cameras.jsonl").read_text().splitlines()) == 3

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 150
    while True:
        for proc in background:
            assert proc.popen.poll() is None, f"{proc.name} exited:\n{proc.output()[-3000:]}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "the dashboard did not listen"
        time.sleep(0.5)
    opener = sign_in(base, username, password)

    # A frame archived with its layers, decoded by the worker (live queue), shown.
    images: list[str] = []
    while time.monotonic() < deadline and len(images) < 3:
        page = opener.open(f"{base}/", timeout=30).read().decode()
        images = re.findall(r'src="(/frames/(\d+)/image\?k=\d+[^"]*)"', page.replace("&amp;", "&"))
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.output()[-1500:]}" for p in background)
    assert len(images) == 3, f"cameras with a decoded frame on the dashboard: {images}\n{logs}"
    url, frame_id = images[0]
    assert opener.open(base + url, timeout=30).read()[8:12] == b"WEBP"

    # The quality slider: another k of that frame, re-decoded on the archive queue.
    answer: dict = {}
    while time.monotonic() < deadline:
        reply = opener.open(f"{base}/frames/{frame_id}/decode?k=2", timeout=30)
        answer = json.loads(reply.read())
        if answer.get("ready"):
            break
        time.sleep(0.5)
    assert answer.get("ready"), f"the slider's k=2 was not decoded: {answer}\n{logs}"
    assert opener.open(base + answer["image_url"], timeout=30).status == 200

    with psycopg.connect(ours["DATABASE_URL"]) as conn:
        frames = conn.execute("SELECT count(*) FROM archive_frame").fetchone()[0]
        refused = conn.execute("SELECT reason, sum(count) FROM ingest_rejection GROUP BY reason")
        refused = dict(refused.fetchall())
    assert frames >= 3, frames
    assert not refused, (
        f"ingest refused messages (unknown_device: cameras not provisioned?): {refused}"
    )

    for proc in reversed(background):  # every part stops on SIGTERM, as kill %N sends
        proc.popen.send_signal(signal.SIGTERM)
    for proc in reversed(background):
        try:
            proc.popen.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{proc.name} ignored SIGTERM") from None


def test_fleet_without_a_camera_login_says_so_in_one_line(tmp_path):
    """A credentials file that lacks one of the cameras (provisioned too few) is one line
    and status 1, not a traceback."""
    issued = tmp_path / "cameras.jsonl"
    issued.write_text('{"device_id": "cam-000", "username": "cam-000", "password": "pw"}\n')
    run = subprocess.run(
        [".venv/bin/python", "-m", "devices.fleet", "--count", "2", "--credentials", str(issued)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr.strip() == f"fleet: cannot start: no credentials for cam-001 in {issued}"
