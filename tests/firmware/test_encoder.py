"""The C encoder (firmware/) against the Python codec: byte-identical packets.

The Python side is the codec with the INT8 .tflite on TFLite's reference kernels
(``python -m mcucoder encode --reference-kernels``); the C side is the host tool
``strata-encode``, which feeds the encoder one camera row at a time. Equal packets mean
equal int8 latents (the convolution arithmetic), equal symbols, equal rANS streams and
equal headers and CRC.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcucoder.bitstream import parse_packet
from tests.firmware.images import resized, through_rgb565, write_ppm

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
ALL_K = range(1, 13)


def c_encode(tool: Path, ppm: Path, out: Path, *options: str) -> bytes:
    res = subprocess.run(
        [str(tool), str(ppm), str(out), *options], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    return out.read_bytes()


@pytest.mark.parametrize(
    "size",
    [(64, 48), (96, 72), (224, 224), (53, 37), (8, 8), (1, 1), (17, 100)],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
def test_packets_are_byte_identical_for_every_k(
    strata_encode, reference_codec, hopper, tmp_path, size
):
    image = resized(hopper, *size)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    for k in ALL_K:
        got = c_encode(strata_encode, ppm, tmp_path / "out", "--channels", str(k))
        assert got == reference_codec.encode(image, k), f"k={k}"
        assert parse_packet(got).n_channels == k


def test_vga_frame_is_byte_identical(strata_encode, reference_codec, hopper, tmp_path):
    """640x480: the frame size whole-frame TFLM cannot fit on the target MCUs."""
    image = resized(hopper, 640, 480)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    for k in (1, 12):
        got = c_encode(strata_encode, ppm, tmp_path / "out", "--channels", str(k))
        assert got == reference_codec.encode(image, k), f"k={k}"


def test_header_fields_match_the_python_cli(strata_encode, hopper, tmp_path):
    """The real command line, with a sequence number and capture time in the header."""
    image = resized(hopper, 96, 72)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    png = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(image).save(png)
    opts = ["--channels", "7", "--seq", "4000000000", "--time", "1764089000123"]
    subprocess.run(
        [sys.executable, "-m", "mcucoder", "encode", str(png), "-o", str(tmp_path / "py")]
        + opts
        + ["--reference-kernels"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    got = c_encode(strata_encode, ppm, tmp_path / "c", *opts)
    assert got == (tmp_path / "py").read_bytes()
    p = parse_packet(got)
    assert (p.seq, p.capture_time_ms, p.width, p.height) == (4000000000, 1764089000123, 96, 72)


@pytest.mark.parametrize("order", ["--rgb565", "--rgb565be"])
@pytest.mark.parametrize("size", [(96, 72), (45, 31)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_rgb565_rows(strata_encode, reference_codec, hopper, tmp_path, size, order):
    """A 16-bit sensor (either byte order): the packet is the codec's packet of the image
    it actually saw."""
    image = resized(hopper, *size)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    for k in (3, 12):
        got = c_encode(strata_encode, ppm, tmp_path / "out", "--channels", str(k), order)
        assert got == reference_codec.encode(through_rgb565(image), k)


def _workspace(tool: Path, ppm: Path, out: Path, k: int = 12) -> int:
    res = subprocess.run(
        [str(tool), str(ppm), str(out), "--channels", str(k), "--stats"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    return int(re.search(r"workspace (\d+) bytes", res.stderr).group(1))


def test_working_memory_stays_within_the_issue_targets(strata_encode, hopper, tmp_path):
    """Stripe execution: ≤ 64 KB at 224x224 and ≤ 128 KB at 640x480 (static workspace;
    the library's stack is a few hundred bytes more, see firmware/README.md)."""
    small = _workspace(
        strata_encode, write_ppm(tmp_path / "a.ppm", resized(hopper, 224, 224)), tmp_path / "a"
    )
    vga = _workspace(
        strata_encode, write_ppm(tmp_path / "b.ppm", resized(hopper, 640, 480)), tmp_path / "b"
    )
    assert small <= 64 * 1024 and vga <= 128 * 1024, (small, vga)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--channels", "0"], "bad frame parameters"),
        (["--channels", "13"], "bad frame parameters"),
        (["--bogus"], "unknown option"),
    ],
)
def test_bad_arguments_are_refused(strata_encode, hopper, tmp_path, options, message):
    ppm = write_ppm(tmp_path / "in.ppm", resized(hopper, 16, 16))
    res = subprocess.run(
        [str(strata_encode), str(ppm), str(tmp_path / "out"), *options],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1 and message in res.stderr


def test_truncated_ppm_is_refused(strata_encode, hopper, tmp_path):
    ppm = write_ppm(tmp_path / "in.ppm", resized(hopper, 16, 16))
    ppm.write_bytes(ppm.read_bytes()[:-10])
    res = subprocess.run(
        [str(strata_encode), str(ppm), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert res.returncode == 1 and "ends early" in res.stderr


def test_noise_frames_are_byte_identical(strata_encode, reference_codec, tmp_path):
    """Noise drives the latent to the tables' clamps and rare symbols (long rANS chunks)."""
    rng = np.random.default_rng(4)
    for w, h in ((64, 48), (31, 9)):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ppm = write_ppm(tmp_path / "in.ppm", image)
        for k in (1, 12):
            got = c_encode(strata_encode, ppm, tmp_path / "out", "--channels", str(k))
            assert got == reference_codec.encode(image, k), f"{w}x{h} k={k}"


def test_api_contract(firmware_build):
    """firmware/tests/test_api.c: argument and call-order errors, workspace and output
    limits (a buffer of exactly the packet's size suffices, one byte less does not)."""
    res = subprocess.run(
        [str(firmware_build / "strata-test-api")], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout + res.stderr


def test_coding_method_1_for_models_without_context_tables(
    reference_codec, hopper, tmp_path, monkeypatch
):
    """A model released without context tables codes with method 1: the firmware built
    from such tables (the same generator functions) still matches the codec."""
    import dataclasses
    import importlib.util
    import json
    import shutil

    from mcucoder import bitstream as bs
    from mcucoder.codec import Codec
    from mcucoder.entropy import tables_from_json
    from mcucoder.firmware_tables import c_header
    from mcucoder.registry import WEIGHTS_DIR, model_entry

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    spec = importlib.util.spec_from_file_location("gen_model", FIRMWARE / "tools" / "gen_model.py")
    gen = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gen_model", gen)  # its dataclass needs the module
    spec.loader.exec_module(gen)
    _, entry = model_entry(None)
    tflite = WEIGHTS_DIR / entry["tflite"]
    layers, (scale, zp) = gen.read_graph(tflite)
    tables = [
        dataclasses.replace(t, ctx_freq=None)
        for t in tables_from_json(json.loads((WEIGHTS_DIR / entry["tables"]).read_text()))
    ]
    gen_dir = tmp_path / "generated"
    gen_dir.mkdir()
    (gen_dir / "strata_model.h").write_text(
        gen.model_header(layers, gen.input_lut(tflite), entry["model_id"])
    )
    (gen_dir / "mcucoder_tables.h").write_text(c_header(entry["model_id"], tables, scale, zp))
    (gen_dir / "strata_predict_tables.h").write_text(gen.predict_header())
    tool = tmp_path / "strata-encode-m1"
    sources = [str(p) for p in sorted((FIRMWARE / "src").glob("*.c"))]
    sources.append(str(FIRMWARE / "tools" / "strata_encode.c"))
    subprocess.run(
        [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tool)]
        + [f"-I{d}" for d in (FIRMWARE / "include", FIRMWARE / "src", gen_dir)]
        + sources,
        check=True,
        timeout=120,
    )
    codec = Codec(
        "no-context",
        reference_codec.model_id,
        reference_codec.encoder,
        reference_codec.decoder,
        tables,
        int8=reference_codec.int8,
    )
    assert codec.coding == bs.CODING_RANS
    image = resized(hopper, 53, 37)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    for k in (1, 12):
        got = c_encode(tool, ppm, tmp_path / "out", "--channels", str(k))
        assert got == codec.encode(image, k) and parse_packet(got).coding == bs.CODING_RANS


def test_largest_dimensions(strata_encode, reference_codec, tmp_path):
    """65535 pixels wide or high (the header's limit; padded to 65536 inside)."""
    rng = np.random.default_rng(7)
    for w, h in ((65535, 3), (3, 65535)):
        image = rng.integers(64, 192, (h, w, 3), dtype=np.uint8)
        ppm = write_ppm(tmp_path / "in.ppm", image)
        got = c_encode(strata_encode, ppm, tmp_path / "out", "--channels", "3")
        assert got == reference_codec.encode(image, 3), f"{w}x{h}"
