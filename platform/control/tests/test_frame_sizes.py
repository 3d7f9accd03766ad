"""The controller's size model with predicted frames (issue 18): bytes at each k by frame
type, read from the archive in one query, against real P-frame packets in PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive.decoding import codec_for
from archive.services import store_packets
from control.policies import Limits, RobustController
from control.services import FrameSizes, bytes_per_frame, link_state, record_telemetry, scene_sizes
from fleet.services import provision_device
from mcucoder import bitstream as bs
from mcucoder import registry
from tests.support.predicted import p_stream, scenes

pytestmark = pytest.mark.django_db

N = 8  # one key frame, then seven P frames of a square walking across a still scene


@pytest.fixture(scope="module")
def packets() -> list[bs.Packet]:
    return [bs.parse_packet(p) for p in p_stream(N, key_interval=50)]


def trimmed(packet: bs.Packet, k: int) -> int:
    return len(packet.with_channels(k).to_bytes())


def archived(name: str, packets: list[bs.Packet]):
    device = provision_device(name)
    store_packets([(device, p) for p in packets])
    return device


def test_key_and_predicted_frames_are_sized_apart(packets):
    device = archived("cam-sizes-p", packets)
    key, ps = packets[0], packets[1:]
    assert key.frame_type == bs.FRAME_INTRA
    assert {p.frame_type for p in ps} == {bs.FRAME_PREDICTED}
    with CaptureQueriesContext(connection) as queries:
        sizes = scene_sizes([device.pk])[device.pk]
    assert len(queries.captured_queries) == 1
    assert sizes.key_share == pytest.approx(1 / N)
    for k in range(1, 13):
        p_mean = sum(trimmed(p, k) for p in ps) / len(ps)
        # the largest frame at k is the key frame, to the byte
        assert sizes.largest[k] == trimmed(key, k)
        # the mean is the mix of the two (each type's mean packet: within a length byte
        # per channel of the mean of the real packets)
        mix = (trimmed(key, k) + (N - 1) * p_mean) / N
        assert sizes.mean[k] == pytest.approx(mix, abs=k + 1)
    # P frames of a still scene are what makes the difference: the mean hides the key frame
    assert sizes.largest[12] > 1.5 * sizes.mean[12]
    assert bytes_per_frame(device) == sizes.mean


def test_an_intra_only_camera_has_one_size_per_tier():
    codec = codec_for(registry.default_model_id())
    intra = [bs.parse_packet(codec.encode(img, seq=i)) for i, img in enumerate(scenes(2))]
    assert {p.version for p in intra} == {bs.VERSION}  # what Codec.encode and firmware send
    device = archived("cam-sizes-i", intra)
    sizes = scene_sizes([device.pk])[device.pk]
    for k in range(1, 13):
        mean = sum(trimmed(p, k) for p in intra) / 2
        assert sizes.mean[k] == sizes.largest[k] == pytest.approx(mean, abs=k + 1)
    assert sizes.key_share == 1.0


def test_tiers_seen_only_lower_are_extrapolated_per_type(packets):
    # key frame sent with 3 channels, P frames with all 12: the key frame's tiers above 3
    # are extrapolated (high) before the mix, never left out
    device = archived("cam-sizes-x", [packets[0].with_channels(3), *packets[1:]])
    sizes = scene_sizes([device.pk])[device.pk]
    step = trimmed(packets[0], 3) - trimmed(packets[0], 2)
    assert sizes.largest[5] == trimmed(packets[0], 3) + 2 * step
    assert set(sizes.mean) == set(range(1, 13))


def test_the_policy_sizes_the_deadline_by_the_key_frame(packets):
    """A link that carries the mean frame of tier 12 easily but not its key frame within
    the deadline's share: the size model keeps the tier where a key frame is on time."""
    device = archived("cam-sizes-policy", packets)
    device.deadline_ms = 1000
    device.save(update_fields=["deadline_ms"])
    sizes = scene_sizes([device.pk])[device.pk]
    # a link on which the key frame at 12 takes the whole deadline, the mean frame less
    # than the policy's share of it (70 %)
    kbps = sizes.largest[12] * 8 / 1000 / 1.0
    assert sizes.mean[12] * 8 / 1000 / kbps < 0.7
    for _ in range(3):
        record_telemetry(device, {"throughput_kbps": kbps, "link_kbps": kbps, "backlog": 0})
    state = link_state(device)
    decision = RobustController()(state, Limits())
    assert state.frame_bytes(decision.tier) * 8 / 1000 / kbps <= 0.7  # its key frame on time
    assert decision.tier < 12
    # the mean alone (every frame as small as the mix) would have asked for tier 12
    mean_only = FrameSizes(sizes.mean, sizes.mean)
    blind = RobustController()(link_state(device, sizes=mean_only), Limits())
    assert blind.tier == 12
