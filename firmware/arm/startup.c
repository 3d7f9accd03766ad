/* Bare-metal start for the emulated MPS2 boards (QEMU), with semihosting for files.
 *
 * Reset copies .data, zeroes .bss, paints the stack, fetches the command line through
 * semihosting and runs main(argc, argv); the host tool's stdio then works through
 * newlib's rdimon (semihosting) library. At exit it prints the stack high-water mark. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern uint32_t __stack_limit, __stack_top;
extern void initialise_monitor_handles(void);
extern int main(int argc, char **argv);

#define PAINT 0xa5a5a5a5u
#define SYS_GET_CMDLINE 0x15
#define SYS_EXIT 0x18
#define MAX_ARGS 16

static int semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* newlib's exit() runs the fini arrays: nothing to run in C. */
void _init(void) {}
void _fini(void) {}

/* Lowest painted word overwritten = deepest the stack went. */
static uint32_t stack_peak(void)
{
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

static void report_stack(void)
{
    fprintf(stderr, "stack peak %lu bytes\n", (unsigned long)stack_peak());
}

__attribute__((noreturn)) void Reset_Handler(void)
{
    static char cmdline[512];
    static char *argv[MAX_ARGS + 1];
    struct {
        char *buf;
        int len;
    } block = {cmdline, sizeof cmdline - 1};
    uint32_t *p;
    int argc = 0;
    char *s;
    memcpy(&__data_start, &__data_load,
           (size_t)((uintptr_t)&__data_end - (uintptr_t)&__data_start));
    memset(&__bss_start, 0, (size_t)((uintptr_t)&__bss_end - (uintptr_t)&__bss_start));
    /* paint up to a little below the current frame */
    for (p = &__stack_limit; (uintptr_t)p < (uintptr_t)__builtin_frame_address(0) - 256; p++) {
        *p = PAINT;
    }
    initialise_monitor_handles();
    if (semihost(SYS_GET_CMDLINE, &block) == 0) {
        /* QEMU joins the -semihosting-config arg=... values with spaces */
        for (s = strtok(cmdline, " "); s != NULL && argc < MAX_ARGS; s = strtok(NULL, " ")) {
            argv[argc++] = s;
        }
    }
    atexit(report_stack);
    exit(main(argc, argv));
}

__attribute__((noreturn)) static void Fault_Handler(void)
{
    semihost(SYS_EXIT, (void *)0x20023); /* ADP_Stopped_RunTimeError */
    for (;;) {
    }
}

/* Cortex-M vector table: initial SP, reset, then the faults (all fatal here). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack_top),
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    Fault_Handler, /* SecureFault (v8-M) */
};
