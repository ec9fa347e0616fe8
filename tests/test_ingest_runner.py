"""The default ingest runner: small inputs, and inputs that make one task (no index), in this process; larger
indexed ones on a local process pool; the report and the CLI say which runner was chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import run_cli

from genolake.ingest import pipeline

NORTH = Path(__file__).parents[1] / "data" / "sample_vcfs" / "north.vcf.gz"


def test_small_input_runs_in_process_by_default(tmp_path: Path) -> None:
    report = pipeline.ingest(tmp_path / "lake", "north", [NORTH])
    assert report.runner == "in process"


def test_large_input_would_start_a_process_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold an indexed input is cut into region tasks for a local process pool (not a Dask
    cluster); checked by making the threshold tiny and the pool path fail before it starts."""
    import genolake.ingest.plan as plan

    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)
    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)  # several regions in the 600 kb sample file

    def no_pool(*_a: object, **_k: object) -> None:
        raise RuntimeError("pool path taken")

    def no_cluster(*_a: object, **_k: object) -> None:
        raise AssertionError("a Dask cluster was started")

    monkeypatch.setattr("genolake.compute.runner._run_on_pool", no_pool)
    monkeypatch.setattr("genolake.compute.runner._run_on_dask", no_cluster)
    with pytest.raises(RuntimeError, match="pool path taken"):
        pipeline.ingest(tmp_path / "lake", "north", [NORTH])


def test_large_input_of_one_task_runs_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file without an index cannot be cut into regions: one task, so no worker process is started."""
    import shutil

    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)
    plain = tmp_path / "north.vcf.gz"
    shutil.copy(NORTH, plain)  # without its .tbi

    def no_workers(*_a: object, **_k: object) -> None:
        raise AssertionError("worker processes were started")

    monkeypatch.setattr("genolake.compute.runner._run_on_pool", no_workers)
    monkeypatch.setattr("genolake.compute.runner._run_on_dask", no_workers)
    report = pipeline.ingest(tmp_path / "lake", "north", [plain])
    assert report.runner == "in process"


def test_process_pool_runs_region_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default on a (made) large indexed input: a real local pool of worker processes, named in the report."""
    import genolake.ingest.plan as plan

    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)
    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)
    report = pipeline.ingest(tmp_path / "lake", "north", [NORTH])
    assert report.runner.startswith("local pool of ") and report.runner.endswith(" worker processes"), report.runner
    assert report.files[0].status == "ingested" and report.files[0].n_records > 0


def test_cli_says_which_runner(tmp_path: Path) -> None:
    proc = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "north", str(NORTH))
    assert proc.returncode == 0, proc.stderr
    assert "in process" in proc.stderr
