"""Association on a simulated cohort: a planted causal variant ranks first; OR, CI and p equal scipy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from query_fixtures import need_bcftools, sh

from genolake.errors import UserInputError

N_CASES, N_CONTROLS, N_SITES, PLANTED = 120, 180, 40, 17
CONTIG_LINE = "##contig=<ID=20,length=63025520>\n"


@dataclass
class Cohort:
    lake: Path
    genotypes: np.ndarray  # (sites, samples) alt allele counts, -1 missing
    is_case: np.ndarray  # (samples,) bool
    positions: list[int]


def _simulate(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = N_CASES + N_CONTROLS
    is_case = np.zeros(n, bool)
    is_case[rng.permutation(n)[:N_CASES]] = True
    af = rng.uniform(0.02, 0.3, N_SITES)
    g = (rng.random((N_SITES, n)) < af[:, None]).astype(int) + (rng.random((N_SITES, n)) < af[:, None]).astype(int)
    # the planted variant: carried by 40% of cases and 4% of controls
    p = np.where(is_case, 0.4, 0.04)
    g[PLANTED] = (rng.random(n) < p).astype(int) + (rng.random(n) < p * 0.2).astype(int)
    g[rng.random(g.shape) < 0.01] = -1
    return g, is_case


def _write_vcf(path: Path, g: np.ndarray, names: list[str], positions: list[int]) -> None:
    code = {-1: "./.", 0: "0/0", 1: "0/1", 2: "1/1"}
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n" + CONTIG_LINE + '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names) + "\n")
        for i, pos in enumerate(positions):
            fh.write(f"20\t{pos}\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(code[int(x)] for x in g[i]) + "\n")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Iterator[Cohort]:
    need_bcftools()
    tmp = tmp_path_factory.mktemp("assoc")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(_session_key_dir)  # reachable from every test
    try:
        from genolake.ingest.pipeline import ingest
        from genolake.phenotypes import load_phenotypes

        g, is_case = _simulate(np.random.default_rng(7))
        names = [f"P{i:04d}" for i in range(g.shape[1])]
        positions = [1_000_000 + 1000 * i for i in range(N_SITES)]
        half = g.shape[1] // 2  # two institutions, one of them absent-as-ref with some sites dropped
        _write_vcf(tmp / "a.vcf", g[:, :half], names[:half], positions)
        keep = [i for i in range(N_SITES) if i % 7 != 3]
        gb = g[:, half:].copy()
        _write_vcf(tmp / "b.vcf", gb[keep], names[half:], [positions[i] for i in keep])
        for i in range(N_SITES):
            if i % 7 == 3:
                gb[i] = 0  # absent-as-ref: the lake counts these as 0/0
        g = np.concatenate([g[:, :half], gb], axis=1)
        lake = tmp / "lake"
        ingest(lake, "a", [tmp / "a.vcf"], build="GRCh37", workers=0)
        ingest(lake, "b", [tmp / "b.vcf"], build="GRCh37", absent_as_ref=True, workers=0)
        for inst, lo, hi in (("a", 0, half), ("b", half, len(names))):
            f = tmp / f"{inst}.tsv"
            f.write_text("sample_id\tstatus\tsex\n" + "".join(
                f"{names[i]}\t{'affected' if is_case[i] else 'unaffected'}\t{'male' if i % 2 else 'female'}\n"
                for i in range(lo, hi)))
            load_phenotypes(lake, inst, f)
        yield Cohort(lake, g, is_case, positions)
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


def _hand_counts(c: Cohort, i: int) -> dict[str, int]:
    gi = c.genotypes[i]
    called = gi >= 0
    out = {}
    for name, sel in (("case", c.is_case), ("control", ~c.is_case)):
        m = sel & called
        out[f"{name}_ac"] = int(gi[m].sum())
        out[f"{name}_an"] = int(2 * m.sum())
        out[f"{name}_carriers"] = int((sel & (gi > 0)).sum())
        out[f"{name}_noncarriers"] = int((sel & (gi == 0)).sum())
    return out


def test_planted_variant_ranks_first_and_matches_scipy(cohort: Cohort) -> None:
    from scipy.stats import fisher_exact
    from scipy.stats.contingency import odds_ratio

    import genolake

    with genolake.open(cohort.lake) as lk:
        t = lk.assoc("status", case="affected", region="chr20:1-2000000").to_pylist()
    assert t[0]["pos"] == cohort.positions[PLANTED]
    assert [r["p"] for r in t] == sorted(r["p"] for r in t)
    for r in t:
        i = cohort.positions.index(r["pos"])
        h = _hand_counts(cohort, i)
        assert {k: r[k] for k in h} == h, r["pos"]
        table = [[h["case_ac"], h["case_an"] - h["case_ac"]], [h["control_ac"], h["control_an"] - h["control_ac"]]]
        stat, p = fisher_exact(table)
        assert r["p"] == pytest.approx(p, rel=1e-12)
        assert r["or"] == pytest.approx(stat, rel=1e-12)
        ci = odds_ratio(table, kind="sample").confidence_interval(0.95)
        assert (r["or_ci_low"], r["or_ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
        carrier = [[h["case_carriers"], h["case_noncarriers"]], [h["control_carriers"], h["control_noncarriers"]]]
        assert r["p_carrier"] == pytest.approx(fisher_exact(carrier)[1], rel=1e-12)
    assert t[0]["p"] < 1e-4 and t[0]["or"] > 3 and t[0]["p"] < t[1]["p"] / 100


def test_burden_counts_carriers_of_any_qualifying_variant(cohort: Cohort) -> None:
    from scipy.stats import fisher_exact

    import genolake

    lo, hi = cohort.positions[PLANTED - 1], cohort.positions[PLANTED + 1]
    with genolake.open(cohort.lake) as lk:
        row = lk.assoc("status", case="affected", region=f"20:{lo}-{hi}", burden=True).to_pylist()[0]
    idx = [PLANTED - 1, PLANTED, PLANTED + 1]
    carrier = (cohort.genotypes[idx] > 0).any(axis=0)
    cc, oc = int((carrier & cohort.is_case).sum()), int((carrier & ~cohort.is_case).sum())
    assert (row["variants"], row["case_carriers"], row["control_carriers"]) == (3, cc, oc)
    assert (row["case_samples"], row["control_samples"]) == (N_CASES, N_CONTROLS)
    table = [[cc, N_CASES - cc], [oc, N_CONTROLS - oc]]
    assert row["p"] == pytest.approx(fisher_exact(table)[1], rel=1e-12)


def test_min_ac_and_default_controls(cohort: Cohort) -> None:
    import genolake

    with genolake.open(cohort.lake) as lk:
        all_rows = lk.assoc("status", case="affected")
        few = lk.assoc("status", case="affected", min_ac=60)
        assert all_rows.num_rows == N_SITES
        total = {r["pos"]: r["case_ac"] + r["control_ac"] for r in all_rows.to_pylist()}
        assert sorted(r["pos"] for r in few.to_pylist()) == sorted(p for p, ac in total.items() if ac >= 60)


def test_assoc_errors(cohort: Cohort) -> None:
    import genolake

    with genolake.open(cohort.lake) as lk:
        with pytest.raises(UserInputError, match="give --case VALUE: the values of status are affected, unaffected"):
            lk.assoc("status")
        with pytest.raises(UserInputError, match="unknown phenotype 'nope'; categorical phenotypes: sex, status"):
            lk.assoc("nope")
        with pytest.raises(UserInputError, match="'sick' is not a value of status"):
            lk.assoc("status", case="sick")
        with pytest.raises(UserInputError, match="annotate"):
            lk.assoc("status", case="affected", gene="BRCA2")
        with pytest.raises(UserInputError, match="--burden needs --region or --gene"):
            lk.assoc("status", case="affected", burden=True)
        with pytest.raises(UserInputError, match="malformed region"):
            lk.assoc("status", case="affected", region="20:9-1")


def test_vcf_tools_agree_on_the_simulated_file(cohort: Cohort, tmp_path: Path) -> None:
    """The simulated VCF is what bcftools reads (a guard on the simulator, not on genolake)."""
    out = sh("bcftools", "query", "-f", "%POS\n", cohort.lake.parent / "a.vcf")
    assert len(out.split()) == N_SITES
