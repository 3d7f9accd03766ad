"""Real decode workers on the real queues: who goes first, and two workers at once.

Tasks are queued before a worker starts, so what the worker takes first is decided by the
queues alone (``archive.jobs``): live, then re-decodes, then exports, then backfill.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from archive import coordination
from archive.decoding import codec_for
from archive.jobs import (
    ARCHIVE_QUEUE,
    DECODE_FRAMES,
    DECODE_LIVE,
    EXPORT_VIDEO,
    LIVE_QUEUE,
    REDECODE,
    Priority,
    queue_job,
)
from archive.models import DecodedImage, Export
from archive.services import store_packets
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import parse_packet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECEIVED = re.compile(r"Task (decoder_worker\.tasks\.\w+)\[[^\]]+\] received")


def stored_frames(device_id: str, n: int, size: int = 64):
    codec = codec_for(registry.default_model_id())
    rng = np.random.default_rng(7)
    device = provision_device(device_id)
    packets = [
        parse_packet(codec.encode(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), seq=i))
        for i in range(n)
    ]
    return device, [s.frame for s in store_packets([(device, p) for p in packets]).stored]


def worker(spawn, env, name: str):
    from decoder_worker.celery import worker_command

    return spawn(name, worker_command(name=f"{name}@%h"), env)


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_live_first_then_interactive_then_exports_then_backfill(service_env, spawn, clean_redis):
    device, frames = stored_frames("cam-queues-order", 6)
    now = timezone.now()
    export = Export.objects.create(
        device=device, start=now - timedelta(hours=1), end=now + timedelta(hours=1), channels=4
    )
    # Lowest priority first, so that arrival order is the opposite of the order wanted.
    for frame in frames[:3]:
        queue_job(DECODE_FRAMES, [frame.pk], False, queue=ARCHIVE_QUEUE, priority=Priority.BACKFILL)
    queue_job(EXPORT_VIDEO, export.pk, queue=ARCHIVE_QUEUE, priority=Priority.EXPORT)
    queue_job(REDECODE, frames[3].pk, 2, queue=ARCHIVE_QUEUE)
    queue_job(DECODE_LIVE, [frames[5].pk], queue=LIVE_QUEUE)

    proc = worker(spawn, service_env, "order")
    wait_until(lambda: len(RECEIVED.findall(proc.output())) >= 6, 120, "six tasks")
    order = [name.rsplit(".", 1)[1] for name in RECEIVED.findall(proc.output())]
    assert order == ["decode_live", "redecode", "export_video", *["decode_frames"] * 3], order
    wait_until(
        lambda: DecodedImage.objects.filter(frame__device=device, channels=12).count() == 4,
        60,
        "the live frame and three backfilled frames",
    )


def test_two_workers_share_the_queue_and_decode_no_frame_twice(service_env, spawn, clean_redis):
    """Tasks overlap (as redelivered or re-requested ones do): each frame is still decoded
    by exactly one of the two workers (claims, ``archive.decoding``)."""
    n = 40
    device, frames = stored_frames("cam-queues-two", n, size=128)
    ids = [f.pk for f in frames]
    first, second = worker(spawn, service_env, "share-1"), worker(spawn, service_env, "share-2")
    first.wait_for("ready.", 120)
    second.wait_for("ready.", 120)
    for start in range(0, n, 5):  # eight tasks of 10 frames, each overlapping the next by 5
        queue_job(DECODE_FRAMES, ids[start : start + 10], False, queue=LIVE_QUEUE)
    wait_until(
        lambda: DecodedImage.objects.filter(frame__device=device).count() == n, 180, "40 frames"
    )
    wait_until(
        lambda: sum(len(RECEIVED.findall(p.output())) for p in (first, second)) == 8,
        60,
        "eight tasks received",
    )
    assert coordination.counters()["frames"] == n  # decoded once each, by one worker or other
    assert RECEIVED.findall(first.output()) and RECEIVED.findall(second.output())


def test_decode_threads_share_the_cores_between_the_host_workers():
    from decoder_worker.celery import decode_threads

    assert decode_threads(2, cores=2) == 1  # not two threads each on two cores
    assert decode_threads(2, cores=8) == 4
    assert decode_threads(2, cores=1) == 1


def test_the_live_worker_decodes_while_the_archive_worker_is_busy(service_env, spawn, clean_redis):
    """A host's two workers (``host_workers``): a live frame is decoded by the worker
    reserved for it while the other is inside a long archive task, not after it."""
    from decoder_worker.celery import decode_threads, host_workers

    n = 48
    device, frames = stored_frames("cam-queues-host", n + 1, size=256)
    procs = {
        w.role.name: spawn(f"host-{w.role.name}", w.args, service_env | w.env)
        for w in host_workers(f"host-{time.monotonic_ns()}")
    }
    for proc in procs.values():
        proc.wait_for("ready.", 120)
        assert f"decodes with {decode_threads(len(procs))} torch threads" in proc.output()
    archived = [f.pk for f in frames[:n]]
    queue_job(DECODE_FRAMES, archived, False, queue=ARCHIVE_QUEUE, priority=Priority.BACKFILL)
    wait_until(lambda: RECEIVED.findall(procs["archive"].output()), 60, "the archive task")
    queue_job(DECODE_LIVE, [frames[n].pk], queue=LIVE_QUEUE)
    wait_until(lambda: DecodedImage.objects.filter(frame=frames[n]).exists(), 120, "the live frame")
    # one pass: the archive task stores its frames together, at its end
    assert DecodedImage.objects.filter(frame_id__in=archived).count() == 0
    assert RECEIVED.findall(procs["live"].output()) == ["decoder_worker.tasks.decode_live"]
    wait_until(
        lambda: DecodedImage.objects.filter(frame_id__in=archived).count() == n, 180, "the rest"
    )
