"""The decode policy and the queues: what ingest queues for whom, coalescing, claims,
backfill. Real Redis (the test run's own keys) and the real codec."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from datetime import timedelta

import numpy as np
import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from archive import coordination, policy
from archive.decoding import backfill, codec_for, decode_and_store, decode_live
from archive.jobs import BACKFILL, DECODE_FRAMES, DECODE_LIVE
from archive.models import DecodedImage
from archive.services import archived_packet, store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import MOTION_UNKNOWN, VERSION_2, parse_packet
from tests.support.processes import celery_key

pytestmark = pytest.mark.django_db

BACKFILL_KEY = "archive\x06\x169"  # kombu's list for priority 9 of the archive queue
EVENTS_KEY = "archive\x06\x166"  # and for priority 6 (event frames)


def queued(queue: str) -> list[tuple[str, list]]:
    """(task name, args) of what waits in a Redis list of the broker, oldest first."""
    r = redis.Redis.from_url(django_settings.REDIS_URL)
    out = []
    for raw in reversed(r.lrange(celery_key(queue), 0, -1)):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((message["headers"]["task"], args))
    return out


def frames_of(device_id: str, n: int, size: tuple[int, int] = (64, 48), start: int = 0):
    codec = codec_for(registry.default_model_id())
    device = provision_device(device_id)
    rng = np.random.default_rng(len(device_id))
    w, h = size
    return [
        store_packet(
            device,
            parse_packet(
                codec.encode(
                    rng.integers(0, 255, (h, w, 3), dtype=np.uint8),
                    seq=s,
                    capture_time_ms=1_700_000_000_000 + s,
                )
            ),
        ).frame
        for s in range(start, start + n)
    ]


@pytest.fixture(autouse=True)
def fresh(clean_redis, settings):
    settings.STRATA_DECODE_POLICY = "watched"
    policy._policy_cache.clear()
    policy._watched_cache.clear()
    yield
    policy._policy_cache.clear()


def test_watched_camera_goes_live_once_per_camera_the_rest_to_backfill():
    watched = frames_of("pol-watched", 3)
    other = frames_of("pol-other", 3)
    policy.watch(["pol-watched"])

    ids = policy.queue_decodes([f.pk for f in watched[:2] + other[:2]])
    assert ids == {watched[0].pk, watched[1].pk}
    assert queued("live") == [(DECODE_LIVE, [[watched[1].pk]])]  # the newest only
    assert queued(BACKFILL_KEY) == [(BACKFILL, [False])]

    # Another batch while that live decode waits: coalesced into it, no second backfill.
    assert policy.queue_decodes([watched[2].pk, other[2].pk]) == {watched[2].pk}
    assert len(queued("live")) == 1 and len(queued(BACKFILL_KEY)) == 1


def test_each_watched_camera_gets_a_live_task_of_its_own():
    """Workers free at the time share them, and a viewer waits for its camera's decode
    only, not for every watched camera's frames of the batch."""
    north, south = frames_of("pol-north", 2), frames_of("pol-south", 2)
    policy.watch(["pol-north", "pol-south"])
    policy.queue_decodes([f.pk for f in north + south])
    tasks = sorted(args for _, args in queued("live"))
    assert tasks == sorted([[[north[1].pk]], [[south[1].pk]]])


def test_live_decode_takes_the_newest_frame_of_the_camera():
    frames = frames_of("pol-newest", 4)
    stored = decode_live([frames[0].pk])  # queued for frame 0; frames 1-3 arrived since
    assert [d.frame_id for d in stored] == [frames[3].pk]
    assert decode_live([frames[0].pk]) == []  # the newest is done: nothing to do
    assert DecodedImage.objects.filter(frame__device__device_id="pol-newest").count() == 1


def test_a_live_decode_running_lets_the_next_frame_queue_its_own():
    policy.watch(["pol-next"])
    first = frames_of("pol-next", 1)[0]
    policy.queue_decodes([first.pk])
    decode_live([first.pk])
    second = frames_of("pol-next", 1, start=1)[0]
    policy.queue_decodes([second.pk])
    assert [args for _, args in queued("live")] == [[[first.pk]], [[second.pk]]]


def test_eager_queues_every_frame_behind_the_live_view(settings):
    settings.STRATA_DECODE_POLICY = "eager"
    frames = frames_of("pol-eager", 3)
    assert policy.queue_decodes([f.pk for f in frames]) == {f.pk for f in frames}
    assert queued(BACKFILL_KEY) == [(DECODE_FRAMES, [[f.pk for f in frames], False])]
    assert queued("live") == []


def test_on_demand_queues_nothing_nobody_watches(settings):
    settings.STRATA_DECODE_POLICY = "on-demand"
    frames = frames_of("pol-demand", 2)
    assert policy.queue_decodes([f.pk for f in frames]) == set()
    assert queued(BACKFILL_KEY) == [] and queued("live") == []


def test_auto_policy_follows_the_workers_alive(settings):
    settings.STRATA_DECODE_POLICY = "auto"
    assert policy.decode_policy() is policy.Policy.WATCHED  # no worker announced
    policy.announce_worker("cpu-1@host", "cpu")
    policy._policy_cache.clear()
    assert policy.decode_policy() is policy.Policy.WATCHED
    policy.announce_worker("gpu-1@host", "cuda")
    policy._policy_cache.clear()
    assert policy.worker_devices() == {"cpu-1@host": "cpu", "gpu-1@host": "cuda"}
    assert policy.decode_policy() is policy.Policy.EAGER
    policy.retire_worker("gpu-1@host", "cuda")
    policy._policy_cache.clear()
    assert policy.decode_policy() is policy.Policy.WATCHED


def test_a_policy_name_that_does_not_exist_says_which_exist(settings):
    settings.STRATA_DECODE_POLICY = "lazy"
    with pytest.raises(ValueError, match="STRATA_DECODE_POLICY='lazy': choose one of auto, "):
        policy.decode_policy()


def test_a_frame_another_worker_claimed_is_left_to_it():
    frames = frames_of("pol-claim", 2)
    coordination.claim([f"decoding:{frames[0].pk}:12"], "other-task", 60)
    stored = decode_and_store([(f, 12) for f in frames], owner="this-task")
    assert [d.frame_id for d in stored] == [frames[1].pk]
    # The same task redelivered (its worker died) takes its own claims over.
    stored = decode_and_store([(frames[0], 12)], owner="other-task")
    assert [d.frame_id for d in stored] == [frames[0].pk]
    assert coordination.counters()["frames"] == 2


def test_backfill_decodes_newest_first_a_few_at_a_time(settings):
    settings.STRATA_BACKFILL_BATCH = 3
    frames = frames_of("pol-backfill", 5)
    assert backfill() == 3
    decoded = set(DecodedImage.objects.values_list("frame_id", flat=True))
    assert decoded == {f.pk for f in frames[2:]}
    assert queued(BACKFILL_KEY) == [(BACKFILL, [False])]  # more to do: the next round is queued
    assert backfill() == 2
    assert backfill() == 0
    assert len(queued(BACKFILL_KEY)) == 2  # the second round asked for a third; it found none


def test_decoded_images_are_a_cache_with_their_own_retention():
    frames = frames_of("pol-retain", 2)
    decode_and_store([(f, 12) for f in frames])
    old = timezone.now() - timedelta(days=3)
    DecodedImage.objects.filter(frame=frames[0]).update(decoded_at=old)
    out = io.StringIO()
    call_command("retention", "--days", "30", "--decoded-days", "2", stdout=out)
    assert "dropped 1 decoded images older than 2 days" in out.getvalue()
    assert list(DecodedImage.objects.values_list("frame_id", flat=True)) == [frames[1].pk]
    assert frames[0].layers.count() == 12  # the archive keeps every layer: k decodes again
    assert decode_live([frames[0].pk]) == []  # (the camera's newest is frame 1, decoded)
    assert len(decode_and_store([(frames[0], 12)])) == 1


def test_a_deployment_picks_the_decoder_runtime(settings):
    """``STRATA_DECODE_RUNTIME``: here half precision (the GPU path) run on CPU; the images
    stay within the runtime's tolerance of float32 torch's."""
    frame = frames_of("pol-runtime", 1)[0]
    packet = archived_packet(frame)
    reference = codec_for(frame.model_id).decode_batch([packet])[0]
    settings.STRATA_DECODE_RUNTIME = "torch-half"
    codec_for.cache_clear()
    try:
        codec = codec_for(frame.model_id)
        assert codec.runtime == "torch-half"
        half = codec.decode_batch([packet])[0]
        assert [d.frame_id for d in decode_and_store([(frame, 12)])] == [frame.pk]
    finally:
        codec_for.cache_clear()
    assert np.abs(half.astype(int) - reference.astype(int)).max() <= 4


def test_backfill_gives_way_to_a_live_decode_waiting(settings):
    settings.STRATA_BACKFILL_BATCH = 4
    frames_of("pol-yield", 4)
    redis.Redis.from_url(django_settings.REDIS_URL).lpush(celery_key("live"), b"{}")
    assert backfill() == 1  # one frame, then the live task goes first
    assert queued(BACKFILL_KEY) == [(BACKFILL, [False])]  # and the rest is asked for again


def test_event_frames_are_decoded_soon_though_nobody_watches():
    codec = codec_for(registry.default_model_id())
    device = provision_device("pol-event")
    img = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = []
    for seq, motion in enumerate([3, 40, MOTION_UNKNOWN]):
        p = parse_packet(codec.encode(img, seq=seq))
        v2 = dataclasses.replace(p, version=VERSION_2, motion=motion)
        frames.append(store_packet(device, parse_packet(v2.to_bytes())).frame)
    assert policy.queue_decodes([f.pk for f in frames]) == {frames[1].pk}
    assert queued(EVENTS_KEY) == [(BACKFILL, [True])]  # event frames first ...
    assert queued(BACKFILL_KEY) == [(BACKFILL, [False])]  # ... the others when idle
    more = store_packet(device, parse_packet(dataclasses.replace(v2, seq=3, motion=60).to_bytes()))
    policy.queue_decodes([more.frame.pk])
    assert len(queued(EVENTS_KEY)) == 1  # a busy scene queues no second task

    assert backfill(events=True) == 2  # the event frames, newest first
    decoded = set(DecodedImage.objects.filter(frame__device=device).values_list("frame", flat=True))
    assert decoded == {frames[1].pk, more.frame.pk}  # not the still or the unknown one
