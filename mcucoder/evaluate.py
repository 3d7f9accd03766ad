"""Rate-distortion evaluation against JPEG (and WebP): bpp from real bytes, PSNR, MS-SSIM,
Bjontegaard delta rate, plot."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pytorch_msssim import ms_ssim

from .bitstream import parse_packet
from .codec import Codec
from .data import IMAGE_EXTS

JPEG_QUALITIES = (1, 3, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_QUALITIES = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def msssim(a: np.ndarray, b: np.ndarray) -> float:
    ta = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(b.copy()).permute(2, 0, 1)[None].float()
    win = 11 if min(a.shape[:2]) > 160 else 7
    return float(ms_ssim(ta, tb, data_range=255.0, win_size=win))


def center_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    h, w = image.shape[:2]
    if min(h, w) < size:
        raise ValueError(f"image {w}x{h} is smaller than the {size}x{size} crop")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def load_images(folder: Path, size: str) -> list[tuple[str, np.ndarray]]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXTS:
            with Image.open(p) as im:
                a = np.asarray(im.convert("RGB"))
            out.append((p.name, center_crop(a) if size == "224" else a))
    if not out:
        raise FileNotFoundError(f"no images in {folder}")
    return out


def pillow_point(image: np.ndarray, fmt: str, quality: int) -> dict:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, quality=quality)
    rec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    n = image.shape[0] * image.shape[1]
    return {
        "bpp": len(buf.getvalue()) * 8 / n,
        "psnr": psnr(image, rec),
        "ms_ssim": msssim(image, rec),
    }


def mcucoder_points(codec: Codec, image: np.ndarray) -> list[dict]:
    """One point per k: bytes of the real packet with the first k channels."""
    packet = parse_packet(codec.encode(image))
    n = image.shape[0] * image.shape[1]
    subs = [packet.with_channels(k) for k in range(1, packet.n_channels + 1)]
    recs = []
    for p in subs:  # one packet per k keeps memory flat at full size
        recs.append(codec.decode(p))
    return [
        {
            "k": k,
            "bpp": len(p.to_bytes()) * 8 / n,
            "psnr": psnr(image, r),
            "ms_ssim": msssim(image, r),
        }
        for k, (p, r) in enumerate(zip(subs, recs, strict=True), 1)
    ]


def entropy_comparison(codec: Codec, images: list[tuple[str, np.ndarray]]) -> dict:
    """Bits for the same symbols under: per-channel static Huffman (the reference design's
    coder, code built from the same tables), our static rANS, context rANS. All 12
    channels; chunk bytes only (no packet header)."""
    from .entropy import huffman_lengths, rans_encode

    totals = {"huffman": 0.0, "rans-static": 0.0, "rans-context": 0.0}
    pixels = 0
    lengths = [huffman_lengths(np.asarray(t.freq)) for t in codec.tables]
    has_ctx = all(t.ctx_freq is not None for t in codec.tables)
    for _, im in images:
        q = codec.symbols(im)
        pixels += im.shape[0] * im.shape[1]
        for c, t in enumerate(codec.tables):
            totals["huffman"] += float(lengths[c][q[c] - t.lo].sum())
            totals["rans-static"] += 8 * len(rans_encode(q[c], t))
            if has_ctx:
                totals["rans-context"] += 8 * len(rans_encode(q[c], t, True))
    if not has_ctx:
        del totals["rans-context"]
    out = {name: {"bpp": bits / pixels} for name, bits in totals.items()}
    for name in out:
        out[name]["saved_vs_huffman_pct"] = 100 * (1 - totals[name] / totals["huffman"])
    return out


def mean_curve(per_image: list[list[dict]], key: str) -> list[dict]:
    """Average each operating point (k or quality) over images."""
    out = []
    for pts in zip(*per_image, strict=True):
        out.append(
            {
                key: pts[0][key],
                **{m: float(np.mean([p[m] for p in pts])) for m in ("bpp", "psnr", "ms_ssim")},
            }
        )
    return out


def overlap(anchor: list[dict], test: list[dict], metric: str) -> list[float] | None:
    """The quality interval both curves cover: the range a BD-rate integrates over."""
    lo = max(min(p[metric] for p in anchor), min(p[metric] for p in test))
    hi = min(max(p[metric] for p in anchor), max(p[metric] for p in test))
    return [round(lo, 4), round(hi, 4)] if hi > lo else None


def _pchip(x: np.ndarray, y: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Monotone piecewise-cubic (Fritsch-Carlson) interpolation: follows the measured
    points without the overshoot a single cubic over a long JPEG sweep has."""
    h = np.diff(x)
    d = np.diff(y) / h
    m = np.empty_like(y)
    m[0], m[-1] = d[0], d[-1]
    for k in range(1, len(x) - 1):
        if d[k - 1] * d[k] <= 0:
            m[k] = 0.0
        else:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / d[k - 1] + w2 / d[k])
    i = np.clip(np.searchsorted(x, xi) - 1, 0, len(x) - 2)
    t = (xi - x[i]) / h[i]
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[i] + h10 * h[i] * m[i] + h01 * y[i + 1] + h11 * h[i] * m[i + 1]


def bd_rate(anchor: list[dict], test: list[dict], metric: str) -> float | None:
    """Bjontegaard delta rate (%) of ``test`` against ``anchor`` (negative = fewer bits):
    mean difference of log-rate over the quality range both cover, each curve
    interpolated piecewise-cubically (pchip) through its points. Points that do not
    improve quality are dropped first (the curve must be monotonic)."""

    def clean(curve: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        pts = sorted(curve, key=lambda p: p["bpp"])
        keep, best = [], -np.inf
        for p in pts:
            if p[metric] > best:
                keep.append(p)
                best = p[metric]
        return np.array([p[metric] for p in keep]), np.log(np.array([p["bpp"] for p in keep]))

    qa, ra = clean(anchor)
    qt, rt = clean(test)
    if len(qa) < 2 or len(qt) < 2:
        return None
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, 2001)
    diff = _pchip(qt, rt, grid) - _pchip(qa, ra, grid)
    return float((np.exp(diff.mean()) - 1) * 100)


def recompute_bd(report: dict) -> dict:
    """BD-rates and their quality ranges of every curve against JPEG (in place)."""
    jpeg = report["curves"]["jpeg"]
    others = {n: c for n, c in report["curves"].items() if n != "jpeg"}
    metrics = ("ms_ssim", "psnr")
    report["bd_rate_vs_jpeg"] = {
        n: {m: bd_rate(jpeg, c, m) for m in metrics} for n, c in others.items()
    }
    report["bd_range"] = {n: {m: overlap(jpeg, c, m) for m in metrics} for n, c in others.items()}
    return report


def evaluate(
    images: list[tuple[str, np.ndarray]], codecs: dict[str, Codec], webp: bool = True
) -> dict:
    """Curves of every codec and JPEG/WebP, BD-rates against JPEG, entropy-coder bits."""
    report: dict = {"n_images": len(images), "size": list(images[0][1].shape[:2]), "curves": {}}
    for name, codec in codecs.items():
        t = time.time()
        report["curves"][name] = mean_curve([mcucoder_points(codec, im) for _, im in images], "k")
        report.setdefault("model", {"name": codec.name, "model_id": codec.model_id})
        report.setdefault("seconds", {})[name] = round(time.time() - t, 1)
    report["curves"]["jpeg"] = mean_curve(
        [
            [{"quality": q, **pillow_point(im, "JPEG", q)} for q in JPEG_QUALITIES]
            for _, im in images
        ],
        "quality",
    )
    if webp:
        report["curves"]["webp"] = mean_curve(
            [
                [{"quality": q, **pillow_point(im, "WEBP", q)} for q in WEBP_QUALITIES]
                for _, im in images
            ],
            "quality",
        )
    first = next(iter(codecs.values()))
    report["entropy_coding"] = entropy_comparison(codecs.get("mcucoder-int8", first), images)
    recompute_bd(report)
    return report


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("ms_ssim", "psnr"), strict=True):
        for name, curve in report["curves"].items():
            pts = sorted(curve, key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], "o-", ms=3, label=name)
        ax.set_xlabel("bits per pixel (whole packet / file)")
        ax.set_ylabel({"ms_ssim": "MS-SSIM (RGB)", "psnr": "PSNR (dB, RGB)"}[metric])
        ax.grid(alpha=0.3)
        ax.legend()
    h, w = report["size"]
    fig.suptitle(f"{report['n_images']} images, {w}x{h}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(report: dict, out: Path, plot_path: Path | None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if plot_path:
        plot(report, plot_path)


def jpeg_at_rate(report: dict, bpp: float, metric: str = "psnr") -> float | None:
    """JPEG's quality at ``bpp`` (the same bytes as a point of ours): its curve
    interpolated with pchip over log-rate, None outside the rates JPEG reached."""
    pts = sorted(report["curves"]["jpeg"], key=lambda p: p["bpp"])
    rates = np.log([p["bpp"] for p in pts])
    if not rates[0] <= np.log(bpp) <= rates[-1]:
        return None
    values = np.array([p[metric] for p in pts])
    return float(_pchip(rates, values, np.array([np.log(bpp)]))[0])


# what ``release`` calibrates with: 128 training crops of 256 for the entropy tables'
# histograms (cli._register), 200 of 224 for the INT8 converter (cli export-int8)
TABLE_CROPS, TABLE_CROP, TABLE_SEED = 128, 256, 99
INT8_CROPS, INT8_CROP, INT8_SEED = 200, 224, 7


def checkpoint_codecs(
    checkpoint: Path | str, scratch: Path | str, name: str, int8: bool = True
) -> dict[str, Codec]:
    """A ``train`` checkpoint as ``release`` would ship it, measured without replacing the
    released model: entropy tables, weights, model_id and the INT8 TFLite encoder (in the
    export environment, ``requirements-export.txt``) are written to ``scratch`` (its own
    manifest), never to ``mcucoder/weights``. Returns the float and the INT8 codec."""
    import subprocess

    from .data import RandomCrops, image_list
    from .entropy import tables_from_json
    from .export import TF_PYTHON, build_tables, export_model, load_checkpoint
    from .int8 import Int8Encoder

    scratch = Path(scratch)
    net, ck = load_checkpoint(checkpoint)
    if ck.get("ema"):  # the weight average is the candidate (train --ema)
        net.load_state_dict(ck["ema"])
    crops = RandomCrops(image_list("train"), TABLE_CROP, seed=TABLE_SEED).batch(TABLE_CROPS)
    model_id = export_model(net, name, build_tables(net, crops), {"steps": ck.get("step")}, scratch)
    tables = tables_from_json(json.loads((scratch / f"{name}.tables.json").read_text()))
    codecs = {"mcucoder-float": Codec(name, model_id, net.encoder, net.decoder, tables)}
    if not int8:
        return codecs
    enc = {k: v.numpy() for k, v in net.encoder.state_dict().items() if k.startswith("conv")}
    np.savez(scratch / "encoder.npz", **enc)
    calib = RandomCrops(image_list("train"), INT8_CROP, seed=INT8_SEED).batch(INT8_CROPS)
    np.save(scratch / "int8-crops.npy", calib)
    tflite = scratch / f"{name}.int8.tflite"
    subprocess.run(
        [str(TF_PYTHON), "-m", "mcucoder.tflite_export"]
        + [str(scratch / "encoder.npz"), str(scratch / "int8-crops.npy"), str(tflite)],
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    codecs["mcucoder-int8"] = Codec(
        name, model_id, net.encoder, net.decoder, tables, int8=Int8Encoder(tflite)
    )
    return codecs
