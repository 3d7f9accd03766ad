"""The deployed INT8 encoder: the committed .tflite run with ai-edge-litert.

With ``reference_kernels=True`` it uses TFLite's reference kernels, which are bit-exact
with TFLite-Micro on the camera.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class Int8Encoder:
    """Callable: padded HxWx3 uint8 image -> float latent (12, H/8, W/8)."""

    def __init__(self, path: Path | str, reference_kernels: bool = False, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.BUILTIN_REF if reference_kernels else OpResolverType.AUTO
        self.interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=resolver, num_threads=num_threads
        )
        self._inp = self.interpreter.get_input_details()[0]
        self._shape: tuple[int, int] | None = None

    def quantise_input(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB -> the int8 input tensor (scale 1/255, zero point -128: ``pixel - 128``)."""
        scale, zp = self._inp["quantization"]
        q = np.rint(image.astype(np.float32) / 255 / scale) + zp
        return np.clip(q, -128, 127).astype(np.int8)[None]

    def int8_latent(self, image: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Raw int8 output (H/8, W/8, 12) and its (scale, zero point), as on the MCU."""
        h, w = image.shape[:2]
        if self._shape != (h, w):
            self.interpreter.resize_tensor_input(self._inp["index"], [1, h, w, 3])
            self.interpreter.allocate_tensors()
            self._shape = (h, w)
        self.interpreter.set_tensor(self._inp["index"], self.quantise_input(image))
        self.interpreter.invoke()
        out = self.interpreter.get_output_details()[0]
        scale, zp = out["quantization"]
        return self.interpreter.get_tensor(out["index"])[0], float(scale), int(zp)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        q, scale, zp = self.int8_latent(image)
        return ((q.astype(np.float32) - zp) * scale).transpose(2, 0, 1)
