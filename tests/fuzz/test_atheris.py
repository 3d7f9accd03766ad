"""The coverage-guided fuzzers (``atheris_targets.py``) run for a few seconds each, from the
committed corpus, in real child processes: any crash or unstorable accepted value fails."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

CORPUS = Path(__file__).parent / "corpus"
SECONDS = 4


@pytest.mark.parametrize("target", ["frame", "payloads"])
def test_fuzz_target_runs_clean(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / target  # libFuzzer adds what it finds: keep the committed one as is
    shutil.copytree(CORPUS / target, corpus)
    run = subprocess.run(
        [
            sys.executable, "-m", "tests.fuzz.atheris_targets", target, str(corpus),
            f"-max_total_time={SECONDS}", "-rss_limit_mb=2048", "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",  # a crashing input lands here, not in the tree
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    runs = int(re.search(r"Done (\d+) runs", output).group(1))
    assert runs > 1000, output[-2000:]  # it really fuzzed, not just loaded the corpus
    assert len(list(corpus.iterdir())) > len(list((CORPUS / target).iterdir()))  # new coverage
