"""Tasks of `genolake aggregate` are sized by (site, institution, stratum) cells, so a task's memory is bounded
whatever the number of strata: a `--by` column with a value per sample on a small lake is split into many tasks,
each within the cell budget, and the table is the same as with one task per contig. No timings: the budget is
checked on the plan, and the memory of the largest task (numpy allocations, traced) against an unsplit run.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_aggregate_support import data_path, key_dir, load_phenotypes_tsv, need_bcftools, sh, subset, write_phenotypes

BY = ["batch"]
BUDGET = 20_000  # cells per task in the split runs (the default is 1,000,000)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two institutions of 100 1000 Genomes samples (346 sites of chr20); `batch` has a value per sample, so
    there are 101 strata (with `all`) and 202 cells per site."""
    from genolake.ingest.pipeline import ingest

    need_bcftools()
    tmp = tmp_path_factory.mktemp("agg_memory")
    src = data_path("hail_sample_1kg_chr20_100s.vcf.gz")
    samples = sh("bcftools", "query", "-l", src).split()
    parts = {"north": samples[:60], "south": samples[60:]}
    with key_dir(tmp / "keys"):
        for name, ss in parts.items():
            vcf = subset(src, tmp / f"{name}.vcf.gz", ss)
            ingest(tmp / "lake", name, [vcf], build="GRCh37", workers=0)
            load_phenotypes_tsv(tmp / "lake", name, write_phenotypes(
                tmp / f"{name}.tsv", ss, {"batch": {s: f"b{samples.index(s):03d}" for s in ss}}))
        yield {"lake": tmp / "lake", "keys": tmp / "keys"}


def _plan(lake: Path, **kw: Any) -> Any:
    from genolake.compute.frequencies import plan
    from genolake.store import LakeStore

    return plan(LakeStore.open(lake), by=BY, **kw)


def _sites(lake: Path) -> pa.Table:
    from genolake.store import LakeStore

    v = LakeStore.open(lake).read_table("variants", columns=["contig", "pos", "ref", "alt"])
    return v.group_by(["contig", "pos", "ref", "alt"]).aggregate([])


def test_many_strata_split_into_tasks_within_the_cell_budget(lake: Any) -> None:
    with key_dir(lake["keys"]):
        p = _plan(lake["lake"], target_cells=BUDGET)
        one = _plan(lake["lake"])
    cells_per_site = len(p.institutions) * len(p.strata)
    assert len(p.strata) == 101
    sites = _sites(lake["lake"])
    assert sites.num_rows * cells_per_site > 3 * BUDGET  # the budget binds here
    assert len(one.tasks) == 1  # the default budget: one task for the whole contig
    assert len(p.tasks) > 3
    covered = 0
    for t in p.tasks:
        inside = pc.and_(pc.equal(sites["contig"], t.contig),
                         pc.and_(pc.greater_equal(sites["pos"], t.start), pc.less_equal(sites["pos"], t.end)))
        n = pc.sum(inside.cast(pa.int64())).as_py() or 0
        covered += n
        # ranges are cut at points spread evenly over each row group's positions: within 2x of the budget
        assert n * cells_per_site <= 2 * BUDGET, (t.start, t.end, n)
    assert covered == sites.num_rows


def test_split_tasks_give_the_same_table_with_less_memory(lake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from genolake.compute import frequencies
    from genolake.compute.aggregate import aggregate, read_frequencies

    with key_dir(lake["keys"]):
        aggregate(lake["lake"], by=BY, adj=True, workers=0)
        whole = read_frequencies(lake["lake"])
        monkeypatch.setattr(frequencies, "_TARGET_CELLS", BUDGET)
        aggregate(lake["lake"], by=BY, adj=True, workers=0)
        split = read_frequencies(lake["lake"])
    assert split.num_rows > 0
    assert split.equals(whole)

    def peak(**kw: Any) -> int:
        p = _plan(lake["lake"], adj=True, **kw)
        most = 0
        for t in p.tasks:
            tracemalloc.start()
            try:
                frequencies.count_part(t, p.groups)
                most = max(most, tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
        return most

    with key_dir(lake["keys"]):
        whole_peak = peak(target_cells=10**9)
        split_peak = peak(target_cells=BUDGET)
    assert split_peak * 3 < whole_peak, (split_peak, whole_peak)
