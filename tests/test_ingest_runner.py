"""The default ingest runner: small inputs in this process (a cluster would take longer to start), and the
report and the CLI say which runner was chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import run_cli

from genolake.ingest import pipeline

NORTH = Path(__file__).parents[1] / "data" / "sample_vcfs" / "north.vcf.gz"


def test_small_input_runs_in_process_by_default(tmp_path: Path) -> None:
    report = pipeline.ingest(tmp_path / "lake", "north", [NORTH])
    assert report.runner == "in process"


def test_large_input_would_start_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold the default is a local cluster; checked by making the threshold tiny and the cluster
    path fail before it starts (no cluster is started by this test)."""
    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)

    def no_cluster(*_a: object, **_k: object) -> None:
        raise RuntimeError("cluster path taken")

    monkeypatch.setattr("genolake.compute.runner._run_on_dask", no_cluster)
    with pytest.raises(RuntimeError, match="cluster path taken"):
        pipeline.ingest(tmp_path / "lake", "north", [NORTH])


def test_cli_says_which_runner(tmp_path: Path) -> None:
    proc = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "north", str(NORTH))
    assert proc.returncode == 0, proc.stderr
    assert "in process" in proc.stderr
