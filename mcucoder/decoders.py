"""Decoder revisions: a better decoder for the packets cameras already send.

A model's ``model_id`` names the encoder weights and entropy tables, i.e. what a packet
means. The decoder can improve without changing a byte on the camera (issue 17: a
decoder trained on the frozen encoder's symbols), so a release may add a *decoder
revision* to the manifest entry instead of registering a new model::

    "decoder": {"revision": "dec3", "weights": "mcucoder-s.dec3.pt", "crc32": ...,
                "steps": ..., "train_wall_s": ..., "train_config": {...}}

Packets keep their model_id, so every camera, packet and archived frame stays valid;
decoders load the revision. ``base`` selects the decoder stored with the encoder.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch

from .models import Decoder
from .registry import MANIFEST, WEIGHTS_DIR, manifest, model_entry

BASE = "base"


def revision_of(model: str | int | None = None) -> str:
    """The decoder revision a model decodes with: its manifest revision, else ``base``."""
    _, entry = model_entry(model)
    return entry.get("decoder", {}).get("revision", BASE)


def load_decoder(
    entry: dict,
    revision: str | None = None,
    weights_dir: Path = WEIGHTS_DIR,
    state: dict | None = None,
) -> tuple[Decoder, str]:
    """The decoder of a manifest entry: its released revision (``None``), or ``base``.
    ``state``: the model's weight file, if the caller has read it already.

    Raises ValueError when the revision file does not match the manifest's CRC (a half
    copied or hand-edited file must not decode an archive).
    """
    rev = entry.get("decoder")
    if revision == BASE or rev is None:
        if state is None:
            path = weights_dir / entry["weights"]
            state = torch.load(path, map_location="cpu", weights_only=True)
        return _stored_decoder(state), BASE
    if revision not in (None, rev["revision"]):
        raise ValueError(
            f"unknown decoder revision {revision!r}; this model has {rev['revision']!r}"
        )
    path = weights_dir / rev["weights"]
    if zlib.crc32(path.read_bytes()) != rev["crc32"]:
        raise ValueError(f"{path.name}: decoder file does not match the manifest's crc32")
    return _stored_decoder(torch.load(path, map_location="cpu", weights_only=True)), rev["revision"]


def _stored_decoder(state: dict) -> Decoder:
    """The decoder of a released weight file (its config as JSON, its weights)."""
    dec = Decoder(**json.loads(state["decoder_config"]))
    dec.load_state_dict(state["decoder"])
    return dec


def decoder_from_state(state: dict, ema: bool = True) -> Decoder:
    """The checkpoint's decoder: its weight average when it has one and ``ema``."""
    dec = Decoder(**state["decoder_config"])
    dec.load_state_dict(state["ema"] if ema and state.get("ema") else state["decoder"])
    return dec


def release_decoder(checkpoint: Path | str, name: str, revision: str) -> Path:
    """Register a ``train-decoder`` checkpoint as ``name``'s decoder revision.

    The checkpoint must have been trained on this model's symbols (same model_id); its
    weights (the weight average when it has one) are stored in float32 beside the model's
    and the manifest entry gains ``decoder``. Encoder, tables, model_id and firmware are
    untouched.
    """
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    _, entry = model_entry(name)
    if ck.get("base") != name or ck.get("base_model_id") != entry["model_id"]:
        raise ValueError(
            f"{checkpoint} was trained on {ck.get('base')} {ck.get('base_model_id')}, "
            f"not {name} {entry['model_id']}"
        )
    dec = decoder_from_state(ck).float()
    out = WEIGHTS_DIR / f"{name}.{revision}.pt"
    torch.save(
        {
            "decoder": dec.state_dict(),
            "decoder_config": json.dumps(dec.config),
            "base": name,
            "base_model_id": entry["model_id"],
        },
        out,
    )
    m = manifest()
    m["models"][name]["decoder"] = {
        "revision": revision,
        "weights": out.name,
        "crc32": zlib.crc32(out.read_bytes()),
        "steps": ck.get("step"),
        "train_wall_s": round(ck.get("elapsed_s", 0.0)),
        "train_config": ck.get("config"),
    }
    MANIFEST.write_text(json.dumps(m, indent=2, sort_keys=False) + "\n")
    manifest.cache_clear()
    return out
