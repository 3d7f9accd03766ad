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


# --- firmware/zephyr/src/strata_link.c: the Zephyr app's MQTT logic, built on the host ----

ZEPHYR = ROOT / "firmware" / "zephyr"


@pytest.fixture(scope="module")
def link_cli(tmp_path_factory) -> Path:
    import shutil

    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no host C compiler (cc): firmware/zephyr link logic not tested")
    exe = tmp_path_factory.mktemp("zephyr-link") / "link_cli"
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Werror"]
    cmd += ["-I", str(ZEPHYR / "src"), str(ZEPHYR / "src" / "strata_link.c")]
    cmd += [str(ZEPHYR / "tests" / "link_cli.c"), "-lm", "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return exe


def _python_device(desired_payloads: list[str]) -> list[tuple[int, dict | None]]:
    """devices/camera.py's rules (Settings.merged + the repeat/stale checks) per payload:
    (1 applied | 0 ignored | -1 invalid, settings dict after it)."""
    from devices.camera import Settings

    s, out = Settings(), []
    for raw in desired_payloads:
        try:
            d = json.loads(raw)
        except ValueError:  # Python's decoder message; the firmware says "must be a JSON object"
            out.append((-1, "desired state must be a JSON object"))
            continue
        try:
            if not isinstance(d, dict):
                raise ValueError("desired state must be a JSON object")
            if d.get("version", -1) == s.version and s.version:
                out.append((0, None))
                continue
            new = s.merged(d)
        except ValueError as exc:
            out.append((-1, str(exc)))
            continue
        if new.version < s.version:
            out.append((0, None))
            continue
        s = new
        out.append((1, None))
    return out


DESIRED = [
    '{"version": 5, "tier": 6, "fps": 2.0, "max_kbps": 48}',
    '{"version": 5, "tier": 6}',  # QoS 1 duplicate
    '{"version": 6, "tier": 13}',
    '{"version": 6, "tier": 0}',
    '{"version": 6, "tier": 4.0}',
    '{"version": 6, "tier": true}',
    '{"version": 6, "fps": 31}',
    '{"version": 6, "max_kbps": 0}',
    '{"version": 6, "mode": "burst"}',
    '{"version": -1}',
    '{"tier": 3}',
    '{"version": 3}',  # stale
    "not json",
    "[1, 2]",
    '{"version": 7, "max_kbps": null, "mode": "motion", "extra": {"a": [1, "}"]}}',
    '{"version": 8, "fps": 0, "tier": 1}',
]


def test_zephyr_link_desired_rules_match_the_simulator(link_cli):
    res = subprocess.run(
        [str(link_cli), "cam-007", *DESIRED], capture_output=True, text=True, check=True
    )
    lines = res.stdout.splitlines()
    expected = _python_device(DESIRED)
    for raw, line, (code, err) in zip(DESIRED, lines, expected, strict=False):
        got_code, report = line.split(" ", 1)
        assert int(got_code) == code, (raw, line)
        rep = json.loads(report)
        if code == -1:
            assert rep["error"] == err and rep["rejected"] == raw
        else:
            assert "error" not in rep
    final = json.loads(lines[len(DESIRED) - 1].split(" ", 1)[1])
    assert final == {
        "version": 8, "tier": 1, "fps": 0.0, "max_kbps": None, "mode": "motion",
        "device": "cam-007", "ts": 1764086420456,
    }  # fmt: skip


def test_zephyr_link_topics_and_payloads_follow_docs_mqtt(link_cli):
    from devices import topics

    res = subprocess.run(
        [str(link_cli), "cam-007", DESIRED[0]], capture_output=True, text=True, check=True
    )
    lines = res.stdout.splitlines()[1:]
    assert lines[:5] == [topics.topic("cam-007", k) for k in topics.Kind]
    online, offline, telemetry = (json.loads(x) for x in lines[5:8])
    doc = (ROOT / "docs" / "mqtt.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", doc, re.S)]
    doc_online = next(b for b in blocks if b.get("state") == "online")
    doc_will = next(b for b in blocks if b.get("state") == "offline")
    doc_tel = next(b for b in blocks if "puback_ms" in b)
    assert set(online) == set(doc_online) and online["state"] == "online"
    assert online["mqtt"] == "3.1.1" and online["resolution"] == [224, 224]
    assert offline == doc_will  # the Last Will: no timestamp
    assert set(telemetry) == set(doc_tel) and set(telemetry["puback_ms"]) == {
        "mean",
        "p95",
        "samples",
    }
    assert telemetry["frames_dropped"] == telemetry["dropped_backlog"] + telemetry["dropped_rate"]
    # local fallback rule 1 at tier 6, max_backlog 16: full, half the tier, drop
    assert lines[8] == "6 3 0"
    assert lines[9] == "-1"  # a payload that does not fit is refused, never truncated


def test_zephyr_link_rejects_bad_device_ids(link_cli):
    res = subprocess.run([str(link_cli), "cam/7"], capture_output=True, text=True, check=True)
    assert res.stdout.splitlines()[:5] == ["BAD"] * 5
