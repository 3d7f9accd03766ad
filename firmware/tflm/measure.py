"""TFLite-Micro (the paper's path): run the committed INT8 .tflite with TFLM's reference
kernels (the ``tflite-micro`` Python package) and measure what whole-frame inference needs.

    .venv/bin/python firmware/tflm/measure.py [--sizes 224x224,320x240,640x480]

Prints one line per frame size, then one JSON line (last) with the model's flash size and
the tensor arena TFLM needs at each size.

The committed graph has a dynamic input ([1, -1, -1, 3]; stored shape 1x1) and TFLM has no
dynamic shapes, so each size gets a copy of the graph whose tensor shapes are rewritten for
that size (``resized_model``); weights, quantisation and operators are untouched. The arena
is TFLM's own figure: ``print_allocations()`` of its RecordingMicroAllocator ("Arena
allocation total"), which it prints at C level to stderr, captured here by redirecting
file descriptor 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TFLITE = ROOT / "mcucoder" / "weights" / "mcucoder-s.int8.tflite"
SIZES = ((224, 224), (320, 240), (640, 480))  # width, height
# Large enough for 640x480 (about 2.5 MB); the recorded figure is what is actually used.
PROBE_ARENA = 16 << 20


def resized_model(tflite: bytes, width: int, height: int) -> bytes:
    """A copy of the PAD + CONV_2D graph with every activation tensor's shape set for a
    ``width`` x ``height`` input (shapes propagated op by op, as TFLite's Prepare would)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(tflite, 0)
    g = model.subgraphs[0]
    codes = [oc.builtinCode for oc in model.operatorCodes]
    shapes = {int(g.inputs[0]): [1, height, width, int(g.tensors[g.inputs[0]].shape[3])]}
    for op in g.operators:
        n, h, w, c = shapes[int(op.inputs[0])]
        code = codes[op.opcodeIndex]
        if code == s.BuiltinOperator.PAD:
            buf = model.buffers[g.tensors[op.inputs[1]].buffer].data
            p = np.frombuffer(bytes(buf), np.int32).reshape(4, 2).sum(axis=1)
            out = [n + p[0], h + p[1], w + p[2], c + p[3]]
        elif code == s.BuiltinOperator.CONV_2D:
            o = op.builtinOptions
            if (o.padding, o.dilationHFactor, o.dilationWFactor) != (s.Padding.VALID, 1, 1):
                raise ValueError("expected VALID, undilated convolutions after explicit PADs")
            cout, kh, kw, _ = (int(v) for v in g.tensors[op.inputs[1]].shape)
            out = [n, (h - kh) // o.strideH + 1, (w - kw) // o.strideW + 1, cout]
        else:
            raise ValueError(f"unsupported operator {code}")
        if min(out) < 1:
            raise ValueError(f"{width}x{height} is too small for this graph")
        shapes[int(op.outputs[0])] = [int(v) for v in out]
    for t, shape in shapes.items():
        g.tensors[t].shape = np.asarray(shape, np.int32)
        g.tensors[t].shapeSignature = None  # static now
    b = flatbuffers.Builder(2 * len(tflite))
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def tflm_interpreter(model: bytes, arena_size: int = PROBE_ARENA):
    """TFLM's Python interpreter (reference kernels, allocation recording on)."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def print_allocations(interpreter) -> str:
    """What ``interpreter.print_allocations()`` writes to the C-level stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        return f.read().decode(errors="replace")


def arena_bytes(report: str) -> dict[str, int]:
    """{'total', 'head', 'tail'} from a RecordingMicroAllocator report."""
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", report))
    if set(found) != {"total", "head", "tail"}:
        raise ValueError(f"no arena figures in TFLM's report:\n{report}")
    return {k: int(v) for k, v in found.items()}


def tflm_latent(interpreter, x: np.ndarray) -> np.ndarray:
    """Run TFLM on one int8 input tensor (1, H, W, 3); the int8 output (1, H/8, W/8, C)."""
    interpreter.reset()
    interpreter.set_input(x, 0)
    interpreter.invoke()
    return interpreter.get_output(0)


def measure(sizes=SIZES, tflite: Path = TFLITE) -> dict:
    data = tflite.read_bytes()
    result: dict = {"model": tflite.name, "flash_model_bytes": len(data), "arena_bytes": {}}
    for width, height in sizes:
        model = resized_model(data, width, height)
        arena = arena_bytes(print_allocations(tflm_interpreter(model)))
        key = f"{width}x{height}"
        result["arena_bytes"][key] = arena["total"]
        print(
            f"{key}: TFLM arena {arena['total']:,} B (head {arena['head']:,} B, tail "
            f"{arena['tail']:,} B); resized graph {len(model):,} B"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES))
    args = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print(json.dumps(measure(sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
