"""The Grafana dashboard and the Prometheus scrape configs name only metrics the code
exports, and the compose roles expose them on the ports the scrape config asks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from observability import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names() -> set[str]:
    """Every series name the code can export: counters and histograms as
    prometheus_client writes them, and the gauges the web collects at scrape time."""
    names: set[str] = set()
    for name in metrics.EXPORTED:
        names.add(name)
        names.update(name + s for s in HISTOGRAM_SUFFIXES)
    return names


def test_exported_lists_every_metric_defined() -> None:
    from prometheus_client import REGISTRY

    defined = {
        s.name
        for family in REGISTRY.collect()
        if family.name.startswith("strata_")
        for s in family.samples
        if not s.name.endswith("_created")
    }
    listed = exported_names()
    assert defined, "no strata_ metric registered"
    assert defined <= listed, defined - listed
    gauges = {metrics.DEVICES_ONLINE, metrics.QUEUE_LENGTH, metrics.ARCHIVE_LAYER_BYTES}
    assert gauges <= set(metrics.EXPORTED)


def test_every_dashboard_expression_names_an_exported_metric() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "strata.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 12
    used = {name for e in exprs for name in re.findall(r"\bstrata_[a-z_]+", e)}
    unknown = used - exported_names()
    assert not unknown, f"the dashboard names metrics the code does not export: {unknown}"
    # every area of the platform has a panel
    for part in ("ingest_frames", "rejected", "lag", "queue_length", "decode_seconds",
                 "devices_online", "control_decisions", "control_cycle", "layer_bytes"):  # fmt: skip
        assert any(part in name for name in used), part


def test_the_check_catches_a_misspelt_metric() -> None:
    assert "strata_ingest_frame_total" not in exported_names()


def test_compose_exposes_each_role_on_the_port_prometheus_scrapes() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "compose.yml").read_text())
    targets = {
        target
        for job in scrape["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for service in ("ingest-0", "ingest-1", "controller", "worker", "worker-live"):
        port = compose[service]["environment"]["STRATA_METRICS_PORT"]
        assert f"{service}:{port}" in targets, service
    assert "web:8000" in targets
    for service in ("worker", "worker-live"):  # one process each: no multiprocess folder
        assert "solo" in compose[service]["command"], service
