"""Training: stochastic tail drop, simulated rounding, INT8-aware encoder, rate + distortion.

Designed for a 2-core CPU: small random crops, a decoder whose capacity sits on the
latent grid, per-sample tail drop (k in 1..12, tilted toward 12) so every step trains every
prefix length. Resumable: ``last.pt`` holds model, optimiser, step and wall time.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from pytorch_msssim import ms_ssim

from .data import RandomCrops, image_list
from .models import N_CHANNELS, MCUCoder


@dataclass
class TrainConfig:
    out: str
    steps: int = 200_000
    batch: int = 8
    crop: int = 128
    lr: float = 5e-4
    lam: float = 0.02  # weight of bits per pixel
    lam_tail: float = 1.0  # lam x this for channels 9-12 (< 1: let the top tiers carry more)
    mse_weight: float = 20.0  # MSE next to (1 - MS-SSIM): PSNR matters too
    qat_start: int = 2000  # INT8 fake quantisation of the encoder from this step on
    width: int = 128
    blocks: int = 3
    ckpt_every: int = 250
    log_every: int = 25
    val_every: int = 1000
    threads: int = 1
    colour_aug: bool = True
    k_tilt: float = 1.0  # p(k) grows linearly to (1 + k_tilt) x p(1) at k = 12
    seed: int = 0


def distortion(x_hat: torch.Tensor, x: torch.Tensor, mse_weight: float) -> tuple[torch.Tensor, ...]:
    """Per-sample (1 - MS-SSIM) + w * MSE, and its two parts."""
    win = 7 if min(x.shape[-2:]) <= 160 else 11
    ms = ms_ssim(x_hat, x, data_range=1.0, size_average=False, win_size=win)
    mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
    return (1 - ms) + mse_weight * mse, ms, mse


def k_distribution(tilt: float) -> np.ndarray:
    """Tail-drop distribution over k = 1..12: uniform (tilt 0) as in the paper, or tilted
    toward large k, because the last channels otherwise see too few gradients."""
    w = 1 + tilt * np.arange(N_CHANNELS) / (N_CHANNELS - 1)
    return w / w.sum()


def _val_set(seed: int = 1234, n: int = 8) -> torch.Tensor:
    """Fixed 224x224 crops of training photos, only to watch progress."""
    crops = RandomCrops(image_list("train")[::7], 224, seed=seed)
    return torch.from_numpy(crops.batch(n).copy()).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def validate(net: MCUCoder, x: torch.Tensor) -> dict:
    net.eval()
    out = {}
    y = torch.round(net.encoder(x))
    bits = net.prior.bits(y)  # (B, 12, H, W)
    npix = x.shape[-1] * x.shape[-2]
    for k in (1, 3, 6, 9, 12):
        yk = y.clone()
        yk[:, k:] = 0
        x_hat = net.decoder(yk)
        ms = ms_ssim(x_hat, x, data_range=1.0).item()
        mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
        psnr = (10 * torch.log10(1 / mse)).mean().item()
        bpp = (bits[:, :k].sum(dim=(1, 2, 3)) / npix).mean().item()
        out[f"k{k}"] = {"ms_ssim": round(ms, 4), "psnr": round(psnr, 2), "bpp": round(bpp, 4)}
    net.train()
    return out


def train(cfg: TrainConfig, resume: bool = False) -> None:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    net = MCUCoder(cfg.width, cfg.blocks)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        for g in opt.param_groups:
            g["lr"] = cfg.lr
        step, elapsed = ck["step"], ck["elapsed_s"]
        print(f"resumed {ckpt_path} at step {step} ({elapsed / 3600:.2f} h)", flush=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    torch.manual_seed(cfg.seed + step)
    crops = RandomCrops(image_list("train"), cfg.crop, seed=cfg.seed + step, colour=cfg.colour_aug)
    val_x = _val_set()
    log = (out / "log.jsonl").open("a")
    rng = np.random.default_rng(cfg.seed + step)
    acc: dict[str, float] = {}
    k_prob = k_distribution(cfg.k_tilt)
    rate_weight = torch.ones(N_CHANNELS)
    rate_weight[8:] = cfg.lam_tail
    t_last = time.time()
    net.train()
    while step < cfg.steps:
        net.encoder.set_qat(step >= cfg.qat_start)
        x = torch.from_numpy(crops.batch(cfg.batch).copy()).permute(0, 3, 1, 2).float() / 255
        k = torch.from_numpy(rng.choice(np.arange(1, N_CHANNELS + 1), size=cfg.batch, p=k_prob))
        x_hat, bits_c = net(x, k, per_channel=True)
        d, ms, mse = distortion(x_hat, x, cfg.mse_weight)
        npix = x.shape[-1] * x.shape[-2]
        bpp = bits_c.sum(dim=1) / npix
        loss = (d + cfg.lam * (bits_c * rate_weight).sum(dim=1) / npix).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        for name, v in (
            ("loss", loss),
            ("ms_ssim", ms.mean()),
            ("mse", mse.mean()),
            ("bpp", bpp.mean()),
        ):
            acc[name] = acc.get(name, 0.0) + float(v.detach())
        if step % cfg.log_every == 0:
            now = time.time()
            elapsed += now - t_last
            t_last = now
            rec = {k_: v / cfg.log_every for k_, v in acc.items()}
            rec["psnr"] = -10 * math.log10(max(rec.pop("mse"), 1e-10))
            rec = {
                "step": step,
                "elapsed_s": round(elapsed, 1),
                **{a: round(b, 5) for a, b in rec.items()},
            }
            acc = {}
            if step % cfg.val_every == 0:
                rec["val"] = validate(net, val_x)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            elapsed += time.time() - t_last
            t_last = time.time()
            state = {
                "model": net.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "elapsed_s": elapsed,
                "config": asdict(cfg),
            }
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt_path)
