"""Predicted frames in the C firmware (issue 18): a stream coded by strata_finish_stream
gives, packet for packet, the bytes of the Python PredictiveEncoder (mcucoder.video) for
the same frames and settings. The emulated boards run the same sequences in
tests/firmware/test_arm.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mcucoder import bitstream as bs
from mcucoder.predictive import MODE_INTRA, MODE_PREDICTED, PredictiveDecoder
from tests.firmware.images import resized
from tests.firmware.sequences import Frame, c_stream, noise, python_stream, still_scene


def host(tool: Path):
    return lambda *args: subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=60
    )


def still_camera(hopper, width: int = 96, height: int = 72) -> list[Frame]:
    """Still photo, moving patch and noise; a scene change (noise) at frame 5, back at 6;
    fewer channels at 7 (a tier change), more again after a requested key frame at 8."""
    imgs = still_scene(hopper, width, height, 10)
    frames = [Frame(im, 12, 100 + i) for i, im in enumerate(imgs)]
    frames[5] = Frame(noise(width, height, 5), 12, 105)
    frames[7] = Frame(imgs[7], 4, 107)
    frames[8] = Frame(imgs[8], 8, 108, key=True)
    return frames


def kinds(packets: list[bytes]) -> set[str]:
    """What a stream exercised: key and predicted frames, predicted and intra chunks."""
    seen = set()
    for raw in packets:
        p = bs.parse_packet(raw)
        if p.frame_type == bs.FRAME_INTRA:
            seen.add("key")
            continue
        seen.add("predicted")
        for chunk in p.chunks:
            seen.add({MODE_INTRA: "intra chunk", MODE_PREDICTED: "predicted chunk"}[chunk[0]])
    return seen


def assert_same_stream(got: list[bytes], want: list[bytes], codec) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"frame {i}: {bs.parse_packet(g)} != {bs.parse_packet(w)}"
    dec = PredictiveDecoder(codec.tables)  # and the stream decodes in order
    for raw in got:
        assert dec.decode(bs.parse_packet(raw)).shape[0] == bs.parse_packet(raw).n_channels


@pytest.mark.parametrize(
    "key_interval, block, dead_zone",
    [(50, 4, 1), (3, 1, 0), (50, 3, 2), (6, 5, 4)],
    ids=["defaults", "interval3-block1-dz0", "block3-dz2", "interval6-block5-dz4"],
)
def test_still_camera_stream_is_byte_identical(
    strata_encode, reference_codec, hopper, tmp_path, key_interval, block, dead_zone
):
    frames = still_camera(hopper)
    opts = ("--key-interval", str(key_interval), "--block", str(block))
    got = c_stream(
        strata_encode,
        frames,
        tmp_path,
        *opts,
        "--dead-zone",
        str(dead_zone),
        run=host(strata_encode),
    )
    assert_same_stream(
        got, python_stream(reference_codec, frames, key_interval, block, dead_zone), reference_codec
    )
    assert {"key", "predicted", "predicted chunk"} <= kinds(got)


def test_scene_change_falls_back_to_intra_per_channel(
    strata_encode, reference_codec, hopper, tmp_path
):
    """With a wide dead zone the noise frame keeps some channels predicted and sends the
    others intra (mode 0) in the same predicted packet."""
    frames = still_camera(hopper)
    got = c_stream(
        strata_encode, frames, tmp_path, "--block", "3", "--dead-zone", "2", run=host(strata_encode)
    )
    assert_same_stream(got, python_stream(reference_codec, frames, 50, 3, 2), reference_codec)
    assert {"intra chunk", "predicted chunk"} <= kinds(got[5:6])


def test_tier_size_and_sequence_changes(strata_encode, reference_codec, hopper, tmp_path):
    """Channels 12 -> 4 -> 12 predicted from the older reference of channels 4..11, one
    channel, a new frame size (a key frame), a sequence jump beyond 65,535 (a key frame)."""
    a = still_scene(hopper, 64, 48, 6, seed=1)
    b = still_scene(hopper, 40, 56, 2, seed=2)
    frames = [
        Frame(a[0], 12, 1),
        Frame(a[1], 4, 2),
        Frame(a[2], 12, 3),
        Frame(a[3], 1, 5),
        Frame(b[0], 6, 6),
        Frame(b[1], 6, 7),
        Frame(b[1], 6, 7 + 70000),
        Frame(b[0], 9, 8 + 70000),
    ]
    got = c_stream(strata_encode, frames, tmp_path, run=host(strata_encode))
    assert_same_stream(got, python_stream(reference_codec, frames, 50, 4, 1), reference_codec)
    types = [bs.parse_packet(p).frame_type for p in got]
    assert types == [0, 1, 1, 1, 0, 1, 0, 1]


def test_224x224_stream_is_byte_identical(strata_encode, reference_codec, hopper, tmp_path):
    frames = [Frame(im, 12, i) for i, im in enumerate(still_scene(hopper, 224, 224, 4))]
    got = c_stream(strata_encode, frames, tmp_path, run=host(strata_encode))
    assert_same_stream(got, python_stream(reference_codec, frames, 50, 4, 1), reference_codec)
    assert [bs.parse_packet(p).frame_type for p in got] == [0, 1, 1, 1]


def test_motion_is_rounded_up_in_integers(strata_encode, reference_codec, hopper, tmp_path):
    """7 of the 100 blocks of a 320x320 frame change: motion 7 %, on the camera and in
    Python (a float64 ceil(100 * 0.07) is 8)."""
    still = resized(hopper, 320, 320)
    moved = still.copy()
    for b in (0, 11, 23, 38, 54, 77, 99):  # a patch inside each of 7 blocks of 32x32 pixels
        y, x = 32 * (b // 10), 32 * (b % 10)
        moved[y + 12 : y + 20, x + 12 : x + 20] = (230, 40, 60)
    frames = [Frame(still, 12, 0), Frame(moved, 12, 1)]
    got = c_stream(strata_encode, frames, tmp_path, run=host(strata_encode))
    assert_same_stream(got, python_stream(reference_codec, frames, 50, 4, 1), reference_codec)
    assert bs.parse_packet(got[1]).motion == 7


def test_bad_stream_options_are_refused(strata_encode, tmp_path):
    res = host(strata_encode)(
        "--stream", str(tmp_path / "none"), str(tmp_path / "out"), "--block", "0"
    )
    assert res.returncode == 1
    assert res.stderr.strip() == "strata-encode: bad --key-interval, --block or --dead-zone"
