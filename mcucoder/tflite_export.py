"""INT8 TFLite export of the encoder (run with the export environment: TensorFlow, see
``requirements-export.txt``; no torch here).

A Keras copy of the encoder (PyTorch's symmetric padding = ZeroPadding2D + 'valid',
OIHW -> HWIO weights), converted fully to INT8 (int8 input and output, per-channel
weights) with a representative dataset of training crops. The output tensor's
quantisation is then set to scale 1, zero point 0 (``integer_output``): the encoder's
output is in quantisation-step units, so the last convolution's requantisation (TFLite
derives its multiplier from the tensors' scales when the graph is prepared) rounds
straight to the codec's integer symbols. Last, the last convolution's int32 bias is
corrected per channel by the mean int8 - float error on the same crops
(``correct_output_bias``).

    python -m mcucoder.tflite_export WEIGHTS.npz CROPS.npy OUT.tflite
"""

from __future__ import annotations

import sys

import numpy as np

LAYERS = (("conv1", 7, 2, 3, "relu"), ("conv2", 5, 4, 1, "relu"), ("conv3", 3, 1, 1, None))


def keras_encoder(weights: dict[str, np.ndarray]):
    import tensorflow as tf

    x = inp = tf.keras.Input(shape=(None, None, 3), batch_size=1)
    for name, k, stride, pad, act in LAYERS:
        w = weights[f"{name}.weight"]
        x = tf.keras.layers.ZeroPadding2D(pad)(x)
        conv = tf.keras.layers.Conv2D(
            w.shape[0], k, strides=stride, padding="valid", activation=act
        )
        x = conv(x)
        conv.set_weights([w.transpose(2, 3, 1, 0), weights[f"{name}.bias"]])
    return tf.keras.Model(inp, x)


def convert(weights: dict[str, np.ndarray], crops: np.ndarray) -> bytes:
    """``crops``: (N, H, W, 3) uint8 training images for calibration."""
    import tensorflow as tf

    model = keras_encoder(weights)

    def representative():
        for c in crops:
            yield [c[None].astype(np.float32) / 255]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    tflite = integer_output(conv.convert())
    return correct_output_bias(tflite, model, crops)


def integer_output(tflite: bytes) -> bytes:
    """The model with its int8 output quantised at scale 1.0, zero point 0: the int8
    output value is the latent rounded to the nearest integer (saturating at -128..127).

    The calibrated per-tensor scale would be shared by all 12 channels and sized by the
    widest (a fraction of a step), so the codec's rounding of it could land two steps
    from the float latent. A trailing QUANTIZE (int8 -> int8) is dropped so that the
    convolution writes the output tensor itself and requantises to it.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    _output_conv(model)
    (graph,) = model.subgraphs
    t = graph.tensors[graph.outputs[0]]
    if t.type != schema.TensorType.INT8:
        raise ValueError("the output tensor is not int8")
    t.quantization.scale = [1.0]
    t.quantization.zeroPoint = [0]
    t.quantization.min = t.quantization.max = None
    t.quantization.quantizedDimension = 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _output_conv(model):
    """The CONV_2D op that writes the graph's output (a trailing QUANTIZE removed)."""
    from tensorflow.lite.python import schema_py_generated as schema

    (graph,) = model.subgraphs
    (out,) = graph.outputs

    def producer(tensor: int):
        (op,) = [o for o in graph.operators if tensor in list(o.outputs)]
        code = model.operatorCodes[op.opcodeIndex]
        return op, max(code.builtinCode, code.deprecatedBuiltinCode)

    op, code = producer(out)
    while code == schema.BuiltinOperator.QUANTIZE:
        src = int(op.inputs[0])
        if graph.tensors[src].type != schema.TensorType.INT8 or src in list(graph.outputs):
            raise ValueError("trailing QUANTIZE does not requantise int8 to int8")
        graph.operators.remove(op)
        op, code = producer(src)
        op.outputs = [out if int(t) == src else int(t) for t in op.outputs]
    if code != schema.BuiltinOperator.CONV_2D:
        raise ValueError(f"the output is written by builtin op {code}, not CONV_2D")
    return op


def int8_run(tflite: bytes, crops: np.ndarray) -> np.ndarray:
    """The model's int8 output for uint8 ``crops`` on TFLite's reference kernels."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(
        model_content=tflite,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
    )
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], [1, *crops.shape[1:]])
    interp.allocate_tensors()
    result = []
    for c in crops:
        interp.set_tensor(inp["index"], (c.astype(np.int16) - 128).astype(np.int8)[None])
        interp.invoke()
        result.append(interp.get_tensor(out["index"])[0])
    return np.stack(result)


def correct_output_bias(tflite: bytes, model, crops: np.ndarray) -> bytes:
    """Bias correction of the last convolution: its int32 bias shifted per channel by
    the mean error of the int8 output against the float ``model`` (Keras) on ``crops``.

    Weight and activation rounding leave a systematic, per-channel offset (up to 0.4 of
    a step for mcucoder-s) that would otherwise add to the output's own rounding.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    q, zp = _output_quant(tflite)
    y8 = (int8_run(tflite, crops).astype(np.float64) - zp) * q
    yf = np.concatenate([model(c[None].astype(np.float32) / 255).numpy() for c in crops])
    shift = (y8 - yf).reshape(-1, y8.shape[-1]).mean(axis=0)
    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    (graph,) = obj.subgraphs
    bias = graph.tensors[_output_conv(obj).inputs[2]]
    buf = obj.buffers[bias.buffer]
    values = np.frombuffer(bytes(bytearray(buf.data)), "<i4").astype(np.int64)
    values -= np.round(shift / np.asarray(bias.quantization.scale, np.float64)).astype(np.int64)
    buf.data = np.frombuffer(values.astype("<i4").tobytes(), np.uint8).copy()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def _output_quant(tflite: bytes) -> tuple[float, int]:
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    (graph,) = obj.subgraphs
    qp = graph.tensors[graph.outputs[0]].quantization
    return float(qp.scale[0]), int(qp.zeroPoint[0])


def main(argv: list[str]) -> int:
    weights_npz, crops_npy, out = argv
    weights = dict(np.load(weights_npz))
    data = convert(weights, np.load(crops_npy))
    with open(out, "wb") as f:
        f.write(data)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
