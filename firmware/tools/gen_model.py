"""Generate the firmware's model headers from the committed model files (run by CMake).

``strata_model.h``: the INT8 encoder read from the ``.tflite`` graph (PAD + CONV_2D pairs):
weights, biases, per-channel requantisation multipliers/shifts computed exactly as
TFLite's ``PopulateConvolutionQuantizationParams`` does, offsets, activation clamps,
padding, strides, and the uint8 pixel -> int8 input lookup of ``mcucoder.int8``.

``mcucoder_tables.h``: the entropy tables and int8 -> symbol lookup, written by
``mcucoder.firmware_tables.c_header`` (the codec's own generator).

``strata_predict_tables.h``: the predicted frames' residual and skip-flag tables of
``mcucoder.predictive`` (only the part of each residual table above frequency 1), and the
integer cost of every frequency in them (``predictive.symbol_cost``), so the camera picks
each chunk's tables with exactly the Python encoder's integer arithmetic.

Nothing is hand-copied: a new model release changes these headers at the next build.
Needs numpy and ai-edge-litert (for its flatbuffer schema), not torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mcucoder import predictive  # noqa: E402
from mcucoder.entropy import PROB_SCALE, tables_from_json  # noqa: E402
from mcucoder.firmware_tables import c_header  # noqa: E402
from mcucoder.registry import WEIGHTS_DIR, model_entry, model_id_of  # noqa: E402


@dataclass
class Conv:
    """One PAD + CONV_2D pair of the graph, in TFLite's integer terms."""

    weights: np.ndarray  # int8 (cout, kh, kw, cin), TFLite's OHWI layout
    bias: np.ndarray  # int32 (cout,)
    multiplier: list[int]
    shift: list[int]
    stride: int
    pad: tuple[int, int, int, int]  # top, bottom, left, right
    input_offset: int  # -input zero point
    output_offset: int  # output zero point
    act_min: int
    act_max: int


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: m = q * 2^shift, q a Q31 integer in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = math.floor(frac * (1 << 31) + 0.5)  # std::round: half away from zero (m > 0)
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q, shift


def activation_range(fused: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite's ``CalculateActivationRangeQuantized`` for int8 outputs."""
    from ai_edge_litert.schema_py_generated import ActivationFunctionType as A

    def q(x: float) -> int:
        return zero_point + int(round(x / scale))

    lo, hi = -128, 127
    if fused == A.RELU:
        lo = max(lo, q(0.0))
    elif fused == A.RELU6:
        lo, hi = max(lo, q(0.0)), min(hi, q(6.0))
    elif fused == A.RELU_N1_TO_1:
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    elif fused != A.NONE:
        raise ValueError(f"unsupported fused activation {fused}")
    return lo, hi


def read_graph(path: Path) -> tuple[list[Conv], tuple[float, int]]:
    """The chain of (PAD, CONV_2D) layers and the output tensor's (scale, zero point)."""
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    g = model.subgraphs[0]
    codes = [oc.builtinCode for oc in model.operatorCodes]

    def data(t: int, dtype: type) -> np.ndarray:
        buf = model.buffers[g.tensors[t].buffer].data
        if buf is None:
            raise ValueError(f"tensor {t} has no constant data")
        return np.frombuffer(bytes(buf), dtype).reshape(g.tensors[t].shape)

    def quant(t: int) -> tuple[np.ndarray, np.ndarray]:
        q = g.tensors[t].quantization
        return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)

    ops = list(g.operators)
    if len(ops) % 2 or len(g.inputs) != 1 or len(g.outputs) != 1:
        raise ValueError("expected a single-input chain of PAD + CONV_2D pairs")
    layers: list[Conv] = []
    current = g.inputs[0]
    for pad_op, conv_op in zip(ops[::2], ops[1::2], strict=True):
        if (codes[pad_op.opcodeIndex], codes[conv_op.opcodeIndex]) != (
            s.BuiltinOperator.PAD,
            s.BuiltinOperator.CONV_2D,
        ):
            raise ValueError("expected PAD then CONV_2D")
        x, paddings = pad_op.inputs
        padded = pad_op.outputs[0]
        if x != current or list(conv_op.inputs[:1]) != [padded]:
            raise ValueError("the graph is not a chain")
        p = data(paddings, np.int32)
        if p[0].any() or p[3].any():
            raise ValueError("padding only on height and width is supported")
        in_scale, in_zp = quant(x)
        # PAD fills with the output zero point, which adds nothing to the convolution
        # when input and output quantisation agree (checked): padding = skipping.
        if not (
            np.array_equal(quant(padded)[0], in_scale) and np.array_equal(quant(padded)[1], in_zp)
        ):
            raise ValueError("PAD changes the quantisation")
        o = conv_op.builtinOptions
        if (o.padding, o.dilationHFactor, o.dilationWFactor) != (s.Padding.VALID, 1, 1):
            raise ValueError("expected VALID, undilated convolutions after explicit PADs")
        if o.strideH != o.strideW:
            raise ValueError("expected equal strides")
        _, w_t, b_t = conv_op.inputs
        out = conv_op.outputs[0]
        w_scale, w_zp = quant(w_t)
        out_scale, out_zp = quant(out)
        if w_zp.any() or g.tensors[w_t].type != s.TensorType.INT8:
            raise ValueError("expected symmetric int8 weights")
        weights = data(w_t, np.int8)
        cout = weights.shape[0]
        w_scale = np.broadcast_to(w_scale, (cout,))
        mult, shift = zip(
            *(
                quantize_multiplier(float(in_scale[0]) * float(ws) / float(out_scale[0]))
                for ws in w_scale
            ),
            strict=True,
        )
        act = activation_range(o.fusedActivationFunction, float(out_scale[0]), int(out_zp[0]))
        layers.append(
            Conv(
                weights=weights,
                bias=data(b_t, np.int32),
                multiplier=list(mult),
                shift=list(shift),
                stride=int(o.strideH),
                pad=(int(p[1][0]), int(p[1][1]), int(p[2][0]), int(p[2][1])),
                input_offset=-int(in_zp[0]),
                output_offset=int(out_zp[0]),
                act_min=act[0],
                act_max=act[1],
            )
        )
        current = out
    if current != g.outputs[0]:
        raise ValueError("the last convolution is not the graph output")
    out_scale, out_zp = quant(current)
    return layers, (float(out_scale[0]), int(out_zp[0]))


def input_lut(tflite: Path) -> np.ndarray:
    """int8 input of each uint8 pixel value, from the codec's own input quantisation."""
    from mcucoder.int8 import Int8Encoder

    pixels = np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
    return Int8Encoder(tflite).quantise_input(pixels).reshape(256)


def _array(ctype: str, name: str, values: np.ndarray | list[int], per_line: int = 24) -> str:
    v = [int(x) for x in np.asarray(values).ravel()]
    fmt = (lambda x: f"0x{x:08x}u") if ctype == "uint32_t" else str
    rows = [", ".join(map(fmt, v[i : i + per_line])) for i in range(0, len(v), per_line)]
    return f"static const {ctype} {name}[{len(v)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


IM2COL_STRIDE = 150  # int16 values per pixel of strata_conv.c's im2col buffer (strata_conv.h)
WINDOW, ROWS = 0, 1  # STRATA_IM2COL_WINDOW / _ROWS


def im2col_plan(layer: Conv) -> tuple[int, int]:
    """(mode, groups of 4 positions the dot product runs over: per window or per row).

    WINDOW when the pixel's whole window fits the buffer: kernel row ky is widened, in
    words of 4, to int16 positions ky*kw*cin.. (the next row overwrites the last word's
    spill), so the 7x7x3 window takes 148 positions, not 7 rows of 24. ROWS otherwise,
    one kernel row at a time, which needs kw*cin to be a multiple of 4."""
    _, kh, kw, cin = layer.weights.shape
    kwc = kw * cin
    footprint = (kh - 1) * kwc + -(-kwc // 4) * 4
    groups = -(-kh * kwc // 4)
    if footprint <= IM2COL_STRIDE and 4 * groups <= footprint:
        return WINDOW, groups
    # ROWS keeps each channel pair's 3 x 2 accumulators (24 bytes) in the buffer past the
    # kernel row, pair p in pixel p % 3's part (strata_conv.c, rows_acc)
    per_part = math.ceil(math.ceil(layer.weights.shape[0] / 2) / 3)
    if kwc % 4 == 0 and 2 * kwc + 24 * per_part <= 2 * IM2COL_STRIDE:
        return ROWS, kwc // 4
    raise ValueError(f"kernel {kh}x{kw}x{cin}: no im2col layout fits {IM2COL_STRIDE} values")


def position_index(layer: Conv, n: int) -> np.ndarray:
    """Index into the flattened (kh, kw, cin) window of each of the first n im2col
    positions, -1 where a position holds nothing (a row's spill or the tail).

    strata_conv.c's widen() turns the 4 bytes b0..b3 of a word into the int16 positions
    (b0, b2, b1, b3), and row ky starts at position ky*kw*cin."""
    _, kh, kw, cin = layer.weights.shape
    kwc = kw * cin
    q = np.arange(n)
    ky = np.minimum(q // kwc, kh - 1)
    o = q - ky * kwc
    e = (o & ~3) | np.array([0, 2, 1, 3])[o & 3]
    return np.where(e < kwc, ky * kwc + e, -1)


def weight_words(layer: Conv) -> np.ndarray:
    """The layer's weights as strata_conv.c reads them: [channel pair][group][2] words.

    In each channel's word for group g, bytes (s0, s1, s2, s3) meet im2col positions
    (4g, 4g+2, 4g+1, 4g+3): SXTB16 of the word gives the pair (s0, s2) for the int16
    pair at 4g, SXTB16 of it rotated by 8 the pair (s1, s3) for 4g+2."""
    cout = layer.weights.shape[0]
    mode, groups = im2col_plan(layer)
    n = 4 * groups * (layer.weights.shape[1] if mode == ROWS else 1)
    flat = np.zeros((cout + cout % 2, layer.weights[0].size + 1), np.int8)  # last: 0
    flat[:cout, :-1] = layer.weights.reshape(cout, -1)
    at = position_index(layer, n)  # -1 picks the trailing 0
    b = flat[:, at].reshape(-1, n // 4, 4)[:, :, [0, 2, 1, 3]]  # bytes s0..s3 of each word
    words = b.astype(np.uint8).astype(np.uint32)
    words = words[..., 0] | words[..., 1] << 8 | words[..., 2] << 16 | words[..., 3] << 24
    pairs = words.reshape(-1, 2, n // 4)  # [pair][channel][group]
    return pairs.transpose(0, 2, 1).reshape(-1)


def quant_params(layer: Conv) -> list[tuple[int, ...]]:
    """Per output channel (count rounded up to even): the strata_quant_t initialiser.

    The input offset is folded into the bias (sum w*(x + off) = sum w*x + off*sum w):
    exact integer arithmetic, so padding is simply the zero point. The DSP path's
    requantisation (SMMULR) is exact while |accumulator << left| < 2^30, checked here."""
    cout = layer.weights.shape[0]
    w = layer.weights.reshape(cout, -1).astype(np.int64)
    out = []
    for c in range(cout + cout % 2):
        if c == cout:
            out.append((0, 0, 0, 0, 1, 0, 0))
            continue
        bias = int(layer.bias[c]) + layer.input_offset * int(w[c].sum())
        shift = layer.shift[c]
        left, right = max(shift, 0), max(-shift, 0)
        bound = (abs(bias) + 128 * int(np.abs(w[c]).sum())) << left
        if bound >= 1 << 30:
            raise ValueError(f"channel {c}: accumulator bound {bound} too large for SMMULR")
        rnd = (1 << right >> 1) + (layer.output_offset << right)
        out.append((bias, layer.multiplier[c], rnd, shift, left + 1, right, -int(right > 0)))
    return out


def model_header(layers: list[Conv], lut: np.ndarray, model_id: int) -> str:
    out = [
        "/* Generated by firmware/tools/gen_model.py from the committed .tflite: do not edit. */",
        "#pragma once",
        '#include "strata_conv.h"',
        "",
        f"#define STRATA_MODEL_ID 0x{model_id:08x}u",
        f"#define STRATA_N_LAYERS {len(layers)}",
        f"#define STRATA_IN_CHANNELS {layers[0].weights.shape[3]}",
        f"#define STRATA_OUT_CHANNELS {layers[-1].weights.shape[0]}",
        f"typedef char strata_im2col_as_generated[STRATA_IM2COL_STRIDE == {IM2COL_STRIDE} ? 1 : -1];",
        "",
        "/* int8 input tensor value of each uint8 pixel value */",
        _array("int8_t", "strata_input_lut", lut),
    ]
    inits = []
    for i, L in enumerate(layers):
        cout, kh, kw, cin = L.weights.shape
        if not -128 <= -L.input_offset <= 127:
            raise ValueError(f"layer {i}: input zero point out of int8")
        mode, groups = im2col_plan(L)
        quant = ",\n    ".join("{" + ", ".join(map(str, q)) + "}" for q in quant_params(L))
        out += [
            f"/* layer {i}: conv {kh}x{kw}/{L.stride} {cin}->{cout}, pad {L.pad},"
            f" {('window', 'rows')[mode]} im2col, {groups} groups */",
            _array("uint32_t", f"strata_w{i}", weight_words(L), per_line=8),
            f"static const strata_quant_t strata_q{i}[{cout + cout % 2}] = {{\n    {quant}\n}};",
            "",
        ]
        inits.append(
            f"    {{strata_w{i}, strata_q{i}, {groups}, {mode}, {kh}, {kw}, {cin}, {cout},"
            f" {L.stride}, {L.pad[0]}, {L.pad[1]}, {L.pad[2]}, {L.pad[3]},"
            f" {L.input_offset}, {L.output_offset}, {L.act_min}, {L.act_max}}},"
        )
    out += [
        "static const strata_conv_t strata_layers[STRATA_N_LAYERS] = {",
        *inits,
        "};",
        "",
    ]
    return "\n".join(out)


def symbol_clamp(tables: list, scale: float, zero_point: int) -> str:
    """The codec's int8 -> symbol-index lookup (mcucoder_symbol - mcucoder_offset, written
    by mcucoder.firmware_tables) as clamp(v + add, lo, hi) per channel, when that is
    exactly what it is for all 256 inputs (an output tensor at scale 1, as released):
    12 x 4 bytes of flash instead of the 6 KB table, which the firmware then leaves out.
    Empty (the firmware uses the table) for any other lookup."""
    from mcucoder.firmware_tables import symbol_luts

    offsets = np.array([t.offset for t in tables], np.int64)[:, None]
    idx = symbol_luts(tables, scale, zero_point).astype(np.int64) - offsets
    v = np.arange(-128, 128)
    rows = []
    for row in idx:
        add, lo, hi = int(row[128]), int(row.min()), int(row.max())
        if lo < 0 or hi > 255 or not np.array_equal(row, np.clip(v + add, lo, hi)):
            return ""
        rows.append((add, lo, hi))
    init = ", ".join("{" + ", ".join(map(str, r)) + "}" for r in rows)
    return (
        "/* symbol index of int8 output v in channel c: clamp(v + add, lo, hi), the table of\n"
        " * mcucoder_tables.h exactly (checked by gen_model.py for all 256 values) */\n"
        "#define STRATA_SYMBOL_CLAMP 1\n"
        f"static const int16_t strata_symbol_clamp[{len(rows)}][3] = {{{init}}};\n"
    )


def predict_header() -> str:
    """Residual tables as spans (symbols lo..hi; every other symbol has frequency 1), the
    skip tables, the defaults, and the integer cost of each frequency (the contract's)."""
    res, skip = predictive.RESIDUAL_TABLES, predictive.SKIP_TABLES
    n_res = 2 * predictive.RESIDUAL_CENTRE + 1
    if len(res) != 16 or len(skip) != 16 or any(len(t) != n_res for t in res):
        raise SystemExit("predicted-frame tables: 16 of each kind, 255 residual symbols expected")
    if any(len(t) != 2 or t[0] + t[1] != PROB_SCALE for t in skip):
        raise SystemExit("skip tables must be (skipped, coded) pairs")
    values = sorted({f for t in (*res, *skip) for f in t})
    index = {f: i for i, f in enumerate(values)}
    costs = [predictive.symbol_cost(f) for f in values]
    lo, hi, start, after, freq, cum, cix = [], [], [], [], [], [], []
    for t in res:
        span = [i for i, f in enumerate(t) if f > 1] or [predictive.RESIDUAL_CENTRE]
        a, b = span[0], span[-1]
        cums = np.concatenate([[0], np.cumsum(t)]).tolist()
        lo.append(a)
        hi.append(b)
        start.append(len(freq))
        after.append(cums[b + 1] - (b + 1))  # cum of s > hi is s + after
        freq += t[a : b + 1]
        cum += cums[a : b + 1]
        cix += [index[f] for f in t[a : b + 1]]
    return "\n".join(
        [
            "/* Generated by firmware/tools/gen_model.py from mcucoder/predictive.py: do not edit. */",
            "#pragma once",
            "#include <stdint.h>",
            "",
            f"#define STRATA_P_CENTRE {predictive.RESIDUAL_CENTRE}",
            f"#define STRATA_P_SYMBOLS {n_res}",
            f"#define STRATA_P_TABLES {len(res)}",
            f"#define STRATA_P_BLOCK {predictive.BLOCK}",
            f"#define STRATA_P_DEAD_ZONE {predictive.DEAD_ZONE}",
            f"#define STRATA_P_KEY_INTERVAL {predictive.KEY_INTERVAL}",
            f"#define STRATA_P_COST_ONE {index[1]} /* index of the cost of frequency 1 */",
            f"#define STRATA_P_COST_MAX {max(costs)}u",
            f"/* floor(2^{predictive.COST_BITS} * log2(4096 / f)) of every frequency f in the"
            " tables below */",
            _array("uint16_t", "strata_p_cost", costs),
            _array("uint8_t", "strata_p_lo", lo),
            _array("uint8_t", "strata_p_hi", hi),
            _array("uint16_t", "strata_p_start", start),
            _array("int16_t", "strata_p_after", after),
            _array("uint16_t", "strata_p_freq", freq),
            _array("uint16_t", "strata_p_cum", cum),
            _array("uint8_t", "strata_p_cix", cix),
            "/* skip table j: (4096 - f, f) for (skipped, coded) */",
            _array("uint16_t", "strata_p_skip_coded", [t[1] for t in skip]),
            _array("uint8_t", "strata_p_skip_cix", [index[f] for t in skip for f in t]),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--model", help="model name or id (default: the manifest's default)")
    args = ap.parse_args(argv)
    name, entry = model_entry(args.model)
    wpath, tpath = WEIGHTS_DIR / entry["weights"], WEIGHTS_DIR / entry["tables"]
    if model_id_of(wpath, tpath) != entry["model_id"]:
        raise SystemExit(f"{name}: weight/table files do not match the manifest's model_id")
    if not entry.get("tflite"):
        raise SystemExit(f"{name} has no INT8 .tflite encoder")
    tflite = WEIGHTS_DIR / entry["tflite"]
    layers, (scale, zp) = read_graph(tflite)
    tables = tables_from_json(json.loads(tpath.read_text()))
    if len(tables) != layers[-1].weights.shape[0]:
        raise SystemExit("entropy tables and encoder disagree on the channel count")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "strata_model.h": model_header(layers, input_lut(tflite), entry["model_id"])
        + symbol_clamp(tables, scale, zp),
        "mcucoder_tables.h": c_header(entry["model_id"], tables, scale, zp),
        "strata_predict_tables.h": predict_header(),
    }
    for fname, text in files.items():
        path = args.out_dir / fname
        if not path.exists() or path.read_text() != text:  # keep mtimes: no needless rebuilds
            path.write_text(text)
    print(f"{name} ({entry['model_id']:#010x}): {', '.join(files)} in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
