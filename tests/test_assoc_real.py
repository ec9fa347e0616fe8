"""Association on real 1000 Genomes genotypes (300 samples, chr20:1.0-1.3 Mb, shapeit4's reference panel) with an
invented phenotype driven by a real variant plus population, against bcftools +contrast (Fisher) and statsmodels
(per-variant Logit / OLS), with genotypes read back from the VCF text, not from the lake.

Two institutions: ``a`` (150 samples, every record) and ``b`` (150 samples, every 5th record dropped, ingested
``--absent-as-ref``), so the lake's implied 0/0 calls are exercised; the oracle VCF fills those with 0|0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from query_fixtures import need_bcftools, sh

from genolake.errors import UserInputError

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
VCF = DATA / "shapeit4_1kg_chr20_300s_phased.vcf.gz"
PANEL = DATA / "integrated_call_samples_v3.20130502.ALL.panel"
REGION = "20:1000000-1300000"
DROP_EVERY = 5
MISSING_AGE = 6


@dataclass
class Real:
    lake: Path
    oracle_vcf: Path
    samples: list[str]
    keys: list[tuple[int, str, str]]  # (pos, ref, alt) per oracle row
    G: np.ndarray  # variants x samples dosage (implied 0/0 filled)
    pop: np.ndarray
    sex: np.ndarray
    age: np.ndarray  # NaN = missing
    case: np.ndarray  # bool
    bmi: np.ndarray
    causal: int
    tmp: Path


def _read_gt(vcf: Path) -> tuple[list[tuple[int, str, str]], np.ndarray]:
    keys, rows = [], []
    for line in sh("bcftools", "query", "-f", "%POS\t%REF\t%ALT[\t%GT]\n", vcf).splitlines():
        f = line.split("\t")
        keys.append((int(f[0]), f[1], f[2]))
        rows.append([sum(a == "1" for a in gt.replace("|", "/").split("/")) for gt in f[3:]])
    return keys, np.asarray(rows, dtype=float)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Iterator[Real]:
    need_bcftools()
    if not VCF.exists():
        pytest.skip(f"{VCF.name} not in tests/data")
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    tmp = tmp_path_factory.mktemp("assoc_real")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(_session_key_dir)
    try:
        samples = sh("bcftools", "query", "-l", VCF).split()
        half = len(samples) // 2
        text = sh("bcftools", "view", "-r", REGION, VCF).splitlines(keepends=True)
        header = [ln for ln in text if ln.startswith("#")]
        body = [ln for ln in text if not ln.startswith("#")]
        a_rows, b_rows, oracle_rows = [], [], []
        for k, ln in enumerate(body, start=1):
            f = ln.rstrip("\n").split("\t")
            a_rows.append("\t".join(f[:9 + half]) + "\n")
            if k % DROP_EVERY:
                b_rows.append("\t".join(f[:9] + f[9 + half:]) + "\n")
                oracle_rows.append(ln)
            else:
                oracle_rows.append("\t".join(f[:9 + half] + ["0|0"] * (len(samples) - half)) + "\n")
        chrom = header[-1].rstrip("\n").split("\t")
        for name, rows, cols in (("a", a_rows, chrom[:9 + half]), ("b", b_rows, chrom[:9] + chrom[9 + half:]),
                                 ("oracle", oracle_rows, chrom)):
            (tmp / f"{name}.vcf").write_text("".join(header[:-1]) + "\t".join(cols) + "\n" + "".join(rows))
            sh("bgzip", "-f", tmp / f"{name}.vcf")
            sh("bcftools", "index", "-f", "-t", tmp / f"{name}.vcf.gz")
        keys, G = _read_gt(tmp / "oracle.vcf.gz")
        panel = {ln.split("\t")[0]: ln.rstrip("\n").split("\t") for ln in PANEL.read_text().splitlines()[1:]}
        pop = np.array([panel[s][2] for s in samples])
        sex = np.array([panel[s][3] for s in samples])
        rng = np.random.default_rng(2024)
        age = rng.integers(20, 80, len(samples)).astype(float)
        age[rng.choice(half, MISSING_AGE, replace=False)] = np.nan
        af = G.mean(axis=1) / 2
        causal = int(np.flatnonzero((af > 0.15) & (af < 0.3))[7])
        logit = -1.2 + 1.1 * G[causal] + 0.9 * (pop == "AFR") + 0.02 * (np.nan_to_num(age, nan=50) - 50)
        case = rng.random(len(samples)) < 1 / (1 + np.exp(-logit))
        bmi = np.round(24 + 1.3 * G[causal] + 1.5 * (pop == "EUR") + rng.normal(0, 2, len(samples)), 4)
        lake = tmp / "lake"
        ingest(lake, "a", [tmp / "a.vcf.gz"], build="GRCh37", workers=0)
        ingest(lake, "b", [tmp / "b.vcf.gz"], build="GRCh37", workers=0, absent_as_ref=True)
        for inst, lo, hi in (("a", 0, half), ("b", half, len(samples))):
            f = tmp / f"{inst}.tsv"
            f.write_text("sample_id\tstatus\tage\tsex\tsuper_pop\tbmi\n" + "".join(
                f"{samples[i]}\t{'case' if case[i] else 'control'}\t{'NA' if np.isnan(age[i]) else int(age[i])}\t"
                f"{sex[i]}\t{pop[i]}\t{bmi[i]:.4f}\n" for i in range(lo, hi)))
            load_phenotypes(lake, inst, f)
        yield Real(lake, tmp / "oracle.vcf.gz", samples, keys, G, pop, sex, age, case, bmi, causal, tmp)
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


def _rows_by_key(table) -> dict[tuple[int, str, str], dict]:  # type: ignore[no-untyped-def]
    return {(r["pos"], r["ref"], r["alt"]): r for r in table.to_pylist()}


def test_fisher_matches_bcftools_contrast(real: Real) -> None:
    """NASSOC counts exactly, PASSOC to its printed digits, FASSOC; and scipy on the same tables to 1e-12."""
    from scipy.stats import fisher_exact

    import genolake

    cases = [s for s, c in zip(real.samples, real.case, strict=True) if c]
    controls = [s for s, c in zip(real.samples, real.case, strict=True) if not c]
    (real.tmp / "cases.txt").write_text("\n".join(cases) + "\n")
    (real.tmp / "controls.txt").write_text("\n".join(controls) + "\n")
    out = sh("bcftools", "+contrast", "-0", real.tmp / "controls.txt", "-1", real.tmp / "cases.txt",
             "-a", "PASSOC,FASSOC,NASSOC", real.oracle_vcf)
    ref: dict[tuple[int, str, str], dict[str, str]] = {}
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        info = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)
        if "PASSOC" in info:
            ref[(int(f[1]), f[3], f[4])] = info
    with genolake.open(real.lake) as lk:
        t = lk.assoc("status", region=REGION)
    got = _rows_by_key(t)
    assert len(ref) > 1000
    compared = 0
    for key, info in ref.items():
        r = got.get(key)
        if r is None:  # monomorphic among these people: genolake lists variants with AC >= 1 only
            assert [int(x) for x in info["NASSOC"].split(",")][1::2] == [0, 0]
            continue
        n = [int(x) for x in info["NASSOC"].split(",")]  # control ref, control alt, case ref, case alt
        assert n == [r["control_an"] - r["control_ac"], r["control_ac"], r["case_an"] - r["case_ac"], r["case_ac"]]
        assert r["p"] == pytest.approx(float(info["PASSOC"]), rel=1e-4, abs=1e-300)
        fa = [float(x) for x in info["FASSOC"].split(",")]
        assert (r["control_af"], r["case_af"]) == (pytest.approx(fa[0], abs=1e-5), pytest.approx(fa[1], abs=1e-5))
        table = [[r["case_ac"], r["case_an"] - r["case_ac"]], [r["control_ac"], r["control_an"] - r["control_ac"]]]
        assert r["p"] == pytest.approx(fisher_exact(table)[1], rel=1e-12)
        compared += 1
    assert compared > 1000
    ps = t["p"].to_pylist()
    assert ps == sorted(ps)
    assert all(0 <= q <= 1 for q in t["q"].to_pylist())


def _design(real: Real, covariates: str) -> tuple[np.ndarray, np.ndarray]:
    """Oracle design: intercept + covariates (one-hot, first level dropped) for people with every covariate."""
    keep = ~np.isnan(real.age) if "age" in covariates else np.ones(len(real.samples), bool)
    cols = [np.ones(keep.sum())]
    for c in covariates.split(","):
        if c == "age":
            cols.append(real.age[keep])
        elif c in ("sex", "super_pop"):
            v = (real.sex if c == "sex" else real.pop)[keep]
            cols += [(v == lev).astype(float) for lev in sorted(set(v))[1:]]
    return np.column_stack(cols), keep


def test_logistic_matches_statsmodels_per_variant(real: Real) -> None:
    import statsmodels.api as sm

    import genolake
    from genolake.stats.regression import firth_logistic

    with genolake.open(real.lake) as lk:
        t = lk.assoc("status", region=REGION, test="logistic", covariates="age,sex,super_pop")
    meta = t.schema.metadata
    assert meta[b"genolake.dropped_missing_covariate"] == str(MISSING_AGE).encode()
    assert meta[b"genolake.people"] == str(len(real.samples) - MISSING_AGE).encode()
    rows = t.to_pylist()
    assert {r["n"] for r in rows} == {len(real.samples) - MISSING_AGE}
    X, keep = _design(real, "age,sex,super_pop")
    y = real.case[keep].astype(float)
    index = {k: i for i, k in enumerate(real.keys)}
    causal = real.keys[real.causal]
    top = rows[0]
    r2 = np.corrcoef(real.G[index[(top["pos"], top["ref"], top["alt"])]], real.G[real.causal])[0, 1] ** 2
    assert (top["pos"], top["ref"], top["alt"]) == causal or r2 > 0.8
    by = _rows_by_key(t)
    assert by[causal]["p"] < 1e-4 and by[causal]["method"] == "wald"
    rng = np.random.default_rng(0)
    wald = [r for r in rows if r["method"] == "wald"]
    for r in [by[causal], *(wald[i] for i in rng.choice(len(wald), 40, replace=False))]:
        g = real.G[index[(r["pos"], r["ref"], r["alt"])]][keep]
        fit = sm.Logit(y, np.column_stack([X, g])).fit(disp=0, tol=1e-12)
        assert (r["beta"], r["se"], r["p"]) == (pytest.approx(fit.params[-1], rel=1e-6),
                                                 pytest.approx(fit.bse[-1], rel=1e-6),
                                                 pytest.approx(fit.pvalues[-1], rel=1e-5)), r
        assert r["or"] == pytest.approx(np.exp(fit.params[-1]), rel=1e-6)
        assert r["ac"] == int(g.sum()) and r["an"] == 2 * len(g)
    firth = [r for r in rows if r["method"] == "firth"]
    score = [r for r in rows if r["method"] == "score"]
    assert firth and score and all(r["mac"] < 20 for r in firth + score)
    assert all(r["p"] >= 0.05 for r in score)
    for r in firth[:5]:
        g = real.G[index[(r["pos"], r["ref"], r["alt"])]][keep]
        ff = firth_logistic(g[None, :], y, X)  # unstandardised covariates: same beta and p
        assert (r["beta"], r["p"]) == (pytest.approx(ff.beta[0], rel=1e-5), pytest.approx(ff.p[0], rel=1e-5))
    for r in score[:5]:
        g = real.G[index[(r["pos"], r["ref"], r["alt"])]][keep]
        full = sm.GLM(y, np.column_stack([X, g]), family=sm.families.Binomial())
        null = sm.GLM(y, X, family=sm.families.Binomial()).fit(tol=1e-12)
        _stat, p, _ = full.score_test(np.r_[null.params, 0.0], k_constraints=1)
        assert r["p"] == pytest.approx(float(np.squeeze(p)), rel=1e-6)


def test_linear_matches_statsmodels_per_variant(real: Real) -> None:
    import statsmodels.api as sm

    import genolake

    with genolake.open(real.lake) as lk:
        t = lk.assoc("bmi", region=REGION, test="linear", covariates="sex,super_pop")
    rows = t.to_pylist()
    assert {r["method"] for r in rows} == {"linear"}
    assert t.schema.metadata[b"genolake.dropped_missing_covariate"] == b"0"
    X, _ = _design(real, "sex,super_pop")
    index = {k: i for i, k in enumerate(real.keys)}
    rng = np.random.default_rng(1)
    for r in (rows[i] for i in rng.choice(len(rows), 60, replace=False)):
        g = real.G[index[(r["pos"], r["ref"], r["alt"])]]
        fit = sm.OLS(real.bmi, np.column_stack([X, g])).fit()
        assert (r["beta"], r["se"], r["stat"], r["p"]) == (
            pytest.approx(fit.params[-1], rel=1e-6), pytest.approx(fit.bse[-1], rel=1e-6),
            pytest.approx(fit.tvalues[-1], rel=1e-6), pytest.approx(fit.pvalues[-1], rel=1e-5)), r
    assert rows[0]["p"] < 1e-4


def test_dosage_matrix_follows_the_counting_rule(real: Real) -> None:
    """The lake's dosage matrix equals the oracle's genotypes (implied 0/0 of the absent-as-ref institution
    included) and its sums equal the AC/AN of counts.group_ctes for the same people."""
    import genolake
    from genolake.query.design import build_design
    from genolake.query.dosage import dosage_blocks
    from genolake.query.ids import Region
    from genolake.query.regress import people_counts

    with genolake.open(real.lake) as lk:
        d = build_design(lk, "status", test="logistic", covariates=[])
        ids = sh("bcftools", "query", "-l", real.oracle_vcf).split()
        pseudo = lk.store.pseudonymiser()
        col = {(inst, pseudo(inst, s)): j for j, s in enumerate(ids)
               for inst in (("a",) if j < len(ids) // 2 else ("b",))}
        order = [col[(i, s)] for i, s in zip(d.people.institution, d.people.sample_id, strict=True)]
        reg = Region("20", 1_000_000, 1_300_000)
        counts = people_counts(lk, reg, d.people)
        seen = 0
        for blk in dosage_blocks(lk.engine, reg, d.people, block=500):
            for i, key in enumerate(zip(blk.keys["pos"].to_pylist(), blk.keys["ref"].to_pylist(),
                                        blk.keys["alt"].to_pylist(), strict=True)):
                want = real.G[real.keys.index(key)][order]
                np.testing.assert_array_equal(blk.G[i], want)
                ac, an = counts.get(("20", *key), (0, 0))
                assert (ac, an) == (int(want.sum()), 2 * len(want))
                seen += 1
        assert seen == len(real.keys)


def test_burden_weighted_and_regression(real: Real) -> None:
    import genolake

    with genolake.open(real.lake) as lk:
        plain = lk.assoc("status", region=REGION, burden=True, max_af=0.05).to_pylist()[0]
        mb = lk.assoc("status", region=REGION, burden=True, max_af=0.05, weights="madsen-browning").to_pylist()[0]
        reg = lk.assoc("status", region=REGION, burden=True, max_af=0.05, test="logistic",
                       covariates="super_pop").to_pylist()[0]
    assert plain["variants"] == mb["variants"] == reg["variants"] > 10
    assert mb["permutations"] == 1000 and 0 < mb["p"] < 1 and 0 < mb["p_permutation"] <= 1
    assert reg["n"] == len(real.samples) and reg["method"] in ("wald", "firth")
    # the unweighted regression burden score is the count of rare alleles per person
    import statsmodels.api as sm

    af = real.G.mean(axis=1) / 2
    rare = [i for i, k in enumerate(real.keys) if 0 < real.G[i].sum() <= 0.05 * 2 * len(real.samples)]
    assert len(rare) == reg["variants"] and af[rare].max() <= 0.05
    X, _ = _design(real, "super_pop")
    fit = sm.Logit(real.case.astype(float), np.column_stack([X, real.G[rare].sum(axis=0)])).fit(disp=0, tol=1e-12)
    if reg["method"] == "wald":
        assert reg["p"] == pytest.approx(fit.pvalues[-1], rel=1e-5)


def test_regression_errors(real: Real) -> None:
    import genolake

    with genolake.open(real.lake) as lk:
        with pytest.raises(UserInputError, match=r"unknown phenotype 'pc1'.*genolake pca"):
            lk.assoc("status", test="logistic", covariates="pc1")
        with pytest.raises(UserInputError, match="--test linear needs a numeric phenotype; status is categorical"):
            lk.assoc("status", test="linear")
        with pytest.raises(UserInputError, match="--covariates needs a regression"):
            lk.assoc("status", covariates="age")
        with pytest.raises(UserInputError, match="unknown --test 'probit'"):
            lk.assoc("status", test="probit")
        with pytest.raises(UserInputError, match="--weights applies to a burden test"):
            lk.assoc("status", weights="madsen-browning")


def test_cli_assoc_logistic_with_plot(real: Real, tmp_path: Path) -> None:
    import json

    png = tmp_path / "assoc.png"
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "assoc", "--lake", str(real.lake),
                          "--phenotype", "status", "--test", "logistic", "--covariates", "age,sex,super_pop",
                          "--region", REGION, "--format", "json", "--plot", str(png)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert rows[0]["p"] <= rows[-1]["p"] and {"beta", "se", "stat", "p", "q", "method"} <= set(rows[0])
    assert f"{MISSING_AGE} dropped for a missing covariate" in res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_functions_return_figures_and_name_the_extra(real: Real, monkeypatch: pytest.MonkeyPatch) -> None:
    import genolake
    from genolake.errors import MissingExtraError
    from genolake.plot import manhattan, qq

    with genolake.open(real.lake) as lk:
        t = lk.assoc("status", region=REGION)
    fig = manhattan(t)
    assert fig.axes[0].get_ylabel() and len(fig.axes[0].collections) >= 1
    fig2 = qq(t.to_pydict())
    assert "lambda" in fig2.axes[0].get_title() or "λ" in fig2.axes[0].get_title() or "$\\lambda$" in fig2.axes[0].get_title()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'genolake\[plot\]'"):
        manhattan(t)


def _oracle_standardise(G: np.ndarray) -> np.ndarray:
    p = G.mean(axis=1, keepdims=True) / 2
    return (G - 2 * p) / np.sqrt(2 * p * (1 - p))


def test_pca_matches_sklearn_and_is_stored_as_phenotypes(real: Real, tmp_path: Path) -> None:
    """`genolake pca`: scores equal sklearn's PCA of the same variants standardised from the VCF text (up to
    sign); the variants are common and LD-thinned; pc1..pcK become numeric phenotypes usable as covariates, and a
    rerun with fewer components removes the extra ones."""
    import shutil

    from sklearn.decomposition import PCA

    import genolake
    from genolake.stats.pca import compute_pca, run_pca

    lake = tmp_path / "lake"
    shutil.copytree(real.lake, lake)
    with genolake.open(lake) as lk:
        res = compute_pca(lk, k=4)
    used = [(r["pos"], r["ref"], r["alt"]) for r in res.variants.to_pylist()]
    idx = [real.keys.index(k) for k in used]
    af = real.G[idx].mean(axis=1) / 2
    assert len(used) > 50 and af.min() >= 0.05 and af.max() <= 0.95
    order = np.argsort([k[0] for k in used])
    Zu = _oracle_standardise(real.G[idx][order])
    Zu /= np.linalg.norm(Zu, axis=1, keepdims=True)
    assert np.max(np.sum(Zu[1:] * Zu[:-1], axis=1) ** 2) <= 0.2 + 1e-9  # neighbours after thinning
    report = run_pca(lake, k=4)
    assert report["people"] == len(real.samples) and report["variants_used"] == len(used)
    ids = sh("bcftools", "query", "-l", real.oracle_vcf).split()
    with genolake.open(lake) as lk:
        pseudo = lk.store.pseudonymiser()
        rows = lk.sql("SELECT institution, sample_id, pc1, pc2, pc3, pc4, status FROM phenotypes").to_pylist()
        assert len(rows) == len(real.samples) and all(r["status"] in ("case", "control") for r in rows)
        col = {pseudo("a" if j < len(ids) // 2 else "b", s): j for j, s in enumerate(ids)}
        ours = np.zeros((len(ids), 4))
        for r in rows:
            ours[col[r["sample_id"]]] = [r["pc1"], r["pc2"], r["pc3"], r["pc4"]]
        t = lk.assoc("status", region=REGION, test="logistic", covariates="pc1,pc2,pc3")
        assert t.schema.metadata[b"genolake.covariates"] == b"pc1,pc2,pc3"
    ref = PCA(n_components=4, svd_solver="full").fit_transform(_oracle_standardise(real.G[idx]).T)
    for i in range(4):
        sign = np.sign(ref[:, i] @ ours[:, i])
        np.testing.assert_allclose(ours[:, i], sign * ref[:, i], rtol=1e-6, atol=1e-8 * np.abs(ref[:, i]).max())
    run_pca(lake, k=2)
    with genolake.open(lake) as lk:
        names = {r[0] for r in lk.engine.rows("SELECT DISTINCT name FROM phenotypes_long")}
    assert {"pc1", "pc2", "status", "age"} <= names and not {"pc3", "pc4"} & names
