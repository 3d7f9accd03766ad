"""Retention that understands layers: what the archive holds, by table and by layer band.

Layers are ordered by importance, so an old frame can give up its upper layers (keep the
first k: still decodable at k) long before it goes as a whole.
"""

from __future__ import annotations

from django.db import connection

from archive.models import DecodedImage, Export, Frame, Layer

# Layer bands (by layer index, 0 first): what a frame decodes at if it keeps that much.
BANDS: tuple[tuple[str, int, int], ...] = (("k1-3", 0, 3), ("k4-6", 3, 6), ("k7-12", 6, 12))
EXACT_SCAN_BYTES = 64 << 20  # below this the layer table is summed exactly, above sampled


def _band_case() -> str:
    whens = " ".join(f"when index < {hi} then '{name}'" for name, _, hi in BANDS)
    return f"case {whens} else '{BANDS[-1][0]}' end"


def table_bytes() -> dict[str, int]:
    """Bytes on disk of each archive table, with its indexes, TOAST and partitions
    (PostgreSQL); elsewhere the bytes of the stored values."""
    tables = {
        "frame": Frame._meta.db_table,
        "layer": Layer._meta.db_table,
        "decoded": DecodedImage._meta.db_table,
        "export": Export._meta.db_table,
    }
    out = {}
    with connection.cursor() as cursor:
        for name, table in tables.items():
            if connection.vendor == "postgresql":
                cursor.execute(
                    "select coalesce(sum(pg_total_relation_size(relid)), 0) "
                    "from pg_partition_tree(%s::regclass)",
                    [table],
                )
            else:
                column = {"layer": "data", "decoded": "image", "export": "video"}.get(name)
                size = f"sum(length({column}))" if column else "count(*) * 64"
                cursor.execute(f'select coalesce({size}, 0) from "{table}"')
            out[name] = int(cursor.fetchone()[0])
    return out


def layer_bytes_by_band(total_layer_bytes: int | None = None) -> dict[str, int]:
    """On-disk bytes of the layer table split by band. A table over ``EXACT_SCAN_BYTES`` is
    sampled (``TABLESAMPLE SYSTEM``, about 16 MB of pages) and its total split in the
    sample's proportions, so a scrape never reads the whole archive."""
    table = Layer._meta.db_table
    total = table_bytes()["layer"] if total_layer_bytes is None else total_layer_bytes
    length = "octet_length(data)" if connection.vendor == "postgresql" else "length(data)"
    sample = ""
    if connection.vendor == "postgresql" and total > EXACT_SCAN_BYTES:
        sample = f" tablesample system ({max(0.01, 100 * (16 << 20) / total):.4f})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"select {_band_case()} as band, coalesce(sum({length}), 0) "
            f'from "{table}"{sample} group by band'
        )
        raw = {band: int(size) for band, size in cursor.fetchall()}
    measured = sum(raw.values())
    if not measured:
        return {name: 0 for name, _, _ in BANDS}
    return {name: round(total * raw.get(name, 0) / measured) for name, _, _ in BANDS}
