#!/usr/bin/env bash
# Flash, RAM, stack and instructions of the encoder on the emulated Cortex-M7 (mps2-an500)
# and Cortex-M33 (mps2-an505), as reported in firmware/README.md and BENCHMARKS.md:
# per frame and per section (input, each convolution, encoder bookkeeping, entropy coding),
# instructions per MAC, the instruction mix and a cycle estimate from it.
#   bash firmware/arm/measure.sh        (from the repository root; needs the Arm toolchain + QEMU)
# Prints a table per board and a JSON line last. STRATA_MEASURE_FRAMES (default
# "224x224 320x240 640x480") and STRATA_MEASURE_K (default 12) choose the runs.
set -euo pipefail
PY=${STRATA_PYTHON:-.venv/bin/python}
OUT=build/firmware-measure
FRAMES=${STRATA_MEASURE_FRAMES:-224x224 320x240 640x480}
K=${STRATA_MEASURE_K:-12}
source firmware/arm/measure_lib.sh
mkdir -p "$OUT"
measure_plugin "$OUT"
"$PY" - "$OUT" $FRAMES <<'PY'
import sys
import matplotlib.cbook as cbook
from PIL import Image
with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
    for frame in sys.argv[2:]:
        w, h = map(int, frame.split("x"))
        im.convert("RGB").resize((w, h), Image.Resampling.BOX).save(f"{sys.argv[1]}/{frame}.ppm")
PY
SECTIONS="caller input conv0 conv1 conv2 encoder packet" # src/strata_profile.h, in order
: >"$OUT/runs.txt"
for board in mps2-an500 mps2-an505; do
  measure_build "$OUT" "$board"
  # flash of the library (code + weights + tables) and its static RAM, from the release build;
  # the predicted frames' object apart (measure_predict.sh; unused, --gc-sections drops it)
  arm-none-eabi-size "$OUT/$board-release/libstrata_encoder.a" | awk -v b=$board '
    NR > 1 && $6 ~ /strata_predict/ {p += $1}
    NR > 1 && $6 !~ /strata_predict/ {t += $1; r += $2 + $3}
    END {print "size", b, t, r, p + 0}' >>"$OUT/runs.txt"
  marks=$(measure_marks "$OUT/$board-profile/strata-encode.elf" $SECTIONS)
  for frame in $FRAMES; do
    for kind in release profile; do
      plugin="$OUT/libinsn_count.so"
      [ $kind = profile ] && plugin="$plugin$marks"
      measure_run "$board" "$OUT/$board-$kind/strata-encode.elf" "$plugin" \
        "arg=$OUT/$frame.ppm,arg=$OUT/out,arg=--channels,arg=$K,arg=--stats" |
        sed "s/^/run $board $frame $kind /" >>"$OUT/runs.txt"
    done
  done
done
"$PY" - "$OUT/runs.txt" "$K" <<'PY'
"""Tables and the JSON line from the runs. MACs come from the layer geometry; the cycle
estimate applies per-instruction timings to the measured mix (see firmware/README.md)."""
import json
import re
import sys
from collections import defaultdict

NAMES = ["startup", "caller", "input", "conv0", "conv1", "conv2", "encoder", "packet"]
# (kh, kw, stride, pad, cout) of the three convolutions; cin follows from the chain
LAYERS = [(7, 2, 3, 16), (5, 4, 1, 16), (3, 1, 1, 12)]
CLOCK = {"mps2-an500": ("STM32F7 (Cortex-M7)", 216e6), "mps2-an505": ("nRF5340 (Cortex-M33)", 128e6)}
PAPER_MS = {"mps2-an500": 237.0, "mps2-an505": 1969.0}  # MCUCoder paper, 224x224, TFLite-Micro
# Cortex-M4 TRM per-instruction cycles (single issue; an upper estimate for the M7):
# LDR/LDRD 2 (1 + data), STR 1 (write buffer), LDM/STM 1 + N, branch ~2 (1 + refill),
# MAC (SMLAD, SMMULR: single cycle) and ALU 1, divide ~7. The M7 issues up to two
# instructions per cycle with one MAC pipe, so its cycles lie between
# max(instructions / 2, MAC instructions) and this; the M33 issues one per cycle.
M4 = {"alu": 1, "mac": 1, "load": 2, "store": 1, "ldm": 2, "xfer": 1, "branch": 2, "div": 7}
ISSUE = {"mps2-an500": 2, "mps2-an505": 1}


def macs(w: int, h: int, k: int) -> list[int]:
    w, h = -(-w // 8) * 8, -(-h // 8) * 8
    out = []
    for i, (kk, s, p, cout) in enumerate(LAYERS):
        cin = 3 if i == 0 else LAYERS[i - 1][3]
        w, h = (w + 2 * p - kk) // s + 1, (h + 2 * p - kk) // s + 1
        out.append(w * h * kk * kk * cin * (k if i == len(LAYERS) - 1 else cout))
    return out


runs = defaultdict(dict)
size = {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[0] == "size":
        size[f[1]] = {"flash_bytes": int(f[2]), "static_ram_bytes": int(f[3]),
                      "flash_predicted_frames_bytes": int(f[4])}
        continue
    _, board, frame, kind, *rest = f
    r = runs[(board, frame)]
    text = " ".join(rest)
    if m := re.match(r"section (\d+) class (\w+) count (\d+)", text):
        r.setdefault("mix", defaultdict(lambda: defaultdict(int)))[int(m[1])][m[2]] = int(m[3])
    elif m := re.match(r"insns (\d+)", text):
        r[f"insns_{kind}"] = int(m[1])
    elif m := re.match(r"workspace (\d+) bytes", text):
        r["workspace"] = int(m[1])
    elif m := re.match(r"stack peak (\d+) bytes", text):
        r["stack"] = int(m[1])

k = int(sys.argv[2])
report = {"k": k, "boards": {}}
for board in sorted({b for b, _ in runs}):
    name, hz = CLOCK[board]
    print(f"\n{board} ({name} timing at {hz / 1e6:.0f} MHz): flash {size[board]['flash_bytes']:,} B,"
          f" static RAM {size[board]['static_ram_bytes']} B")
    print("| frame | workspace B | stack B | instructions | conv0 / conv1 / conv2 per MAC"
          " | convolutions per MAC | est. cycles (M4 table / issue bound) | ms at clock |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    frames = {}
    for (b, frame), r in sorted(runs.items(), key=lambda x: int(x[0][1].split("x")[0])):
        if b != board:
            continue
        w, h = map(int, frame.split("x"))
        mac = macs(w, h, k)
        mix = r["mix"]
        insns = {NAMES[s]: sum(v for c, v in mix[s].items() if c != "xfer") for s in mix}
        conv = [insns.get(f"conv{i}", 0) for i in range(3)]
        total = sum(insns.values())
        m4 = sum(M4[c] * v for s in mix for c, v in mix[s].items())
        macops = sum(mix[s]["mac"] for s in mix)
        low = max(total / ISSUE[board], macops)
        frames[frame] = {
            "workspace_bytes": r["workspace"], "stack_bytes": r["stack"],
            "instructions": r["insns_release"], "instructions_profiled": total,
            "sections": insns, "macs": mac, "instructions_per_mac": [c / m for c, m in zip(conv, mac)],
            "conv_instructions_per_mac": sum(conv) / sum(mac),
            "cycles_m4_table": m4, "cycles_issue_bound": low,
            "ms_m4_table": 1e3 * m4 / hz, "ms_issue_bound": 1e3 * low / hz,
            "mix": {NAMES[s]: dict(v) for s, v in mix.items()},
        }
        f = frames[frame]
        print(f"| {frame} | {r['workspace']:,} | {r['stack']:,} | {r['insns_release'] / 1e6:.1f} M"
              f" | {' / '.join(f'{x:.2f}' for x in f['instructions_per_mac'])}"
              f" | {f['conv_instructions_per_mac']:.3f} | {m4 / 1e6:.1f} M / {low / 1e6:.1f} M"
              f" | {f['ms_m4_table']:.0f} / {f['ms_issue_bound']:.0f} |")
    report["boards"][board] = {**size[board], "clock_hz": hz, "paper_ms_224": PAPER_MS[board],
                               "frames": frames}
print(json.dumps(report))
PY
