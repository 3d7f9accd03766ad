"""Builds the firmware once per test session with CMake (into a temporary folder, so
concurrent test runs never share a build) and provides the Python reference codec."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"


def _missing_tools() -> list[str]:
    missing = [t for t in ("cmake",) if shutil.which(t) is None]
    if not any(shutil.which(c) for c in (os.environ.get("CC", "cc"), "cc", "gcc", "clang")):
        missing.append("a C compiler (cc)")
    return missing


@pytest.fixture(scope="session")
def firmware_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CMake build folder (warnings are errors here)."""
    missing = _missing_tools()
    if missing:
        pytest.skip(f"firmware tests need {' and '.join(missing)}: not installed")
    build = tmp_path_factory.mktemp("firmware-build")
    configure = [
        "cmake",
        "-S",
        str(FIRMWARE),
        "-B",
        str(build),
        "-DSTRATA_WERROR=ON",
        f"-DSTRATA_PYTHON={sys.executable}",
    ]
    for cmd in (configure, ["cmake", "--build", str(build), "-j", "2"]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return build


@pytest.fixture(scope="session")
def strata_encode(firmware_build: Path) -> Path:
    return firmware_build / "strata-encode"


@pytest.fixture(scope="session")
def reference_codec():
    """The Python codec with the INT8 .tflite on TFLite's reference kernels: exactly what
    ``python -m mcucoder encode --reference-kernels`` runs."""
    from mcucoder.registry import WEIGHTS_DIR, model_entry

    _, entry = model_entry(None)
    if not entry.get("tflite") or not (WEIGHTS_DIR / entry["tflite"]).exists():
        pytest.skip("the default model has no INT8 .tflite encoder")
    from mcucoder.codec import Codec

    return Codec.load(encoder="int8", reference_kernels=True)


@pytest.fixture(scope="session")
def hopper():
    """matplotlib's bundled photo (no downloads), as a PIL image."""
    import matplotlib.cbook as cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        return im.convert("RGB")
