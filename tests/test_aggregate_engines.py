"""The Dask engine on a real multi-process cluster equals ``--workers 0``, row for row; any partitioning gives the same
table; a run after one more ingested file equals a full run on a fresh lake; a file committed during the job
aborts it without touching the table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_aggregate_support import (
    data_path,
    key_dir,
    load_phenotypes_tsv,
    need_bcftools,
    panel,
    panel_id,
    sh,
    subset,
    write_phenotypes,
)

BY = ["super_population", "sex"]


def _make_files(tmp: Path) -> dict[str, Any]:
    src = data_path("hail_sample_1kg_chr20_100s.vcf.gz")
    samples = sh("bcftools", "query", "-l", src).split()
    pan = panel()
    strata = {col: {s: pan[panel_id(s)][col] for s in samples if panel_id(s) in pan} for col in BY}
    (tmp / "east.bed").write_text("20\t10000000\t13000000\n20\t15000000\t16500000\n")
    parts = {"north": samples[:40], "south": samples[40:70], "east": samples[70:]}
    vcfs = {name: subset(src, tmp / f"{name}.vcf.gz", ss, min_ac=1) for name, ss in parts.items()}
    return {"parts": parts, "vcfs": vcfs, "strata": strata, "bed": tmp / "east.bed"}


def _ingest(lake: Path, files: dict[str, Any], name: str, tmp: Path) -> None:
    from genolake.ingest.pipeline import ingest

    ingest(lake, name, [files["vcfs"][name]], build="GRCh37", workers=0, absent_as_ref=name == "south",
           callable_regions=files["bed"] if name == "east" else None)
    ss = files["parts"][name]
    load_phenotypes_tsv(lake, name, write_phenotypes(tmp / f"{name}.tsv", ss,
                                                     {k: {s: v.get(s) for s in ss} for k, v in files["strata"].items()}))


@pytest.fixture(scope="module")
def lake3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    need_bcftools()
    tmp = tmp_path_factory.mktemp("agg_engines")
    with key_dir(tmp / "keys"):
        files = _make_files(tmp)
        lake = tmp / "lake"
        for name in ("north", "south", "east"):
            _ingest(lake, files, name, tmp)
        yield {"lake": lake, "tmp": tmp, "files": files}


def _run(lake: Path, **kw: Any) -> pa.Table:
    from genolake.compute.aggregate import aggregate, read_frequencies

    aggregate(lake, by=BY, faf_groups=["super_population"], adj=True, **kw)
    return read_frequencies(lake)


@pytest.fixture(scope="module")
def in_process(lake3: Any) -> pa.Table:
    with key_dir(lake3["tmp"] / "keys"):
        return _run(lake3["lake"], workers=0)


@pytest.mark.parametrize("rows", [300, 3000])
def test_partitioning_does_not_change_the_table(lake3: Any, in_process: pa.Table, rows: int) -> None:
    from genolake.compute.frequencies import plan
    from genolake.store import LakeStore

    with key_dir(lake3["tmp"] / "keys"):
        parts = len(plan(LakeStore.open(lake3["lake"]), by=BY, target_rows=rows).tasks)
        assert parts > 1
        got = _run(lake3["lake"], workers=0, partition_rows=rows)
    assert got.equals(in_process)


@pytest.mark.cluster
def test_dask_cluster_equals_in_process(lake3: Any, in_process: pa.Table) -> None:
    with key_dir(lake3["tmp"] / "keys"):
        got = _run(lake3["lake"], workers=2, partition_rows=2000)
    assert got.num_rows == in_process.num_rows
    assert got.equals(in_process)


@pytest.mark.cluster
def test_existing_scheduler(lake3: Any, in_process: pa.Table) -> None:
    """``--scheduler ADDRESS`` runs the same job on a cluster started elsewhere (here a LocalCluster)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            key_dir(lake3["tmp"] / "keys"):
        got = _run(lake3["lake"], scheduler=cluster.scheduler_address, partition_rows=2000)
    assert got.equals(in_process)


def test_rerun_after_one_more_file_equals_a_full_run(lake3: Any, in_process: pa.Table, tmp_path: Path) -> None:
    with key_dir(tmp_path / "keys"):
        lake = tmp_path / "lake"
        files = lake3["files"]
        _ingest(lake, files, "north", tmp_path)
        _ingest(lake, files, "south", tmp_path)
        first = _run(lake, workers=0)
        _ingest(lake, files, "east", tmp_path)
        again = _run(lake, workers=0)
    assert not first.equals(again)
    assert again.equals(in_process)  # the three-file lake built in another order, with another key


def test_a_commit_during_the_job_aborts_it(lake3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genolake.compute import aggregate as agg
    from genolake.compute import frequencies as fq
    from genolake.errors import LakeStateError

    with key_dir(tmp_path / "keys"):
        lake = tmp_path / "lake"
        files = lake3["files"]
        _ingest(lake, files, "north", tmp_path)
        before = _run(lake, workers=0)
        real = fq._execute

        def racing(*args: Any, **kw: Any) -> Any:
            out = real(*args, **kw)
            _ingest(lake, files, "south", tmp_path)  # another job commits while this one computes
            return out

        monkeypatch.setattr(fq, "_execute", racing)
        with pytest.raises(LakeStateError, match="ingested or replaced while aggregating; nothing was committed"):
            agg.aggregate(lake, by=BY, faf_groups=["super_population"], adj=True, workers=0)
        assert agg.read_frequencies(lake).equals(before)


def test_cli_error_exit_code(lake3: Any) -> None:
    env = {"GENOLAKE_KEY_DIR": str(lake3["tmp"] / "keys"), "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    proc = subprocess.run([sys.executable, "-m", "genolake", "aggregate", "--lake", str(lake3["lake"]), "--by",
                           "ancestry", "--workers", "0"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 2
    assert "genolake: error: --by ancestry: no phenotype column 'ancestry'; the phenotype columns are: " \
           "sex, super_population" in proc.stderr
