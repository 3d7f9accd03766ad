#include "strata_conv.h"

#include <stddef.h>
#include <string.h>

/* STRATA_USE_DSP: Cortex-M DSP extension (M4/M7/M33/M55) for the inner product, two
 * 16-bit MACs per SMLAD. Integer sums are exact in any order, so it stays bit-exact. */
#if defined(STRATA_USE_DSP) && STRATA_USE_DSP && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define STRATA_DSP 1
#else
#define STRATA_DSP 0
#endif

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

/* Weights are stored in SXTB16 order: w0 w2 w1 w3 in every group of 4 (gen_model.py). */
#define WEIGHT_INDEX(n) (((n) & ~3) | (((n) & 1) << 1) | (((n) >> 1) & 1))

#if STRATA_DSP
static int8x4_t ror8(int8x4_t v) /* the compiler folds it into SXTB16's rotation */
{
    return (int8x4_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}

/* *a += wa . p and *b += wb . p over n (a multiple of 4) values: each patch word loaded
 * once for two output channels, two MACs per SMLAD. */
static void dot2(const int8_t *wa, const int8_t *wb, const int16_t *p, int n, int32_t *a,
                 int32_t *b)
{
    int32_t acc_a = *a, acc_b = *b;
    int i;
    for (i = 0; i < n; i += 4) {
        int8x4_t w4a, w4b;
        int16x2_t p01, p23;
        memcpy(&p01, p + i, 4); /* single (unaligned) loads */
        memcpy(&p23, p + i + 2, 4);
        memcpy(&w4a, wa + i, 4);
        memcpy(&w4b, wb + i, 4);
        acc_a = __smlad(__sxtb16(w4a), p01, acc_a);
        acc_a = __smlad(__sxtb16(ror8(w4a)), p23, acc_a);
        acc_b = __smlad(__sxtb16(w4b), p01, acc_b);
        acc_b = __smlad(__sxtb16(ror8(w4b)), p23, acc_b);
    }
    *a = acc_a;
    *b = acc_b;
}
#else
static void dot2(const int8_t *wa, const int8_t *wb, const int16_t *p, int n, int32_t *a,
                 int32_t *b)
{
    int32_t acc_a = *a, acc_b = *b;
    int i;
    for (i = 0; i < n; i++) {
        acc_a += (int32_t)wa[WEIGHT_INDEX(i)] * p[i];
        acc_b += (int32_t)wb[WEIGHT_INDEX(i)] * p[i];
    }
    *a = acc_a;
    *b = acc_b;
}
#endif

/* The window of the output pixel whose first column is x0, as kh*kw*cin int16 values
 * (x + input_offset), 0 for padding (whose value is the zero point), zero-filled to
 * L->patch: built once, shared by every output channel of the pixel. */
static void build_patch(const strata_conv_t *L, const int8_t *const *rows, int in_w, int x0,
                        int16_t *p)
{
    const int cin = L->cin, kw = L->kw;
    const int kx0 = x0 < 0 ? -x0 : 0;
    const int kx1 = in_w - x0 < kw ? in_w - x0 : kw; /* columns kx0 <= kx < kx1 inside */
    const int lead = kx0 * cin, span = kx1 > kx0 ? (kx1 - kx0) * cin : 0;
    int ky, i;
    int16_t *end;
    for (ky = 0; ky < L->kh; ky++) {
        const int8_t *row = rows[ky];
        end = p + kw * cin;
        if (row != NULL) {
            for (i = 0; i < lead; i++) {
                *p++ = 0;
            }
            row += (x0 + kx0) * cin;
            for (i = 0; i < span; i++) {
                *p++ = (int16_t)(row[i] + L->input_offset);
            }
        }
        while (p < end) {
            *p++ = 0;
        }
    }
    for (i = L->kh * kw * cin; i < L->patch; i++) {
        *p++ = 0;
    }
}

/* Bias, requantisation, output offset and clamp of one accumulator. */
static int8_t requantize_output(const strata_conv_t *L, int oc, int32_t acc)
{
    acc = strata_requantize(acc + L->bias[oc], L->multiplier[oc], L->shift[oc]);
    acc += L->output_offset;
    acc = acc < L->act_min ? L->act_min : acc;
    acc = acc > L->act_max ? L->act_max : acc;
    return (int8_t)acc;
}

int32_t strata_requantize(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(doubling_high_mul((int32_t)((uint32_t)x << left), multiplier),
                                  right);
}

void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int16_t *patch, int8_t *out)
{
    int ox, oc;
    for (ox = 0; ox < out_w; ox++) {
        build_patch(L, rows, in_w, ox * L->stride - L->pad_left, patch);
        for (oc = 0; oc < n_out; oc += 2) {
            /* an odd last channel pairs with itself: same cost, one result kept */
            const int ob = oc + 1 < n_out ? oc + 1 : oc;
            int32_t a = 0, b = 0;
            dot2(L->weights + (size_t)oc * L->patch, L->weights + (size_t)ob * L->patch, patch,
                 L->patch, &a, &b);
            out[(size_t)ox * n_out + oc] = requantize_output(L, oc, a);
            out[(size_t)ox * n_out + ob] = requantize_output(L, ob, b);
        }
    }
}
