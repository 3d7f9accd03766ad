"""Restarting ingest the way the README and compose run it loses no frame and duplicates none.

``python manage.py ingest`` with no client id: its identity is per host and slot, so the
restarted process takes over the broker session of the one it replaces and receives what
the broker queued for it (docs/architecture.md, "Ingest"). Each test gives its ingest a slot
and a shared-subscription group of its own, as a second host would have: other test runs
and any ingest left on this broker must not take our frames.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from archive.models import Frame
from fleet.services import provision_device
from protocol import topics
from tests.support.packets import fake_packet
from tests.support.processes import Proc

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FRAMES = 400
RATE_HZ = 40.0  # ten seconds of stream: the kill and the restart both land inside it


class PacedPublisher(threading.Thread):
    """A camera-like publisher: ``n`` frames at ``rate_hz``, QoS 1, each acknowledged."""

    def __init__(self, device_id: str, n: int, rate_hz: float) -> None:
        super().__init__(name="publisher", daemon=True)
        self.device_id, self.n, self.rate_hz = device_id, n, rate_hz
        self.acknowledged = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}"
        )
        client.connect("127.0.0.1", 1883)
        client.loop_start()
        try:
            start = time.monotonic()
            topic = topics.topic(self.device_id, topics.Kind.FRAME)
            for seq in range(self.n):
                time.sleep(max(0.0, start + seq / self.rate_hz - time.monotonic()))
                info = client.publish(topic, fake_packet(seq=seq, channels=1 + seq % 12), qos=1)
                info.wait_for_publish(timeout=30)
                self.acknowledged += 1
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            client.loop_stop()
            client.disconnect()


def wait_for_frames(device, at_least: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    count = Frame.objects.filter(device=device).count()
    while count < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
        count = Frame.objects.filter(device=device).count()
    return count


@pytest.fixture
def ingest_as_documented(service_env, spawn, clean_redis):
    """Start ``python manage.py ingest`` as the README does (no client id), on this test's
    own slot and shared-subscription group; call again for the restarted process."""
    env = {**service_env, "STRATA_INGEST_SLOT": str(os.getpid())}
    group = f"restart-{uuid.uuid4().hex[:6]}"
    started: list[Proc] = []

    def start() -> Proc:
        args = [sys.executable, "manage.py", "ingest", "--share-group", group]
        proc = spawn(f"ingest-{len(started) + 1}", args, env)
        proc.wait_for("connected to", 60)
        started.append(proc)
        return proc

    return start


def restart_mid_stream(ingest_as_documented, sig: int) -> None:
    device = provision_device(f"rst-{uuid.uuid4().hex[:8]}")
    first = ingest_as_documented()
    publisher = PacedPublisher(device.device_id, FRAMES, RATE_HZ)
    publisher.start()
    archived = wait_for_frames(device, 40, 30)
    assert archived >= 40, f"ingest archived {archived} frames:\n{first.output()[-3000:]}"

    first.stop(sig)
    # A graceful stop exits by itself, well inside a container's grace period.
    assert first.popen.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    time.sleep(1.0)  # frames keep coming while no ingest runs: the broker queues them
    at_restart = publisher.acknowledged
    second = ingest_as_documented()
    assert at_restart < FRAMES, "the restart should land mid-stream"

    publisher.join(60)
    assert publisher.error is None and publisher.acknowledged == FRAMES
    archived = wait_for_frames(device, FRAMES, 60)
    seqs = sorted(Frame.objects.filter(device=device).values_list("seq", flat=True))
    assert archived == FRAMES, (
        f"{FRAMES - archived} of {FRAMES} frames never reached the archive after the restart "
        f"(restarted with {at_restart} published):\n{second.output()[-3000:]}"
    )
    assert seqs == list(range(FRAMES))  # every frame exactly once


def test_sigkill_and_restart_as_documented_loses_nothing(ingest_as_documented):
    restart_mid_stream(ingest_as_documented, signal.SIGKILL)


def test_sigterm_and_restart_as_documented_loses_nothing(ingest_as_documented):
    restart_mid_stream(ingest_as_documented, signal.SIGTERM)


def test_a_second_process_on_the_same_slot_is_refused(ingest_as_documented, service_env, spawn):
    """Two live processes must not share an identity: the broker would hand the session back
    and forth between them. The second one on a host and slot says why and exits; the first
    keeps consuming."""
    first = ingest_as_documented()
    env = {**service_env, "STRATA_INGEST_SLOT": str(os.getpid())}
    second = spawn("ingest-same-slot", [sys.executable, "manage.py", "ingest"], env)
    second.popen.wait(60)
    assert second.popen.returncode != 0
    assert "already runs on this host" in second.output()
    assert "its own --slot" in second.output()
    assert first.popen.poll() is None
