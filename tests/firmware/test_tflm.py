"""TFLite-Micro path (the paper's): the committed INT8 .tflite run with TFLM's reference
kernels (the ``tflite-micro`` package) is bit-exact with ai-edge-litert's reference
kernels on real images; TFLM's arena figures; the generated C array of the model
(``firmware/model/``) is up to date. Tests needing ``tflite-micro`` skip without it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.firmware.images import resized

ROOT = Path(__file__).resolve().parents[2]
TFLITE = ROOT / "mcucoder" / "weights" / "mcucoder-s.int8.tflite"
MODEL_DIR = ROOT / "firmware" / "model"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


measure = _load("strata_tflm_measure", ROOT / "firmware" / "tflm" / "measure.py")
gen_array = _load("strata_gen_model_array", MODEL_DIR / "gen_model_array.py")


def _has_tflm() -> bool:
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except ImportError:
        return False
    return True


needs_tflm = pytest.mark.skipif(
    not _has_tflm(),
    reason="tflite-micro is not installed (pip install -r requirements-dev.txt): "
    "TFLite-Micro checks skipped",
)


@pytest.fixture(scope="module")
def litert_ref():
    from mcucoder.int8 import Int8Encoder

    return Int8Encoder(TFLITE, reference_kernels=True)


@needs_tflm
@pytest.mark.parametrize("size", [(224, 224), (320, 240), (96, 72)])
def test_tflm_bit_exact_with_litert_reference_kernels(hopper, litert_ref, size):
    width, height = size
    image = resized(hopper, width, height)
    x = litert_ref.quantise_input(image)  # (1, H, W, 3) int8, as the camera feeds TFLM
    expected, _, _ = litert_ref.int8_latent(image)
    model = measure.resized_model(TFLITE.read_bytes(), width, height)
    got = measure.tflm_latent(measure.tflm_interpreter(model), x)
    assert got.dtype == np.int8 and got.shape == (1, height // 8, width // 8, 12)
    assert np.array_equal(got[0], expected)
    assert np.unique(got).size > 8  # a real latent, not a constant


@needs_tflm
def test_tflm_runs_in_exactly_the_reported_arena(hopper, litert_ref):
    """The arena print_allocations() reports is enough, and 16 bytes less is not."""
    model = measure.resized_model(TFLITE.read_bytes(), 224, 224)
    arena = measure.arena_bytes(measure.print_allocations(measure.tflm_interpreter(model)))
    assert arena["total"] == arena["head"] + arena["tail"]
    assert 400_000 < arena["total"] < 420_000  # firmware/README.md: 410,960 B
    image = resized(hopper, 224, 224)
    expected, _, _ = litert_ref.int8_latent(image)
    got = measure.tflm_latent(
        measure.tflm_interpreter(model, arena["total"]), litert_ref.quantise_input(image)
    )
    assert np.array_equal(got[0], expected)
    with pytest.raises(RuntimeError):
        measure.tflm_interpreter(model, arena["total"] - 16)


@needs_tflm
def test_measure_script_prints_json_last():
    res = subprocess.run(
        [sys.executable, str(ROOT / "firmware" / "tflm" / "measure.py"), "--sizes", "64x48"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert last["flash_model_bytes"] == TFLITE.stat().st_size
    assert last["arena_bytes"]["64x48"] > 64 * 48 * 3


def test_resized_graph_keeps_the_weights():
    """Only shapes change: every constant buffer and the operators are the same."""
    from ai_edge_litert import schema_py_generated as s

    src = TFLITE.read_bytes()
    a = s.ModelT.InitFromPackedBuf(src, 0)
    b = s.ModelT.InitFromPackedBuf(measure.resized_model(src, 320, 240), 0)
    ga, gb = a.subgraphs[0], b.subgraphs[0]
    assert [(o.opcodeIndex, list(o.inputs), list(o.outputs)) for o in ga.operators] == [
        (o.opcodeIndex, list(o.inputs), list(o.outputs)) for o in gb.operators
    ]
    for ta, tb in zip(ga.tensors, gb.tensors, strict=True):
        da, db = a.buffers[ta.buffer].data, b.buffers[tb.buffer].data
        assert (da is None) == (db is None)
        if da is not None:
            assert bytes(da) == bytes(db)
    assert list(gb.tensors[gb.inputs[0]].shape) == [1, 240, 320, 3]
    assert list(gb.tensors[gb.outputs[0]].shape) == [1, 30, 40, 12]


def _committed(name: str) -> str:
    path = MODEL_DIR / name
    assert path.exists(), f"{path} missing: run firmware/model/gen_model_array.py"
    return path.read_text()


def test_committed_model_array_is_up_to_date():
    """The committed C array is exactly the resized graph of the committed .tflite."""
    w, h = gen_array.DEFAULT_SIZE
    name = gen_array.base_name(w, h)
    text = _committed(f"{name}.c")
    body = text.split("= {", 1)[1].split("};", 1)[0]
    array = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))
    assert array == measure.resized_model(TFLITE.read_bytes(), w, h), (
        "firmware/model is stale: run .venv/bin/python firmware/model/gen_model_array.py"
    )
    header = _committed(f"{name}.h")
    arena = int(re.search(rf"{name.upper()}_ARENA_SIZE (\d+)", header).group(1))
    # Everything but the measured arena, regenerated without tflite-micro:
    for fname, fresh in gen_array.generate(w, h, arena=arena).items():
        assert _committed(fname) == fresh, f"{fname} is stale: rerun gen_model_array.py"


@needs_tflm
def test_committed_arena_define_matches_tflm():
    w, h = gen_array.DEFAULT_SIZE
    for fname, fresh in gen_array.generate(w, h).items():
        assert _committed(fname) == fresh, f"{fname} is stale: rerun gen_model_array.py"
