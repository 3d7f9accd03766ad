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
#define MAX_PAIRS 16 /* channel pairs of the ROWS accumulators (STRATA_MAX_CHANNELS / 2) */

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
static uint32_t load32(const int8_t *p) /* unaligned */
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint32_t ror8(uint32_t v) /* the compiler folds it into SXTB16's rotation */
{
    return (v >> 8) | (v << 24);
}

/* n words of int8 at src -> int16 at dst, each group of 4 as (b0, b2), (b1, b3). */
static void widen(const int8_t *src, int16_t *dst, int n)
{
    int j;
    for (j = 0; j < n; j++) {
        const uint32_t v = load32(src + 4 * j);
        const uint32_t lo = (uint32_t)__sxtb16((int8x4_t)v);
        const uint32_t hi = (uint32_t)__sxtb16((int8x4_t)ror8(v));
        memcpy(dst + 4 * j, &lo, 4); /* unaligned stores where a row starts odd */
        memcpy(dst + 4 * j + 2, &hi, 4);
    }
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
static void dot(const int32_t *x, const uint32_t *w, int groups, int32_t *acc)
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
static void widen(const int8_t *src, int16_t *dst, int n)
{
    int j;
    for (j = 0; j < n; j++) {
        dst[4 * j + 0] = src[4 * j + 0];
        dst[4 * j + 1] = src[4 * j + 2];
        dst[4 * j + 2] = src[4 * j + 1];
        dst[4 * j + 3] = src[4 * j + 3];
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

/* Kernel row ky of the two pixels starting at columns x0[0], x0[1] into buf (pixel p
 * at p * STRIDE, the row at `at`). fast: both windows inside the row (no padding). */
static void im2col_row(const strata_conv_t *L, const int8_t *row, int in_w, const int *x0,
                       int fast, int16_t *buf, int at)
{
    const int words = (L->kw * L->cin + 3) / 4;
    int8_t seg[STRIDE + 4];
    int p;
    for (p = 0; p < 2; p++) {
        const int8_t *src = row + x0[p] * L->cin;
        if (!fast) {
            edge_segment(L, row, in_w, x0[p], seg);
            src = seg;
        }
        widen(src, buf + p * STRIDE + at, words);
    }
}

/* Requantise the 2 x 2 block (pixels ox, ox + 1; channels c, c + 1) into out. */
static void store_block(const strata_conv_t *L, const int32_t *acc, int c, int n_out,
                        int pixels, int8_t *out)
{
    const int full = L->act_min == -128 && L->act_max == 127;
    int i;
    for (i = 0; i < 4; i++) {
        const int ch = c + (i >> 1), px = i & 1;
        int32_t v = requant(&L->quant[ch], acc[i], L->output_offset);
        if (full) {
#if STRATA_DSP
            v = __ssat(v, 8);
#else
            v = v < -128 ? -128 : v > 127 ? 127 : v;
#endif
        } else {
            v = v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v;
        }
        if (ch < n_out && px < pixels) {
            out[(size_t)px * n_out + ch] = (int8_t)v;
        }
    }
}

void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int8_t *out)
{
    int32_t buf32[STRIDE]; /* two pixels' int16 windows, word-aligned */
    int16_t *buf = (int16_t *)(void *)buf32;
    const int kwc = L->kw * L->cin, pairs = (n_out + 1) / 2;
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
        int8_t *o = out + (size_t)ox * n_out;
        if (L->mode == STRATA_IM2COL_WINDOW) {
            for (ky = 0; ky < L->kh; ky++) {
                im2col_row(L, rows[ky], in_w, x0, fast, buf, ky * kwc);
            }
            for (cp = 0; cp < pairs; cp++) {
                const strata_quant_t *q = &L->quant[2 * cp];
                int32_t acc[4];
                acc[0] = acc[1] = q[0].bias;
                acc[2] = acc[3] = q[1].bias;
                dot(buf32, L->weights + (size_t)cp * L->groups * 2, L->groups, acc);
                store_block(L, acc, 2 * cp, n_out, pixels, o);
            }
        } else {
            int32_t acc[MAX_PAIRS][4];
            for (cp = 0; cp < pairs; cp++) {
                acc[cp][0] = acc[cp][1] = L->quant[2 * cp].bias;
                acc[cp][2] = acc[cp][3] = L->quant[2 * cp + 1].bias;
            }
            for (ky = 0; ky < L->kh; ky++) {
                im2col_row(L, rows[ky], in_w, x0, fast, buf, 0);
                for (cp = 0; cp < pairs; cp++) {
                    dot(buf32, L->weights + ((size_t)cp * L->kh + ky) * L->groups * 2,
                        L->groups, acc[cp]);
                }
            }
            for (cp = 0; cp < pairs; cp++) {
                store_block(L, acc[cp], 2 * cp, n_out, pixels, o);
            }
        }
    }
}
