"""Turn a training checkpoint into a registered model: weights, static entropy tables,
model_id, manifest entry. The INT8 TFLite encoder is exported by ``mcucoder.tflite_export``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .entropy import ChannelTable, context_tables, table_from_laplace, tables_to_json
from .models import MCUCoder
from .registry import MANIFEST, WEIGHTS_DIR, model_id_of
from .registry import manifest as registry_manifest


def load_checkpoint(path: Path | str) -> tuple[MCUCoder, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck.get("config", {})
    net = MCUCoder(cfg.get("width", 128), cfg.get("blocks", 3))
    net.load_state_dict(ck["model"])
    net.eval()
    return net, ck


@torch.no_grad()
def training_symbols(net: MCUCoder, images: np.ndarray, int8_like: bool = True) -> np.ndarray:
    """Rounded latents (N, 12, H, W) of training crops, through the INT8-like encoder."""
    net.encoder.set_qat(int8_like)
    x = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float() / 255
    q = torch.cat([torch.round(net.encoder(b)) for b in x.split(8)]).numpy().astype(np.int64)
    net.encoder.set_qat(False)
    return q


def build_tables(net: MCUCoder, images: np.ndarray | None = None) -> list[ChannelTable]:
    """Per-channel integer tables from the learned Laplace prior, sharpened by measured
    histograms of the training latents when images are given (which also give the
    per-context tables of coding method 2)."""
    mu = net.prior.mu.detach().numpy()
    b = net.prior.log_b.detach().exp().numpy()
    if images is None:
        return [table_from_laplace(float(mu[c]), float(b[c])) for c in range(len(mu))]
    q = training_symbols(net, images)
    lo = int(q.min())
    tables = []
    for c in range(len(mu)):
        counts = np.bincount(q[:, c].ravel() - lo)
        t = table_from_laplace(float(mu[c]), float(b[c]), counts, lo)
        tables.append(context_tables(t, np.clip(q[:, c], t.lo, t.hi) - t.lo))
    return tables


def export_model(
    net: MCUCoder,
    name: str,
    tables: list[ChannelTable],
    info: dict | None = None,
    weights_dir: Path = WEIGHTS_DIR,
    make_default: bool = True,
) -> int:
    """Write ``NAME.pt`` + ``NAME.tables.json``, register them in the manifest; returns
    the model_id (CRC-32 of both files)."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    wfile, tfile = weights_dir / f"{name}.pt", weights_dir / f"{name}.tables.json"
    state = {
        "encoder": net.encoder.state_dict(),
        "decoder": net.decoder.state_dict(),
        "decoder_config": json.dumps(net.decoder.config),
    }
    torch.save(state, wfile)
    tfile.write_text(json.dumps(tables_to_json(tables), separators=(",", ":")) + "\n")
    model_id = model_id_of(wfile, tfile)
    manifest_path = weights_dir / MANIFEST.name
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    entry = manifest["models"].get(name, {})
    entry.update({"model_id": model_id, "weights": wfile.name, "tables": tfile.name})
    stale = weights_dir / f"{name}.int8.tflite"  # belongs to the previous weights
    stale.unlink(missing_ok=True)
    entry["tflite"] = None
    entry.update(info or {})
    manifest["models"][name] = entry
    if make_default or "default" not in manifest:
        manifest["default"] = name
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    registry_manifest.cache_clear()
    return model_id


TF_PYTHON = Path.home() / ".cache" / "strata" / "tfenv" / "bin" / "python"


def export_int8(name: str, crops: np.ndarray, tf_python: Path | str = TF_PYTHON) -> Path:
    """Convert the registered model's encoder to INT8 TFLite in the export environment
    (TensorFlow lives there, not here), and record it in the manifest."""
    import subprocess
    import tempfile

    from .registry import manifest, model_entry

    _, entry = model_entry(name)
    state = torch.load(WEIGHTS_DIR / entry["weights"], map_location="cpu", weights_only=True)
    enc = {k: v.numpy() for k, v in state["encoder"].items() if k.startswith("conv")}
    if not Path(tf_python).exists():
        raise FileNotFoundError(f"{tf_python} missing: create it per requirements-export.txt")
    out = WEIGHTS_DIR / f"{name}.int8.tflite"
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "w.npz", **enc)
        np.save(Path(tmp) / "crops.npy", crops)
        subprocess.run(
            [
                str(tf_python),
                "-m",
                "mcucoder.tflite_export",
                f"{tmp}/w.npz",
                f"{tmp}/crops.npy",
                str(out),
            ],
            check=True,
            cwd=Path(__file__).parent.parent,
        )
    manifest.cache_clear()
    data = json.loads(MANIFEST.read_text())
    data["models"][name]["tflite"] = out.name
    MANIFEST.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    manifest.cache_clear()
    return out
