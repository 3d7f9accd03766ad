"""The MCUCoder encoder (exactly the published one) and a CPU-friendly decoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import ActFakeQuant, QConv2d, ResBlock, ResBottleneck, round_ste

N_CHANNELS = 12
DOWNSCALE = 8


class Encoder(nn.Module):
    """The published 3-conv encoder: 10,524 parameters, 12 channels at 1/8 resolution.

    Input is RGB in [0, 1] (the INT8 model takes ``uint8 - 128``: scale 1/255, zero
    point -128, the same grid). The output is the latent in quantisation-step units:
    the deployed codec rounds it to integers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = QConv2d(3, 16, 7, stride=2, padding=3)
        self.conv2 = QConv2d(16, 16, 5, stride=4, padding=1)
        self.conv3 = QConv2d(16, N_CHANNELS, 3, stride=1, padding=1)
        self.act = nn.ReLU()
        # q3 only observes (its buffers stay in checkpoints): the deployed INT8 model's output
        # has scale 1 and zero point 0 (mcucoder.tflite_export), so its quantisation is the
        # codec's own rounding plus int8 saturation, simulated in forward() as a clamp
        self.q1, self.q2, self.q3 = ActFakeQuant(), ActFakeQuant(), ActFakeQuant()
        self.qat = False

    def set_qat(self, on: bool) -> None:
        """Turn INT8 fake quantisation (weights and activations) on or off."""
        for conv in (self.conv1, self.conv2, self.conv3):
            conv.qat = on
        for q in (self.q1, self.q2):
            q.enabled = on
        self.qat = on

    def forward(self, x: Tensor) -> Tensor:
        x = self.q1(self.act(self.conv1(x)))
        x = self.q2(self.act(self.conv2(x)))
        y = self.q3(self.conv3(x))  # disabled: observes the range only
        return torch.clamp(y, -128, 127) if self.qat else y


class Decoder(nn.Module):
    """Latent (12 x H/8 x W/8) -> RGB. Most capacity sits on the latent grid, where it is
    cheapest per output pixel; three transposed convolutions upsample with thin blocks."""

    def __init__(self, width: int = 128, blocks: int = 3) -> None:
        super().__init__()
        c1, c2, c3 = width, width // 2, width // 4
        c4 = max(width // 8, 16)
        layers: list[nn.Module] = [nn.Conv2d(N_CHANNELS, c1, 3, padding=1)]
        layers += [ResBlock(c1) for _ in range(blocks)]
        layers += [
            nn.LeakyReLU(0.1, inplace=True),
            nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            ResBottleneck(c2),
            nn.ConvTranspose2d(c2, c3, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            ResBottleneck(c3),
            nn.ConvTranspose2d(c3, c4, 4, stride=2, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(c4, 3, 3, padding=1),
        ]
        self.net = nn.Sequential(*layers)
        self.config = {"width": width, "blocks": blocks}

    def forward(self, y: Tensor) -> Tensor:
        return torch.sigmoid(self.net(y))


def tail_mask(k: Tensor | int, batch: int, device: torch.device | str = "cpu") -> Tensor:
    """A (B, 12, 1, 1) mask keeping the first k channels of each sample."""
    k = torch.as_tensor(k, device=device).reshape(-1).expand(batch)
    idx = torch.arange(N_CHANNELS, device=device).view(1, -1)
    return (idx < k.view(-1, 1)).float().view(batch, N_CHANNELS, 1, 1)


class LatentPrior(nn.Module):
    """Factorised per-channel Laplace model of the rounded latent: the training-time rate
    term, and the source of the static integer tables the deployed coder uses."""

    def __init__(self) -> None:
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(N_CHANNELS))
        self.log_b = nn.Parameter(torch.full((N_CHANNELS,), 1.0))

    def bits(self, y_tilde: Tensor) -> Tensor:
        """Code length in bits of each element of ``y_tilde`` (B, 12, H, W)."""
        mu = self.mu.view(1, -1, 1, 1)
        b = self.log_b.exp().clamp_min(0.05).view(1, -1, 1, 1)

        def cdf(v: Tensor) -> Tensor:
            z = (v - mu) / b
            return torch.where(
                z < 0, 0.5 * torch.exp(z.clamp(max=0)), 1 - 0.5 * torch.exp(-z.clamp(min=0))
            )

        p = (cdf(y_tilde + 0.5) - cdf(y_tilde - 0.5)).clamp_min(1e-9)
        return -torch.log2(p)


class MCUCoder(nn.Module):
    """Encoder + decoder + prior: the training graph."""

    def __init__(self, width: int = 128, blocks: int = 3) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder(width, blocks)
        self.prior = LatentPrior()

    def forward(self, x: Tensor, k: Tensor, per_channel: bool = False) -> tuple[Tensor, Tensor]:
        """Reconstruction from the first k[i] channels of sample i, and bits per sample
        (per sample and channel, (B, 12), with ``per_channel``).

        Rate sees uniform noise (a smooth proxy of rounding); the decoder sees the
        straight-through rounded latent, exactly what the deployed codec sends.
        """
        y = self.encoder(x)
        mask = tail_mask(k, x.shape[0], x.device)
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        bits = (self.prior.bits(noisy) * mask).sum(dim=(2, 3) if per_channel else (1, 2, 3))
        x_hat = self.decoder(round_ste(y) * mask)
        return x_hat, bits


def grow_decoder_state(state: dict[str, Tensor], old_blocks: int, new_blocks: int) -> dict:
    """A ``Decoder(width, old_blocks)`` state dict re-indexed for ``Decoder(width,
    new_blocks)``: the old latent-grid blocks stay first, the layers after them move up.
    The new blocks' weights are not in it: with :func:`grow_decoder` they start as identities."""
    if new_blocks < old_blocks:
        raise ValueError("a decoder can only grow")
    out = {}
    for key, v in state.items():
        parts = key.split(".")
        if parts[0] == "net" and int(parts[1]) > old_blocks:
            parts[1] = str(int(parts[1]) + new_blocks - old_blocks)
        out[".".join(parts)] = v
    return out


def grow_decoder(old: Decoder, new_blocks: int) -> Decoder:
    """A deeper decoder that computes exactly what ``old`` does: its extra residual blocks
    on the latent grid (after the old ones) start with a zero last convolution."""
    width, old_blocks = old.config["width"], old.config["blocks"]
    new = Decoder(width, new_blocks)
    for i in range(old_blocks + 1, new_blocks + 1):
        last = new.net[i].body[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    missing, unexpected = new.load_state_dict(
        grow_decoder_state(old.state_dict(), old_blocks, new_blocks), strict=False
    )
    grown = {f"net.{i}." for i in range(old_blocks + 1, new_blocks + 1)}
    if unexpected or any(not any(m.startswith(g) for g in grown) for m in missing):
        raise RuntimeError(f"decoder growth mismatch: {missing} {unexpected}")
    return new
