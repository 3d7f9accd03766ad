#!/usr/bin/env bash
# What predicted frames cost on the emulated Cortex-M7 (mps2-an500; STRATA_MEASURE_BOARDS
# adds mps2-an505), as reported in firmware/README.md and BENCHMARKS.md: instructions of
# strata_finish_stream (STRATA_PROFILE section "predict") per key and per predicted frame
# of a still camera (the photo, a moving patch, sensor noise; tests/firmware/sequences.py)
# and of a scene change (noise after the photo: intra fallback, both codings tried), beside
# the convolutions and the intra packet; the library's flash per object; the stream memory.
#   bash firmware/arm/measure_predict.sh   (from the repository root; Arm toolchain + QEMU)
# Prints a table and a JSON line last. STRATA_MEASURE_FRAMES (default "224x224 640x480").
set -euo pipefail
PY=${STRATA_PYTHON:-.venv/bin/python}
OUT=build/firmware-measure-predict
FRAMES=${STRATA_MEASURE_FRAMES:-224x224 640x480}
BOARDS=${STRATA_MEASURE_BOARDS:-mps2-an500}
source firmware/arm/measure_lib.sh
mkdir -p "$OUT"
measure_plugin "$OUT"
PYTHONPATH=. "$PY" - "$OUT" $FRAMES <<'PY'
import sys
from pathlib import Path

import matplotlib.cbook as cbook
from PIL import Image
from tests.firmware.images import write_ppm
from tests.firmware.sequences import noise, still_scene
out = Path(sys.argv[1])
with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
    hopper = im.convert("RGB")
for frame in sys.argv[2:]:
    w, h = map(int, frame.split("x"))
    ppms = [write_ppm(out / f"{frame}-{i}.ppm", im) for i, im in enumerate(still_scene(hopper, w, h, 4))]
    scene = write_ppm(out / f"{frame}-noise.ppm", noise(w, h, 1))
    lists = {"one": ppms[:1], "still": ppms, "scene": [ppms[0], scene]}
    for name, files in lists.items():
        with open(f"{out}/{frame}-{name}.txt", "w") as f:
            f.writelines(f"{p} 12 {i} 0\n" for i, p in enumerate(files))
PY
SECTIONS="caller input conv0 conv1 conv2 encoder packet predict" # src/strata_profile.h
: >"$OUT/runs.txt"
for board in $BOARDS; do
  measure_build "$OUT" "$board"
  # flash (text + data) per object of the release library
  arm-none-eabi-size "$OUT/$board-release/libstrata_encoder.a" | awk -v b=$board \
    'NR > 1 {print "object", b, $6, $1 + $2, $2 + $3}' >>"$OUT/runs.txt"
  elf="$OUT/$board-profile/strata-encode.elf"
  marks=$(measure_marks "$elf" $SECTIONS)
  for frame in $FRAMES; do
    for run in intra one still scene; do
      if [ $run = intra ]; then
        args="arg=$OUT/$frame-1.ppm,arg=$OUT/out,arg=--channels,arg=12"
      else
        args="arg=--stream,arg=$OUT/$frame-$run.txt,arg=$OUT/out"
      fi
      measure_run "$board" "$elf" "$OUT/libinsn_count.so$marks" "$args" |
        sed "s/^/run $board $frame $run /" >>"$OUT/runs.txt"
      if [ $run = still ]; then
        ls -l "$OUT/out" | awk -v b=$board -v f=$frame '{print "bytes", b, f, $5}' >>"$OUT/runs.txt"
      fi
    done
  done
done
"$PY" - "$OUT/runs.txt" <<'PY'
"""Per frame: the stream path's instructions (key frame; predicted frame = (4 frames - 1)
/ 3; scene change = (2 frames - 1)), beside the convolutions and the intra packet."""
import json
import re
import sys
from collections import defaultdict

NAMES = ["startup", "caller", "input", "conv0", "conv1", "conv2", "encoder", "packet", "predict"]
M4 = {"alu": 1, "mac": 1, "load": 2, "store": 1, "ldm": 2, "xfer": 1, "branch": 2, "div": 7}
runs = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
cycles = defaultdict(lambda: defaultdict(int))
objects, stack = defaultdict(dict), {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "object":
        objects[f[1]][f[2]] = {"flash_bytes": int(f[3]), "ram_bytes": int(f[4])}
        continue
    if f[0] == "bytes":
        continue
    _, board, frame, run, *rest = f
    text = " ".join(rest)
    if m := re.match(r"section (\d+) class (\w+) count (\d+)", text):
        name = NAMES[int(m[1])]
        if m[2] != "xfer":
            runs[(board, frame)][run][name] += int(m[3])
        cycles[(board, frame, run)][name] += M4[m[2]] * int(m[3])
    elif m := re.match(r"stack peak (\d+) bytes", text):
        stack[(board, frame, run)] = int(m[1])

report = {"boards": {}}
print("| board | frame | convolutions | intra packet (rANS) | stream: key frame | predicted frame, still"
      " | predicted frame, scene change | stream memory | stack peak |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for (board, frame), r in sorted(runs.items(), key=lambda x: (x[0][0], int(x[0][1].split("x")[0]))):
    w, h = map(int, frame.split("x"))
    cells = ((w + 7) // 8) * ((h + 7) // 8)
    memory = 12 * cells + (cells + 7) // 8 + 1 + 2 * 4 * 255  # strata_stream_memory_size
    conv = sum(r["one"][f"conv{i}"] for i in range(3))
    key = r["one"]["predict"]
    p_still = (r["still"]["predict"] - key) / 3
    p_scene = r["scene"]["predict"] - key
    cyc = cycles[(board, frame, "still")]["predict"] - cycles[(board, frame, "one")]["predict"]
    f = {
        "convolutions": conv, "intra_packet": r["intra"]["packet"], "stream_key_frame": key,
        "predicted_frame_still": p_still, "predicted_frame_scene_change": p_scene,
        "predicted_frame_still_m4_cycles": cyc / 3,
        "predicted_share_of_convolutions": p_still / conv,
        "stream_memory_bytes": memory, "reference_bytes": 12 * cells,
        "stack_bytes": stack.get((board, frame, "still")),
    }
    report["boards"].setdefault(board, {"objects": objects[board], "frames": {}})["frames"][frame] = f
    print(f"| {board} | {frame} | {conv / 1e6:.2f} M | {f['intra_packet'] / 1e6:.3f} M"
          f" | {key / 1e6:.3f} M | {p_still / 1e6:.3f} M ({100 * p_still / conv:.1f} %)"
          f" | {p_scene / 1e6:.3f} M | {memory:,} B | {f['stack_bytes']} B |")
for board, objs in objects.items():
    print(board, ", ".join(f"{o}: {v['flash_bytes']:,} B" for o, v in objs.items()))
print(json.dumps(report))
PY
