#!/usr/bin/env bash
# CMake and a C compiler for the host build, Debian's Arm bare-metal toolchain and QEMU for the firmware's emulated Cortex-M7/M33 tests
# (tests/firmware/test_arm.py skips without them). Installs them with apt as root; never fatal.
set -uo pipefail

if command -v cmake >/dev/null && command -v cc >/dev/null \
  && command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null; then
  echo "firmware tools: $(arm-none-eabi-gcc -dumpversion), $(qemu-system-arm --version | head -1)"
  exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "firmware tools: missing and not installable here (needs apt-get as root): the Arm tests will skip" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  cmake gcc libc6-dev gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm >/dev/null ||
  echo "firmware tools: apt-get failed: the Arm tests will skip" >&2
