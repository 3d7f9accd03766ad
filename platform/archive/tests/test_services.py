from dataclasses import replace

import pytest

from archive.models import Frame, Layer
from archive.services import ArchiveConflict, archived_packet, record_decoded, store_packet
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


@pytest.fixture
def device():
    return provision_device("cam-archive-1")


def test_store_packet_keeps_every_layer(device):
    stored = store_packet(device, parse_packet(fake_packet(seq=7)))
    assert stored.created and stored.new_layers == 12
    frame = Frame.objects.get(device=device, seq=7)
    assert frame.n_layers == 12 and (frame.width, frame.height) == (64, 48)
    layers = list(Layer.objects.filter(frame=frame).order_by("index"))
    assert [bytes(layer.data) for layer in layers] == [bytes([i + 1]) * (3 + i) for i in range(12)]


def test_redelivered_packet_adds_nothing(device):
    packet = parse_packet(fake_packet(seq=3))
    store_packet(device, packet)
    again = store_packet(device, packet)
    assert not again.created and again.new_layers == 0
    assert Frame.objects.filter(device=device).count() == 1
    assert Layer.objects.filter(frame__device=device).count() == 12


def test_later_packet_with_more_channels_adds_layers(device):
    first = store_packet(device, parse_packet(fake_packet(seq=5, channels=4)))
    assert first.new_layers == 4 and first.frame.n_layers == 4
    more = store_packet(device, parse_packet(fake_packet(seq=5, channels=12)))
    assert not more.created and more.new_layers == 8
    assert Frame.objects.get(pk=first.frame.pk).n_layers == 12


def test_conflicting_header_is_refused(device):
    store_packet(device, parse_packet(fake_packet(seq=9, width=64)))
    with pytest.raises(ArchiveConflict, match="width"):
        store_packet(device, parse_packet(fake_packet(seq=9, width=96)))


def test_reused_sequence_number_is_not_merged(device):
    store_packet(device, parse_packet(fake_packet(seq=4)))
    first = parse_packet(fake_packet(seq=4))
    reset = replace(first, capture_time_ms=first.capture_time_ms + 60_000)
    with pytest.raises(ArchiveConflict, match="capture_time_ms"):
        store_packet(device, reset)
    assert Layer.objects.filter(frame__device=device).count() == 12


@pytest.mark.parametrize("k", [1, 5, 12])
def test_archived_packet_rebuilds_any_prefix(device, k):
    original = parse_packet(fake_packet(seq=11))
    frame = store_packet(device, original).frame
    rebuilt = archived_packet(frame, channels=k)
    assert rebuilt.to_bytes() == original.with_channels(k).to_bytes()


def test_record_decoded_is_idempotent(device):
    frame = store_packet(device, parse_packet(fake_packet(seq=1))).frame
    first, created = record_decoded(frame.pk, 12, b"img", "image/webp", 5.0)
    second, created_again = record_decoded(frame.pk, 12, b"other", "image/webp", 6.0)
    assert created and not created_again
    assert second.pk == first.pk and bytes(second.image) == b"img"
