"""Training: stochastic tail drop, simulated rounding, INT8-aware encoder, rate + distortion.

Designed for a 2-core CPU: small random crops, a decoder whose capacity sits on the
latent grid, per-sample tail drop (k in 1..12, tilted toward 12) so every step trains every
prefix length. Resumable: ``last.pt`` holds model, optimiser, step and wall time.

Joint fine-tuning for the top tier (issue 17): ``init_model`` starts step 0 from a
registered model's encoder and its released decoder revision (the decoder trained on that
encoder's symbols, so step 0 decodes as the release does), ``gain_db`` / ``gain_weight``
make each added channel pay (a hinge on the PSNR gain of k over k - 1), ``ema`` keeps the
weight average that is validated and evaluated, ``dev`` validates per k on the dev photos.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from pytorch_msssim import ms_ssim

from .data import RandomCrops, image_list
from .models import N_CHANNELS, Decoder, MCUCoder, tail_mask


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
    init_model: str = ""  # registered model: its encoder + released decoder at step 0
    ema: float = 0.0  # decay of the weight average that is validated and saved (0: off)
    gain_db: float = 0.0  # each added channel should add this much PSNR (0: no gain term)
    gain_weight: float = 0.01  # weight of the hinge, per dB short of gain_db
    dev: str = ""  # "224": per-k PSNR / MS-SSIM of the dev photos at every validation


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


@torch.no_grad()
def evaluate_per_k(
    decoder: Decoder, images: np.ndarray, symbols: np.ndarray, ks=range(1, N_CHANNELS + 1)
) -> dict:
    """Mean PSNR and MS-SSIM per k of uint8 reconstructions, as ``Codec.decode`` makes them
    and ``mcucoder.evaluate`` scores them (RGB, data range 255)."""
    was = decoder.training
    decoder.eval()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    win = 11 if min(images.shape[1:3]) > 160 else 7
    out = {}
    for k in ks:
        psnrs, mss = [], []
        for i in range(len(images)):
            y = torch.from_numpy(symbols[i : i + 1].astype(np.float32))
            y[:, k:] = 0
            r = (decoder(y).clamp(0, 1) * 255).round()
            mse = ((r.double() - x[i : i + 1].double()) ** 2).mean().item()
            psnrs.append(10 * math.log10(255**2 / max(mse, 1e-10)))
            mss.append(float(ms_ssim(r, x[i : i + 1], data_range=255.0, win_size=win)))
        out[k] = {"psnr": round(float(np.mean(psnrs)), 3), "ms_ssim": round(float(np.mean(mss)), 5)}
    decoder.train(was)
    return out


@torch.no_grad()
def fit_prior(net: MCUCoder, x: torch.Tensor) -> None:
    """Set the prior to the Laplace maximum-likelihood fit (median, mean absolute deviation)
    of the encoder's latents of ``x``: a released weight file carries no prior, and a rate
    term under a wrong one would pull the encoder away from the release at step 0."""
    was = net.training
    net.eval()  # the activation observers must not move
    y = net.encoder(x).transpose(0, 1).reshape(N_CHANNELS, -1)
    mu = y.median(dim=1).values
    b = (y - mu[:, None]).abs().mean(dim=1).clamp_min(0.05)
    net.prior.mu.copy_(mu)
    net.prior.log_b.copy_(b.log())
    net.train(was)


def init_from_model(net: MCUCoder, name: str, x: torch.Tensor) -> dict:
    """Load a registered model's encoder and its released decoder revision into ``net``
    and fit the prior on ``x``, so a joint fine-tune starts where the release is (the
    revision was trained on that encoder's symbols). Returns what was loaded."""
    from .decoders import load_decoder
    from .registry import WEIGHTS_DIR, model_entry

    name, entry = model_entry(name)
    state = torch.load(WEIGHTS_DIR / entry["weights"], map_location="cpu", weights_only=True)
    net.encoder.load_state_dict(state["encoder"])
    dec, revision = load_decoder(entry, state=state)
    if dec.config != net.decoder.config:
        raise ValueError(f"{name}'s decoder is {dec.config}, this run's is {net.decoder.config}")
    net.decoder.load_state_dict(dec.state_dict())
    fit_prior(net, x)
    return {"model": name, "model_id": int(entry["model_id"]), "decoder_revision": revision}


def channel_gain_hinge(
    mse: torch.Tensor, mse_prev: torch.Tensor, k: torch.Tensor, gain_db: float
) -> torch.Tensor:
    """Per sample, the dB by which channel k's PSNR gain over the first k - 1 channels
    falls short of ``gain_db`` (0 for k = 1). ``mse_prev`` is only a reference: the hinge
    must not widen the gap by making k - 1 worse."""
    gain = 10 * torch.log10(mse_prev.detach().clamp_min(1e-10) / mse.clamp_min(1e-10))
    return torch.relu(gain_db - gain) * (k > 1)


@torch.no_grad()
def dev_symbols(net: MCUCoder, images: np.ndarray) -> np.ndarray:
    """Integer symbols (N, 12, h, w) of uint8 images by the training encoder (INT8-like
    when QAT is on), rounded half up as the codec rounds."""
    was = net.training
    net.eval()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    y = torch.cat([net.encoder(b) for b in x.split(8)])
    net.train(was)
    return torch.floor(y + 0.5).numpy()


@torch.no_grad()
def validate_dev(net: MCUCoder, images: np.ndarray) -> dict:
    """Per k: PSNR and MS-SSIM of the dev photos (as ``evaluate_per_k``) and the bits per
    pixel of the first k channels under the prior (the tables come at release)."""
    q = dev_symbols(net, images)
    out = evaluate_per_k(net.decoder, images, q)
    bits = net.prior.bits(torch.from_numpy(q)).sum(dim=(2, 3)).mean(dim=0)  # per channel
    npix = images.shape[1] * images.shape[2]
    for k in out:
        out[k]["bpp"] = round(float(bits[:k].sum()) / npix, 4)
    return out


def _sync_buffers(ema: torch.nn.Module, net: torch.nn.Module) -> None:
    """The average's observers (activation ranges) are the live model's, not averaged."""
    for be, b in zip(ema.buffers(), net.buffers(), strict=True):
        be.copy_(b)


def train(cfg: TrainConfig, resume: bool = False) -> None:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    net = MCUCoder(cfg.width, cfg.blocks)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, elapsed = 0, 0.0
    val_x = _val_set()
    init: dict | None = None
    ck: dict = {}
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        for g in opt.param_groups:
            g["lr"] = cfg.lr
        step, elapsed, init = ck["step"], ck["elapsed_s"], ck.get("init")
        print(f"resumed {ckpt_path} at step {step} ({elapsed / 3600:.2f} h)", flush=True)
    elif cfg.init_model:
        init = init_from_model(net, cfg.init_model, val_x)
        print(f"step 0 from {init}", flush=True)
    ema = None
    if cfg.ema:
        ema = copy.deepcopy(net)
        if ck.get("ema"):  # a checkpoint without an average starts it from its weights
            ema.load_state_dict(ck["ema"])
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    torch.manual_seed(cfg.seed + step)
    crops = RandomCrops(image_list("train"), cfg.crop, seed=cfg.seed + step, colour=cfg.colour_aug)
    dev = _dev_images(cfg.dev) if cfg.dev else None
    log = (out / "log.jsonl").open("a")
    if dev is not None and step == 0:
        net.encoder.set_qat(step >= cfg.qat_start)
        write_log(log, {"step": 0, "elapsed_s": 0.0, "init": init, "dev": validate_dev(net, dev)})
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
        parts = [("loss", loss), ("ms_ssim", ms.mean()), ("mse", mse.mean()), ("bpp", bpp.mean())]
        if cfg.gain_db:
            hinge = channel_gain_hinge(mse, _mse_without_last(net, x, k), k, cfg.gain_db)
            loss = loss + cfg.gain_weight * hinge.mean()
            parts.append(("gain_short_db", hinge.sum() / (k > 1).sum().clamp_min(1)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1 - cfg.ema)
        step += 1
        for name, v in parts:
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
                judged = net
                if ema is not None:  # the average is what is evaluated and released
                    _sync_buffers(ema, net)
                    ema.encoder.set_qat(net.encoder.qat)
                    judged = ema
                rec["val"] = validate(judged, val_x)
                if dev is not None:
                    rec["dev"] = validate_dev(judged, dev)
                t_last = time.time()  # validation is not training time
            write_log(log, rec)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            elapsed += time.time() - t_last
            t_last = time.time()
            if ema is not None:
                _sync_buffers(ema, net)
            state = {
                "model": net.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "opt": opt.state_dict(),
                "step": step,
                "elapsed_s": elapsed,
                "config": asdict(cfg),
                "init": init,
            }
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt_path)


@torch.no_grad()
def _mse_without_last(net: MCUCoder, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE of the same images from their first k - 1 channels: the reference
    the gain hinge measures channel k against (not trained through)."""
    net.eval()  # the activation observers see each batch once
    y = torch.round(net.encoder(x))
    x_prev = net.decoder(y * tail_mask(k - 1, x.shape[0]))
    net.train()
    return ((x_prev - x) ** 2).mean(dim=(1, 2, 3))


def _dev_images(size: str) -> np.ndarray:
    """The development photos under the evaluation protocol (``224`` or ``full``)."""
    from .data import cache_dir, prepare_dev
    from .evaluate import load_images

    return np.stack([a for _, a in load_images(prepare_dev(cache_dir() / "dev768"), size)])


def write_log(log, rec: dict) -> None:
    """One JSON line in the run's log.jsonl (flushed: a resume reads it), echoed."""
    log.write(json.dumps(rec) + "\n")
    log.flush()
    print(json.dumps(rec), flush=True)


def candidate_checkpoint(src: Path | str, dst: Path | str) -> Path:
    """A copy of a ``train`` checkpoint whose model is its weight average, without the
    optimiser: what ``export`` / ``release`` and the evaluation of a candidate read."""
    ck = torch.load(src, map_location="cpu", weights_only=False)
    out = {k: v for k, v in ck.items() if k not in ("opt", "ema")}
    out["model"] = ck.get("ema") or ck["model"]
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, dst)
    return dst
