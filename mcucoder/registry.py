"""Which models this installation has: ``mcucoder/weights/manifest.json``. No torch import,
so the ingest process can check a packet's model_id cheaply."""

from __future__ import annotations

import json
import zlib
from functools import lru_cache
from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


@lru_cache(maxsize=1)
def manifest() -> dict:
    """``{"default": name, "models": {name: {"model_id", "weights", "tables", ...}}}``."""
    return json.loads(MANIFEST.read_text())


def model_entry(model: str | int | None = None) -> tuple[str, dict]:
    """Look a model up by name, by model_id, or (None) the default one."""
    m = manifest()
    models = m["models"]
    if model is None:
        model = m["default"]
    if isinstance(model, int) or (isinstance(model, str) and model.isdigit()):
        for name, entry in models.items():
            if entry["model_id"] == int(model):
                return name, entry
        raise KeyError(f"no model with model_id {model}")
    if model not in models:
        raise KeyError(f"unknown model {model!r}; known: {sorted(models)}")
    return model, models[model]


def known_model_ids() -> set[int]:
    return {int(e["model_id"]) for e in manifest()["models"].values()}


def default_model_id() -> int:
    return int(model_entry(None)[1]["model_id"])


def model_id_of(*files: Path) -> int:
    """CRC-32 over the weight and table files: changes whenever either does."""
    crc = 0
    for f in files:
        crc = zlib.crc32(Path(f).read_bytes(), crc)
    return crc
