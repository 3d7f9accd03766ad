/* INT8 convolution with TFLite's reference arithmetic (internal to the encoder). */
#ifndef STRATA_CONV_H
#define STRATA_CONV_H

#include <stdint.h>

/* One convolution as the .tflite graph has it (PAD + VALID CONV_2D), generated into
 * strata_model.h by firmware/tools/gen_model.py. */
typedef struct {
    const int8_t *weights;     /* [cout][patch]: kh*kw*cin (OHWI) zero-padded to patch */
    const int32_t *bias;       /* [cout] */
    const int32_t *multiplier; /* [cout] Q31 requantisation multiplier */
    const int8_t *shift;       /* [cout] its power-of-two exponent (negative: right) */
    uint16_t patch;            /* kh * kw * cin rounded up to a multiple of 4 */
    uint8_t kh, kw, cin, cout, stride;
    uint8_t pad_top, pad_bottom, pad_left, pad_right;
    int32_t input_offset;  /* -input zero point */
    int32_t output_offset; /* output zero point */
    int32_t act_min, act_max;
} strata_conv_t;

/* TFLite's MultiplyByQuantizedMultiplier (the default, double-rounding variant). */
int32_t strata_requantize(int32_t x, int32_t multiplier, int shift);

/* One output row of `L`: rows[ky] is input row (oy * stride - pad_top + ky), NULL where
 * that row is padding; each input row is in_w pixels of cin int8 values. Writes out_w
 * pixels of the first n_out output channels to out[x * n_out + oc]. `patch` is scratch
 * of L->patch int16 values. Padding pixels hold the zero point, which contributes
 * nothing: they enter the patch as 0. */
void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int16_t *patch, int8_t *out);

#endif
