"""Time-partitioned layers and retention, on the real PostgreSQL."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from archive import partitions
from archive.models import Frame, Layer
from archive.services import store_packet
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db


def partition_of(layer_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "select tableoid::regclass::text from archive_layer where id = %s", [layer_id]
        )
        return cursor.fetchone()[0]


def test_layer_table_is_partitioned_by_day():
    with connection.cursor() as cursor:
        cursor.execute(
            "select partstrat from pg_partitioned_table where partrelid = 'archive_layer'::regclass"
        )
        assert cursor.fetchone() == ("r",)
    partitions.ensure_layer_partitions()
    today = timezone.now().date()
    days = {day for _, day in partitions.layer_partitions()}
    assert {today + timedelta(days=i) for i in range(partitions.DAYS_AHEAD + 1)} <= days
    assert None in days  # the default partition catches any other day


def test_layers_land_in_the_partition_of_their_day():
    partitions.ensure_layer_partitions()
    frame = store_packet(provision_device("cam-part"), parse_packet(fake_packet(seq=1))).frame
    layer = Layer.objects.filter(frame=frame).first()
    assert partition_of(layer.pk) == partitions.partition_name(timezone.now().date())


def test_retention_drops_whole_old_partitions_and_their_frames():
    device = provision_device("cam-retention")
    today = timezone.now().date()
    old_day = today - timedelta(days=40)
    partitions._ensured_through = None
    partitions.ensure_layer_partitions(today=old_day, days_ahead=0)
    old = store_packet(device, parse_packet(fake_packet(seq=1))).frame
    Layer.objects.filter(frame=old).update(received_on=old_day)
    Frame.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=40))
    new = store_packet(device, parse_packet(fake_packet(seq=2))).frame

    result = partitions.apply_retention(keep_days=30)

    assert partitions.partition_name(old_day) in result.partitions_dropped
    assert list(Frame.objects.filter(device=device).values_list("pk", flat=True)) == [new.pk]
    assert Layer.objects.filter(frame=new).count() == 12
    assert partitions.partition_name(old_day) not in {n for n, _ in partitions.layer_partitions()}
    with pytest.raises(ValueError):
        partitions.apply_retention(keep_days=0)


def test_the_days_command_keeps_the_chain_a_kept_predicted_frame_needs(service_env, clean_redis):
    """Issue 18: ``manage.py retention --days 30`` as the README writes it. The first frame
    kept is predicted: the frames back to its key frame stay whole (their layers leave the
    dropped partition) and it still decodes; everything else older goes."""
    from archive import references
    from archive.decoding import redecode
    from archive.models import DecodeFailure
    from tests.support.predicted import p_stream

    device = provision_device("cam-days-chain")
    today = timezone.now().date()
    old_day = today - timedelta(days=40)
    partitions._ensured_through = None
    partitions.ensure_layer_partitions(today=old_day, days_ahead=0)
    for packet in p_stream(8, key_interval=4):  # key frames: seq 1 and 5
        frame = store_packet(device, parse_packet(packet)).frame
        if frame.seq <= 6:  # 40 days old; 7 and 8 are today's
            Layer.objects.filter(frame=frame).update(received_on=old_day)
            Frame.objects.filter(pk=frame.pk).update(
                received_at=timezone.now() - timedelta(days=40)
            )
    assert Frame.objects.get(device=device, seq=7).frame_type == 1  # predicted, from 5

    dry = subprocess.run(
        [sys.executable, "manage.py", "retention", "--days", "30", "--dry-run"],
        cwd=ROOT, env=service_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "--days 30 would delete 4 frames older than 30 days" in dry.stdout
    assert "would keep 2 older frames whole: kept predicted frames decode from them" in dry.stdout
    run = subprocess.run(
        [sys.executable, "manage.py", "retention", "--days", "30"],
        cwd=ROOT, env=service_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "dropped 1 layer partitions, deleted " in run.stdout
    assert "kept 2 older frames whole: kept predicted frames decode from them" in run.stdout

    assert partitions.partition_name(old_day) not in {n for n, _ in partitions.layer_partitions()}
    kept = Frame.objects.filter(device=device).order_by("seq")
    assert [(f.seq, Layer.objects.filter(frame=f).count()) for f in kept] == [
        (5, 12), (6, 12), (7, 12), (8, 12),
    ]  # fmt: skip
    references.forget()  # decode 8 cold: from key frame 5, through 6 and 7
    assert redecode(kept.get(seq=8).pk, 12) is not None
    assert not DecodeFailure.objects.filter(frame__device=device).exists()

    cutoff = today - timedelta(days=30)  # the chain's layers wait in the cutoff's day
    assert set(Layer.objects.filter(frame__seq__in=[5, 6], frame__device=device).values_list(
        "received_on", flat=True)) == {cutoff}  # fmt: skip
