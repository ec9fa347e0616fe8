"""Every person counted once, whatever layout an institution ships (issue: one VCF per chromosome was doubled).

Oracles:
- a brute-force counter over the VCF text (tests/layouts.py) on a three-contig cohort with haploid chrX males,
  a multi-allelic record every 40 records, missing calls, and the three absent-site modes;
- a property test (hypothesis): random layouts per institution (split by contig, by sample batch, both) and
  random absent-site modes give exactly the ``allele_frequencies`` (Dask engine, ``--by sex --adj``) and query
  answers of the unsplit files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import layouts
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layouts import CONTIGS, Layout

import genolake
from genolake.compute.aggregate import aggregate, read_frequencies
from genolake.errors import GenolakeError
from genolake.ingest.pipeline import ingest
from genolake.phenotypes import load_phenotypes

INSTITUTIONS = {"north": slice(0, 40), "south": slice(40, 70), "east": slice(70, 100)}
BED = [("20", 10_000_000, 14_000_000), ("21", 15_000_000, 16_500_000), ("X", 16_000_000, 17_000_000)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cohort, each institution's unsplit files (all sites / variant sites only), phenotypes, a BED."""
    d = tmp_path_factory.mktemp("layouts")
    cohort = layouts.make_cohort(d / "cohort.vcf.gz")
    samples = layouts.run("bcftools", "query", "-l", cohort).split()
    sexes = layouts.panel_sex()
    files: dict[tuple[str, bool], Path] = {}
    pheno: dict[str, Path] = {}
    for inst, sl in INSTITUTIONS.items():
        mine = samples[sl]
        for only in (False, True):
            files[(inst, only)] = layouts.institution_file(
                cohort, mine, d / f"{inst}{'_c1' if only else ''}.vcf.gz", variant_sites_only=only)
        p = d / f"{inst}.phenotypes.tsv"
        p.write_text("sample_id\tsex\n" + "".join(f"{s}\t{sexes.get(s, '')}\n" for s in mine))
        pheno[inst] = p
    bed = d / "callable.bed"
    bed.write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in BED))
    return {"dir": d, "cohort": cohort, "files": files, "pheno": pheno, "bed": bed}


@pytest.fixture(scope="module")
def shared_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key file for every lake of this module, so that pseudonyms agree between lakes."""
    return tmp_path_factory.mktemp("key") / "layouts.key"


def _build(lake: Path, world: dict, plan: dict[str, tuple[list[Path], str]]) -> Path:
    """Ingest each institution's files (one command per institution) with its absent-site mode, load sexes."""
    for inst, (paths, mode) in plan.items():
        ingest(lake, inst, paths, absent_as_ref=mode == "ref",
               callable_regions=world["bed"] if mode == "callable" else None, workers=0)
        load_phenotypes(lake, inst, world["pheno"][inst])
    return lake


def _answers(lake: Path, sites: list[str]) -> dict:
    """What a user can ask: per-site frequencies before and after aggregate, regions, carriers, association
    (Fisher's exact test of males against females per contig)."""
    out: dict = {}
    with genolake.open(lake) as lk:
        out["variant_lake"] = [lk.variant(s) for s in sites]
        out["region_lake"] = sorted(map(str, lk.region("20:1-63025520").to_pylist()))
        out["carriers"] = [sorted(map(str, lk.carriers(s).to_pylist())) for s in sites]
        out["assoc"] = [sorted(map(str, lk.assoc("sex", case="male", region=f"{c}:1-{layouts.LENGTHS[c]}",
                                                 min_ac=1).to_pylist())) for c in CONTIGS]
        out["sex_counts"] = lk.sql("SELECT institution, sex, count(*) FROM phenotypes GROUP BY ALL ORDER BY ALL"
                                   ).to_pylist()
    aggregate(lake, by=["sex"], adj=True, workers=0)
    out["frequencies"] = read_frequencies(lake).to_pylist()
    with genolake.open(lake) as lk:
        out["variant_agg"] = [lk.variant(s) for s in sites]
        out["region_agg"] = sorted(map(str, lk.region("X:1-155270560").to_pylist()))
    return out


def _site_ids(world: dict) -> list[str]:
    """A few real sites of each contig (the first records of 21 and X, and a multi-allelic one)."""
    recs = layouts.run("bcftools", "query", "-f", "%CHROM-%POS-%REF-%ALT\n", world["cohort"]).split()
    by = {c: [r for r in recs if r.startswith(c + "-")] for c in CONTIGS}
    multi = [r for r in recs if "," in r.split("-")[-1]]
    picks = [by["20"][0], by["20"][70], by["21"][5], by["X"][0], by["X"][50]]
    for m in multi[:2]:
        c, p, r, a = m.split("-")
        picks += [f"{c}-{p}-{r}-{x}" for x in a.split(",")]
    return picks


# ---------------------------------------------------------------------------------------------- oracle
@pytest.mark.parametrize("modes", [
    {"north": "no_call", "south": "ref", "east": "callable"},
    {"north": "ref", "south": "no_call", "east": "ref"},
])
def test_frequencies_equal_brute_force_count(world: dict, tmp_path: Path, shared_key: Path,
                                             monkeypatch: pytest.MonkeyPatch, modes: dict[str, str]) -> None:
    """allele_frequencies (joint and per institution) equal a count over the VCF text, split by contig."""
    monkeypatch.setenv("GENOLAKE_KEY_FILE", str(shared_key))
    unsplit = {i: world["files"][(i, i != "north")] for i in INSTITUTIONS}
    plan = {}
    for inst, path in unsplit.items():
        files = layouts.split(path, Layout([["20"], ["21", "X"]], batches=1), tmp_path)
        plan[inst] = (files, modes[inst])
    lake = _build(tmp_path / "lake", world, plan)
    aggregate(lake, workers=0)
    got = {((r["contig"], r["pos"], r["ref"], r["alt"]), r["scope"]): (r["ac"], r["an"], r["nhomalt"], r["nhemi"])
           for r in read_frequencies(lake).to_pylist() if r["stratum"] == "all"}
    bed = {i: BED for i in INSTITUTIONS if modes[i] == "callable"}
    want = layouts.brute_frequencies(unsplit, modes, bed)
    assert got == want
    # hemizygous calls exist and were counted once per male
    assert any(v[3] > 0 for (k, s), v in want.items() if s == "joint" and k[0] == "X")
    # the variants view agrees with the per-institution rows where the file lists the site
    with genolake.open(lake) as lk:
        rows = lk.sql("SELECT contig, pos, ref, alt, institution, sum(ac), sum(an), sum(nhomalt), sum(nhemi) "
                      "FROM variants GROUP BY ALL").to_pylist()
    for r in rows:
        vals = list(r.values())
        assert want[((vals[0], vals[1], vals[2], vals[3]), vals[4])] == tuple(vals[5:])


def test_issue_reproduction_sums_match(world: dict, tmp_path: Path) -> None:
    """The issue's reproduction: north split into two contig files; variants and joint frequencies agree."""
    files = layouts.split(world["files"][("north", False)], Layout([["20"], ["21"], ["X"]], batches=1), tmp_path)
    assert len(files) == 3
    lake = tmp_path / "lake"
    ingest(lake, "north", files, workers=0)
    aggregate(lake, workers=0)
    with genolake.open(lake) as lk:
        v = lk.sql("SELECT contig, sum(ac), sum(an) FROM variants GROUP BY 1 ORDER BY 1").to_pylist()
        f = lk.sql("SELECT contig, sum(ac), sum(an) FROM allele_frequencies WHERE scope = 'joint' "
                   "AND stratum = 'all' GROUP BY 1 ORDER BY 1").to_pylist()
        samples = lk.info()["samples"]
    assert [tuple(r.values()) for r in v] == [tuple(r.values()) for r in f]
    assert samples == 40


def test_same_sample_same_contig_in_two_files_refused(world: dict, tmp_path: Path) -> None:
    """The same person's genotypes on one contig in two files of an institution: refused in one command and
    over two commands, and the lake is left as it was."""
    whole = world["files"][("north", False)]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = layouts.split(whole, Layout([["20", "21"]], batches=1), tmp_path / "a")
    b = layouts.split(whole, Layout([["21", "X"]], batches=1), tmp_path / "b")
    lake = tmp_path / "lake"
    with pytest.raises(GenolakeError, match=r"counted twice"):
        ingest(lake, "north", [*a, *b], workers=0)
    ingest(lake, "north", a, workers=0)
    before = sorted(p.relative_to(lake) for p in lake.rglob("*") if p.is_file() and "_lock" not in p.name)
    with pytest.raises(GenolakeError, match="already in the lake"):
        ingest(lake, "north", b, workers=0)
    after = sorted(p.relative_to(lake) for p in lake.rglob("*") if p.is_file() and "_lock" not in p.name)
    assert before == after


# ---------------------------------------------------------------------------------------------- property
@st.composite
def plans(draw: st.DrawFn) -> dict[str, tuple[Layout, str, bool]]:
    out = {}
    for inst in INSTITUTIONS:
        cut = draw(st.permutations(CONTIGS))
        k = draw(st.integers(1, 3))
        groups = [list(cut[i::k]) for i in range(k)]
        groups = [g for g in groups if g]
        batches = draw(st.integers(1, 3))
        mode = draw(st.sampled_from(["no_call", "ref", "callable"]))
        only = draw(st.booleans())
        out[inst] = (Layout(groups, batches), mode, only)
    return out


_UNSPLIT_CACHE: dict[tuple, dict] = {}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans())
def test_any_layout_gives_the_unsplit_answers(world: dict, tmp_path_factory: pytest.TempPathFactory,
                                             shared_key: Path, plan: dict[str, tuple[Layout, str, bool]]) -> None:
    """Random layouts per institution (by contig, by sample batch, both; random absent-site modes and site lists)
    answer every question exactly as the unsplit files do: allele_frequencies with strata and adj, variant
    reports before and after aggregate, regions, carriers with their pseudonyms."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENOLAKE_KEY_FILE", str(shared_key))
    try:
        sites = _site_ids(world)
        key = tuple((i, m, o) for i, (_l, m, o) in sorted(plan.items()))
        if key not in _UNSPLIT_CACHE:
            d = tmp_path_factory.mktemp("unsplit")
            base = {i: ([world["files"][(i, o)]], m) for i, (_l, m, o) in plan.items()}
            _UNSPLIT_CACHE[key] = _answers(_build(d / "lake", world, base), sites)
        want = _UNSPLIT_CACHE[key]
        d = tmp_path_factory.mktemp("split")
        split_plan = {}
        for inst, (layout, mode, only) in plan.items():
            files = layouts.split(world["files"][(inst, only)], layout, d)
            split_plan[inst] = (files, mode)
        got = _answers(_build(d / "lake", world, split_plan), sites)
        for part in want:
            assert got[part] == want[part], part
        shutil.rmtree(d, ignore_errors=True)
    finally:
        mp.undo()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans())
def test_any_layout_gives_the_unsplit_answers_many(world: dict, tmp_path_factory: pytest.TempPathFactory,
                                                  shared_key: Path, plan: dict) -> None:
    test_any_layout_gives_the_unsplit_answers.hypothesis.inner_test(world, tmp_path_factory, shared_key, plan)


# ---------------------------------------------------------------------------------------------- group counts
@pytest.fixture(scope="module")
def split_lake(world: dict, tmp_path_factory: pytest.TempPathFactory, shared_key: Path) -> Path:
    """Each institution in two contig groups x two sample batches; north variant sites only inside its callable
    regions, south absent-as-ref, east variant sites only and no fill."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GENOLAKE_KEY_FILE", str(shared_key))
    d = tmp_path_factory.mktemp("split_lake")
    try:
        plan = {}
        for inst, mode, only in (("north", "callable", True), ("south", "ref", False), ("east", "no_call", True)):
            (d / inst).mkdir()
            plan[inst] = (layouts.split(world["files"][(inst, only)], Layout([["20"], ["21", "X"]], batches=2),
                                        d / inst), mode)
        return _build(d / "lake", world, plan)
    finally:
        mp.undo()


_GROUPS = [
    "SELECT DISTINCT institution, sample_id, sex AS g FROM phenotypes WHERE sex IS NOT NULL",
    # everyone twice: by sex and in one group of all (a person in two groups counts in each)
    "SELECT DISTINCT institution, sample_id, sex AS g FROM phenotypes WHERE sex IS NOT NULL "
    "UNION ALL SELECT DISTINCT institution, sample_id, 'everyone' AS g FROM phenotypes",
    # one group named `all`, as the regressions' people counts name theirs
    "SELECT DISTINCT institution, sample_id, 'all' AS g FROM phenotypes",
]


@pytest.mark.parametrize("institution", [None, "north", "south", "east"])
def test_numpy_group_counts_equal_the_sql_counts(split_lake: Path, shared_key: Path, institution: str | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The group counts behind assoc, region strata, regressions and annotate-vcf (numpy, the aggregate job's
    counter) equal the SQL form's over the ``calls`` view, row for row: whole lake, a contig, a window of chrX
    (haploid males), per institution, on files split by contig and sample batch with every absent-site mode."""
    from genolake.query.counts import group_counts, group_ctes_sql, joint_ctes
    from genolake.query.ids import Region

    monkeypatch.setenv("GENOLAKE_KEY_FILE", str(shared_key))
    with genolake.open(split_lake) as lk:
        eng = lk.engine
        for grp in _GROUPS:
            for region in (None, Region("20", 1, layouts.LENGTHS["20"]), Region("X", 16_500_000, 60_000_000)):
                params: dict = {}
                ctes = joint_ctes(eng, region, institution, params) + "," + group_ctes_sql(
                    eng, region, institution, grp, params)
                want = sorted(eng.rows(f"WITH {ctes} SELECT * FROM gcounts", params))
                got = group_counts(eng, region, institution, grp, {})
                rows = sorted(zip(*(got.column(c).to_pylist() for c in got.column_names), strict=True))
                assert rows == want, (grp, region)
                assert any(r[11] > 0 for r in want) or region is None or region.contig != "X"  # hemizygous


def test_assoc_same_by_numpy_and_sql(split_lake: Path, shared_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lake.assoc answers the same whichever form made its group counts."""
    import genolake.query.counts as counts

    monkeypatch.setenv("GENOLAKE_KEY_FILE", str(shared_key))
    with genolake.open(split_lake) as lk:
        fast = [lk.assoc("sex", case="male", region=r, min_ac=1).to_pylist() for r in ("20:1-63025520", "X")]
    monkeypatch.setattr(counts, "group_counts", lambda *a, **k: None)
    with genolake.open(split_lake) as lk:
        slow = [lk.assoc("sex", case="male", region=r, min_ac=1).to_pylist() for r in ("20:1-63025520", "X")]
    assert fast == slow and all(fast)
