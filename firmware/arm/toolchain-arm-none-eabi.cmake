# cmake -S firmware -B build/firmware-m7 -DCMAKE_TOOLCHAIN_FILE=firmware/arm/toolchain-arm-none-eabi.cmake -DSTRATA_BOARD=mps2-an500
# STRATA_BOARD: mps2-an500 (Cortex-M7) or mps2-an505 (Cortex-M33), both run under qemu-system-arm.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
