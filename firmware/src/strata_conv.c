/* INT8 convolution, three output pixels by two output channels at a time.
 *
 * Each pixel's input window is widened once to int16 (im2col, a kernel row at a time,
 * 4 values per word load) and then shared by every output channel pair. Weights stay
 * int8 in flash, arranged by gen_model.py so that one word per channel and group
 * unpacks with two SXTB16 into the pairs the window holds; the input offset is folded
 * into the bias, so padding is just the zero point and the inner loop has no branches.
 * With the DSP extension (STRATA_USE_DSP, Cortex-M4/M7/M33/M55) each SMLAD does two
 * MACs: 24 MACs in 20 instructions per group of 4 positions. The portable path does the
 * same sums in plain C. Integer sums are exact in any order, so both give TFLite's
 * bytes. */
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
#define PIX 3 /* output pixels per block */
#define CHUNK 4 /* channel pairs a WINDOW block keeps accumulators for at a time */

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
#define XSTR(x) #x
#define STR(x) XSTR(x)
#define PX(p) "#(" STR(p) "*2*" STR(STRATA_IM2COL_STRIDE) ")" /* pixel p's byte offset */

/* widen1 for the three pixels of a block at once (s0, s1, s2 -> dst + p * STRIDE),
 * 17 instructions per word of each; stores may be unaligned (a 21-value kernel row
 * starts at odd positions). */
#define WIDEN_WORD                                                                        \
    "ldr    %[v0], [%[s0]], #4\n\t"                                                       \
    "ldr    %[v1], [%[s1]], #4\n\t"                                                       \
    "ldr    %[v2], [%[s2]], #4\n\t"                                                       \
    "sxtb16 %[t0], %[v0]\n\t"                                                              \
    "sxtb16 %[v0], %[v0], ror #8\n\t"                                                      \
    "sxtb16 %[t1], %[v1]\n\t"                                                              \
    "sxtb16 %[v1], %[v1], ror #8\n\t"                                                      \
    "sxtb16 %[t2], %[v2]\n\t"                                                              \
    "sxtb16 %[v2], %[v2], ror #8\n\t"                                                      \
    "str    %[t2], [%[d], " PX(2) "]\n\t"                                                 \
    "str    %[v2], [%[d], " PX(2) "+4]\n\t"                                               \
    "str    %[t1], [%[d], " PX(1) "]\n\t"                                                 \
    "str    %[v1], [%[d], " PX(1) "+4]\n\t"                                               \
    "str    %[v0], [%[d], #4]\n\t"                                                         \
    "str    %[t0], [%[d]], #8\n\t"

static void widen3(const int8_t *s0, const int8_t *s1, const int8_t *s2, int16_t *d, int n)
{
    uint32_t v0, v1, v2, t0, t1, t2;
    __asm__ volatile("1:\n\t" WIDEN_WORD "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [d] "+r"(d), [n] "+r"(n),
                       [v0] "=&r"(v0), [v1] "=&r"(v1), [v2] "=&r"(v2), [t0] "=&r"(t0),
                       [t1] "=&r"(t1), [t2] "=&r"(t2)
                     :
                     : "cc", "memory");
}

/* One group of 4 positions: weights of channels a and b (one LDRD, four SXTB16), then
 * per pixel one LDRD of its two int16 pairs and four SMLAD. 20 instructions, 24 MACs. */
#define DOT_GROUP                                                                         \
    "ldrd   r8, r9, [r1], #8\n\t"                                                         \
    "sxtb16 r10, r8\n\t"                                                                   \
    "sxtb16 r8, r8, ror #8\n\t"                                                            \
    "sxtb16 r11, r9\n\t"                                                                   \
    "sxtb16 r9, r9, ror #8\n\t"                                                            \
    "ldrd   r12, lr, [r0, " PX(2) "]\n\t"                                                 \
    "smlad  r4, r10, r12, r4\n\t"                                                          \
    "smlad  r4, r8, lr, r4\n\t"                                                            \
    "smlad  r7, r11, r12, r7\n\t"                                                          \
    "smlad  r7, r9, lr, r7\n\t"                                                            \
    "ldrd   r12, lr, [r0, " PX(1) "]\n\t"                                                 \
    "smlad  r3, r10, r12, r3\n\t"                                                          \
    "smlad  r3, r8, lr, r3\n\t"                                                            \
    "smlad  r6, r11, r12, r6\n\t"                                                          \
    "smlad  r6, r9, lr, r6\n\t"                                                            \
    "ldrd   r12, lr, [r0], #8\n\t"                                                         \
    "smlad  r2, r10, r12, r2\n\t"                                                          \
    "smlad  r2, r8, lr, r2\n\t"                                                            \
    "smlad  r5, r11, r12, r5\n\t"                                                          \
    "smlad  r5, r9, lr, r5\n\t"

/* acc[0..2] += channel a's weights . pixels 0..2, acc[3..5] the same for channel b, over
 * the groups from w to end (w: 2 words per group). Every register is needed (6
 * accumulators, 4 weight pairs, 2 input pairs, 2 pointers), so it is written whole in
 * assembly, `end` compared from the stack: one group if their number is odd, two if
 * it has bit 1, then four per pass (the flags of one shift pick the first two; LDM,
 * SXTB16 and SMLAD leave them alone). */
#define UNUSED __attribute__((unused)) /* the arguments are in r0..r3 */
__attribute__((naked, noinline)) static void dot(const int32_t *x UNUSED,
                                                 const uint32_t *w UNUSED,
                                                 const uint32_t *end UNUSED, int32_t *acc UNUSED)
{
    __asm__ volatile("push   {r4-r11, lr}\n\t"
                     "push   {r2, r3}\n\t"
                     "sub    r12, r2, r1\n\t"
                     "lsls   r12, r12, #28\n\t" /* N: groups & 1, C: groups & 2 */
                     "mov    lr, r3\n\t"
                     "ldm    lr, {r2-r7}\n\t"
                     "bpl    1f\n\t" DOT_GROUP "1:\n\t"
                     "bcc    2f\n\t" DOT_GROUP DOT_GROUP "2:\n\t"
                     "ldr    r12, [sp]\n\t"
                     "cmp    r1, r12\n\t"
                     "beq    4f\n\t"
                     "3:\n\t" DOT_GROUP DOT_GROUP DOT_GROUP DOT_GROUP "ldr    r12, [sp]\n\t"
                     "cmp    r1, r12\n\t"
                     "bne    3b\n\t"
                     "4:\n\t"
                     "ldr    r12, [sp, #4]\n\t"
                     "stm    r12, {r2-r7}\n\t"
                     "add    sp, #8\n\t"
                     "pop    {r4-r11, pc}\n\t");
}

static int32_t smmulr(int32_t a, int32_t b) /* (a * b + 2^31) >> 32 */
{
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* TFLite's requantisation in a few instructions: SRDHM(a, m) = (2a * m + 2^31) >> 32
 * exactly while |a| < 2^30 (gen_model.py checks every channel's accumulator bound), then
 * the rounding shift, the output offset riding along in q->round. */
static inline int32_t requant(const strata_quant_t *q, int32_t acc, int32_t output_offset)
{
    const int32_t x = smmulr((int32_t)((uint32_t)acc << q->lsh), q->multiplier);
    (void)output_offset;
    return (x + q->round + ((x >> 31) & q->neg)) >> q->rsh;
}

static inline int32_t clamp8(int32_t v)
{
    return __ssat(v, 8);
}
#else
/* n words of int8 of each pixel -> int16 at d + p * STRIDE, each group of 4 bytes
 * (b0..b3) stored as the pairs (b0, b2), (b1, b3): what SXTB16 and SXTB16 ROR #8 make
 * of a word. */
static void widen3(const int8_t *s0, const int8_t *s1, const int8_t *s2, int16_t *d, int n)
{
    const int8_t *const src[PIX] = {s0, s1, s2};
    int j, p;
    for (p = 0; p < PIX; p++, d += STRIDE) {
        for (j = 0; j < n; j++) {
            d[4 * j + 0] = src[p][4 * j + 0];
            d[4 * j + 1] = src[p][4 * j + 2];
            d[4 * j + 2] = src[p][4 * j + 1];
            d[4 * j + 3] = src[p][4 * j + 3];
        }
    }
}

/* byte i of a weight word, as int8 (endian-independent) */
#define WBYTE(w, i) ((int32_t)(int8_t)(uint8_t)((w) >> (8 * (i))))

static void dot(const int32_t *xw, const uint32_t *w, const uint32_t *end, int32_t *acc)
{
    const int16_t *x = (const int16_t *)(const void *)xw;
    for (; w < end; w += 2, x += 4) {
        int i, p;
        for (i = 0; i < 4; i++) {
            /* word bytes (s0, s1, s2, s3) pair with positions (0, 2, 1, 3) */
            const int pos = (i & 1) << 1 | i >> 1;
            for (p = 0; p < PIX; p++) {
                acc[p] += WBYTE(w[0], i) * x[p * STRIDE + pos];
                acc[PIX + p] += WBYTE(w[1], i) * x[p * STRIDE + pos];
            }
        }
    }
}

static int32_t requant(const strata_quant_t *q, int32_t acc, int32_t output_offset)
{
    return strata_requantize(acc, q->multiplier, q->shift) + output_offset;
}

static int32_t clamp8(int32_t v)
{
    return v < -128 ? -128 : v > 127 ? 127 : v;
}
#endif

/* One kernel row of one pixel into dst as widen3 lays it out, for blocks that touch
 * padding: a padding row is the zero point, a pixel inside the frame is copied, a
 * pixel over the frame's edge goes element by element (the zero point outside). Not
 * inlined: its locals would otherwise sit in strata_conv_row's frame all the time. */
__attribute__((noinline)) static void widen_edge(const strata_conv_t *L, const int8_t *row, int in_w, int x0,
                       int16_t *dst, int n)
{
    const int kwc = L->kw * L->cin, first = x0 * L->cin, end = in_w * L->cin;
    const int16_t zero = (int16_t)-L->input_offset;
    int q;
    if (row == NULL) {
        for (q = 0; q < 4 * n; q++) {
            dst[q] = zero;
        }
    } else if (first >= 0 && first + 4 * n <= end) {
        for (q = 0; q < 4 * n; q += 4) {
            dst[q + 0] = row[first + q + 0];
            dst[q + 1] = row[first + q + 2];
            dst[q + 2] = row[first + q + 1];
            dst[q + 3] = row[first + q + 3];
        }
    } else { /* the zero point, then the part of the window inside the frame */
        const int e0 = first < 0 ? -first : 0, e1 = end - first < kwc ? end - first : kwc;
        int e;
        for (q = 0; q < 4 * n; q++) {
            dst[q] = zero;
        }
        for (e = e0; e < e1; e++) {
            dst[(e & ~3) | ((e & 1) << 1) | ((e >> 1) & 1)] = row[first + e]; /* b0 b2 b1 b3 */
        }
    }
}

/* Kernel rows ky0 <= ky < ky1 of the block's pixels (first columns x0[]) into buf (pixel
 * p at p * STRIDE, row ky at (ky - ky0) * step). fast: every window's columns lie inside
 * the frame, so they are read where they are. */
static void im2col(const strata_conv_t *L, const int8_t *const *rows, int ky0, int ky1,
                   int in_w, const int *x0, int pixels, int fast, int16_t *buf, int step)
{
    const int words = (L->kw * L->cin + 3) / 4;
    int ky, p;
    if (fast) {
        const int c0 = x0[0] * L->cin, c1 = x0[1] * L->cin, c2 = x0[2] * L->cin;
        for (ky = ky0; ky < ky1; ky++, buf += step) {
            if (rows[ky] != NULL) {
                widen3(rows[ky] + c0, rows[ky] + c1, rows[ky] + c2, buf, words);
            } else { /* a padding row: the zero point */
                for (p = 0; p < PIX; p++) {
                    widen_edge(L, NULL, in_w, x0[p], buf + p * STRIDE, words);
                }
            }
        }
    } else {
        for (ky = ky0; ky < ky1; ky++, buf += step) {
            for (p = 0; p < pixels; p++) { /* the rest: stored before the real pixel */
                widen_edge(L, rows[ky], in_w, x0[p], buf + p * STRIDE, words);
            }
        }
    }
}

/* Requantise, clamp and store n_out channels from c0 on (acc[i][p]: channel c0 + i,
 * pixel p) at o[p] + channel * ch_stride. A pixel past the row's end repeats the last one
 * and shares its o[p], so pixels are stored last to first: the real one lands last.
 * All three values are computed before any store: a byte store may alias the
 * parameters, which would then be read again. */
static void store_block(const strata_conv_t *L, const int32_t (*acc)[PIX], int c0,
                        int n_out, int8_t *const *o, int ch_stride)
{
    const int32_t off = L->output_offset, lo = L->act_min, hi = L->act_max;
    int8_t *const o0 = o[0], *const o1 = o[1], *const o2 = o[2];
    const strata_quant_t *q = L->quant + c0;
    int ch, at;
    if (lo == -128 && hi == 127) {
        for (ch = 0, at = c0 * ch_stride; ch < n_out; ch++, q++, at += ch_stride) {
            const int32_t *a = acc[ch];
            const int32_t v0 = clamp8(requant(q, a[0], off));
            const int32_t v1 = clamp8(requant(q, a[1], off));
            const int32_t v2 = clamp8(requant(q, a[2], off));
            o2[at] = (int8_t)v2;
            o1[at] = (int8_t)v1;
            o0[at] = (int8_t)v0;
        }
    } else {
        for (ch = 0; ch < n_out; ch++, q++) {
            int p;
            for (p = PIX - 1; p >= 0; p--) {
                int32_t v = requant(q, acc[ch][p], off);
                v = v < lo ? lo : v > hi ? hi : v;
                o[p][(c0 + ch) * ch_stride] = (int8_t)v;
            }
        }
    }
}

/* ROWS: the accumulators of the channel pairs stay across kernel rows. They live in the
 * im2col buffer past the kernel row each pixel's part holds (2 * kw * cin of its
 * 2 * STRIDE bytes), pair cp in pixel cp % 3's part, the (cp / 3)-th there (gen_model.py
 * checks they fit), so they take no stack. The next pair's accumulators after a's: */
static int32_t *next_pair(int32_t *a, int cp)
{
    return (cp + 1) % PIX ? a + STRIDE / 2 : a - (PIX - 1) * STRIDE / 2 + 2 * PIX;
}

void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int8_t *out, int px_stride, int ch_stride)
{
    int32_t buf32[PIX * STRIDE / 2]; /* the block's int16 windows, word-aligned */
    int16_t *buf = (int16_t *)(void *)buf32;
    const int kwc = L->kw * L->cin, pairs = (n_out + 1) / 2;
    const int rows_mode = L->mode == STRATA_IM2COL_ROWS;
    const size_t pair_words = (size_t)L->groups * 2 * (rows_mode ? L->kh : 1);
    const int reach = (4 * ((kwc + 3) / 4) + L->cin - 1) / L->cin; /* columns a row reads */
    /* pixels whose every kernel row lies inside the frame: [lo, hi) */
    int lo = (L->pad_left + L->stride - 1) / L->stride;
    int hi = (in_w - reach + L->pad_left) / L->stride + 1;
    int ox, ky, cp, p;
    if (in_w < reach) {
        hi = 0; /* a frame narrower than a kernel row's read: every pixel is an edge */
    }
    for (ox = 0; ox < out_w; ox += PIX) {
        const int pixels = out_w - ox < PIX ? out_w - ox : PIX;
        const int fast = ox >= lo && ox + PIX - 1 < hi;
        int x0[PIX];
        int8_t *o[PIX];
        for (p = 0; p < PIX; p++) { /* past the row's end: repeat its last pixel */
            const int x = ox + p < out_w ? ox + p : out_w - 1;
            x0[p] = x * L->stride - L->pad_left;
            o[p] = out + (size_t)x * px_stride;
        }
        if (!rows_mode) { /* the whole window once, then CHUNK channel pairs at a time */
            int c0;
            im2col(L, rows, 0, L->kh, in_w, x0, pixels, fast, buf, kwc);
            for (c0 = 0; c0 < n_out; c0 += 2 * CHUNK) {
                const int n = n_out - c0 < 2 * CHUNK ? n_out - c0 : 2 * CHUNK;
                const uint32_t *w = L->weights + (size_t)c0 / 2 * pair_words;
                int32_t acc[2 * CHUNK][PIX];
                for (cp = 0; cp < n + (n & 1); cp++) {
                    for (p = 0; p < PIX; p++) {
                        acc[cp][p] = L->quant[c0 + cp].bias;
                    }
                }
                for (cp = 0; cp < n; cp += 2, w += pair_words) {
                    dot(buf32, w, w + 2 * L->groups, acc[cp]);
                }
                store_block(L, (const int32_t(*)[PIX])acc, c0, n, o, ch_stride);
            }
        } else { /* one kernel row at a time, every pair's accumulators kept */
            int32_t *const first = buf32 + kwc / 2, *a;
            for (cp = 0, a = first; cp < pairs; a = next_pair(a, cp), cp++) {
                for (p = 0; p < PIX; p++) {
                    a[p] = L->quant[2 * cp].bias;
                    a[PIX + p] = L->quant[2 * cp + 1].bias;
                }
            }
            for (ky = 0; ky < L->kh; ky++) {
                const uint32_t *w = L->weights + (size_t)ky * L->groups * 2;
                im2col(L, rows, ky, ky + 1, in_w, x0, pixels, fast, buf, 0);
                for (cp = 0, a = first; cp < pairs; a = next_pair(a, cp), cp++, w += pair_words) {
                    dot(buf32, w, w + 2 * L->groups, a);
                }
            }
            for (cp = 0, a = first; cp < pairs; a = next_pair(a, cp), cp++) {
                store_block(L, (const int32_t(*)[PIX])a, 2 * cp, n_out - 2 * cp < 2 ? 1 : 2, o,
                            ch_stride);
            }
        }
    }
}
