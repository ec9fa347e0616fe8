"""`genolake samples duplicates` and `aggregate --dedupe` on a seeded msprime cohort with planted duplicates
(10 people of institution A re-sent as institution C with `bcftools view -s`) and a planted parent-child pair
(a child in A of a mother in A and a father in B)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from samples_sim import child_of, simulate_haplotypes, subset, write_vcf

from genolake.compute.aggregate import aggregate, read_frequencies
from genolake.errors import UserInputError
from genolake.ingest.pipeline import ingest
from genolake.samples.duplicates import dosage_matrix, find_duplicates, king_robust
from genolake.store import LakeStore

N = 120
MOTHER, FATHER = 25, 60  # A-PAT025 and B-PAT060
A_NAMES = [f"A-PAT{i:03d}" for i in range(60)] + ["A-CHILD"]
B_NAMES = [f"B-PAT{i:03d}" for i in range(60, N)]
RESENT = A_NAMES[:10]
SAMPLE_VCFS = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dupcohort")
    pos, gts, alleles = simulate_haplotypes(N, seed=11)
    child = child_of(gts, MOTHER, FATHER, seed=12)
    a = np.concatenate([gts[:, :60], child[:, None, :]], axis=1)
    va = write_vcf(d / "a.vcf.gz", pos, alleles, a, A_NAMES, seed=1)
    vb = write_vcf(d / "b.vcf.gz", pos, alleles, gts[:, 60:], B_NAMES, seed=2)
    vc = subset(va, d / "c.vcf.gz", RESENT)
    return {"a": va, "b": vb, "c": vc, "dir": d}


@pytest.fixture(scope="module")
def lake(cohort: dict[str, Path]) -> Path:
    path = cohort["dir"] / "lake"
    for inst in ("a", "b", "c"):
        ingest(path, inst.upper(), [cohort[inst]], workers=0)
    return path


def _p(lake: Path, inst: str, name: str) -> tuple[str, str]:
    return inst, LakeStore.open(lake).pseudonymiser()(inst, name)


def _pairs(table, relationship: str) -> set[tuple[tuple[str, str], tuple[str, str]]]:  # type: ignore[no-untyped-def]
    return {((r["institution_1"], r["sample_1"]), (r["institution_2"], r["sample_2"]))
            for r in table.to_pylist() if r["relationship"] == relationship}


def test_planted_duplicates_found_exactly(lake: Path) -> None:
    rep = find_duplicates(lake)
    want = {(_p(lake, "A", n), _p(lake, "C", n)) for n in RESENT}
    assert _pairs(rep.pairs, "duplicate") == want  # the first of each pair: A, ingested first
    assert rep.pairs.num_rows == len(want)
    assert min(rep.pairs["kinship"].to_pylist()) > 0.49
    assert max(rep.pairs["discordance"].to_pylist()) < 0.01
    assert min(rep.pairs["sites"].to_pylist()) >= 500
    assert rep.people == 61 + 60 + 10


def test_parent_child_only_with_relatives(lake: Path) -> None:
    child = _p(lake, "A", "A-CHILD")
    without = find_duplicates(lake)
    assert not any(child in pair for pair in _pairs(without.pairs, "duplicate"))
    assert without.pairs.num_rows == 10
    rel = find_duplicates(lake, relatives=True)
    first = _pairs(rel.pairs, "first-degree")
    # the child with its mother (A) and its father (B), and nothing else among 131 unrelated-by-construction people
    assert {frozenset(p) for p in first} == {frozenset({_p(lake, "A", f"A-PAT{MOTHER:03d}"), child}),
                                             frozenset({child, _p(lake, "B", f"B-PAT{FATHER:03d}")})}
    assert (child, _p(lake, "B", f"B-PAT{FATHER:03d}")) in first  # A (ingested first) comes first
    pc_rows = [r for r in rel.pairs.to_pylist() if r["relationship"] == "first-degree"]
    for r in pc_rows:
        assert 0.2 < r["kinship"] < 0.3
        assert r["ibs0"] == 0  # a child shares an allele with each parent at every site
    assert _pairs(rel.pairs, "duplicate") == _pairs(without.pairs, "duplicate")


def test_unrelated_people_are_far_below_the_cut_offs(lake: Path) -> None:
    dm = dosage_matrix(lake)
    kin, _sites = king_robust(dm.dosage)
    planted = {_p(lake, "A", n) for n in RESENT} | {_p(lake, "C", n) for n in RESENT} | {_p(lake, "A", "A-CHILD")}
    people = list(zip(dm.people["institution"].to_pylist(), dm.people["sample_id"].to_pylist(), strict=True))
    free = np.array([p not in planted for p in people])
    sub = kin[np.ix_(free, free)]
    iu = np.triu_indices(sub.shape[0], k=1)
    assert np.nanmax(sub[iu]) < 0.1
    assert abs(float(np.nanmean(sub[iu]))) < 0.02


def _vcf_dosages(path: Path) -> dict[tuple[str, int], np.ndarray]:
    """(contig, pos) -> dosage per sample (-1 missing), read from the VCF text (no genolake code)."""
    out = {}
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            d = [-1 if "." in g else g.count("1") for g in f[9:]]
            out[(f[0], int(f[1]))] = np.array(d)
    return out


def test_kinship_equals_king_formula_counted_from_the_vcf_text(lake: Path, cohort: dict[str, Path]) -> None:
    """KING-robust: (N_hethet - 2 N_ibs0) / (het_i + het_j) on jointly called sites, counted pair by pair."""
    dm = dosage_matrix(lake)
    kin, sites = king_robust(dm.dosage)
    va, vb = _vcf_dosages(cohort["a"]), _vcf_dosages(cohort["b"])
    keys = [(c.removeprefix("chr"), p) for c, p in zip(dm.sites["contig"].to_pylist(),
                                                        dm.sites["pos"].to_pylist(), strict=True)]
    index = {p: k for k, p in enumerate(zip(dm.people["institution"].to_pylist(),
                                             dm.people["sample_id"].to_pylist(), strict=True))}
    checks = [(("A", "A-PAT025"), ("A", "A-CHILD")), (("A", "A-CHILD"), ("B", "B-PAT060")),
              (("A", "A-PAT001"), ("B", "B-PAT077")), (("A", "A-PAT003"), ("A", "A-PAT040"))]
    for (ia, na), (ib, nb) in checks:
        ga = np.array([(va if ia == "A" else vb)[k][(A_NAMES if ia == "A" else B_NAMES).index(na)] for k in keys])
        gb = np.array([(va if ib == "A" else vb)[k][(A_NAMES if ib == "A" else B_NAMES).index(nb)] for k in keys])
        both = (ga >= 0) & (gb >= 0)
        hethet = int(((ga == 1) & (gb == 1) & both).sum())
        ibs0 = int((np.abs(ga - gb) == 2)[both].sum())
        het = int(((ga == 1) & both).sum() + ((gb == 1) & both).sum())
        i, j = index[_p(lake, ia, na)], index[_p(lake, ib, nb)]
        assert sites[i, j] == int(both.sum())
        assert kin[i, j] == pytest.approx((hethet - 2 * ibs0) / het, abs=1e-6)  # float32


def test_cli_formats_show_pseudonyms_never_raw_ids(lake: Path) -> None:
    for fmt in ("json", "tsv", "csv", "table"):
        out = subprocess.run([sys.executable, "-m", "genolake", "samples", "duplicates", "--lake", str(lake),
                              "--relatives", "--format", fmt], capture_output=True, text=True, check=True)
        assert "PAT" not in out.stdout and "PAT" not in out.stderr and "CHILD" not in out.stdout
        assert "duplicate" in out.stdout
    assert "10 duplicate pair(s)" in out.stderr


def test_too_few_sites_is_one_line_and_exit_2(lake: Path) -> None:
    with pytest.raises(UserInputError, match="lower --min-sites"):
        find_duplicates(lake, min_sites=10**6, max_sites=100)
    out = subprocess.run([sys.executable, "-m", "genolake", "samples", "duplicates", "--lake", str(lake),
                          "--min-sites", "1000000", "--max-sites", "100"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "lower --min-sites" in out.stderr


def test_aggregate_dedupe_equals_the_lake_without_the_copies(lake: Path, cohort: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """With --dedupe, joint counts equal those of a lake that never had institution C (all its people are
    copies of A's, and A was ingested first)."""
    rep = aggregate(lake, workers=0, dedupe=True)
    assert (rep.deduplicated, rep.dropped, rep.duplicate_groups) == (True, 10, 10)
    runs = LakeStore.open(lake).read_table("aggregate_runs").to_pylist()
    assert len(runs) == 1 and runs[0]["deduplicated"] and runs[0]["dropped"] == 10
    got = read_frequencies(lake)
    ref_lake = tmp_path / "ab"
    ingest(ref_lake, "A", [cohort["a"]], workers=0)
    ingest(ref_lake, "B", [cohort["b"]], workers=0)
    aggregate(ref_lake, workers=0)
    want = read_frequencies(ref_lake)
    cols = ["contig", "pos", "ref", "alt", "stratum", "ac", "an", "nhomalt", "nhemi", "n_called"]
    for scope in ("joint", "A", "B"):
        g = got.filter(pc.equal(got["scope"], scope)).select(cols)
        w = want.filter(pc.equal(want["scope"], scope)).select(cols)
        assert g.equals(w), scope
    c = got.filter(pc.equal(got["scope"], "C"))
    assert pc.max(c["an"]).as_py() == 0
    # without --dedupe the copies count twice, and the run says it was not deduplicated
    aggregate(lake, workers=0)
    plain = read_frequencies(lake)
    assert pc.sum(plain.filter(pc.equal(plain["scope"], "joint"))["an"]).as_py() > \
        pc.sum(got.filter(pc.equal(got["scope"], "joint"))["an"]).as_py()
    assert LakeStore.open(lake).read_table("aggregate_runs").to_pylist()[0]["deduplicated"] is False


def test_real_people_of_a_short_region_are_not_duplicates(tmp_path: Path) -> None:
    """Regression: on 0.6 Mb of real 1000 Genomes chr20 (data/sample_vcfs) linkage disequilibrium lifted the
    kinship of unrelated people above 0.354 (discordance 11-23%); a duplicate must also have near-identical
    genotypes. Five of north's people re-sent as `west` are found, and nothing else."""
    north = SAMPLE_VCFS / "north.vcf.gz"
    names = subprocess.run(["bcftools", "query", "-l", str(north)], capture_output=True, text=True,
                           check=True).stdout.split()[:5]
    west = subset(north, tmp_path / "west.vcf.gz", names)
    lake = tmp_path / "lake"
    ingest(lake, "north", [north], workers=0)
    ingest(lake, "south", [SAMPLE_VCFS / "south.vcf"], workers=0, absent_as_ref=True)
    ingest(lake, "east", [SAMPLE_VCFS / "east.bcf"], workers=0)
    assert find_duplicates(lake).pairs.num_rows == 0
    ingest(lake, "west", [west], workers=0)
    rep = find_duplicates(lake)
    assert _pairs(rep.pairs, "duplicate") == {(_p(lake, "north", n), _p(lake, "west", n)) for n in names}
    assert rep.warnings and "span only" in rep.warnings[0]


@pytest.mark.hail
def test_hail_engine_dedupes_as_the_dask_engine(lake: Path) -> None:
    """`aggregate --dedupe --engine hail` drops the same copies and gives the Dask engine's table row for row."""
    pytest.importorskip("hail")
    dask_rep = aggregate(lake, workers=0, dedupe=True)
    want = read_frequencies(lake)
    hail_rep = aggregate(lake, engine="hail", dedupe=True)
    got = read_frequencies(lake)
    assert (hail_rep.dropped, hail_rep.duplicate_groups) == (dask_rep.dropped, dask_rep.duplicate_groups) == (10, 10)
    assert got.equals(want)
