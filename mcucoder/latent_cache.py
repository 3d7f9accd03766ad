"""Cached latents: training crops encoded once by a registered model's frozen encoder.

A decoder-only training step then costs only the decoder (no encoder, no photo decoding or
resampling), and it sees exactly the integer symbols the deployed INT8 encoder sends.

A cache is a folder with ``images.npy`` (N, S, S, 3) uint8, ``symbols.npy``
(N, 12, S/8, S/8) int8 and ``meta.json`` (model, model_id, encoder, crop size).
:class:`LatentCrops` samples aligned sub-windows (a multiple of 8 pixels, so a window of
the image and of the latent correspond exactly) from it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .models import DOWNSCALE, N_CHANNELS

META = "meta.json"


def encode_symbols(codec, images: np.ndarray) -> np.ndarray:
    """Integer symbols (N, 12, h, w) int8 of uint8 images (N, H, W, 3), H and W multiples
    of 8, exactly as ``codec.encode`` puts them in a packet."""
    out = np.empty(
        (len(images), N_CHANNELS, images.shape[1] // DOWNSCALE, images.shape[2] // DOWNSCALE),
        np.int8,
    )
    for i, im in enumerate(images):
        q = codec.symbols(im)
        if q.min() < -128 or q.max() > 127:
            raise ValueError("symbol outside int8")
        out[i] = q
    return out


def write_cache(out: Path, images: np.ndarray, symbols: np.ndarray, meta: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "images.npy", images)
    np.save(out / "symbols.npy", symbols)
    (out / META).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_cache(folder: Path | str, mmap: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    folder = Path(folder)
    mode = "r" if mmap else None
    images = np.load(folder / "images.npy", mmap_mode=mode)
    symbols = np.load(folder / "symbols.npy", mmap_mode=mode)
    meta = json.loads((folder / META).read_text())
    if images.shape[0] != symbols.shape[0] or images.shape[1] != symbols.shape[2] * DOWNSCALE:
        raise ValueError(f"{folder}: images {images.shape} and symbols {symbols.shape} disagree")
    return images, symbols, meta


def build_training_cache(
    out: Path | str,
    n: int,
    crop: int = 192,
    model: str | None = None,
    encoder: str = "int8",
    seed: int = 0,
    colour: bool = True,
) -> Path:
    """Encode ``n`` random training crops (``crop`` pixels, random scale, flips, colour
    augmentation as in training) with a registered model's frozen encoder."""
    from .codec import Codec
    from .data import RandomCrops, image_list

    if crop % DOWNSCALE:
        raise ValueError(f"crop must be a multiple of {DOWNSCALE}")
    codec = Codec.load(model, encoder=encoder)
    crops = RandomCrops(image_list("train"), crop, seed=seed, colour=colour)
    images = np.empty((n, crop, crop, 3), np.uint8)
    symbols = np.empty((n, N_CHANNELS, crop // DOWNSCALE, crop // DOWNSCALE), np.int8)
    t0 = time.time()
    for i in range(n):
        images[i] = crops.sample()
        symbols[i] = encode_symbols(codec, images[i : i + 1])[0]
        if (i + 1) % 2000 == 0:
            print(f"  {i + 1}/{n} crops ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    meta = {
        "model": codec.name,
        "model_id": codec.model_id,
        "encoder": "int8" if codec.int8 is not None else "float",
        "crop": crop,
        "n": n,
        "seed": seed,
        "colour": colour,
    }
    return write_cache(Path(out), images, symbols, meta)


def build_dev_cache(
    out: Path | str, size: str = "224", model: str | None = None, encoder: str = "int8"
) -> Path:
    """The development photos (evaluation protocol: 224x224 centre crops or 768x512) and
    their symbols, for validation during training."""
    from .codec import Codec
    from .data import cache_dir, prepare_dev
    from .evaluate import load_images

    codec = Codec.load(model, encoder=encoder)
    images = np.stack([a for _, a in load_images(prepare_dev(cache_dir() / "dev768"), size)])
    meta = {
        "model": codec.name,
        "model_id": codec.model_id,
        "encoder": "int8" if codec.int8 is not None else "float",
        "dev": size,
        "n": len(images),
    }
    return write_cache(Path(out), images, encode_symbols(codec, images), meta)


class LatentCrops:
    """Random aligned windows of (image, symbols) pairs from a cache: batches of float
    images (B, 3, S, S) in [0, 1] and float symbols (B, 12, S/8, S/8).

    A window smaller than the cached crop has no frame border in its latent (the encoder
    saw the pixels around it): the decoder must not be trained on those alone, since every
    deployed frame has the encoder's zero-padding border. ``crop`` = the cached size takes
    whole crops."""

    def __init__(self, images: np.ndarray, symbols: np.ndarray, crop: int, seed: int = 0):
        if crop % DOWNSCALE or crop > images.shape[1]:
            raise ValueError(f"crop {crop} must be a multiple of 8 and at most {images.shape[1]}")
        self.images, self.symbols, self.crop = images, symbols, crop
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int):
        import torch

        c, lc = self.crop, self.crop // DOWNSCALE
        span = self.symbols.shape[-1] - lc + 1
        idx = self.rng.integers(0, len(self.images), n)
        oy, ox = self.rng.integers(0, span, n), self.rng.integers(0, span, n)
        x = np.stack(
            [
                self.images[i, y * 8 : y * 8 + c, x_ * 8 : x_ * 8 + c]
                for i, y, x_ in zip(idx, oy, ox, strict=True)
            ]
        )
        y = np.stack(
            [
                self.symbols[i, :, y : y + lc, x_ : x_ + lc]
                for i, y, x_ in zip(idx, oy, ox, strict=True)
            ]
        )
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
        return xt, torch.from_numpy(y.astype(np.float32))
