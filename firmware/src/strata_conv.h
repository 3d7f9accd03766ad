/* INT8 convolution with TFLite's reference arithmetic (internal to the encoder). */
#ifndef STRATA_CONV_H
#define STRATA_CONV_H

#include <stdint.h>

/* int16 values of one output pixel's im2col buffer (three pixels are computed at a
 * time, so the buffer is 3 * 2 * STRATA_IM2COL_STRIDE bytes of stack). */
#define STRATA_IM2COL_STRIDE 150

/* How a layer's input windows become int16 (gen_model.py picks one per layer):
 * WINDOW: the whole kh x kw x cin window of a pixel at once, its kernel rows packed
 *         kw*cin values apart (the 7x7x3 first layer: 21-value rows);
 * ROWS:   one kernel row at a time (kw*cin a multiple of 4), the accumulators kept
 *         across rows in the buffer's unused part (windows too large for the buffer). */
enum { STRATA_IM2COL_WINDOW = 0, STRATA_IM2COL_ROWS = 1 };

/* Per output channel: what turns the int32 accumulator into the int8 output. */
typedef struct {
    int32_t bias;       /* bias + input_offset * sum(weights): the input offset folded in */
    int32_t multiplier; /* Q31 requantisation multiplier */
    int32_t round;      /* DSP path: 2^(rsh-1) (0 if rsh = 0) + output_offset * 2^rsh */
    int8_t shift;       /* TFLite's power-of-two exponent (negative: right) */
    uint8_t lsh;        /* DSP path: max(shift, 0) + 1 */
    uint8_t rsh;        /* DSP path: max(-shift, 0) */
    int8_t neg;         /* DSP path: -1 if rsh > 0 (round half away from zero), else 0 */
} strata_quant_t;

/* One convolution as the .tflite graph has it (PAD + VALID CONV_2D), generated into
 * strata_model.h by firmware/tools/gen_model.py. */
typedef struct {
    /* [cout/2 channel pairs][groups][2]: per group of 4 im2col positions, one word of 4
     * int8 weights for each channel of the pair, bytes in the order SXTB16 pairs them
     * with the im2col buffer (gen_model.py, weight_words); 0 where nothing is */
    const uint32_t *weights;
    const strata_quant_t *quant; /* [cout rounded up to even] */
    uint16_t groups;             /* WINDOW: groups per window; ROWS: per kernel row */
    uint8_t mode;                /* STRATA_IM2COL_WINDOW or STRATA_IM2COL_ROWS */
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
 * pixels of the first n_out output channels to out[x * px_stride + oc * ch_stride].
 * Padding pixels hold the input zero point (TFLite's PAD). */
void strata_conv_row(const strata_conv_t *L, const int8_t *const *rows, int in_w, int out_w,
                     int n_out, int8_t *out, int px_stride, int ch_stride);

#endif
