"""The model card (``mcucoder/weights/README.md``), written from the manifest and the
evaluation reports so that its numbers are never typed by hand."""

from __future__ import annotations

import json
import platform
from pathlib import Path

from .registry import WEIGHTS_DIR, model_entry


def _table(report: dict, curve: str) -> str:
    rows = ["| k | bpp | PSNR (dB) | MS-SSIM |", "|---:|---:|---:|---:|"]
    for p in report["curves"][curve]:
        rows.append(f"| {p['k']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |")
    return "\n".join(rows)


def _bd(report: dict) -> str:
    rows = [
        "| codec | BD-rate MS-SSIM | over MS-SSIM | BD-rate PSNR | over PSNR (dB) |",
        "|---|---:|---|---:|---|",
    ]
    ranges = report.get("bd_range", {})
    for name, bd in report["bd_rate_vs_jpeg"].items():
        cells = []
        for m in ("ms_ssim", "psnr"):
            v, r = bd[m], ranges.get(name, {}).get(m)
            cells.append("n/a (no overlap)" if v is None else f"{v:+.1f} %")
            cells.append(f"{r[0]:.4g}-{r[1]:.4g}" if r else "")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _decoder_revision(name: str, e: dict) -> list[str]:
    """The card's lines on a decoder revision (``mcucoder.decoders``), if the model has one."""
    rev = e.get("decoder")
    if not rev:
        return []
    cfg = rev.get("train_config") or {}
    return [
        f"- **decoder revision `{rev['revision']}`** (what the platform decodes with; packets, "
        f"model_id, encoder, tables and firmware unchanged): `{rev['weights']}`, the same "
        f"architecture retrained decoder-only on cached symbols of the INT8 encoder "
        f"({rev.get('steps')} steps, {(rev.get('train_wall_s') or 0) / 3600:.2f} h on 1 CPU "
        f"thread, batch {cfg.get('batch')} whole crops of `{cfg.get('cache')}`, Adam, loss "
        f"(1 - MS-SSIM) + {cfg.get('mse_weight')} MSE, k tilt {cfg.get('k_tilt')}, weight "
        f"average); `python -m mcucoder release-decoder CHECKPOINT --name {name} "
        f"--revision {rev['revision']}` (history: `checkpoints/README.md`). The tables below "
        "show it as `mcucoder-int8` and the decoder stored with the encoder as "
        "`mcucoder-int8-base-decoder`",
    ]


def render(name: str, reports: dict[str, dict], notes: str = "") -> str:
    _, e = model_entry(name)
    cfg = e.get("train_config") or {}
    hours = (e.get("train_wall_s") or 0) / 3600
    lines = [
        f"# Model card: `{name}`",
        "",
        f"- **model_id**: `{e['model_id']}` (`{e['model_id']:#010x}`), CRC-32 of `{e['weights']}` + `{e['tables']}`",
        f"- **encoder**: the published MCUCoder encoder (3 convolutions, 10,524 parameters), "
        f"INT8 TFLite: `{e.get('tflite')}`",
        f"- **decoder**: {cfg.get('blocks')} residual blocks of width {cfg.get('width')} on the latent grid, "
        "three transposed convolutions with bottleneck blocks (about 1.1 M parameters)",
        "- **entropy coding**: rANS with static 12-bit tables per channel and, by default "
        "(coding 2), per left/top spatial context; from the learned Laplace prior blended with "
        "histograms of training latents",
        f"- **training**: {e.get('steps')} steps, {hours:.2f} h wall time on 1 CPU thread "
        f"({platform.processor() or platform.machine()}, a 2-core machine shared with other work), "
        f"batch {cfg.get('batch')} x {cfg.get('crop')}x{cfg.get('crop')} random crops, Adam lr {cfg.get('lr')}, "
        f"loss (1 - MS-SSIM) + {cfg.get('mse_weight')} MSE + {cfg.get('lam')} bpp, stochastic tail drop "
        f"(k in 1..12 per sample, p(12) = {1 + cfg.get('k_tilt', 0)} p(1)), straight-through rounding, INT8 fake quantisation "
        f"of the encoder from step {cfg.get('qat_start')}",
        "- **data**: the training sources of `shared/data/SOURCES.md` (`python -m mcucoder data`), "
        "random scale / crop / flip; never the development set",
        *_decoder_revision(name, e),
        "",
        "Reproduce:",
        "",
        "```",
        "python -m mcucoder data",
        "python -m mcucoder train --out runs/main   # then --resume, per the history below",
        f"python -m mcucoder release runs/main/last.pt --name {name}",
        "```",
        "",
    ]
    for label, rep in reports.items():
        h, w = rep["size"]
        what = (
            "frames of the static-camera clip (vtest.avi, 2x down)"
            if "vtest" in label
            else "photos"
        )
        lines += [
            f"## {label}: {rep['n_images']} development {what} at {w}x{h}",
            "",
            "bpp counts the whole packet (header and CRC included). JPEG: Pillow, quality "
            "1-95; BD-rates integrate over the quality range both curves cover (shown).",
            "",
            _bd(rep),
            "",
        ]
        ent = rep.get("entropy_coding")
        if ent:
            lines += [
                "Entropy coding, all 12 channels of the same symbols (chunk bits only):",
                "",
                "| coder | bpp | saved vs per-channel Huffman |",
                "|---|---:|---:|",
                *[
                    f"| {n} | {v['bpp']:.4f} | {v['saved_vs_huffman_pct']:+.1f} % |"
                    for n, v in ent.items()
                ],
                "",
            ]
        curve = "mcucoder-int8" if "mcucoder-int8" in rep["curves"] else "mcucoder-float"
        lines += [f"`{curve}` at every k:", "", _table(rep, curve), ""]
    tp_path = WEIGHTS_DIR / "reports" / "throughput.json"
    if tp_path.exists():
        lines += [
            "## Decoder throughput (entropy decoding included)",
            "",
            "| frame | batch | frames/s | device | torch threads |",
            "|---|---:|---:|---|---:|",
            *[
                f"| {r['size']} | {r['batch']} | {r['frames_per_s']} | {r['device']} | {r['threads']} |"
                for r in json.loads(tp_path.read_text())
            ],
            "",
            "Measured on the shared 2-core development machine while training ran on one core.",
            "",
        ]
    if notes:
        lines += [notes, ""]
    return "\n".join(lines)


def write(name: str, report_paths: dict[str, Path], notes: str = "") -> Path:
    reports = {k: json.loads(Path(v).read_text()) for k, v in report_paths.items()}
    out = WEIGHTS_DIR / "README.md"
    out.write_text(render(name, reports, notes))
    return out
