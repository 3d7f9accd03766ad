"""Decoder-only training on cached latents of a registered model's frozen encoder.

Each training sample is a whole cached crop, encoded on its own as a camera encodes a
frame: the released decoder leans on what the encoder's zero padding does at the frame
border, and a window cut from a larger latent has no such border (measured: today's
decoder loses 6 dB on 128-pixel windows of 192-pixel crops; fine-tuning on windows lost
1 dB on the dev photos).

The encoder (and so the symbols, the entropy tables and every packet's bytes) stays what
the cameras run; only the cloud decoder changes. The new decoder starts as the registered
one, optionally grown by residual blocks on the latent grid that start as identities
(:func:`mcucoder.models.grow_decoder`), so step 0 reproduces today's images exactly.

    python -m mcucoder cache-latents --out runs/cache/train192 --n 24000
    python -m mcucoder train-decoder --out runs/dec8 --cache runs/cache/train192 \
        --dev-cache runs/cache/dev224 --blocks 8 [--resume]

Resumable like ``train``: ``last.pt`` (decoder, its exponential weight average,
optimiser, step, wall time) every ``ckpt_every`` steps, losses in ``log.jsonl``, per-k
PSNR / MS-SSIM of the dev photos (of the weight average: single steps at batch 4 move
the dev PSNR by a few tenths of a dB) every ``val_every`` steps.
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

from .decoders import decoder_from_state, load_decoder
from .latent_cache import LatentCrops, load_cache
from .models import N_CHANNELS, Decoder, grow_decoder, tail_mask
from .train import distortion, evaluate_per_k, k_distribution, write_log


@dataclass
class DecoderTrainConfig:
    out: str
    cache: str = "runs/cache/train192"
    dev_cache: str = ""  # a dev cache (build_dev_cache): per-k validation
    base: str = "mcucoder-s"  # registered model whose decoder it starts from
    blocks: int = 8  # latent-grid residual blocks (the base's plus new ones)
    steps: int = 200_000
    batch: int = 4
    crop: int = 0  # 0: whole cached crops (see LatentCrops: windows hurt at frame borders)
    lr: float = 1e-4
    mse_weight: float = 60.0
    k_tilt: float = 2.0  # p(12) = (1 + k_tilt) p(1)
    ema: float = 0.999  # decay of the weight average that is validated and released (0: off)
    ckpt_every: int = 250
    log_every: int = 25
    val_every: int = 1000
    threads: int = 1
    seed: int = 0


def base_decoder(name: str) -> tuple[Decoder, int]:
    """The registered model's decoder (its released revision, if any) and its model_id."""
    from .registry import model_entry

    _, entry = model_entry(name)
    return load_decoder(entry)[0], int(entry["model_id"])


def train_decoder(cfg: DecoderTrainConfig, resume: bool = False) -> None:
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    images, symbols, meta = load_cache(cfg.cache, mmap=True)  # shared page cache
    base, base_id = base_decoder(cfg.base)
    if meta["model_id"] != base_id:
        raise ValueError(
            f"cache {cfg.cache} was encoded by model_id {meta['model_id']:#x}, "
            f"{cfg.base} is {base_id:#x}"
        )
    dec = grow_decoder(base, cfg.blocks)
    opt = torch.optim.Adam(dec.parameters(), lr=cfg.lr)
    ema = copy.deepcopy(dec).eval() if cfg.ema else None
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        dec.load_state_dict(ck["decoder"])
        if ema is not None:  # a checkpoint without an average starts it from its weights
            ema.load_state_dict(ck.get("ema") or ck["decoder"])
        if ck.get("opt"):
            opt.load_state_dict(ck["opt"])
        else:  # a compact checkpoint (compact_checkpoint): Adam's moments start afresh
            print("no optimiser state in the checkpoint: Adam starts afresh", flush=True)
        for g in opt.param_groups:
            g["lr"] = cfg.lr
        step, elapsed = ck["step"], ck["elapsed_s"]
        print(f"resumed {ckpt_path} at step {step} ({elapsed / 3600:.2f} h)", flush=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    dev = load_cache(cfg.dev_cache) if cfg.dev_cache else None
    torch.manual_seed(cfg.seed + step)
    crops = LatentCrops(images, symbols, cfg.crop or images.shape[1], seed=cfg.seed + step)
    rng = np.random.default_rng(cfg.seed + step)
    k_prob = k_distribution(cfg.k_tilt)
    log = (out / "log.jsonl").open("a")
    if dev is not None and step == 0:
        rec = {"step": 0, "elapsed_s": 0.0, "val": evaluate_per_k(dec, dev[0], dev[1])}
        write_log(log, rec)
    acc: dict[str, float] = {}
    t_last = time.time()
    dec.train()
    while step < cfg.steps:
        x, y = crops.batch(cfg.batch)
        k = torch.from_numpy(rng.choice(np.arange(1, N_CHANNELS + 1), size=cfg.batch, p=k_prob))
        x_hat = dec(y * tail_mask(k, cfg.batch))
        d, ms, mse = distortion(x_hat, x, cfg.mse_weight)
        loss = d.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                torch._foreach_lerp_(list(ema.parameters()), list(dec.parameters()), 1 - cfg.ema)
        step += 1
        for name, v in (("loss", loss), ("ms_ssim", ms.mean()), ("mse", mse.mean())):
            acc[name] = acc.get(name, 0.0) + float(v.detach())
        if step % cfg.log_every == 0:
            now = time.time()
            elapsed += now - t_last
            t_last = now
            rec = {k_: v / cfg.log_every for k_, v in acc.items()}
            rec["psnr"] = -10 * math.log10(max(rec.pop("mse"), 1e-10))
            rec = {"step": step, "elapsed_s": round(elapsed, 1)} | {
                a: round(b, 5) for a, b in rec.items()
            }
            acc = {}
            if dev is not None and step % cfg.val_every == 0:
                rec["val"] = evaluate_per_k(ema or dec, dev[0], dev[1])  # the average
                t_last = time.time()  # validation is not training time
            write_log(log, rec)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            elapsed += time.time() - t_last
            t_last = time.time()
            state = {
                "decoder": dec.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "decoder_config": dec.config,
                "opt": opt.state_dict(),
                "step": step,
                "elapsed_s": elapsed,
                "config": asdict(cfg),
                "base": cfg.base,
                "base_model_id": base_id,
            }
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt_path)


def candidate_codec(checkpoint: Path | str, encoder: str = "int8"):
    """The base model's codec (encoder, tables, model_id: the same packets) with the
    checkpoint's decoder: what a decoder-only release would decode, for evaluation."""
    from .codec import Codec

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    codec = Codec.load(ck["base"], encoder=encoder)
    if codec.model_id != ck["base_model_id"]:
        raise ValueError(
            f"{checkpoint} was trained on {ck['base']} {ck['base_model_id']:#x}, "
            f"which is now {codec.model_id:#x}"
        )
    codec.decoder = decoder_from_state(ck).to(codec.device).eval()
    return codec


def compact_checkpoint(src: Path | str, dst: Path | str) -> Path:
    """A small resumable copy of a train-decoder checkpoint, to commit: the weight average
    as the decoder, in float16, without the optimiser (``--resume`` then restarts Adam's
    moments; step, wall time and config carry on)."""
    ck = torch.load(src, map_location="cpu", weights_only=False)
    weights = ck.get("ema") or ck["decoder"]
    out = {k: v for k, v in ck.items() if k not in ("opt", "ema", "decoder")}
    out["decoder"] = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, dst)
    return dst
