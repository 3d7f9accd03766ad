"""Building blocks: INT8 fake quantisation for the encoder and the decoder's residual blocks."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        return g


def round_ste(x: Tensor) -> Tensor:
    """Round in the forward pass, identity gradient (straight-through estimator)."""
    return _RoundSTE.apply(x)


def fake_quant_weight(w: Tensor) -> Tensor:
    """Symmetric per-output-channel INT8 weights, as TFLite's converter produces them."""
    scale = w.detach().abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp_min(1e-8) / 127
    return torch.clamp(round_ste(w / scale), -127, 127) * scale


class ActFakeQuant(nn.Module):
    """Per-tensor affine INT8 activation quantisation with an EMA range observer.

    Mirrors what the TFLite converter does with a representative dataset, so the float
    model trained through it loses little when it is deployed as INT8.
    """

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))
        self.enabled = False

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            lo, hi = x.detach().min(), x.detach().max()
            if not bool(self.initialised):
                self.lo.copy_(lo)
                self.hi.copy_(hi)
                self.initialised.fill_(True)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        if not self.enabled:
            return x
        lo, hi = torch.clamp(self.lo, max=0.0), torch.clamp(self.hi, min=0.0)
        scale = ((hi - lo) / 255).clamp_min(1e-8)
        zp = torch.round(-128 - lo / scale)
        q = torch.clamp(round_ste(x / scale) + zp, -128, 127)
        return (q - zp) * scale


class QConv2d(nn.Conv2d):
    """Conv2d whose weights are fake-quantised to INT8 when ``qat`` is on."""

    qat: bool = False

    def forward(self, x: Tensor) -> Tensor:
        w = fake_quant_weight(self.weight) if self.qat else self.weight
        return self._conv_forward(x, w, self.bias)


class ResBottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 residual block (as in the MCUCoder decoder), cheap per channel."""

    def __init__(self, ch: int, mid: int | None = None):
        super().__init__()
        mid = mid or ch // 2
        self.body = nn.Sequential(
            nn.Conv2d(ch, mid, 1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(mid, ch, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip: capacity where it is cheap (the latent grid)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
