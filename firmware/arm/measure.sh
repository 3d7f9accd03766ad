#!/usr/bin/env bash
# Flash, RAM, stack and instructions per frame of the encoder on the emulated Cortex-M7
# (mps2-an500) and Cortex-M33 (mps2-an505), as reported in firmware/README.md.
#   bash firmware/arm/measure.sh        (from the repository root; needs the Arm toolchain + QEMU)
set -euo pipefail
PY=${STRATA_PYTHON:-.venv/bin/python}
OUT=build/firmware-measure
mkdir -p "$OUT"
gcc -O2 -shared -fPIC firmware/arm/qemu/insn_count.c -o "$OUT/libinsn_count.so"
"$PY" - "$OUT" <<'PY'
import sys
import matplotlib.cbook as cbook
from PIL import Image
with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
    for w, h in ((224, 224), (320, 240), (640, 480)):
        im.convert("RGB").resize((w, h), Image.Resampling.BOX).save(f"{sys.argv[1]}/{w}x{h}.ppm")
PY
echo "| board | frame | k | workspace B | stack peak B | instructions |"
echo "|---|---|---:|---:|---:|---:|"
for board in mps2-an500 mps2-an505; do
  b="$OUT/$board"
  cmake -S firmware -B "$b" -DCMAKE_TOOLCHAIN_FILE="$PWD/firmware/arm/toolchain-arm-none-eabi.cmake" \
    -DSTRATA_BOARD="$board" >/dev/null
  cmake --build "$b" >/dev/null
  arm-none-eabi-size -t "$b/libstrata_encoder.a" | tail -1 | sed "s/^/$board library (text data bss): /" >&2
  for frame in 224x224 320x240 640x480; do
    for k in 12 4; do
      log=$(qemu-system-arm -M "$board" -nographic -monitor none -serial none \
        -semihosting-config "enable=on,target=native,arg=x,arg=$OUT/$frame.ppm,arg=$OUT/out,arg=--channels,arg=$k,arg=--stats" \
        -kernel "$b/strata-encode.elf" -plugin "$OUT/libinsn_count.so" 2>&1)
      ws=$(sed -n 's/workspace \([0-9]*\) bytes/\1/p' <<<"$log")
      st=$(sed -n 's/stack peak \([0-9]*\) bytes/\1/p' <<<"$log")
      ins=$(sed -n 's/insns \([0-9]*\)/\1/p' <<<"$log")
      echo "| $board | $frame | $k | $ws | $st | $ins |"
    done
  done
done
