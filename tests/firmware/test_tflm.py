"""TFLite-Micro path (the paper's): the committed INT8 .tflite run with TFLM's reference
kernels (the ``tflite-micro`` package) is bit-exact with ai-edge-litert's reference
kernels on real images; TFLM's arena figures; the generated C array of the model
(``firmware/model/``) is up to date. Tests needing ``tflite-micro`` skip without it."""

from __future__ import annotations

import dataclasses
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


# --- firmware/zephyr/src (strata_link.h): the Zephyr app's MQTT logic, built on the host ----

ZEPHYR = ROOT / "firmware" / "zephyr"


@pytest.fixture(scope="module")
def link_cli(firmware_build) -> Path:
    """zephyr/tests/link_cli.c over the link units, linked with the encoder's strata_packet.c
    (CRC-32, LEB128): the CMake target strata-link-cli (-std=c99, warnings are errors)."""
    return firmware_build / "strata-link-cli"


def test_zephyr_link_reuses_the_encoders_crc_and_leb128():
    """One CRC-32 and one LEB128 in the firmware: strata_packet.c's (strata_bitstream.h)."""
    sources = {p: p.read_text() for p in (ROOT / "firmware").rglob("*.c")}
    crc = [p.name for p, text in sources.items() if re.search(r"0x[0-9a-fA-F]*edb88320", text)]
    leb = [p.name for p, text in sources.items() if re.search(r"0x7f\)\s*<<", text)]
    assert crc == ["strata_packet.c"] and leb == ["strata_packet.c"], (crc, leb)
    link = "".join(sources[p] for p in (ZEPHYR / "src").glob("strata_*.c"))
    assert "strata_crc32(" in link and "strata_uvarint_read(" in link


def _python_device(desired_payloads: list[str]) -> list[tuple[int, str | dict | None]]:
    """devices/camera.py's rules (Settings.merged + the repeat/stale checks) per payload:
    (1 applied | 0 ignored | -1 invalid, the error text, or the applied settings as
    Camera._applied() writes them)."""
    from dataclasses import asdict

    from protocol.payloads import Desired as Settings

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
        out.append((1, asdict(s)))
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
    '{"version": 9, "deadline_ms": 99}',
    '{"version": 9, "deadline_ms": 600001}',
    '{"version": 9, "deadline_ms": true}',
    '{"version": 9, "deadline_ms": "1000"}',
    '{"version": 9, "deadline_ms": 1000}',
    '{"version": 10, "deadline_ms": 250.5, "tier": 3}',
    '{"version": 11, "deadline_ms": 100}',
    '{"version": 12, "deadline_ms": 600000.0}',
    '{"version": 13, "deadline_ms": null, "fps": 0, "tier": 1}',
    '{"version": 14, "key_request": -1}',
    '{"version": 14, "key_request": 2.0}',
    '{"version": 14, "key_request": "1"}',
    '{"version": 14, "key_request": 3}',
    '{"version": 14, "key_request": 4}',  # QoS 1 duplicate: the request is answered once
    '{"version": 15, "tier": 2}',  # a later state without the field keeps it
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
        if code == 1:  # the settings, in Camera._applied()'s order, as json.dumps writes them
            assert list(rep.items())[: len(err)] == list(err.items()), raw
            assert report.startswith(json.dumps(err)[:-1] + ", "), raw
    assert "'deadline_ms' must be a number 100..600000 or null" in lines[16]
    after_9 = json.loads(lines[20].split(" ", 1)[1])
    assert after_9["deadline_ms"] == 1000.0 and '"deadline_ms": 1000.0,' in lines[20]
    final = json.loads(lines[len(DESIRED) - 1].split(" ", 1)[1])
    assert "'key_request' must be a non-negative integer" in lines[len(DESIRED) - 4]
    assert lines[len(DESIRED) - 2].startswith("0 ")  # the repeated version: ignored
    assert final == {
        "version": 15, "tier": 2, "fps": 0.0, "max_kbps": None, "mode": "motion",
        "deadline_ms": None, "key_request": 3, "device": "cam-007", "ts": 1764086420456,
    }  # fmt: skip


def test_zephyr_link_topics_and_payloads_follow_docs_mqtt(link_cli):
    from protocol import topics

    res = subprocess.run(
        [str(link_cli), "cam-007", DESIRED[0]], capture_output=True, text=True, check=True
    )
    lines_all = res.stdout.splitlines()
    lines = lines_all[1:]
    assert lines[:5] == [topics.topic("cam-007", k) for k in topics.Kind]
    online, offline, telemetry, telemetry2 = (json.loads(x) for x in lines[5:9])
    doc = (ROOT / "docs" / "mqtt.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", doc, re.S)]
    doc_online = next(b for b in blocks if b.get("state") == "online")
    doc_will = next(b for b in blocks if b.get("state") == "offline")
    doc_tel = next(b for b in blocks if "puback_ms" in b)
    doc_reports = [b for b in blocks if "rejected" in b or set(b) >= {"version", "device", "ts"}]
    doc_reports = [b for b in doc_reports if "state" not in b and "puback_ms" not in b]
    assert len(doc_reports) == 2  # applied, rejected
    assert set(online) == set(doc_online) and online["state"] == "online"
    assert online["mqtt"] == "3.1.1" and online["resolution"] == [224, 224]
    assert offline == doc_will  # the Last Will: no timestamp
    assert set(telemetry) == set(doc_tel) and set(telemetry["puback_ms"]) == {
        "mean",
        "p95",
        "samples",
    }
    assert list(telemetry) == list(doc_tel)  # the doc's order, settings last as Python's
    assert telemetry["frames_dropped"] == (
        telemetry["dropped_backlog"] + telemetry["dropped_rate"] + telemetry["dropped_deadline"]
    )
    assert telemetry["dropped_deadline"] == 2 and telemetry["link_kbps"] is None
    assert telemetry["deadline_ms"] is None and telemetry["puback_ms"]["samples"] == 8
    # no PUBACK yet: latency null (as Python); link_kbps rounded to 2 decimals
    assert telemetry2["puback_ms"] == {"mean": None, "p95": None, "samples": 0}
    assert telemetry2["link_kbps"] == 23.8
    # the reported payloads (applied, rejected) against the doc's examples
    applied = json.loads(lines_all[0].split(" ", 1)[1])
    rejected = json.loads(
        subprocess.run(
            [str(link_cli), "cam-007", '{"version": 5, "tier": 13}'],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[0]
        .split(" ", 1)[1]
    )
    assert list(applied) == list(doc_reports[0])
    assert list(rejected) == list(doc_reports[1])
    # local fallback rule 1 at tier 6, max_backlog 16: full, half the tier, drop
    assert lines[9] == "6 3 0"
    assert lines[10] == "-1"  # a payload that does not fit is refused, never truncated


def test_zephyr_link_payloads_pass_the_protocol_validators(link_cli):
    """The C firmware's messages, checked by the one definition of the contract
    (``protocol.payloads``): accepted, and laid out as the Python classes write them."""
    from protocol.payloads import MAX_TIER, Desired, Reported, Status, Telemetry

    header = (ROOT / "firmware" / "zephyr" / "src" / "strata_desired.h").read_text()
    assert f"#define STRATA_MAX_TIER {MAX_TIER}\n" in header  # the codec's channel count
    res = subprocess.run(
        [str(link_cli), "cam-007", DESIRED[0], '{"version": 6, "tier": 13}'],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = res.stdout.splitlines()
    applied, refused = (json.loads(line.split(" ", 1)[1]) for line in lines[:2])
    online, offline, telemetry = lines[7:10]
    assert Reported.parse(applied)["version"] == 5
    settings = Desired().merged(applied)
    assert list(applied) == list(Reported("cam-007", applied["ts"], settings).to_dict())
    assert Reported.parse(refused)["error"] == "'tier' must be an integer 1..12"
    assert Status.parse(online).state == "online" and Status.parse(offline).state == "offline"
    assert json.loads(offline) == Status.last_will("cam-007").to_dict()
    parsed, raw = Telemetry.parse(telemetry)
    rebuilt = dataclasses.replace(parsed, applied=Desired().merged(raw))
    assert list(raw) == list(rebuilt.to_dict())  # the same fields, in the same order
    assert raw == json.loads(json.dumps(rebuilt.to_dict()))


def test_zephyr_link_rejects_bad_device_ids(link_cli):
    res = subprocess.run([str(link_cli), "cam/7"], capture_output=True, text=True, check=True)
    assert res.stdout.splitlines()[:5] == ["BAD"] * 5


# --- the uplink estimator, the rate cap + deadline guard and packet trimming ---------------


def _script(link_cli: Path, commands: list[str]) -> list[str]:
    res = subprocess.run(
        [str(link_cli), "--script"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout.splitlines()


def _num(text: str) -> float | None:
    x = float(text)
    return None if x == -1 else x


# (sent_at, acked_at, size): overlapping frames (service from the previous PUBACK), service
# times below 2 ms and above 2 s (no sample), more than the window of 4, a fade and a recovery
ACKS = [
    (0.0, 0.1, 1000),
    (0.05, 0.15, 500),
    (0.2, 0.2015, 100),
    (0.3, 2.5, 4000),
    (3.0, 3.5, 2000),
    (3.6, 3.7, 3000),
    (3.65, 3.9, 1000),
    (4.0, 4.001, 10),
    (4.0, 4.5, 5000),
    (5.0, 5.25, 50),
    (5.3, 5.4, 4000),
]
# (size, queued_bytes, oldest (size, age) or None)
ARRIVALS = [
    (500, 0, None),
    (500, 3000, (1000, 0.05)),
    (500, 3000, (1000, 0.0)),
    (2000, 1000, (1000, 3.0)),
    (1, 0, (20000, 0.5)),
]


def test_zephyr_uplink_estimator_matches_devices_uplink(link_cli):
    from devices.uplink import UplinkEstimator

    py = UplinkEstimator()
    commands, expected = ["reset"], [None]
    for size, queued, oldest in ARRIVALS:  # nothing measured: no prediction
        commands.append(f"arrival {size} {queued} {oldest[0] if oldest else 0} "
                        f"{oldest[1] if oldest else 0}")  # fmt: skip
        expected.append(py.arrival_s(size, queued, oldest))
    for sent, acked, size in ACKS:
        py.acknowledged(sent, acked, size)
        commands.append(f"ack {sent!r} {acked!r} {size}")
        expected.append(py.kbps())
        for size2, queued, oldest in ARRIVALS:
            commands.append(f"arrival {size2} {queued} {oldest[0] if oldest else 0} "
                            f"{oldest[1] if oldest else 0}")  # fmt: skip
            expected.append(py.arrival_s(size2, queued, oldest))
    got = _script(link_cli, commands)
    assert len(got) == len(expected)
    assert got[0] == "ok" and all(x == "-1" for x in got[1 : 1 + len(ARRIVALS)])
    for cmd, line, want in zip(commands[1:], got[1:], expected[1:], strict=True):
        if want is None:
            assert _num(line) is None, cmd
        else:
            assert _num(line) == pytest.approx(want, rel=1e-12), cmd
    # hand-checked: 80, 80 (from the previous PUBACK), then 32 / 240 / 40 / 80.16 / 1.6 / 320
    # kbit/s (80.16: served from the ignored 1 ms sample's PUBACK, 0.499 s); the harmonic mean
    # of (240, 40, 80.16, 1.6) is above the latest (1.6): a fade is believed at once
    kbps = [_num(got[1 + (1 + len(ARRIVALS)) * i + len(ARRIVALS)]) for i in range(len(ACKS))]
    assert kbps[1] == pytest.approx(80) and kbps[3] == pytest.approx(80)
    assert kbps[9] == pytest.approx(1.6)
    assert kbps[10] == pytest.approx(4 / (1 / 40 + 0.499 / 40 + 1 / 1.6 + 1 / 320))


# Estimator states for the guard: steady 80 kbit/s; nothing measured
STEADY = [(0.0, 0.1, 1000), (0.2, 0.3, 1000)]
SIZES = [33 + 500 * k for k in range(1, 13)]  # the packet with its first k channels
# (name, acks, deadline_ms, max_kbps, cap window [(seconds before capture, bytes)],
#  queued bytes, oldest pending frame (size, age) or None, seconds since capture, sizes,
#  hand-checked (channels, outcome)[, hysteresis: the frames sent before, as (channels,
#  seconds before this capture), ...])
GUARD_CASES = [
    ("no deadline, no cap", STEADY, None, None, [], 0, None, 0.1, SIZES, (12, "sent")),
    ("no estimate: one channel", [], 1000, None, [], 0, None, 0.1, SIZES, (1, "sent")),
    ("most channels in half the deadline", STEADY, 1000, None, [], 0, None, 0.1, SIZES,
     (7, "sent")),
    ("behind a queue", STEADY, 1000, None, [], 2000, (1000, 0.05), 0.1, SIZES, (3, "sent")),
    ("one channel may use the whole deadline", STEADY, 1000, None, [], 4000, (1000, 0.05),
     0.1, SIZES, (1, "sent")),
    ("stalled link", STEADY, 1000, None, [], 1000, (1000, 2.0), 0.1, SIZES,
     (0, "deadline")),
    ("too long since capture", STEADY, 1000, None, [], 100, None, 1.0, SIZES,
     (0, "deadline")),
    # nothing unacknowledged: one channel goes although predicted late, as a probe (a slow
    # PUBACK left the estimate too low; without the probe it would never be renewed)
    ("idle link: one channel probes", STEADY, 1000, None, [], 0, None, 1.0, SIZES,
     (1, "sent")),
    ("idle link, probe after the dwell", [(0.0, 1.2, 600)], 1000, None, [], 0, None, 0.1,
     SIZES, (1, "sent"), (1, 9.0), (3, 5.0)),
    ("shortest deadline", STEADY, 100, None, [], 0, None, 0.0, SIZES, (1, "sent")),
    ("longest deadline", STEADY, 600000, None, [], 0, None, 0.0, SIZES, (12, "sent")),
    ("cap: 2 s window, the frame 2 s old is out", STEADY, None, 8, [(1.0, 1500), (2.0, 5000)],
     0, None, 0.0, SIZES, (0, "rate")),
    # 8 kbit/s at 1 frame/s: a frame's share is 1,000 B, so 2 channels (1,033 B) are over it
    # although the window still has 1,100 B
    ("cap share trims", STEADY, None, 8, [(1.0, 900)], 0, None, 0.0, SIZES, (1, "sent")),
    ("cap and deadline", STEADY, 1000, 8, [(0.5, 900)], 0, None, 0.1, SIZES, (1, "sent")),
    # 16 kbit/s: share 2,000 B (3 channels), but the window has only 1,000 B left
    ("cap window binds", STEADY, None, 16, [(1.0, 3000)], 0, None, 0.0, SIZES, (1, "sent")),
    ("cap share binds", STEADY, None, 16, [(1.0, 1000)], 0, None, 0.0, SIZES, (3, "sent")),
    ("cap, no estimate", [], 1000, 8, [(1.9, 1400)], 0, None, 0.1, SIZES, (1, "sent")),
    ("cap first: no deadline drop when over the cap", STEADY, 1000, 1, [], 0, (1000, 9.0),
     0.1, SIZES, (0, "rate")),
    ("a tier of 3", STEADY, 1000, None, [], 0, None, 0.1, SIZES[:3], (3, "sent")),
    # 7 channels arrive in time (above); the last frame kept 3, changed 1 s ago: the dwell
    ("hysteresis: within the dwell, no more than the last frame", STEADY, 1000, None, [], 0,
     None, 0.1, SIZES, (3, "sent"), (1, 9.0), (3, 1.0)),
    # after the dwell, more only with 150 ms to spare: 2,033 B in 0.2 s of the 0.25 s
    ("hysteresis: after the dwell, up with headroom", STEADY, 1000, None, [], 0, None, 0.1,
     SIZES, (4, "sent"), (1, 9.0), (3, 5.0)),
    ("hysteresis: the first frame is a probe, no dwell after it", STEADY, 1000, None, [], 0,
     None, 0.1, SIZES, (4, "sent"), (1, 0.5)),
    ("hysteresis: fewer channels at once", STEADY, 1000, None, [], 0, None, 0.1, SIZES,
     (7, "sent"), (1, 9.0), (9, 0.5)),
    ("hysteresis: no deadline, no guard", STEADY, None, None, [], 0, None, 0.1, SIZES,
     (12, "sent"), (3, 1.0)),
]  # fmt: skip


def _python_fit(monkeypatch, case) -> tuple[float, int, str]:
    """Camera._fit itself on packets of the case's sizes (trim_channels and the clock
    stubbed): (bytes the cap allows, channels kept or 0, outcome)."""
    import time
    import types

    import devices.camera as cam
    from protocol import topics

    _, acks, deadline, cap, window, queued, oldest, since, sizes, _, *hold = case
    now = 1000.0
    clock = types.SimpleNamespace(monotonic=lambda: now, time=time.time, sleep=time.sleep)
    monkeypatch.setattr(cam, "time", clock)
    monkeypatch.setattr(cam, "trim_channels", lambda packet, k: bytes(sizes[k - 1]))
    camera = cam.Camera("cam-guard", "mqtt://127.0.0.1:1", deadline_ms=deadline, max_kbps=cap)
    for a in acks:
        camera.uplink.acknowledged(*a)
    captured = now - since
    camera._sent_window.extend((captured - dt, n) for dt, n in window)
    for kept, dt in hold:
        camera._policy.sent(captured - dt, 0, kept)
        camera._sent_window.pop()  # only the channels: no bytes against the cap
    rest = queued
    if oldest is not None:
        camera._pending[1] = cam._Pending(now - oldest[1], oldest[0], topics.Kind.FRAME)
        rest -= oldest[0]
    if rest:
        camera._pending[2] = cam._Pending(now, rest, topics.Kind.TELEMETRY)
    _, k, outcome = camera._fit(bytes(sizes[-1]), len(sizes), captured, captured)
    return camera._cap_allows(captured), (k if outcome == "sent" else 0), outcome


def test_zephyr_guard_matches_camera_fit(link_cli, monkeypatch):
    commands, expected = [], []
    now = 1000.0
    for case in GUARD_CASES:
        name, acks, deadline, cap, window, queued, oldest, since, sizes, hand, *hold = case
        captured = now - since
        commands.append("reset")
        commands += [f"ack {a[0]!r} {a[1]!r} {a[2]}" for a in acks]
        commands += [f"capsent {captured - dt!r} {n}" for dt, n in window]
        commands += [f"kept {kept} {captured - dt!r}" for kept, dt in hold]
        size, age = oldest if oldest else (0, 0.0)
        commands.append(
            f"guard {deadline or 0} {cap or 0} {captured!r} {queued} {size} {now - (now - age)!r} "
            f"{now - captured!r} " + " ".join(map(str, sizes))
        )
        allowed, k, outcome = _python_fit(monkeypatch, case)
        assert (k, outcome) == hand, name  # the Python rule gives the hand-checked answer
        expected.append((name, allowed, k, outcome))
    lines = [x for x in _script(link_cli, commands) if x != "ok" and " " in x]
    assert len(lines) == len(expected)
    why = {0: "sent", 1: "rate", 2: "deadline"}
    for line, (name, allowed, k, outcome) in zip(lines, expected, strict=True):
        got_allowed, got_k, got_why = line.split()
        assert (int(got_k), why[int(got_why)]) == (k, outcome), name
        if allowed == float("inf"):
            assert got_allowed == "-1", name
        else:
            assert float(got_allowed) == allowed, name


def test_zephyr_packet_prefix_sizes_and_trim_match_the_bitstream(link_cli):
    from mcucoder.bitstream import Packet, packet_size

    rng = np.random.default_rng(7)
    chunk_sizes = [1, 5, 127, 128, 300, 16384, 2, 90]
    chunks = tuple(rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in chunk_sizes)
    full = Packet(1, 0, 0x5354524A, 42, 1764086400123, 224, 224, 2, 0, 0, chunks)
    raw = full.to_bytes()
    commands = [f"packet {k} {raw.hex()}" for k in range(1, len(chunks) + 1)]
    commands += [f"packet 0 {raw.hex()}", f"packet 9 {raw.hex()}", f"packet 1 {raw[:-1].hex()}"]
    lines = _script(link_cli, commands)
    prefix = [packet_size(chunk_sizes[:k]) for k in range(1, len(chunks) + 1)]
    for k, line in enumerate(lines[: len(chunks)], start=1):
        *sizes, n, trimmed = line.split()
        assert [int(x) for x in sizes] == prefix and int(n) == len(chunks)
        assert bytes.fromhex(trimmed) == full.with_channels(k).to_bytes(), k
        assert len(bytes.fromhex(trimmed)) == prefix[k - 1]
    assert lines[-3].endswith(" -1") and lines[-2].endswith(" -1")  # channels out of 1..n
    assert lines[-1] == "-1 -1"  # truncated: not a packet
