/* INT8 convolution, two output pixels by two output channels at a time.
 *
 * Each pixel's input window is widened once to int16 (im2col: a kernel row at a time,
 * 4 values per word load), then shared by every output channel pair. Weights stay int8
 * in flash, arranged by gen_model.py so that one word per channel and group unpacks
 * with two SXTB16 into the pairs the window holds; the input offset is folded into the
 * bias, so padding is just the zero point and the inner loop has no branches. With the
 * DSP extension (STRATA_USE_DSP, Cortex-M4/M7/M33/M55) each SMLAD does two MACs; the
 * portable path does the same sums in plain C. Integer sums are exact in any order, so
 * both give TFLite's bytes. */
#include "strata_conv.h"

#include <stddef.h>
#include <string.h>

#if defined(STRATA_USE_DSP) && STRATA_USE_DSP && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define STRATA_DSP 1
#else
#define STRATA_DSP 0
#endif

#define STRIDE STRATA_IM2COL_STRIDE

/* gemmlowp's SaturatingRoundingDoublingHighMul: high 32 bits of 2*a*b, rounded. */
static int32_t doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C99 '/' truncates, as C++ */
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded half away from zero. Relies on '>>'
 * of a negative value being arithmetic, as on every compiler TFLite supports. */
static int32_t rounding_divide_by_pot(int32_t x, int e)
{
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

int32_t strata_requantize(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(doubling_high_mul((int32_t)((uint32_t)x << left), multiplier),
                                  right);
}

#if STRATA_DSP
/* n words of int8 at s0 (pixel 0) and s1 (pixel 1) -> int16 at dst and dst + STRIDE,
 * each group of 4 bytes (b0..b3) as (b0, b2), (b1, b3): one SXTB16 per pair. Stores
 * may be unaligned (a 21-value kernel row starts at an odd position). */
#define WIDEN_WORD                                                                        \
    "ldr    %[v0], [%[s0]], #4\n\t"                                                       \
    "ldr    %[v1], [%[s1]], #4\n\t"                                                       \
    "sxtb16 %[t0], %[v0]\n\t"                                                              \
    "sxtb16 %[v0], %[v0], ror #8\n\t"                                                      \
    "sxtb16 %[t1], %[v1]\n\t"                                                              \
    "sxtb16 %[v1], %[v1], ror #8\n\t"                                                      \
    "str    %[t1], [%[d], %[px1]]\n\t"                                                     \
    "str    %[v1], [%[d], %[px1h]]\n\t"                                                    \
    "str    %[v0], [%[d], #4]\n\t"                                                         \
    "str    %[t0], [%[d]], #8\n\t"

static inline void widen2(const int8_t *s0, const int8_t *s1, int16_t *d, int n)
{
    uint32_t v0, v1, t0, t1;
#define WIDEN_OPERANDS                                                                    \
    : [s0] "+r"(s0), [s1] "+r"(s1), [d] "+r"(d), [n] "+r"(n), [v0] "=&r"(v0),               \
      [v1] "=&r"(v1), [t0] "=&r"(t0), [t1] "=&r"(t1)                                        \
    : [px1] "I"(2 * STRIDE), [px1h] "I"(2 * STRIDE + 4)                                    \
    : "cc", "memory"
    if (n & 1) {
        __asm__ volatile(WIDEN_WORD WIDEN_OPERANDS);
        n--;
    }
    if (n > 0) {
        __asm__ volatile("1:\n\t" WIDEN_WORD WIDEN_WORD "subs %[n], %[n], #2\n\t"
                "bhi 1b\n\t" WIDEN_OPERANDS);
    }
#undef WIDEN_OPERANDS
}

/* One group of 4 positions for both channels and both pixels: 15 instructions, 16 MACs.
 * Pixel 1's window lies STRIDE int16 after pixel 0's; SXTB16 unpacks each weight word
 * into its two pairs (the second with the ROR #8 SXTB16 does for free). */
#define DOT_GROUP                                                                         \
    "ldrd   %[wa], %[wb], [%[w]], #8\n\t"                                                 \
    "sxtb16 %[ta], %[wa]\n\t"                                                              \
    "sxtb16 %[wa], %[wa], ror #8\n\t"                                                      \
    "sxtb16 %[tb], %[wb]\n\t"                                                              \
    "sxtb16 %[wb], %[wb], ror #8\n\t"                                                      \
    "ldrd   %[p0], %[p1], [%[x], %[px1]]\n\t"                                              \
    "smlad  %[a1], %[ta], %[p0], %[a1]\n\t"                                                \
    "smlad  %[a1], %[wa], %[p1], %[a1]\n\t"                                                \
    "smlad  %[b1], %[tb], %[p0], %[b1]\n\t"                                                \
    "smlad  %[b1], %[wb], %[p1], %[b1]\n\t"                                                \
    "ldrd   %[p0], %[p1], [%[x]], #8\n\t"                                                  \
    "smlad  %[a0], %[ta], %[p0], %[a0]\n\t"                                                \
    "smlad  %[a0], %[wa], %[p1], %[a0]\n\t"                                                \
    "smlad  %[b0], %[tb], %[p0], %[b0]\n\t"                                                \
    "smlad  %[b0], %[wb], %[p1], %[b0]\n\t"

/* acc[0..1] += channel a's weights . pixels 0, 1; acc[2..3] the same for channel b
 * (inline assembly: the compiler neither folds the rotation into SXTB16 nor pairs the
 * loads into LDRD). Two groups per loop pass. */
static inline void dot(const int32_t *x, const uint32_t *w, int groups, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    const uint32_t *end = w + 2 * groups;
    uint32_t wa, wb, ta, tb, p0, p1;
#define DOT_OPERANDS                                                                      \
    : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [w] "+r"(w), [x] "+r"(x),  \
      [wa] "=&r"(wa), [wb] "=&r"(wb), [ta] "=&r"(ta), [tb] "=&r"(tb), [p0] "=&r"(p0),       \
      [p1] "=&r"(p1)                                                                      \
    : [end] "r"(end), [px1] "I"(2 * STRIDE)                                               \
    : "cc", "memory"
    if (groups & 1) {
        __asm__(DOT_GROUP DOT_OPERANDS);
    }
    if (w != end) {
        __asm__("1:\n\t" DOT_GROUP DOT_GROUP "cmp %[w], %[end]\n\t"
                "bne 1b\n\t" DOT_OPERANDS);
    }
#undef DOT_OPERANDS
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

static int32_t smmulr(int32_t a, int32_t b) /* (a * b + 2^31) >> 32 */
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* TFLite's requantisation in four instructions: SRDHM(a, m) = (2a * m + 2^31) >> 32
 * exactly while |a| < 2^30 (gen_model.py checks every channel's accumulator bound), then
 * the rounding shift, the output offset riding along in q->round. */
static int32_t requant(const strata_quant_t *q, int32_t acc, int32_t output_offset)
{
    const int32_t x = smmulr((int32_t)((uint32_t)acc << q->lsh), q->multiplier);
    (void)output_offset;
    return (x + q->round + ((x >> 31) & q->neg)) >> q->rsh;
}
#else
static void widen2(const int8_t *s0, const int8_t *s1, int16_t *d, int n)
{
    int j, p;
    for (p = 0; p < 2; p++) {
        const int8_t *src = p ? s1 : s0;
        int16_t *dst = d + p * STRIDE;
        for (j = 0; j < n; j++) {
            dst[4 * j + 0] = src[4 * j + 0];
            dst[4 * j + 1] = src[4 * j + 2];
            dst[4 * j + 2] = src[4 * j + 1];
            dst[4 * j + 3] = src[4 * j + 3];
        }
    }
}

/* byte i of a weight word, as int8 (endian-independent) */
#define WBYTE(w, i) ((int32_t)(int8_t)(uint8_t)((w) >> (8 * (i))))

static void dot(const int32_t *x0w, const uint32_t *w, int groups, int32_t *acc)
{
    const int16_t *x0 = (const int16_t *)(const void *)x0w, *x1 = x0 + STRIDE;
    int g;
    for (g = 0; g < groups; g++, w += 2, x0 += 4, x1 += 4) {
        int i;
        for (i = 0; i < 4; i++) {
            /* word bytes (s0, s1, s2, s3) pair with positions (0, 2, 1, 3) */
            const int pos = (i & 1) << 1 | i >> 1;
            acc[0] += WBYTE(w[0], i) * x0[pos];
            acc[1] += WBYTE(w[0], i) * x1[pos];
            acc[2] += WBYTE(w[1], i) * x0[pos];
            acc[3] += WBYTE(w[1], i) * x1[pos];
        }
    }
}

static int32_t requant(const strata_quant_t *q, int32_t acc, int32_t output_offset)
{
    return strata_requantize(acc, q->multiplier, q->shift) + output_offset;
}
#endif

/* One kernel row of a pixel whose window overlaps padding (or a padding row): kw*cin
 * bytes with the zero point outside the frame, rounded up to words. */
static void edge_segment(const strata_conv_t *L, const int8_t *row, int in_w, int x0,
                         int8_t *seg)
{
    const int kx0 = x0 < 0 ? -x0 : 0;                         /* columns kx0 <= kx < kx1 */
    const int kx1 = in_w - x0 < L->kw ? in_w - x0 : L->kw; /* lie inside the frame */
    memset(seg, (int8_t)-L->input_offset, 4 * ((L->kw * L->cin + 3) / 4));
    if (row != NULL && kx1 > kx0) {
        memcpy(seg + kx0 * L->cin, row + (x0 + kx0) * L->cin, (size_t)(kx1 - kx0) * L->cin);
    }
}

/* Kernel rows ky0 <= ky < ky1 of the two pixels starting at columns x0[0], x0[1] into
 * buf (pixel p at p * STRIDE, row ky at `at + (ky - ky0) * step`). fast: every row
 * lies inside the frame, so the windows are read where they are. */
static void im2col(const strata_conv_t *L, const int8_t *const *rows, int ky0, int ky1,
                   int in_w, const int *x0, int fast, int16_t *buf, int step)
{
    const int words = (L->kw * L->cin + 3) / 4;
    int ky;
    if (fast) {
        const int c0 = x0[0] * L->cin, c1 = x0[1] * L->cin;
        for (ky = ky0; ky < ky1; ky++, buf += step) {
            widen2(rows[ky] + c0, rows[ky] + c1, buf, words);
        }
    } else {
        int8_t seg[2][STRIDE + 4];
        for (ky = ky0; ky < ky1; ky++, buf += step) {
            edge_segment(L, rows[ky], in_w, x0[0], seg[0]);
            edge_segment(L, rows[ky], in_w, x0[1], seg[1]);
            widen2(seg[0], seg[1], buf, words);
        }
    }
}

/* Requantise a channel's two accumulators (pixels 0 and 1) and clamp them. */
static inline void requant2(const strata_conv_t *L, const strata_quant_t *q, int full,
                            int32_t a0, int32_t a1, int8_t *o0, int8_t *o1)
{
    int32_t v0 = requant(q, a0, L->output_offset), v1 = requant(q, a1, L->output_offset);
    if (full) {
#if STRATA_DSP
        v0 = __ssat(v0, 8);
        v1 = __ssat(v1, 8);
#else
        v0 = v0 < -128 ? -128 : v0 > 127 ? 127 : v0;
        v1 = v1 < -128 ? -128 : v1 > 127 ? 127 : v1;
#endif
    } else {
        v0 = v0 < L->act_min ? L->act_min : v0 > L->act_max ? L->act_max : v0;
        v1 = v1 < L->act_min ? L->act_min : v1 > L->act_max ? L->act_max : v1;
    }
    *o0 = (int8_t)v0;
    *o1 = (int8_t)v1;
}

void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int8_t *out)
{
    int32_t buf32[STRIDE]; /* two pixels' int16 windows, word-aligned */
    int16_t *buf = (int16_t *)(void *)buf32;
    int8_t spare[2 * STRATA_MAX_CHANNELS_PER_LAYER]; /* outputs nobody asked for */
    const int kwc = L->kw * L->cin, pairs = (n_out + 1) / 2;
    const int full = L->act_min == -128 && L->act_max == 127;
    const size_t pair_words = (size_t)L->groups * 2 * (L->mode == STRATA_IM2COL_ROWS ? L->kh : 1);
    const int reach = (4 * ((kwc + 3) / 4) + L->cin - 1) / L->cin; /* columns a row reads */
    /* pixels whose every kernel row lies inside the frame: [lo, hi) */
    int lo = (L->pad_left + L->stride - 1) / L->stride;
    int hi = (in_w - reach + L->pad_left) / L->stride + 1;
    int ox, ky, cp;
    for (ky = 0; ky < L->kh; ky++) {
        if (rows[ky] == NULL || in_w < reach) {
            hi = 0; /* a padding row: every pixel takes the edge path */
        }
    }
    for (ox = 0; ox < out_w; ox += 2) {
        const int pixels = ox + 1 < out_w ? 2 : 1;
        const int x0[2] = {ox * L->stride - L->pad_left,
                           (ox + pixels - 1) * L->stride - L->pad_left};
        const int fast = ox >= lo && ox + 1 < hi;
        int8_t *o0 = out + (size_t)ox * n_out, *o1 = pixels == 2 ? o0 + n_out : spare;
        if (L->mode == STRATA_IM2COL_WINDOW) {
            im2col(L, rows, 0, L->kh, in_w, x0, fast, buf, kwc);
            for (cp = 0; cp < pairs; cp++) {
                const strata_quant_t *q = &L->quant[2 * cp];
                const int b = 2 * cp + 1 < n_out; /* an odd n_out's last pair: a only */
                int32_t acc[4];
                acc[0] = acc[1] = q[0].bias;
                acc[2] = acc[3] = q[1].bias;
                dot(buf32, L->weights + cp * pair_words, L->groups, acc);
                requant2(L, q, full, acc[0], acc[1], o0 + 2 * cp, o1 + 2 * cp);
                requant2(L, q + 1, full, acc[2], acc[3], b ? o0 + 2 * cp + 1 : spare,
                         b ? o1 + 2 * cp + 1 : spare + 1);
            }
        } else {
            int32_t acc[STRATA_MAX_CHANNELS_PER_LAYER / 2][4];
            for (cp = 0; cp < pairs; cp++) {
                acc[cp][0] = acc[cp][1] = L->quant[2 * cp].bias;
                acc[cp][2] = acc[cp][3] = L->quant[2 * cp + 1].bias;
            }
            for (ky = 0; ky < L->kh; ky++) {
                im2col(L, rows, ky, ky + 1, in_w, x0, fast, buf, 0);
                for (cp = 0; cp < pairs; cp++) {
                    dot(buf32, L->weights + cp * pair_words + (size_t)ky * L->groups * 2,
                        L->groups, acc[cp]);
                }
            }
            for (cp = 0; cp < pairs; cp++) {
                const strata_quant_t *q = &L->quant[2 * cp];
                const int b = 2 * cp + 1 < n_out;
                requant2(L, q, full, acc[cp][0], acc[cp][1], o0 + 2 * cp, o1 + 2 * cp);
                requant2(L, q + 1, full, acc[cp][2], acc[cp][3], b ? o0 + 2 * cp + 1 : spare,
                         b ? o1 + 2 * cp + 1 : spare + 1);
            }
        }
    }
}
