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

#if STRATA_DSP
static int8x4_t ror8(int8x4_t v) /* the compiler folds it into SXTB16's rotation */
{
    return (int8x4_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}
#endif

/* acc + sum of w[i] * (x[i] + offset) over i < n. */
static int32_t dot_offset(const int8_t *w, const int8_t *x, int n, int32_t offset, int32_t acc)
{
    int i = 0;
#if STRATA_DSP
    const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)offset << 16) | (uint16_t)offset);
    for (; i + 4 <= n; i += 4) {
        int8x4_t w4, x4;
        memcpy(&w4, w + i, 4); /* one unaligned LDR each */
        memcpy(&x4, x + i, 4);
        /* bytes 0 and 2, then 1 and 3, sign-extended to 16-bit pairs */
        acc = __smlad(__sxtb16(w4), __sadd16(__sxtb16(x4), off2), acc);
        acc = __smlad(__sxtb16(ror8(w4)), __sadd16(__sxtb16(ror8(x4)), off2), acc);
    }
#endif
    for (; i < n; i++) {
        acc += (int32_t)w[i] * ((int32_t)x[i] + offset);
    }
    return acc;
}

int32_t strata_requantize(int32_t x, int32_t multiplier, int shift)
{
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(doubling_high_mul((int32_t)((uint32_t)x << left), multiplier),
                                  right);
}

void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int8_t *out)
{
    const int cin = L->cin;
    const int per_oc = L->kh * L->kw * cin;
    int ox, oc, ky;
    for (ox = 0; ox < out_w; ox++) {
        /* columns of the window inside the frame: kx0 <= kx < kx1 */
        const int x0 = ox * L->stride - L->pad_left;
        const int kx0 = x0 < 0 ? -x0 : 0;
        const int kx1 = in_w - x0 < L->kw ? in_w - x0 : L->kw;
        /* kx and ci are contiguous in both the weights and the row: one flat loop */
        const int span = (kx1 - kx0) * cin;
        for (oc = 0; oc < n_out; oc++) {
            const int8_t *w_oc = L->weights + (size_t)oc * per_oc;
            int32_t acc = 0;
            for (ky = 0; ky < L->kh; ky++) {
                if (rows[ky] != NULL) {
                    acc = dot_offset(w_oc + (ky * L->kw + kx0) * cin,
                                     rows[ky] + (size_t)(x0 + kx0) * cin, span,
                                     L->input_offset, acc);
                }
            }
            acc += L->bias[oc];
            acc = strata_requantize(acc, L->multiplier[oc], L->shift[oc]);
            acc += L->output_offset;
            acc = acc < L->act_min ? L->act_min : acc;
            acc = acc > L->act_max ? L->act_max : acc;
            out[(size_t)ox * n_out + oc] = (int8_t)acc;
        }
    }
}
