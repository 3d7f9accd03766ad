# Shared by measure.sh and measure_predict.sh (sourced; run from the repository root): the
# QEMU plugin that counts instructions, the release and profile builds of a board, the
# plugin's section marks and one run of a program on an emulated board.

# measure_plugin OUT: OUT/libinsn_count.so, the instruction-counting QEMU TCG plugin.
measure_plugin() {
  gcc -O2 -shared -fPIC firmware/arm/qemu/insn_count.c -o "$1/libinsn_count.so"
}

# measure_build OUT BOARD: the firmware built for BOARD into OUT/BOARD-release and
# OUT/BOARD-profile (STRATA_PROFILE markers, src/strata_profile.h).
measure_build() {
  local kind
  for kind in release profile; do
    cmake -S firmware -B "$1/$2-$kind" \
      -DCMAKE_TOOLCHAIN_FILE="$PWD/firmware/arm/toolchain-arm-none-eabi.cmake" -DSTRATA_BOARD="$2" \
      -DSTRATA_PROFILE=$([ $kind = profile ] && echo ON || echo OFF) >/dev/null
    cmake --build "$1/$2-$kind" -j 2 >/dev/null
  done
}

# measure_marks ELF SECTION...: the plugin options ",mark=ADDR", one per profile section in
# order (the address of each strata_prof_SECTION marker of a profile build).
measure_marks() {
  local elf=$1 s marks=""
  shift
  for s in "$@"; do
    marks="$marks,mark=0x$(arm-none-eabi-nm "$elf" | awk -v n="strata_prof_$s" '$3 == n {print $1}')"
  done
  echo "$marks"
}

# measure_run BOARD ELF PLUGIN ARGS: runs ELF on the emulated BOARD under the plugin (with its
# options), ARGS the program's semihosting arguments ("arg=a,arg=b"); stdout and stderr.
measure_run() {
  qemu-system-arm -M "$1" -nographic -monitor none -serial none \
    -semihosting-config "enable=on,target=native,arg=x,$4" -kernel "$2" -plugin "$3" 2>&1
}
