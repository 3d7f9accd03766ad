"""Previews without the decoder: a colour thumbnail at a quarter of the frame's size straight
from the first channels of the latent, for overviews and timelines.

A tiny learned map (``PreviewNet``, about 2 K parameters: two 3x3 convolutions and a pixel
shuffle) from the first ``PREVIEW_CHANNELS`` dequantised channels (H/8 x W/8) to RGB at
H/4 x W/4. Browsing an hour of archive then costs entropy decoding of three channels and a
few thousand multiply-adds per latent cell instead of the full decoder.

    python -m mcucoder.preview train [--steps 3000] [--out mcucoder/preview.pt]
    python -m mcucoder.preview eval                  # PSNR and speed on the dev images

The weights (``mcucoder/preview.pt``) are tied to one model's symbols (its ``model_id``);
the model card is ``mcucoder/preview.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

PREVIEW_CHANNELS = 3
SCALE = 4  # a preview is 1/4 of the frame on each side
WEIGHTS = Path(__file__).with_name("preview.pt")


class PreviewNet(nn.Module):
    """First latent channels (B, 3, h, w) -> RGB (B, 3, 2h, 2w) in [0, 1]."""

    def __init__(self, channels: int = PREVIEW_CHANNELS, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, 3 * 4, 3, padding=1),
            nn.PixelShuffle(2),
        )
        self.config = {"channels": channels, "width": width}

    def forward(self, y: Tensor) -> Tensor:
        return torch.sigmoid(self.net(y))


def load(path: Path = WEIGHTS) -> tuple[PreviewNet, int]:
    """The preview net and the model_id whose symbols it was trained on."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = PreviewNet(**json.loads(state["config"]))
    net.load_state_dict(state["net"])
    return net.eval(), int(state["model_id"])


@cache
def _loaded() -> tuple[PreviewNet, int]:
    return load()


def preview(codec, packet) -> np.ndarray:
    """An (H/4, W/4, 3) uint8 thumbnail of a packet (bytes or ``Packet``) of ``codec``'s
    model, from its first channels only (fewer when the packet has fewer: zeros, as the
    decoder sees them)."""
    net, model_id = _loaded()
    if model_id != codec.model_id:
        raise ValueError(
            f"the preview map was trained for model {model_id:#010x}, not {codec.model_id:#010x}"
        )
    p = codec._packet(packet)
    y = codec.dequantise(p, min(PREVIEW_CHANNELS, p.n_channels))[:PREVIEW_CHANNELS]
    with torch.no_grad():
        x = net(torch.from_numpy(y)[None])[0]
    rgb = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    h, w = -(-p.height // SCALE), -(-p.width // SCALE)
    return np.ascontiguousarray(rgb[:h, :w])


def area_downscale(images: np.ndarray, factor: int = SCALE) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, H/f, W/f, 3) float in [0, 1]: the preview's target."""
    n, h, w, _ = images.shape
    x = images.reshape(n, h // factor, factor, w // factor, factor, 3).astype(np.float32)
    return x.mean(axis=(2, 4)) / 255


def training_set(codec, n: int, crop: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random crops of the training photos: their first symbols and their target."""
    from .data import RandomCrops, image_list

    crops = RandomCrops(image_list("train"), crop, seed=seed)
    images = np.stack([crops.sample() for _ in range(n)])
    symbols = np.stack([codec.symbols(im)[:PREVIEW_CHANNELS] for im in images])
    return symbols.astype(np.float32), area_downscale(images)


def train(args: argparse.Namespace) -> None:
    from .codec import Codec

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    codec = Codec.load(encoder="auto")  # the INT8 encoder: the symbols cameras send
    started = time.perf_counter()
    y, target = training_set(codec, args.crops, args.crop, args.seed)
    print(f"{len(y)} crops encoded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    y_t = torch.from_numpy(y)
    t_t = torch.from_numpy(target).permute(0, 3, 1, 2).contiguous()
    net = PreviewNet()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(y_t), (args.batch,), generator=gen)
        flip = torch.rand(()) < 0.5
        yb, tb = y_t[idx], t_t[idx]
        if flip:
            yb, tb = yb.flip(-1), tb.flip(-1)
        loss = nn.functional.mse_loss(net(yb), tb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps:
            psnr = 10 * np.log10(1 / float(loss))
            print(f"step {step}: train PSNR {psnr:.2f} dB", file=sys.stderr, flush=True)
    torch.save(
        {
            "net": net.state_dict(),
            "config": json.dumps(net.config),
            "model_id": codec.model_id,
            "steps": args.steps,
            "train_wall_s": round(time.perf_counter() - started),
            "train_config": json.dumps(vars(args), default=str),
        },
        args.out,
    )
    print(f"saved {args.out}", file=sys.stderr)


def evaluate(args: argparse.Namespace) -> None:
    """PSNR of previews against the area-downscaled dev images (768x512 -> 192x128), and
    of the full decoder's image downscaled alike (what a decoded thumbnail would show);
    time per frame of each on one thread."""
    from .codec import Codec
    from .data import dev_image, image_list

    torch.set_num_threads(1)
    codec = Codec.load(encoder="auto")
    images = np.stack([dev_image(p) for p in image_list("dev")])
    rows = {"preview": [], "decoder": []}
    times = {"preview": 0.0, "decoder": 0.0}
    for im in images:
        packet = codec.encode(im, channels=12)
        target = area_downscale(im[None])[0]
        t = time.perf_counter()
        thumb = preview(codec, packet)
        times["preview"] += time.perf_counter() - t
        t = time.perf_counter()
        full = codec.decode(packet)
        times["decoder"] += time.perf_counter() - t
        for name, got in (("preview", thumb / 255), ("decoder", area_downscale(full[None])[0])):
            rows[name].append(10 * np.log10(1 / float(((got - target) ** 2).mean())))
    out = {
        name: {
            "psnr_db": round(float(np.mean(v)), 2),
            "ms_per_frame": round(1000 * times[name] / len(images), 2),
        }
        for name, v in rows.items()
    }
    print(json.dumps({"dev_images": len(images), "size": "768x512 -> 192x128", **out}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mcucoder.preview", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--crops", type=int, default=1500)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, default=WEIGHTS)
    sub.add_parser("eval")
    args = parser.parse_args(argv)
    train(args) if args.command == "train" else evaluate(args)


if __name__ == "__main__":
    main()
