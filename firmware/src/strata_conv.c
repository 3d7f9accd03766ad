#include "strata_conv.h"

#include <stddef.h>

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

void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int8_t *out)
{
    const int cin = L->cin;
    const int per_oc = L->kh * L->kw * cin;
    int ox, oc, ky, i;
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
                const int8_t *px;
                const int8_t *w;
                if (rows[ky] == NULL) {
                    continue;
                }
                px = rows[ky] + (size_t)(x0 + kx0) * cin;
                w = w_oc + (ky * L->kw + kx0) * cin;
                for (i = 0; i < span; i++) {
                    acc += (int32_t)w[i] * ((int32_t)px[i] + L->input_offset);
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
