"""The metrics server and the JSON log format, in this process."""

from __future__ import annotations

import json
import logging
import sys
import urllib.request

from observability import metrics
from observability.logs import JsonFormatter
from tests.support.processes import free_port


def test_serve_exposes_the_counters_of_this_process() -> None:
    port = free_port()
    assert metrics.serve(port, addr="127.0.0.1") == port
    metrics.REJECTED.labels("unit_test_reason").inc(3)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'strata_ingest_rejected_total{reason="unit_test_reason"} 3.0' in text
    assert "strata_ingest_lag_seconds_bucket" in text
    assert metrics.serve("", addr="127.0.0.1") is None  # unset: no server
    assert metrics.serve(port, addr="127.0.0.1") is None  # taken: a warning, not a crash


def test_json_lines_keep_the_message_extras_and_the_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("bad chunk")
    except ValueError:
        record = logging.getLogger("ingest").makeRecord(
            "ingest", logging.WARNING, __file__, 1, "rejected %s", ("cam-1",), sys.exc_info(),
            extra={"device": "cam-1", "count": 2},
        )  # fmt: skip
    entry = json.loads(formatter.format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "ingest"
    assert entry["msg"] == "rejected cam-1"
    assert entry["device"] == "cam-1" and entry["count"] == 2
    assert "ValueError: bad chunk" in entry["exc"]
    assert "\n" not in formatter.format(record)
