"""Decoder runtimes: the same decoder weights run by torch, ONNX Runtime, OpenVINO, or
torch in half precision (GPU), behind one interface.

``with_runtime(codec, name)`` swaps the codec's decoder for a module that runs it on
``name``; entropy decoding, batching by size and colour conversion stay the codec's own
(``Codec.decode_batch``). Every runtime is checked against float32 torch
(``check_against_torch``): outputs within ``TOLERANCE`` of it, on the same input.

``bench.decode --runtimes`` measures them; the decode workers use ``STRATA_DECODE_RUNTIME``.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .models import N_CHANNELS

# Largest difference from float32 torch allowed, in the decoder's [0, 1] output: float32
# runtimes differ by rounding only (about 1e-6); half precision by about 1/255.
TOLERANCE = {"float32": 1e-4, "float16": 4 / 255}

RUNTIMES = ("torch", "torch-int8", "torch-compile", "onnxruntime", "openvino", "torch-half")


class TorchInt8(nn.Module):
    """torch dynamic INT8 quantisation. It quantises Linear and recurrent layers only: the
    decoder is convolutions, so this runs float32 convolutions (measured to show it)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.inner = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(decoder).cpu(), {nn.Linear, nn.Conv2d}, dtype=torch.qint8
        )
        self.precision = "float32"

    def forward(self, y: Tensor) -> Tensor:
        return self.inner(y)


class TorchCompiled(nn.Module):
    """``torch.compile`` (inductor: generated C++/OpenMP kernels on CPU, Triton on GPU)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.inner = torch.compile(decoder, dynamic=False)
        self.precision = "float32"

    def forward(self, y: Tensor) -> Tensor:
        return self.inner(y)


class TorchHalf(nn.Module):
    """Half precision, for GPUs (tensor cores); on CPU it runs too, slowly, for checks."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(decoder).half()
        self.precision = "float16"

    def forward(self, y: Tensor) -> Tensor:
        return self.inner(y.half()).float()


def onnx_bytes(decoder: nn.Module) -> bytes:
    """The decoder as an ONNX model, any batch and latent size."""
    buf = io.BytesIO()
    example = torch.zeros(1, N_CHANNELS, 8, 8)
    torch.onnx.export(
        copy.deepcopy(decoder).cpu().float().eval(),
        (example,),
        buf,
        dynamo=False,
        input_names=["y"],
        output_names=["x"],
        dynamic_axes={"y": {0: "batch", 2: "h", 3: "w"}, "x": {0: "batch", 2: "H", 3: "W"}},
        opset_version=17,
    )
    return buf.getvalue()


class _Numpy(nn.Module):
    """A runtime that takes and returns numpy arrays, as a module of torch tensors."""

    precision = "float32"

    def __init__(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        super().__init__()
        self.run = run

    def forward(self, y: Tensor) -> Tensor:
        x = np.ascontiguousarray(y.detach().cpu().float().numpy())
        return torch.from_numpy(np.asarray(self.run(x))).to(y.device)


def onnxruntime_decoder(decoder: nn.Module, threads: int) -> nn.Module:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_bytes(decoder), options, ["CPUExecutionProvider"])
    return _Numpy(lambda y: session.run(None, {"y": y})[0])


def openvino_decoder(decoder: nn.Module, threads: int) -> nn.Module:
    import openvino as ov

    model = ov.convert_model(
        copy.deepcopy(decoder).cpu().float().eval(),
        example_input=torch.zeros(1, N_CHANNELS, 8, 8),
        input=[ov.PartialShape([-1, N_CHANNELS, -1, -1])],
    )
    compiled = ov.Core().compile_model(
        model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    )
    return _Numpy(lambda y: compiled(y)[0])


def runtime_decoder(decoder: nn.Module, name: str, threads: int | None = None) -> nn.Module:
    """``decoder`` run by ``name`` (one of ``RUNTIMES``) on ``threads`` CPU threads."""
    threads = threads or torch.get_num_threads()
    if name == "torch":
        return decoder
    if name == "torch-int8":
        return TorchInt8(decoder)
    if name == "torch-compile":
        return TorchCompiled(decoder)
    if name == "torch-half":
        return TorchHalf(decoder)
    if name == "onnxruntime":
        return onnxruntime_decoder(decoder, threads)
    if name == "openvino":
        return openvino_decoder(decoder, threads)
    raise ValueError(f"unknown decoder runtime {name!r}; known: {', '.join(RUNTIMES)}")


def precision_of(module: nn.Module) -> str:
    return getattr(module, "precision", "float32")


def with_runtime(codec, name: str, threads: int | None = None):
    """``codec`` with its decoder run by ``name``; returns the codec (changed in place)."""
    module = runtime_decoder(codec.decoder, name, threads)
    check_against_torch(codec.decoder, module, device=codec.device)
    codec.decoder = module
    codec.runtime = name
    return codec


def max_difference(reference: nn.Module, candidate: nn.Module, y: Tensor) -> float:
    with torch.no_grad():
        return float((reference(y) - candidate(y)).abs().max())


def check_against_torch(
    reference: nn.Module, candidate: nn.Module, device: torch.device | str = "cpu"
) -> float:
    """Raise ValueError unless ``candidate`` matches float32 torch within ``TOLERANCE`` on a
    batch of two latents shaped like real ones; returns the largest difference."""
    if candidate is reference:
        return 0.0
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(-6, 7, (2, N_CHANNELS, 9, 12), generator=gen).float().to(device)
    y[:, 6:] = 0  # a k=6 packet: the tail is zeros, as the decoder sees it
    diff = max_difference(reference, candidate, y)
    limit = TOLERANCE[precision_of(candidate)]
    if not diff <= limit:
        raise ValueError(f"decoder runtime differs from torch by {diff:.2e} (limit {limit:.0e})")
    return diff
