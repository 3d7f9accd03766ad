/* Profiling markers for the instruction counts per section (firmware/arm/measure.sh).
 *
 * With STRATA_PROFILE, each section of the encoder starts by calling its own empty,
 * never-inlined marker function; QEMU's counting plugin (arm/qemu/insn_count.c,
 * mark=ADDR arguments) attributes every instruction executed after a marker to that
 * marker's section. Without it (every product build) the marks compile to nothing. */
#ifndef STRATA_PROFILE_H
#define STRATA_PROFILE_H

#if defined(STRATA_PROFILE) && STRATA_PROFILE
/* distinct bodies, so no identical-code folding merges two markers */
#define STRATA_PROFILE_MARKER(name, n)                                                     \
    __attribute__((noinline, used)) void name(void);                                        \
    __attribute__((noinline, used)) void name(void)                                         \
    {                                                                                       \
        __asm__ volatile("mov r0, #" #n ::: "r0", "memory");                                \
    }
/* In the order measure.sh passes them: caller, input, conv0..2, encoder, packet, predict
 * (a stream's packet: strata_finish_stream). */
#define STRATA_PROFILE_MARKERS                                                              \
    STRATA_PROFILE_MARKER(strata_prof_caller, 0)                                            \
    STRATA_PROFILE_MARKER(strata_prof_input, 1)                                             \
    STRATA_PROFILE_MARKER(strata_prof_conv0, 2)                                             \
    STRATA_PROFILE_MARKER(strata_prof_conv1, 3)                                             \
    STRATA_PROFILE_MARKER(strata_prof_conv2, 4)                                             \
    STRATA_PROFILE_MARKER(strata_prof_encoder, 5)                                           \
    STRATA_PROFILE_MARKER(strata_prof_packet, 6)                                            \
    STRATA_PROFILE_MARKER(strata_prof_predict, 7)
void strata_prof_caller(void);
void strata_prof_input(void);
void strata_prof_conv0(void);
void strata_prof_conv1(void);
void strata_prof_conv2(void);
void strata_prof_encoder(void);
void strata_prof_packet(void);
void strata_prof_predict(void);
#define STRATA_PROF(name) strata_prof_##name()
#define STRATA_PROF_CONV(i)                                                                 \
    ((i) == 0 ? strata_prof_conv0() : (i) == 1 ? strata_prof_conv1() : strata_prof_conv2())
#else
#define STRATA_PROFILE_MARKERS
#define STRATA_PROF(name) ((void)0)
#define STRATA_PROF_CONV(i) ((void)0)
#endif

#endif
