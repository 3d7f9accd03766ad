"""The encoder cross-compiled for Cortex-M7 (mps2-an500) and Cortex-M33 (mps2-an505),
run bare-metal under qemu-system-arm with semihosting for files: its packets must be
the Python codec's packets, byte for byte, as on the host. Both cores run the DSP
convolutions (SMLAD); the Cortex-M7 also runs the portable C path (STRATA_USE_DSP=OFF),
which the host build runs too.

Needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm
(``bash scripts/ensure_firmware_tools.sh`` installs them); skipped without them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.firmware.images import resized, write_ppm
from tests.firmware.sequences import Frame, c_stream, noise, python_stream, still_scene

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
BOARDS = {"mps2-an500": "Cortex-M7", "mps2-an505": "Cortex-M33"}
BUILDS = {"mps2-an500": "ON", "mps2-an505": "ON", "mps2-an500-portable": "OFF"}  # DSP
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "cmake")


@pytest.fixture(scope="module", params=list(BUILDS))
def arm_build(request, tmp_path_factory) -> tuple[str, Path]:
    """(board, CMake build folder) of the bare-metal build for that board (and path)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(
            f"bare-metal tests need {', '.join(missing)}: run scripts/ensure_firmware_tools.sh"
        )
    board = request.param.removesuffix("-portable")
    build = tmp_path_factory.mktemp(f"firmware-{request.param}")
    for cmd in (
        [
            "cmake",
            "-S",
            str(FIRMWARE),
            "-B",
            str(build),
            f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE / 'arm' / 'toolchain-arm-none-eabi.cmake'}",
            f"-DSTRATA_BOARD={board}",
            f"-DSTRATA_USE_DSP={BUILDS[request.param]}",
            "-DSTRATA_WERROR=ON",
        ],
        ["cmake", "--build", str(build), "-j", "2"],
    ):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return board, build


def qemu_run(board: str, elf: Path, *args: str) -> subprocess.CompletedProcess:
    """Run a program on the emulated board; QEMU passes the args as its command line."""
    semi = ",".join(["enable=on", "target=native", f"arg={elf.stem}"] + [f"arg={a}" for a in args])
    cmd = ["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none", "-serial", "none"]
    cmd += ["-semihosting-config", semi, "-kernel", str(elf)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "size, k", [((224, 224), 12), ((53, 37), 5)], ids=["224x224-k12", "53x37-k5"]
)
def test_emulated_mcu_packets_are_byte_identical(
    arm_build, reference_codec, hopper, tmp_path, size, k
):
    board, build = arm_build
    image = resized(hopper, *size)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    out = tmp_path / "out"
    res = qemu_run(
        board, build / "strata-encode.elf", str(ppm), str(out), "--channels", str(k), "--stats"
    )
    assert res.returncode == 0, f"{BOARDS[board]}: {res.stdout}{res.stderr}"
    assert out.read_bytes() == reference_codec.encode(image, k)
    # the whole tool (stdio through semihosting included) stays within a small stack
    stack = int(re.search(r"stack peak (\d+) bytes", res.stderr).group(1))
    assert 0 < stack <= 2048, stack


@pytest.mark.parametrize("size", [(1, 1), (17, 100), (300, 3), (33, 35)], ids=str)
def test_frame_edges_and_noise_are_byte_identical(arm_build, reference_codec, tmp_path, size):
    """Frames whose every pixel block touches an edge, narrower than a kernel row's read,
    or ending in a partial block; noise reaches the table clamps. k = 7: an odd channel
    count, so the last channel pair is half used."""
    board, build = arm_build
    w, h = size
    image = np.random.default_rng(w * 1000 + h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ppm = write_ppm(tmp_path / "in.ppm", image)
    out = tmp_path / "out"
    res = qemu_run(board, build / "strata-encode.elf", str(ppm), str(out), "--channels", "7")
    assert res.returncode == 0, f"{BOARDS[board]}: {res.stdout}{res.stderr}"
    assert out.read_bytes() == reference_codec.encode(image, 7)


def test_api_contract_on_the_emulated_mcu(arm_build):
    """firmware/tests/test_api.c on the 32-bit target; its stack is the library's own
    (plus printf)."""
    board, build = arm_build
    res = qemu_run(board, build / "strata-test-api.elf")
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout + res.stderr
    stack = int(re.search(r"stack peak (\d+) bytes", res.stderr).group(1))
    assert 0 < stack <= 2048, stack


def test_predicted_stream_is_byte_identical(arm_build, reference_codec, hopper, tmp_path):
    """A still camera's stream (predicted frames, a scene change, a tier change, a
    requested key frame) coded on the board: the Python PredictiveEncoder's packets."""
    board, build = arm_build
    imgs = still_scene(hopper, 64, 48, 7, seed=3)
    frames = [Frame(im, 12, 10 + i) for i, im in enumerate(imgs)]
    frames[3] = Frame(noise(64, 48, 3), 12, 13)
    frames[5] = Frame(imgs[5], 5, 15, key=True)
    frames[6] = Frame(imgs[6], 9, 16)
    opts = ("--block", "3", "--dead-zone", "2")
    got = c_stream(
        build / "strata-encode.elf",
        frames,
        tmp_path,
        *opts,
        run=lambda *a: qemu_run(board, build / "strata-encode.elf", *a),
    )
    assert got == python_stream(reference_codec, frames, 50, 3, 2), BOARDS[board]
    assert [p[3] for p in got] == [0, 1, 1, 1, 1, 0, 1]  # frame types
