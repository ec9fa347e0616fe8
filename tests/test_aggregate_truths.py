"""Hand-computed truths for `genolake aggregate`: a multi-allelic site, missing and partly missing calls, hemizygous
chrX males, sites absent from files under each absent-site mode, adj, faf95 worked values, het_p against scipy,
and the errors a user can cause.

The lake (GRCh38), built from three tiny VCFs:

- ``a`` (absent sites are no-calls): A1 female, A2 male (haploid on chrX), A3 female;
- ``b`` (``--absent-as-ref``): B1 male (haploid on chrX), B2 female;
- ``c`` (``--callable-regions`` chr1:150-250): C1 female, C2 with no sex given; no chrX records.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_aggregate_support import key_dir, lake_rows, load_phenotypes_tsv, write_phenotypes

HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=248956422>
##contig=<ID=chrX,length=156040895>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}
"""
OK = "99:30:15,15"  # GQ:DP:AD of an unremarkable het
A = ("A1", "A2", "A3")
B = ("B1", "B2")
C = ("C1", "C2")
RECORDS = {
    "a": [
        # multi-allelic: A1 1/2 (AD C 20, G 3 of DP 28: the G allele fails adj's allele balance), A3 missing
        ("chr1", 100, "A", "C,G", ["1/2:99:28:5,20,3", "0/0:99:30:30,0,0", "./.:.:.:."]),
        # A1 fails adj (GQ 10); A2 partly missing (1 called allele); A3 hom-alt
        ("chr1", 200, "T", "G", ["0/1:10:30:15,15", "./1:30:12:0,12", "1/1:99:30:0,30"]),
        # chrX: A2 hemizygous alt with DP 6 (passes adj: haploid DP >= 5)
        ("chrX", 3_000_000, "G", "A", [f"0/1:{OK}", "1:99:6:0,6", "0/0:99:30:30,0"]),
        ("chrX", 3_000_500, "C", "T", ["0/0:99:30:30,0", "0:99:15:15,0", "1/1:99:30:0,30"]),
    ],
    "b": [
        ("chr1", 200, "T", "G", [f"0/1:{OK}", "0/0:99:30:30,0"]),
        ("chr1", 300, "A", "T", ["1/1:99:30:0,30", f"0/1:{OK}"]),
        # B2 fails adj: AD[alt] / DP = 2 / 30 < 0.2
        ("chrX", 3_000_000, "G", "A", ["0:99:30:30,0", "0/1:99:30:28,2"]),
    ],
    "c": [
        ("chr1", 250, "G", "A", [f"0/1:{OK}", "0/0:99:30:30,0"]),
    ],
}
SEX = {"A1": "female", "A2": "male", "A3": "female", "B1": "male", "B2": "female", "C1": "female", "C2": None}

# (contig, pos, ref, alt) -> scope -> (ac, an, nhomalt, nhemi, n_called), stratum `all`, worked out by hand
TRUTH: dict[tuple[str, int, str, str], dict[str, tuple[int, int, int, int, int]]] = {
    # A: A1 1/0 (recoded), A2 implied 0/0, A3 ./. -> 1/4; B absent, --absent-as-ref: 2 x 2; C: outside its regions
    ("chr1", 100, "A", "C"): {"a": (1, 4, 0, 0, 2), "b": (0, 4, 0, 0, 2), "c": (0, 0, 0, 0, 0), "joint": (1, 8, 0, 0, 4)},
    ("chr1", 100, "A", "G"): {"a": (1, 4, 0, 0, 2), "b": (0, 4, 0, 0, 2), "c": (0, 0, 0, 0, 0), "joint": (1, 8, 0, 0, 4)},
    # A: 0/1 + ./1 (1 allele, not fully called) + 1/1; C absent but callable: 2 x 2
    ("chr1", 200, "T", "G"): {"a": (4, 5, 1, 0, 2), "b": (1, 4, 0, 0, 2), "c": (0, 4, 0, 0, 2), "joint": (5, 13, 1, 0, 6)},
    # only C lists it: A (no-call) adds nothing, B (absent-as-ref) 4
    ("chr1", 250, "G", "A"): {"a": (0, 0, 0, 0, 0), "b": (0, 4, 0, 0, 2), "c": (1, 4, 0, 0, 2), "joint": (1, 8, 0, 0, 4)},
    # only B: C's regions end at 250, A is no-call
    ("chr1", 300, "A", "T"): {"a": (0, 0, 0, 0, 0), "b": (3, 4, 1, 0, 2), "c": (0, 0, 0, 0, 0), "joint": (3, 4, 1, 0, 2)},
    # chrX: A2 hemizygous (AN 1, nhemi 1), B1 haploid reference (AN 1); C has no chrX data
    ("chrX", 3_000_000, "G", "A"): {"a": (2, 5, 0, 1, 3), "b": (1, 3, 0, 0, 2), "c": (0, 0, 0, 0, 0),
                                    "joint": (3, 8, 0, 1, 5)},
    # absent from B (absent-as-ref): B1 adds his chrX ploidy 1, B2 2
    ("chrX", 3_000_500, "C", "T"): {"a": (2, 5, 1, 0, 3), "b": (0, 3, 0, 0, 2), "c": (0, 0, 0, 0, 0),
                                    "joint": (2, 8, 1, 0, 5)},
}
# adj (`adj:all`) where it differs from `all`
ADJ_TRUTH = {
    ("chr1", 100, "A", "G"): {"a": (0, 2, 0, 0, 1), "joint": (0, 6, 0, 0, 3)},  # A1's G fails AB
    ("chr1", 200, "T", "G"): {"a": (3, 3, 1, 0, 1), "joint": (4, 11, 1, 0, 5)},  # A1 fails GQ
    ("chrX", 3_000_000, "G", "A"): {"b": (0, 1, 0, 0, 1), "joint": (2, 6, 0, 1, 4)},  # B2 fails AB
}
# `sex=...` strata at chrX:3000000 (joint): males A2 (hemizygous alt) + B1 (haploid ref); females A1, A3, B2
SEX_TRUTH = {"sex=male": (1, 2, 0, 1, 2), "sex=female": (2, 6, 0, 0, 3)}


def _vcf(path: Path, samples: tuple[str, ...], records: list[tuple[str, int, str, str, list[str]]]) -> Path:
    lines = [HEADER.format(samples="\t".join(samples)).rstrip("\n")]
    for contig, pos, ref, alt, gts in records:
        lines.append("\t".join([contig, str(pos), ".", ref, alt, "50", "PASS", ".", "GT:GQ:DP:AD", *gts]))
    path.write_text("\n".join(lines) + "\n")
    return path


def build_truth_lake(tmp: Path) -> Path:
    from genolake.ingest.pipeline import ingest

    lake = tmp / "lake"
    bed = tmp / "c.bed"
    bed.write_text("chr1\t149\t250\n")  # 1-based 150-250
    for name, samples in (("a", A), ("b", B), ("c", C)):
        vcf = _vcf(tmp / f"{name}.vcf", samples, RECORDS[name])
        ingest(lake, name, [vcf], workers=0, absent_as_ref=name == "b", callable_regions=bed if name == "c" else None)
        load_phenotypes_tsv(lake, name, write_phenotypes(tmp / f"{name}.tsv", list(samples),
                                                         {"sex": {s: SEX[s] for s in samples}}))
    return lake


@pytest.fixture(scope="module")
def truth_lake(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("agg_truth")
    with key_dir(tmp / "keys"):
        from genolake.compute.aggregate import aggregate

        lake = build_truth_lake(tmp)
        report = aggregate(lake, by=["sex"], adj=True, workers=0)
        yield lake, report


def _t(row: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (row["ac"], row["an"], row["nhomalt"], row["nhemi"], row["n_called"])


def test_hand_computed_counts(truth_lake: Any) -> None:
    lake, report = truth_lake
    rows = lake_rows(lake)
    assert set(rows) == set(TRUTH)
    assert report.sites == len(TRUTH)
    for key, scopes in TRUTH.items():
        for scope, want in scopes.items():
            got = rows[key][(scope, "all")]
            assert _t(got) == want, (key, scope)
            assert got["af"] == (want[0] / want[1] if want[1] else None)


def test_adj_counts(truth_lake: Any) -> None:
    rows = lake_rows(truth_lake[0])
    for key, scopes in TRUTH.items():
        for scope, want in scopes.items():
            adj = ADJ_TRUTH.get(key, {}).get(scope, want)
            assert _t(rows[key][(scope, "adj:all")]) == adj, (key, scope)


def test_sex_strata_and_missing_phenotype(truth_lake: Any) -> None:
    rows = lake_rows(truth_lake[0])
    x = rows[("chrX", 3_000_000, "G", "A")]
    for stratum, want in SEX_TRUTH.items():
        assert _t(x[("joint", stratum)]) == want
    assert _t(x[("a", "sex=male")]) == (1, 1, 0, 1, 1)
    # C2 has no sex: at chr1:250 only C1 is in a sex stratum of c
    c = rows[("chr1", 250, "G", "A")]
    assert _t(c[("c", "sex=female")]) == (1, 2, 0, 0, 1)
    assert ("c", "sex=male") not in c
    # a stratum with no counting sample at a site has no row (A's males are absent from chr1:300)
    assert ("a", "sex=male") not in rows[("chr1", 300, "A", "T")]


def _faf_by_hand(ac: int, an: int) -> float:
    """Bisection on P(X >= ac) = 0.05, X ~ Poisson(an * af), with the Poisson sum written out."""
    def tail(lam: float) -> float:
        return 1.0 - sum(math.exp(-lam) * lam**k / math.factorial(k) for k in range(ac))

    lo, hi = 0.0, float(ac)
    for _ in range(200):
        mid = (lo + hi) / 2
        if tail(mid) < 0.05:
            lo = mid
        else:
            hi = mid
    return lo / an


def test_faf95_worked_values() -> None:
    from genolake.compute.frequencies import faf

    # AC 1: P(X >= 1) = 1 - e^-l = 0.05  ->  l = -ln(0.95)
    assert float(faf(1, 10_000)) == pytest.approx(-math.log(0.95) / 10_000, rel=1e-12)
    # AC 2: 1 - e^-l (1 + l) = 0.05  ->  l = 0.355362 (solved by hand, also in Whiffin et al.'s tables)
    assert float(faf(2, 10_000)) * 10_000 == pytest.approx(0.3553615, rel=1e-6)
    for ac, an in ((3, 1000), (10, 5000), (25, 100_000), (100, 2000)):
        assert float(faf(ac, an)) == pytest.approx(_faf_by_hand(ac, an), rel=1e-9)
    assert float(faf(0, 100)) == 0.0
    assert np.isnan(faf(0, 0))
    # gnomAD's published faf95 (exomes r2.1.1, chr1) is Hail's discrete root: at most ~7% below the exact value
    gnomad = [(14, 2962, 0.00285693), (2, 4196, 8.404e-05), (8, 2908, 0.00136845), (20, 6850, 0.0019342),
              (7507, 66712, 0.1104), (2, 102780, 3.23e-06)]
    for ac, an, published in gnomad:
        ours = float(faf(ac, an))
        assert published <= ours * (1 + 1e-4)
        assert published == pytest.approx(ours, rel=0.07)


def test_faf95_and_het_p_in_the_table(truth_lake: Any) -> None:
    from scipy.stats import chi2_contingency

    rows = lake_rows(truth_lake[0])
    j = rows[("chr1", 200, "T", "G")][("joint", "all")]
    assert j["faf95"] == pytest.approx(_faf_by_hand(5, 13), rel=1e-9)
    # institutions with AN > 0: a 4/5, b 1/4, c 0/4
    want = chi2_contingency([[4, 1, 0], [1, 3, 4]], correction=False).pvalue
    assert j["het_p"] == pytest.approx(want, rel=1e-12)
    # one institution with AN > 0: no test
    assert rows[("chr1", 300, "A", "T")][("joint", "all")]["het_p"] is None
    # no grpmax without --faf-groups; institution rows carry no joint statistics
    assert j["grpmax"] is None and j["grpmax_af"] is None
    assert rows[("chr1", 200, "T", "G")][("a", "all")]["faf95"] is None


def test_het_p_values_against_scipy() -> None:
    from scipy.stats import chi2_contingency

    from genolake.compute.frequencies import het_p_values

    rng = np.random.default_rng(7)
    tables = []
    for _ in range(200):
        k = int(rng.integers(2, 6))
        an = rng.integers(1, 400, size=k)
        ac = np.array([rng.integers(0, a + 1) for a in an])
        tables.append((ac, an))
    acs = np.concatenate([t[0] for t in tables])
    ans = np.concatenate([t[1] for t in tables])
    offsets = np.concatenate([[0], np.cumsum([len(t[0]) for t in tables])])
    got = het_p_values(acs, ans, offsets)
    for (ac, an), p in zip(tables, got, strict=True):
        if ac.sum() in (0, an.sum()):
            assert p == 1.0
        else:
            assert p == pytest.approx(chi2_contingency([ac, an - ac], correction=False).pvalue, rel=1e-9, abs=1e-300)
    # fewer than two institutions: NaN (null in the table)
    assert np.isnan(het_p_values(np.array([3]), np.array([10]), np.array([0, 1])))[0]


def test_faf_groups_and_grpmax(tmp_path: Path) -> None:
    with key_dir(tmp_path / "keys"):
        from genolake.compute.aggregate import aggregate
        from genolake.compute.frequencies import faf

        lake = build_truth_lake(tmp_path)
        aggregate(lake, by=["sex"], faf_groups=["sex"], workers=0)
        rows = lake_rows(lake)
    x = rows[("chrX", 3_000_000, "G", "A")]
    j = x[("joint", "all")]
    # males 1/2, females 2/6: grpmax is sex=male; faf95 the larger of the two strata's
    assert (j["grpmax"], j["grpmax_af"]) == ("sex=male", 0.5)
    assert j["faf95"] == pytest.approx(max(float(faf(1, 2)), float(faf(2, 6))), rel=1e-12)
    # chr1:300: only B's samples (male 1/1, female 0/1) count
    j3 = rows[("chr1", 300, "A", "T")][("joint", "all")]
    assert (j3["grpmax"], j3["grpmax_af"]) == ("sex=male", 1.0)


def test_the_view_and_replacement(truth_lake: Any, tmp_path: Path) -> None:
    lake, _ = truth_lake
    with key_dir(lake.parent / "keys"):
        import genolake
        from genolake.compute.aggregate import aggregate
        from genolake.store import LakeStore

        with genolake.open(lake) as lk:
            n = lk.sql("SELECT count(*) AS n FROM allele_frequencies WHERE scope = 'joint' AND stratum = 'all'")
            assert n.to_pylist()[0]["n"] == len(TRUTH)
        before = LakeStore.open(lake).active_files("allele_frequencies")
        aggregate(lake, by=["sex"], adj=True, workers=0)
        after = LakeStore.open(lake).active_files("allele_frequencies")
        assert before and after and not set(before) & set(after)  # the old parts were removed in the same commit
        assert set(lake_rows(lake)) == set(TRUTH)


# ---------------------------------------------------------------------------------------------- errors
def test_errors_name_the_problem(truth_lake: Any, tmp_path: Path) -> None:
    from genolake.compute.aggregate import aggregate
    from genolake.errors import UserInputError

    lake, _ = truth_lake
    with key_dir(lake.parent / "keys"):
        with pytest.raises(UserInputError, match=r"--by ancestry: no phenotype column 'ancestry'; the phenotype "
                                                 r"columns are: sex"):
            aggregate(lake, by=["ancestry"], workers=0)
        with pytest.raises(UserInputError, match="--faf-groups population: each faf group column must also be given"):
            aggregate(lake, by=["sex"], faf_groups=["population"], workers=0)
        with pytest.raises(UserInputError, match="unknown engine 'spark'"):
            aggregate(lake, engine="spark", workers=0)


def test_too_many_levels_and_list_columns(tmp_path: Path) -> None:
    from genolake.compute.aggregate import aggregate
    from genolake.errors import UserInputError
    from genolake.ingest.pipeline import ingest

    samples = tuple(f"S{i:03d}" for i in range(201))
    with key_dir(tmp_path / "keys"):
        vcf = _vcf(tmp_path / "many.vcf", samples, [("chr1", 10, "A", "C", ["0/1:99:30:15,15"] * len(samples))])
        lake = tmp_path / "lake"
        ingest(lake, "big", [vcf], workers=0)
        load_phenotypes_tsv(lake, "big", write_phenotypes(tmp_path / "p.tsv", list(samples), {
            "code": {s: f"K{i}" for i, s in enumerate(samples)},
            "hpo": {s: "HP:0001250;HP:0004322" for s in samples},
        }))
        with pytest.raises(UserInputError, match=r"--by code: 201 distinct values, more than 200"):
            aggregate(lake, by=["code"], workers=0)
        with pytest.raises(UserInputError, match=r"--by hpo: 'hpo' holds lists of codes"):
            aggregate(lake, by=["hpo"], workers=0)


def test_cli(truth_lake: Any) -> None:
    from typer.testing import CliRunner

    from genolake.cli import app

    lake, _ = truth_lake
    runner = CliRunner()
    with key_dir(lake.parent / "keys"):
        ok = runner.invoke(app, ["aggregate", "--lake", str(lake), "--by", "sex", "--adj", "--workers", "0"])
        assert ok.exit_code == 0, ok.output
        bad = runner.invoke(app, ["aggregate", "--lake", str(lake), "--by", "nope", "--workers", "0"])
        assert bad.exit_code != 0
        assert "no phenotype column 'nope'" in str(bad.exception)
    assert set(lake_rows(lake)) == set(TRUTH)


def test_hail_engine_without_hail_names_the_extra(truth_lake: Any) -> None:
    import importlib.util

    from genolake.compute.aggregate import aggregate
    from genolake.errors import MissingExtraError

    if importlib.util.find_spec("hail") is not None:
        pytest.skip("hail is installed here")
    with key_dir(truth_lake[0].parent / "keys"), \
            pytest.raises(MissingExtraError, match=r"pip install 'genolake\[hail\]'"):
        aggregate(truth_lake[0], engine="hail")
