from __future__ import annotations

import json

import av
import numpy as np
from PIL import Image

from mcucoder import bitstream as bs
from mcucoder.cli import main


def test_encode_decode_files(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo[:37, :51]).save(tmp_path / "b.png")
    assert (
        main(
            [
                "encode",
                str(tmp_path / "a.png"),
                "-o",
                str(tmp_path / "one.strata"),
                "--channels",
                "5",
            ]
        )
        == 0
    )
    p = bs.parse_packet((tmp_path / "one.strata").read_bytes())
    assert (p.n_channels, p.seq, p.capture_time_ms) == (5, 0, 0)
    out = tmp_path / "packets"
    assert (
        main(
            [
                "encode",
                str(tmp_path / "a.png"),
                str(tmp_path / "b.png"),
                "-o",
                str(out),
                "--seq",
                "3",
            ]
        )
        == 0
    )
    assert bs.parse_packet((out / "b.strata").read_bytes()).seq == 4
    main(
        [
            "encode",
            str(tmp_path / "a.png"),
            str(tmp_path / "b.png"),
            "-o",
            str(tmp_path / "again"),
            "--seq",
            "3",
        ]
    )
    assert (tmp_path / "again" / "a.strata").read_bytes() == (out / "a.strata").read_bytes()
    dec = tmp_path / "png"
    assert (
        main(
            [
                "decode",
                str(out / "a.strata"),
                str(out / "b.strata"),
                "-o",
                str(dec),
                "--channels",
                "2",
            ]
        )
        == 0
    )
    assert np.asarray(Image.open(dec / "b.png")).shape == (37, 51, 3)


def test_video_round_trip(tmp_path):
    src = tmp_path / "v.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            a = np.zeros((48, 64, 3), np.uint8)
            a[:, i * 8 : i * 8 + 10] = 200
            c.mux(s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")))
        c.mux(s.encode())
    assert (
        main(["encode-video", str(src), "-o", str(tmp_path / "v.strata"), "--size", "32x24"]) == 0
    )
    packets = [bs.parse_packet(p) for p in bs.unpack_stream((tmp_path / "v.strata").read_bytes())]
    assert [p.seq for p in packets] == list(range(6))
    assert (packets[0].width, packets[0].height) == (32, 24)
    assert main(["decode-video", str(tmp_path / "v.strata"), "-o", str(tmp_path / "frames")]) == 0
    assert len(list((tmp_path / "frames").glob("*.png"))) == 6
    assert main(["decode-video", str(tmp_path / "v.strata"), "-o", str(tmp_path / "out.mp4")]) == 0
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6


def test_evaluate_small(tmp_path, photo):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):  # small: MS-SSIM dominates the run time
        Image.fromarray(np.ascontiguousarray(photo[i * 50 : i * 50 + 112, :112])).save(
            imgs / f"{i}.png"
        )
    out = tmp_path / "r.json"
    args = [
        "evaluate",
        "--images",
        str(imgs),
        "--size",
        "full",
        "--no-webp",
        "--out",
        str(out),
        "--plot",
        str(tmp_path / "rd.png"),
    ]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert len(report["curves"]["mcucoder-float"]) == 12
    assert "jpeg" in report["curves"] and (tmp_path / "rd.png").exists()
