"""A decode worker killed mid-batch loses nothing and decodes nothing twice."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from archive.decoding import codec_for
from archive.models import DecodedImage
from archive.services import store_packets
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import parse_packet

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

N_FRAMES = 48


def worker_args(name: str) -> list[str]:
    from decoder_worker.celery import worker_command

    return worker_command("live", name=f"{name}@%h")


def test_worker_killed_mid_batch(service_env, spawn, clean_redis):
    from decoder_worker.tasks import decode_frames

    service_env["STRATA_TASK_VISIBILITY_S"] = "5"  # give a dead worker's task back quickly
    codec = codec_for(registry.default_model_id())
    rng = np.random.default_rng(1)
    device = provision_device("cam-decode-kill")
    packets = [
        parse_packet(codec.encode(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), seq=i))
        for i in range(N_FRAMES)
    ]
    frames = [s.frame for s in store_packets([(device, p) for p in packets]).stored]
    decode_frames.delay([f.pk for f in frames])

    first = spawn("worker-1", worker_args("kill-1"), service_env)
    first.wait_for("Task decoder_worker.tasks.decode_frames", 90)
    time.sleep(0.5)
    first.stop(signal.SIGKILL)
    assert DecodedImage.objects.filter(frame__device=device).count() < N_FRAMES

    second = spawn("worker-2", worker_args("kill-2"), service_env)
    second.wait_for("ready.", 90)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if DecodedImage.objects.filter(frame__device=device).count() >= N_FRAMES:
            break
        time.sleep(0.5)
    decoded = DecodedImage.objects.filter(frame__device=device)
    assert decoded.count() == N_FRAMES, second.output()[-3000:]
    assert sorted(decoded.values_list("frame_id", flat=True)) == sorted(f.pk for f in frames)
    assert set(decoded.values_list("channels", flat=True)) == {12}
