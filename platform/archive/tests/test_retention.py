"""Retention that understands layers, on the real PostgreSQL: old frames lose their upper
layers before whole frames go, oldest first; events and exports are kept; a dry run frees
exactly what a real run does; a budget warns before it is reached."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from archive import retention
from archive.models import DecodedImage, EventMark, Export, Frame, Layer, RetentionPolicy
from archive.services import record_decoded, store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import (
    FRAME_INTRA,
    FRAME_PREDICTED,
    MOTION_UNKNOWN,
    VERSION_2,
    build_packet,
    parse_packet,
)
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db

FRAME_BYTES = sum(3 + i for i in range(12))  # fake_packet: channel i is 3 + i bytes
UPPER_BYTES = FRAME_BYTES - (3 + 4 + 5)  # above the first 3


def frames_at(device, days_ago: list[float]) -> dict[float, Frame]:
    now = timezone.now()
    out = {}
    for seq, age in enumerate(days_ago, start=1):
        frame = store_packet(device, parse_packet(fake_packet(seq=seq))).frame
        Frame.objects.filter(pk=frame.pk).update(received_at=now - timedelta(days=age))
        frame.refresh_from_db()
        out[age] = frame
    return out


def layers(frame: Frame) -> list[int]:
    return list(Layer.objects.filter(frame=frame).values_list("index", flat=True))


def state(device) -> list[tuple[int, int, list[int]]]:
    return [
        (f.seq, f.n_layers, layers(f)) for f in Frame.objects.filter(device=device).order_by("seq")
    ]


def test_by_age_frames_keep_their_first_k_then_go_and_events_and_exports_stay():
    device = provision_device("cam-ret-age", site="Yard")
    frames = frames_at(device, [1, 10, 11, 40, 41])
    EventMark.objects.create(
        device=device,
        start=frames[41].received_at - timedelta(minutes=1),
        end=frames[41].received_at + timedelta(minutes=1),
        label="gate forced",
    )
    Export.objects.create(
        device=device,
        start=frames[11].received_at - timedelta(minutes=1),
        end=frames[11].received_at + timedelta(minutes=1),
        channels=12,
    )
    record_decoded(frames[40].pk, 12, b"img", "image/webp", 1.0)
    policy = RetentionPolicy.objects.create(site="Yard", full_days=7, keep_layers=3, keep_days=30)
    before = state(device)

    dry = retention.run_all(dry_run=True)
    assert state(device) == before  # a dry run changes nothing
    [plan] = [p for p in dry if p.policy == policy]
    assert [(s.action, s.why, s.frames) for s in plan.steps] == [
        ("thin", "age", 2),  # 10 and 40 days old (11: in an export; 41: an event)
        ("delete", "age", 1),  # 40 days old
    ]

    [done] = [p for p in retention.run_all() if p.policy == policy]
    assert [(s.frames, s.bytes) for s in done.steps] == [(s.frames, s.bytes) for s in plan.steps]
    assert done.steps[0].bytes == 2 * UPPER_BYTES
    assert done.steps[1].bytes == FRAME_BYTES - UPPER_BYTES  # its upper layers went first
    assert layers(frames[1]) == list(range(12))
    assert layers(frames[10]) == [0, 1, 2]
    assert Frame.objects.get(pk=frames[10].pk).n_layers == 3
    assert layers(frames[11]) == list(range(12))  # inside an export
    assert not Frame.objects.filter(pk=frames[40].pk).exists()
    assert not DecodedImage.objects.filter(frame_id=frames[40].pk).exists()
    assert layers(frames[41]) == list(range(12))  # marked as an event


def test_event_frames_by_motion_are_kept(settings):
    device = provision_device("cam-ret-motion")
    packet = parse_packet(fake_packet(seq=1))
    kept = []
    for seq, motion in enumerate([3, 40, MOTION_UNKNOWN], start=1):
        v2 = dataclasses.replace(packet, seq=seq, version=VERSION_2, motion=motion)
        frame = store_packet(device, parse_packet(v2.to_bytes())).frame
        Frame.objects.filter(pk=frame.pk).update(received_at=timezone.now() - timedelta(days=9))
        kept.append(frame)
    RetentionPolicy.objects.create(device=device, keep_days=5)
    [plan] = retention.run_all()
    assert plan.steps[0].frames == 2
    assert list(Frame.objects.filter(device=device).values_list("seq", flat=True)) == [2]
    settings.STRATA_EVENT_MOTION = 50  # 40 % is no event now
    retention.run_all()
    assert not Frame.objects.filter(device=device).exists()


def test_a_budget_thins_oldest_days_first_then_deletes_oldest_and_warns():
    device = provision_device("cam-ret-budget")
    frames = frames_at(device, [5, 4, 3, 2, 1, 0])
    # 6 frames: 612 bytes. Thinning the five old ones frees 450, not enough for 150: the
    # oldest (5 days) then goes as well; today's frame is never touched by a budget.
    policy = RetentionPolicy.objects.create(device=device, keep_layers=3, budget_bytes=150)
    [plan] = retention.run_all(dry_run=True)
    assert plan.used_bytes == 6 * FRAME_BYTES
    assert [(s.action, s.why, s.frames) for s in plan.steps] == [
        ("thin", "budget", 5),
        ("delete", "budget", 1),
    ]
    assert plan.budget_use == 1.0
    assert "near its budget: 100%" in plan.warning

    out, err = io.StringIO(), io.StringIO()
    call_command("retention", stdout=out, stderr=err)
    assert f"camera cam-ret-budget: 1 cameras, {6 * FRAME_BYTES:,} layer bytes; freed 462" in (
        out.getvalue()
    )
    assert "WARNING: camera cam-ret-budget: near its budget" in err.getvalue()
    assert not Frame.objects.filter(pk=frames[5].pk).exists()
    for age in (4, 3, 2, 1):
        assert layers(frames[age]) == [0, 1, 2]
    assert layers(frames[0]) == list(range(12))
    assert retention.budget_use() == [(str(policy), 1.0)]

    policy.budget_bytes = 1000  # far from full: no steps, no warning
    policy.save()
    [plan] = retention.run_all()
    assert plan.steps == [] and plan.warning is None


def test_a_camera_follows_its_own_policy_else_its_sites_else_the_default():
    own = provision_device("cam-ret-own", site="Depot")
    site = provision_device("cam-ret-site", site="Depot")
    other = provision_device("cam-ret-other", site="Farm")
    default = RetentionPolicy.objects.create(site="", keep_days=90)
    depot = RetentionPolicy.objects.create(site="Depot", keep_days=30)
    camera = RetentionPolicy.objects.create(device=own, keep_days=7)
    governed = retention.governed_devices()
    assert own.pk in governed[camera.pk] and own.pk not in governed[depot.pk]
    assert site.pk in governed[depot.pk]
    assert other.pk in governed[default.pk]


def test_the_command_sets_policies_and_refuses_bad_ones():
    provision_device("cam-ret-cmd")
    out = io.StringIO()
    call_command(
        "retention", "--set", "--camera", "cam-ret-cmd", "--full-days", "7", "--keep-days",
        "365", "--budget", "1.5G", stdout=out,
    )  # fmt: skip
    assert "retention policy for camera cam-ret-cmd stored" in out.getvalue()
    policy = RetentionPolicy.objects.get(device__device_id="cam-ret-cmd")
    assert (policy.full_days, policy.keep_layers, policy.keep_days) == (7, 3, 365)
    assert policy.budget_bytes == 1_500_000_000
    with pytest.raises(CommandError, match="give bytes"):
        call_command("retention", "--set", "--budget", "lots")
    with pytest.raises(CommandError, match="no camera"):
        call_command("retention", "--set", "--camera", "nobody")
    with pytest.raises(CommandError, match="1 to 12"):
        call_command("retention", "--set", "--keep-layers", "0")
    old = store_packet(provision_device("cam-ret-cmd"), parse_packet(fake_packet(seq=9))).frame
    Frame.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=50))
    dry = io.StringIO()
    call_command("retention", "--dry-run", "--days", "30", stdout=dry)
    assert "1 cameras, 102 layer bytes; would free 90" in dry.getvalue()  # full for 7 days
    assert "--days 30 would delete 1 frames older than 30 days" in dry.getvalue()
    assert Frame.objects.filter(pk=old.pk).exists()


def test_an_admin_sets_a_site_policy_in_the_admin_and_it_is_audited(client, django_user_model):
    from audit.models import AuditEntry

    admin_user = django_user_model.objects.create_superuser("ret-admin", password="pw-for-tests-1")
    client.force_login(admin_user)
    response = client.post(
        "/admin/archive/retentionpolicy/add/",
        {"site": "Depot", "keep_layers": 3, "full_days": 14, "warn_ratio": 0.8},
    )
    assert response.status_code == 302, response.content[:2000]
    policy = RetentionPolicy.objects.get(site="Depot", device=None)
    assert (policy.full_days, policy.keep_layers, policy.keep_days) == (14, 3, None)
    assert AuditEntry.objects.filter(username="ret-admin").exists()


def test_frames_a_kept_predicted_frame_needs_keep_every_layer():
    """Issue 18: a predicted frame decodes from its chain back to the key frame, so
    retention never thins or deletes a frame that a kept one needs."""
    device = provision_device("cam-ret-chain", site="Chain")
    now = timezone.now()
    ages = {1: 40, 2: 40, 3: 40, 4: 40, 5: 10, 6: 10, 7: 1, 8: 1}  # seq -> days old
    for seq, age in ages.items():
        key = seq in (1, 5)
        packet = build_packet(
            model_id=registry.default_model_id(),
            width=64,
            height=48,
            seq=seq,
            capture_time_ms=1_700_000_000_000 + seq,
            chunks=[bytes([i + 1]) * (3 + i) for i in range(12)],
            frame_type=FRAME_INTRA if key else FRAME_PREDICTED,
            ref=0 if key else 1,
            version=VERSION_2,
            block=0 if key else 4,
            motion=0,
        )
        frame = store_packet(device, parse_packet(packet)).frame
        received = now - timedelta(days=age) + timedelta(minutes=seq)
        Frame.objects.filter(pk=frame.pk).update(received_at=received)
    third = Frame.objects.get(device=device, seq=3)
    EventMark.objects.create(
        device=device,
        start=third.received_at - timedelta(seconds=1),
        end=third.received_at + timedelta(seconds=1),
    )
    RetentionPolicy.objects.create(site="Chain", full_days=7, keep_layers=3, keep_days=30)
    retention.run_all()
    # 3 is an event (it needs 1 and 2); 7 and 8 are recent (they need 5 and 6): all whole.
    # Only 4 was thinned, then deleted: nothing kept predicts from it.
    assert state(device) == [(seq, 12, list(range(12))) for seq in (1, 2, 3, 5, 6, 7, 8)]


def test_a_frame_delivered_late_across_the_cutoff_keeps_its_chain_too():
    """The first frame kept is the lowest ``seq`` delivered within ``LATE_WINDOW`` of the
    camera's earliest frame after the cutoff: a predicted frame that came a few minutes late
    (out of order) keeps its chain, though the frame received first is a key frame."""
    from archive.partitions import apply_retention

    device = provision_device("cam-ret-late")
    cutoff_day = timezone.localdate() - timedelta(days=30)
    cutoff = timezone.make_aware(datetime.combine(cutoff_day, datetime.min.time()))
    received = {  # seq -> when it arrived: 3 (predicted from 2) after 4 (a key frame)
        1: cutoff - timedelta(hours=2),
        2: cutoff - timedelta(hours=1),
        4: cutoff + timedelta(minutes=1),
        3: cutoff + retention.LATE_WINDOW / 2,
    }
    for seq, at in received.items():
        key = seq in (1, 4)
        packet = build_packet(
            model_id=registry.default_model_id(), width=64, height=48, seq=seq,
            capture_time_ms=1_700_000_000_000 + seq,
            chunks=[bytes([i + 1]) * (3 + i) for i in range(12)],
            frame_type=FRAME_INTRA if key else FRAME_PREDICTED, ref=0 if key else 1,
            version=VERSION_2, block=0 if key else 4, motion=MOTION_UNKNOWN if key else 0,
        )  # fmt: skip
        frame = store_packet(device, parse_packet(packet)).frame
        Frame.objects.filter(pk=frame.pk).update(received_at=at)
    result = apply_retention(keep_days=30)
    assert result.chain_frames == 2
    assert [seq for seq, *_ in state(device)] == [1, 2, 3, 4]
