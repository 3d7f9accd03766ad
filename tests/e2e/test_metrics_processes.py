"""Metrics from real processes: ``manage.py ingest`` on the real Mosquitto and a decode
worker expose theirs on STRATA_METRICS_PORT; a frame and a bad packet move the counters."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from fleet.services import provision_device
from protocol import topics
from tests.e2e.test_ingest_poison import publish
from tests.support.packets import fake_packet
from tests.support.processes import ROOT, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def value(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_for(port: int, sample: str, at_least: float, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            text = scrape(port)
            if value(text, sample) >= at_least:
                return text
        except OSError:
            text = ""
        assert time.monotonic() < deadline, f"{sample} never reached {at_least}:\n{text[-2000:]}"
        time.sleep(0.3)


def test_ingest_process_counts_frames_rejections_and_lag(service_env, spawn, clean_redis):
    port = free_port()
    proc = spawn(
        "ingest",
        [
            sys.executable, "manage.py", "ingest", "--client-id", f"metrics-test-{os.getpid()}",
            "--session-expiry", "60", "--share-group", f"metrics-{os.getpid()}",
        ],
        service_env | {"STRATA_METRICS_PORT": str(port), "STRATA_METRICS_ADDR": "127.0.0.1"},
    )  # fmt: skip
    proc.wait_for("connected to", timeout_s=60)
    before = scrape(port)
    assert value(before, "strata_ingest_frames_total") == 0
    device = provision_device(f"metrics-{uuid.uuid4().hex[:8]}")
    frame = topics.topic(device.device_id, topics.Kind.FRAME)
    publish([(frame, fake_packet(seq=1, channels=5), False), (frame, b"junk", False)])
    text = wait_for(port, "strata_ingest_frames_total", 1)
    text = wait_for(port, 'strata_ingest_rejected_total{reason="bad_packet:BadMagic"}', 1)
    assert value(text, "strata_ingest_layers_total") == 5
    assert value(text, "strata_ingest_lag_seconds_count") == 1
    # the fake packet was captured in 2023: the lag says so
    assert value(text, "strata_ingest_lag_seconds_sum") > 86400
    assert value(text, "strata_ingest_batch_seconds_count") >= 1


def test_decode_worker_exposes_decode_latency(service_env, spawn, clean_redis):
    from decoder_worker.celery import worker_command

    port = free_port()
    env = service_env | {"STRATA_METRICS_PORT": str(port), "STRATA_METRICS_ADDR": "127.0.0.1"}
    proc = spawn("celery", worker_command(name=f"metrics-{os.getpid()}@%h"), env)
    proc.wait_for("ready.", timeout_s=90)
    text = wait_for(port, "strata_decode_seconds_count", 0)
    assert "strata_decode_seconds_bucket" in text
    assert (
        value(text, "strata_decode_seconds_count") == 0
    )  # nothing decoded yet: the port is this worker's


def test_prefork_worker_reports_its_childrens_decodes(service_env, spawn, clean_redis, tmp_path):
    """Compose runs the worker with two prefork children: the parent's port sums them."""
    import numpy as np

    from archive.decoding import codec_for
    from archive.services import store_packets
    from decoder_worker.tasks import decode_frames
    from mcucoder import registry
    from mcucoder.bitstream import parse_packet

    codec = codec_for(registry.default_model_id())
    rng = np.random.default_rng(2)
    device = provision_device(f"metrics-dec-{uuid.uuid4().hex[:6]}")
    packets = [
        parse_packet(codec.encode(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), seq=i))
        for i in range(3)
    ]
    frames = [s.frame for s in store_packets([(device, p) for p in packets]).stored]
    decode_frames.apply_async(([f.pk for f in frames],), queue="live")
    port = free_port()
    args = [
        sys.executable, "-m", "celery", "-A", "decoder_worker", "worker", "-Q", "live",
        "--concurrency", "2", "--loglevel", "INFO", "-n", f"metrics-pre-{os.getpid()}@%h",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    env = service_env | {
        "STRATA_METRICS_PORT": str(port),
        "STRATA_METRICS_ADDR": "127.0.0.1",
        "STRATA_METRICS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    worker = spawn("prefork", args, env)
    worker.wait_for("ready.", timeout_s=90)
    text = wait_for(port, "strata_decode_seconds_count", 3, timeout_s=120)
    assert value(text, "strata_decode_seconds_sum") > 0
    # a health check in the same environment (celery inspect ping) leaves the figures alone
    ping = [sys.executable, "-m", "celery", "-A", "decoder_worker", "inspect", "ping", "-d",
            f"metrics-pre-{os.getpid()}@{socket.gethostname()}", "--timeout", "20"]  # fmt: skip
    assert subprocess.run(ping, env=env, cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    assert value(scrape(port), "strata_decode_seconds_count") >= 3
    assert [p.name for p in (tmp_path / "metrics").iterdir()] == [str(worker.popen.pid)]


def test_controller_process_counts_rounds_and_decisions(service_env, spawn):
    device = provision_device(f"metrics-ctl-{uuid.uuid4().hex[:6]}")
    device.is_active = True
    device.save(update_fields=["is_active"])
    port = free_port()
    env = service_env | {"STRATA_METRICS_PORT": str(port), "STRATA_METRICS_ADDR": "127.0.0.1"}
    spawn("control", [sys.executable, "manage.py", "control", "--interval", "0.5"], env)
    text = wait_for(port, "strata_control_cycle_seconds_count", 2, timeout_s=60)
    decided = sum(
        value(text, f'strata_control_decisions_total{{outcome="{o}"}}') for o in ("changed", "kept")
    )
    assert decided >= 1  # the first round decides every active camera
    assert value(text, 'strata_control_decisions_total{outcome="failed"}') == 0
