"""Time-partitioned layers and retention, on the real PostgreSQL."""

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
