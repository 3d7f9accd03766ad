"""The codec CLI with predicted frames (issue 18) and its answers to mistakes (issue 14,
item 9): one line on stderr, a non-zero status, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

from mcucoder import bitstream as bs
from mcucoder.cli import main


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory, photo):
    """8 frames of a still photo with a small square moving across (an mpeg4 file)."""
    path = tmp_path_factory.mktemp("clip") / "still.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        for i in range(8):
            a = np.ascontiguousarray(photo[:64, :96])
            a[20:36, 8 * i : 8 * i + 16] = 250
            c.mux(s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.fixture(scope="module")
def packet_4ch(tmp_path_factory, photo):
    path = tmp_path_factory.mktemp("pk") / "four.strata"
    Image.fromarray(photo[:48, :64]).save(path.with_suffix(".png"))
    assert main(["encode", str(path.with_suffix(".png")), "-o", str(path), "--channels", "4"]) == 0
    return path


def _stream(path) -> list[bs.Packet]:
    return [bs.parse_packet(p) for p in bs.unpack_stream(path.read_bytes())]


def test_encode_video_predicts_by_default(still_clip, tmp_path):
    assert main(["encode-video", str(still_clip), "-o", str(tmp_path / "p.strata")]) == 0
    assert (
        main(["encode-video", str(still_clip), "-o", str(tmp_path / "i.strata"), "--intra-only"])
        == 0
    )
    p, i = _stream(tmp_path / "p.strata"), _stream(tmp_path / "i.strata")
    assert [x.frame_type for x in p] == [bs.FRAME_INTRA] + [bs.FRAME_PREDICTED] * 7
    assert all(x.version == bs.VERSION_2 and x.reference_seq == x.seq - 1 for x in p[1:])
    assert all(x.version == bs.VERSION and x.frame_type == bs.FRAME_INTRA for x in i)
    assert all(len(x.to_bytes()) < len(p[0].to_bytes()) for x in p[1:])
    assert sum(len(x.to_bytes()) for x in p) < 0.85 * sum(len(x.to_bytes()) for x in i)
    assert p[0].chunks == i[0].chunks  # a key frame codes its channels as intra packets do
    for name in ("p", "i"):
        out = tmp_path / f"{name}-frames"
        assert main(["decode-video", str(tmp_path / f"{name}.strata"), "-o", str(out)]) == 0
        assert len(list(out.glob("*.png"))) == 8
    first = [np.asarray(Image.open(tmp_path / f"{n}-frames" / "frame_000000.png")) for n in "pi"]
    assert np.array_equal(*first)
    assert main(["decode-video", str(tmp_path / "p.strata"), "-o", str(tmp_path / "p.mp4")]) == 0
    with av.open(str(tmp_path / "p.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 8


def test_key_interval(still_clip, tmp_path):
    out = tmp_path / "k.strata"
    assert main(["encode-video", str(still_clip), "-o", str(out), "--key-interval", "3"]) == 0
    assert [x.frame_type == bs.FRAME_INTRA for x in _stream(out)] == [1, 0, 0, 1, 0, 0, 1, 0]


def test_decode_video_refuses_a_stream_with_a_lost_frame(still_clip, tmp_path, capsys):
    full = tmp_path / "p.strata"
    assert main(["encode-video", str(still_clip), "-o", str(full)]) == 0
    packets = bs.unpack_stream(full.read_bytes())
    lost = tmp_path / "lost.strata"
    lost.write_bytes(bs.pack_stream(packets[:3] + packets[4:]))
    capsys.readouterr()
    assert main(["decode-video", str(lost), "-o", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "frame 4 predicts from frame 3, the reference held is frame 2" in err
    assert len(err.strip().splitlines()) == 1


def _one_line_error(capsys, argv: list[str], status: int = 1) -> str:
    capsys.readouterr()
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"python -m mcucoder {argv[0]}: error: ")
    return err


def test_mistakes_are_one_line(capsys, tmp_path, photo, packet_4ch, still_clip):
    png = tmp_path / "a.png"
    Image.fromarray(photo[:32, :32]).save(png)
    jpg = tmp_path / "a.jpg"
    Image.fromarray(photo[:32, :32]).save(jpg)
    out = str(tmp_path / "o")
    err = _one_line_error(capsys, ["encode", str(png), "-o", out, "--channels", "13"])
    assert "--channels 13 is out of range" in err and "1..12" in err
    assert "--channels 0 is out of range" in _one_line_error(
        capsys, ["encode", str(png), "-o", out, "--channels", "0"]
    )
    assert "missing.png: no such file" in _one_line_error(
        capsys, ["encode", str(tmp_path / "missing.png"), "-o", out]
    )
    assert "a.jpg: not a valid Strata packet (bad magic" in _one_line_error(
        capsys, ["decode", str(jpg), "-o", out]
    )
    err = _one_line_error(capsys, ["decode", str(packet_4ch), "-o", out, "--channels", "8"])
    assert "has only 4 channels: cannot decode --channels 8" in err
    assert not (tmp_path / "o").exists()  # nothing written for a refused command
    assert "no such file" in _one_line_error(
        capsys, ["decode", str(tmp_path / "none.strata"), "-o", out]
    )
    assert "not a video" in _one_line_error(capsys, ["encode-video", str(packet_4ch), "-o", out])
    assert "--size 3by4" in _one_line_error(
        capsys, ["encode-video", str(still_clip), "-o", out, "--size", "3by4"]
    )
    assert "--key-interval 0" in _one_line_error(
        capsys, ["encode-video", str(still_clip), "-o", out, "--key-interval", "0"]
    )
    assert "not a valid Strata packet stream" in _one_line_error(
        capsys, ["decode-video", str(jpg), "-o", out]
    )
    err = _one_line_error(capsys, ["decode-video", str(png), "-o", out, "--channels", "13"])
    assert "not a valid Strata packet stream" in err  # the file is checked first


def test_a_predicted_packet_alone(still_clip, tmp_path, capsys):
    full = tmp_path / "p.strata"
    assert main(["encode-video", str(still_clip), "-o", str(full)]) == 0
    one = tmp_path / "one.strata"
    one.write_bytes(bs.unpack_stream(full.read_bytes())[2])
    err = _one_line_error(capsys, ["decode", str(one), "-o", str(tmp_path / "x.png")])
    assert "is a predicted frame (it needs frame 1)" in err


def test_usage_mistakes_in_a_real_process(tmp_path):
    """As a user runs it: status and the whole of stderr."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcucoder",
            "decode",
            str(tmp_path / "x"),
            "-o",
            "y",
            "--channels",
            "two",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "python -m mcucoder decode: error: argument --channels: invalid int value: 'two' (see --help)"
    ]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcucoder",
            "encode",
            str(tmp_path / "x.png"),
            "-o",
            "y",
            "--channels",
            "13",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].endswith("x.png: no such file")
