"""Frequencies from the lake equal `bcftools merge` + `bcftools +fill-tags` (the oracle from outside).

The oracle merges the three institutions' files, filling absent sites with 0/0 exactly where the lake counts
them (south: --absent-as-ref everywhere; east: --callable-regions inside its BED; north: never), so joint,
per-institution (`-S` institution groups) and phenotype-stratified (`-S` phenotype groups) counts must agree
at every site.
"""

from __future__ import annotations

from typing import Any

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake, fill_tags

Key = tuple[str, int, str, str]


@pytest.fixture(scope="module")
def oracle_joint(sample_lake: SampleLake) -> dict[Key, dict[str, int]]:
    assert sample_lake.oracle is not None
    return fill_tags(sample_lake.oracle, None, sample_lake.tmp)


@pytest.fixture(scope="module")
def oracle_inst(sample_lake: SampleLake) -> dict[Key, dict[str, int]]:
    assert sample_lake.oracle is not None
    groups = {s: inst for inst, ss in sample_lake.institutions.items() for s in ss}
    return fill_tags(sample_lake.oracle, groups, sample_lake.tmp, "inst")


def _lake_region(lk: Any) -> dict[Key, dict[str, Any]]:
    return {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in lk.region("chr20").to_pylist()}


def test_region_joint_equals_bcftools(opened: Any, oracle_joint: dict[Key, dict[str, int]]) -> None:
    got = _lake_region(opened)
    assert set(got) == set(oracle_joint)
    for key, o in oracle_joint.items():
        g = got[key]
        assert (g["ac"], g["an"]) == (o["AC"], o["AN"]), key
        assert g["nhomalt"] * 2 == o["AC_Hom"], key
        assert g["nhemi"] == o["AC_Hemi"], key
        assert g["af"] == pytest.approx(o["AC"] / o["AN"]) if o["AN"] else g["af"] is None


def test_variant_frequencies_equal_bcftools(
    opened: Any, oracle_joint: dict[Key, dict[str, int]], oracle_inst: dict[Key, dict[str, int]]
) -> None:
    for key, o in oracle_joint.items():
        rep = opened.variant("-".join(map(str, key)))
        freqs = {f["scope"]: f for f in rep["frequencies"]}
        assert [f["scope"] for f in rep["frequencies"]] == ["joint", "east", "north", "south"]
        assert (freqs["joint"]["ac"], freqs["joint"]["an"]) == (o["AC"], o["AN"]), key
        assert freqs["joint"]["nhomalt"] * 2 == o["AC_Hom"]
        oi = oracle_inst[key]
        for inst in ("north", "south", "east"):
            assert (freqs[inst]["ac"], freqs[inst]["an"]) == (oi[f"AC_{inst}"], oi[f"AN_{inst}"]), (key, inst)


def test_site_frequencies_view_equals_bcftools(
    opened: Any, oracle_joint: dict[Key, dict[str, int]], oracle_inst: dict[Key, dict[str, int]]
) -> None:
    rows = opened.sql("SELECT * FROM site_frequencies").to_pylist()
    seen = 0
    for r in rows:
        key = (r["contig"], r["pos"], r["ref"], r["alt"])
        if r["scope"] == "joint":
            assert (r["ac"], r["an"]) == (oracle_joint[key]["AC"], oracle_joint[key]["AN"])
        else:
            o = oracle_inst[key]
            assert (r["ac"], r["an"]) == (o[f"AC_{r['scope']}"], o[f"AN_{r['scope']}"]), (key, r["scope"])
        seen += 1
    assert seen >= len(oracle_joint) * 3


@pytest.mark.parametrize("phenotype", ["sex", "case_status", "population"])
def test_stratified_counts_equal_fill_tags_groups(
    sample_lake: SampleLake, opened: Any, phenotype: str
) -> None:
    assert sample_lake.oracle is not None
    truth = sample_lake.phenotypes["truth"]
    groups = {s: str(v[phenotype]) for s, v in truth.items() if v[phenotype] is not None}
    oracle = fill_tags(sample_lake.oracle, groups, sample_lake.tmp, phenotype)
    values = sorted(set(groups.values()))
    checked = 0
    for key, o in oracle.items():
        rep = opened.variant("-".join(map(str, key)))
        got = {r["value"]: r for r in rep["phenotypes"] if r["phenotype"] == phenotype}
        for v in values:
            an = o[f"AN_{v}"]
            if an == 0 and v not in got:
                continue
            assert (got[v]["ac"], got[v]["an"]) == (o[f"AC_{v}"], an), (key, phenotype, v)
            assert got[v]["nhomalt"] * 2 == o[f"AC_Hom_{v}"]
            checked += 1
    assert checked > len(oracle)


def test_carriers_equal_bcftools_genotypes(sample_lake: SampleLake, opened: Any) -> None:
    """Carriers of a few sites are exactly the samples with an alt allele in the merged VCF."""
    from query_fixtures import sh

    assert sample_lake.oracle is not None
    from genolake.store import LakeStore

    pseudo = LakeStore.open(sample_lake.path).pseudonymiser()
    names = sh("bcftools", "query", "-l", sample_lake.oracle).split()
    text = sh("bcftools", "query", "-f", "%CHROM-%POS-%REF-%ALT[\t%GT]\n", "-r", "20:10000000-10400000",
              sample_lake.oracle)
    for line in text.splitlines()[:12]:
        f = line.split("\t")
        want = {
            pseudo(sample_lake.institution_of(s), s)
            for s, gt in zip(names, f[1:], strict=True) if "1" in gt.replace("|", "/").split("/")
        }
        got = set(opened.carriers(f[0])["sample_id"].to_pylist())
        assert got == want, f[0]


def test_dropped_sites_exercise_every_absent_rule(opened: Any) -> None:
    """The fixture really has sites absent from south (filled) and from east inside and outside its BED."""
    rows = opened.sql(
        "SELECT count(*) FILTER (WHERE institution = 'south') AS s, count(*) FILTER (WHERE institution = 'east') AS e "
        "FROM variant_files").to_pylist()[0]
    n = opened.sql("SELECT count(DISTINCT (pos, ref, alt)) AS n FROM variant_files").to_pylist()[0]["n"]
    assert rows["s"] < n and rows["e"] < n
