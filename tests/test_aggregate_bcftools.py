"""`genolake aggregate` on real 1000 Genomes data equals `bcftools merge` + `bcftools +fill-tags -S` per stratum.

Hail's 100-sample chr20 VCF split by samples into three institutions, each file listing only the sites where its
samples carry an alt allele (`bcftools view -c1`, as a hospital's own call set would): `north` (no-call for absent
sites), `south` (`--absent-as-ref`) and `east` (`--callable-regions`). Strata are the 1000 Genomes panel's super
population and sex (loaded as phenotypes). Multi-allelic sites and missing calls come from a GATK exome VCF (22
HapMap samples, 40 multi-allelic records) and the NYGC chr22 VCF (mostly missing calls); haploid and mixed-ploidy
calls from the bio2zarr, 1000 Genomes chrM and bcftools test files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_aggregate_support import (
    Inst,
    compare_with_oracle,
    data_path,
    fill_tags,
    group_name,
    key_dir,
    lake_rows,
    load_phenotypes_tsv,
    need_bcftools,
    oracle_vcf,
    panel,
    panel_id,
    sh,
    subset,
    write_phenotypes,
)

BED = [("20", 10_000_000, 13_000_000), ("20", 15_000_000, 16_500_000)]


def _memberships(insts: list[Inst], strata: dict[str, dict[str, str]], prefix: str = "") -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for inst in insts:
        for s in inst.samples:
            labels = ["all"] + [f"{col}={v[s]}" for col, v in sorted(strata.items()) if v.get(s) is not None]
            out[s] = [(scope, prefix + lab) for scope in ("joint", inst.name) for lab in labels]
    return out


def _oracle(insts: list[Inst], strata: dict[str, dict[str, str]], vcf: Path, tmp: Path, sites: Path) -> Any:
    split = oracle_vcf(tmp, insts, sites)
    members = _memberships(insts, strata)
    groups = {s: [group_name(sc, st) for sc, st in ps] for s, ps in members.items()}
    return fill_tags(split, groups, tmp), members


@pytest.fixture(scope="module")
def hail3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The three-institution lake of Hail's 100-sample VCF, aggregated with --by super_population --by sex."""
    need_bcftools()
    src = data_path("hail_sample_1kg_chr20_100s.vcf.gz")
    tmp = tmp_path_factory.mktemp("agg_hail3")
    samples = sh("bcftools", "query", "-l", src).split()
    pan = panel()
    # samples not in the phase 3 panel (e.g. CEU parents such as NA12891) have no phenotype: stratum `all` only
    strata = {col: {s: pan[panel_id(s)][col] for s in samples if panel_id(s) in pan}
              for col in ("super_population", "sex")}
    (tmp / "east.bed").write_text("".join(f"{c}\t{a}\t{b}\n" for c, a, b in BED))
    insts = [Inst("north", tmp / "north.vcf.gz", samples[:40]),
             Inst("south", tmp / "south.vcf.gz", samples[40:70], "ref"),
             Inst("east", tmp / "east.vcf.gz", samples[70:], "callable", tmp / "east.bed")]
    with key_dir(tmp / "keys"):
        from genolake.compute.aggregate import aggregate
        from genolake.ingest.pipeline import ingest

        lake = tmp / "lake"
        for inst in insts:
            subset(src, inst.vcf, inst.samples, min_ac=1)
            ingest(lake, inst.name, [inst.vcf], build="GRCh37", workers=0, absent_as_ref=inst.mode == "ref",
                   callable_regions=inst.bed if inst.mode == "callable" else None)
            load_phenotypes_tsv(lake, inst.name, write_phenotypes(
                tmp / f"{inst.name}.tsv", inst.samples, {k: {s: v.get(s) for s in inst.samples} for k, v in strata.items()}))
        report = aggregate(lake, by=["super_population", "sex"], faf_groups=["super_population"], adj=True,
                           workers=0)
        oracle, members = _oracle(insts, strata, src, tmp, src)
        yield {"lake": lake, "tmp": tmp, "insts": insts, "strata": strata, "oracle": oracle, "members": members,
               "report": report, "src": src}


def test_sites_are_the_union_of_the_files(hail3: Any) -> None:
    listed = set()
    for inst in hail3["insts"]:
        for line in sh("bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\n", inst.vcf).splitlines():
            c, p, r, a = line.split("\t")
            listed.add((c, int(p), r, a))
    assert set(lake_rows(hail3["lake"])) == listed
    assert hail3["report"].sites == len(listed)


def test_every_stratum_equals_bcftools(hail3: Any) -> None:
    n = compare_with_oracle(hail3["lake"], hail3["oracle"], hail3["members"])
    # 4 scopes x (all + 5 super populations + 2 sexes) at most, per site
    assert n > 2000


def test_strata_and_scopes(hail3: Any) -> None:
    rows = lake_rows(hail3["lake"])
    scopes = {sc for by in rows.values() for sc, _st in by}
    assert scopes == {"joint", "north", "south", "east"}
    strata = {st for by in rows.values() for _sc, st in by}
    assert {"all", "sex=male", "sex=female", "super_population=EUR", "adj:all", "adj:sex=female"} <= strata
    for by in rows.values():  # `all` rows for every scope at every site
        assert {("joint", "all"), ("north", "all"), ("south", "all"), ("east", "all"), ("joint", "adj:all")} <= set(by)


def test_absent_site_modes_on_real_data(hail3: Any) -> None:
    """A site north lists but south and east do not: south adds 2 x 30 alleles (absent-as-ref), east 2 x 30 only
    inside its BED, north's absent sites add nothing."""
    rows = lake_rows(hail3["lake"])
    listed: dict[str, set[tuple[str, int, str, str]]] = {}
    for inst in hail3["insts"]:
        keys = set()
        for line in sh("bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\n", inst.vcf).splitlines():
            c, p, r, a = line.split("\t")
            keys.add((c, int(p), r, a))
        listed[inst.name] = keys
    only_north = sorted(listed["north"] - listed["south"] - listed["east"])
    in_bed = [k for k in only_north if any(a < k[1] <= b for _c, a, b in BED)]
    out_bed = [k for k in only_north if not any(a < k[1] <= b for _c, a, b in BED)]
    assert in_bed and out_bed
    for k in in_bed:
        assert rows[k][("south", "all")]["an"] == 60 and rows[k][("south", "all")]["ac"] == 0
        assert rows[k][("east", "all")]["an"] == 60
    for k in out_bed:
        assert rows[k][("east", "all")]["an"] == 0 and rows[k][("east", "all")]["af"] is None
    only_south = sorted(listed["south"] - listed["north"])
    assert only_south
    for k in only_south:
        assert rows[k][("north", "all")]["an"] == 0


def _adj_filtered(src: Path, dst: Path) -> Path:
    """gnomAD adj with bcftools: genotypes that are not hom-ref and fail GQ/DP/AB become missing (`filter -S .`)."""
    # `&`/`|` (not `&&`/`||`) so that each sample is tested on its own values
    expr = 'GT!="RR" & GT!="mis" & (FMT/GQ<20 | FMT/DP<10 | (GT="het" & FMT/AD[:1]*5 < FMT/DP))'
    sh("bcftools", "filter", "-S", ".", "-e", expr, "-Oz", "-o", dst, src)
    sh("bcftools", "index", "-f", "-t", dst)
    return dst


def test_adj_strata_equal_bcftools_filter(hail3: Any) -> None:
    """adj counts equal bcftools after setting failing non-hom-ref genotypes to missing (implied 0/0 pass)."""
    tmp: Path = hail3["tmp"] / "adj"
    tmp.mkdir(exist_ok=True)
    insts = []
    for inst in hail3["insts"]:
        filt = _adj_filtered(inst.vcf, tmp / f"{inst.name}.adj.vcf.gz")
        insts.append(Inst(inst.name, filt, inst.samples, inst.mode, inst.bed))
    split = oracle_vcf(tmp, insts, hail3["src"])
    members = _memberships(insts, hail3["strata"])
    groups = {s: [group_name(sc, st) for sc, st in ps] for s, ps in members.items()}
    oracle = fill_tags(split, groups, tmp)
    compare_with_oracle(hail3["lake"], oracle, members, prefix="adj:")
    rows = lake_rows(hail3["lake"])
    assert any(by[("joint", "adj:all")]["an"] < by[("joint", "all")]["an"] for by in rows.values())


def test_derived_columns(hail3: Any) -> None:
    from scipy.stats import chi2_contingency

    from genolake.compute.frequencies import faf

    rows = lake_rows(hail3["lake"])
    tested = 0
    for by in rows.values():
        j = by[("joint", "all")]
        assert j["faf95"] is not None
        pops = {st: r for (sc, st), r in by.items() if sc == "joint" and st.startswith("super_population=")}
        fafs = [float(faf(r["ac"], r["an"])) for r in pops.values() if r["an"]]
        assert j["faf95"] == pytest.approx(max(fafs), rel=1e-12)
        carriers = {st: r["af"] for st, r in pops.items() if r["ac"] > 0}
        if carriers:
            best = max(carriers.values())
            assert j["grpmax"] == min(st for st, af in carriers.items() if af == best)
            assert j["grpmax_af"] == best
        insts = [by[(i, "all")] for i in ("east", "north", "south") if by[(i, "all")]["an"] > 0]
        if len(insts) < 2:
            assert j["het_p"] is None
        elif 0 < j["ac"] < j["an"]:
            table = [[r["ac"] for r in insts], [r["an"] - r["ac"] for r in insts]]
            assert j["het_p"] == pytest.approx(chi2_contingency(table, correction=False).pvalue, rel=1e-9, abs=1e-300)
            tested += 1
        for (sc, _st), r in by.items():
            if sc != "joint":
                assert r["faf95"] is None and r["het_p"] is None and r["grpmax"] is None
    assert tested > 100


# ---------------------------------------------------------------------------------------------- multi-allelic etc.
def _single_lake(tmp: Path, vcf: Path, build: str, split_at: int | None = None) -> tuple[Path, list[Inst]]:
    samples = sh("bcftools", "query", "-l", vcf).split()
    lake = tmp / "lake"
    if split_at is None:
        insts = [Inst("one", vcf, samples)]
    else:
        insts = [Inst("a", subset(vcf, tmp / "a.vcf.gz", samples[:split_at], min_ac=1), samples[:split_at]),
                 Inst("b", subset(vcf, tmp / "b.vcf.gz", samples[split_at:], min_ac=1), samples[split_at:], "ref")]
    from genolake.compute.aggregate import aggregate
    from genolake.ingest.pipeline import ingest

    for inst in insts:
        ingest(lake, inst.name, [inst.vcf], build=build, workers=0, absent_as_ref=inst.mode == "ref")
    aggregate(lake, workers=0)
    return lake, insts


@pytest.mark.parametrize(
    ("name", "build", "split_at"),
    [
        ("va_hapmap_exome_chr22_22s.vcf.gz", "GRCh37", 11),  # 40 multi-allelic records, GATK GQ/DP/AD
        ("b2z_1kg_nygc_chr22_100s.vcf.gz", "GRCh38", 50),  # mostly missing calls, multi-allelic
        ("b2z_1kg_2020_chrM_3s.vcf.gz", "GRCh38", None),  # chrM, 11 multi-allelic records
        ("bio2zarr__mixed_ploidy.vcf.gz", "GRCh37", None),  # haploid, diploid, triploid, partly missing
    ],
)
def test_multiallelic_missing_and_ploidy_equal_bcftools(tmp_path: Path, name: str, build: str,
                                                        split_at: int | None) -> None:
    need_bcftools()
    src = data_path(name)
    with key_dir(tmp_path / "keys"):
        lake, insts = _single_lake(tmp_path, src, build, split_at)
        members = {s: [("joint", "all"), (i.name, "all")] for i in insts for s in i.samples}
        split = oracle_vcf(tmp_path, insts, src)
        oracle = fill_tags(split, {s: [group_name(sc, st) for sc, st in ps] for s, ps in members.items()}, tmp_path)
        # bcftools counts AN 5 for `0/1/2, 0, 1/1` (its ploidy bookkeeping does not handle a triploid call next to
        # shorter ones); the lake's 3 + 1 + 2 = 6 is checked by hand below
        triploid = {("1", 6, "A", "C"), ("1", 6, "A", "G")} if name.startswith("bio2zarr__mixed") else set()
        assert compare_with_oracle(lake, oracle, members, skip=triploid) > 0
        rows = lake_rows(lake)
        for (c, p, r, a), (ac, nhomalt) in zip(sorted(triploid), [(3, 1), (1, 0)], strict=False):
            got = rows[(c, p, r, a)][("joint", "all")]
            assert (got["ac"], got["an"], got["nhomalt"], got["nhemi"], got["n_called"]) == (ac, 6, nhomalt, 0, 3)
