"""INT8 TFLite export of the encoder (run with the export environment: TensorFlow, see
``requirements-export.txt``; no torch here).

A Keras copy of the encoder (PyTorch's symmetric padding = ZeroPadding2D + 'valid',
OIHW -> HWIO weights), converted fully to INT8 (int8 input and output, per-channel
weights) with a representative dataset of training crops.

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
    return conv.convert()


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
