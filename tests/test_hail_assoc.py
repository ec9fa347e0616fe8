"""genolake's regression association equals Hail's on the same genotypes (issue 14, hail tier).

The real-data lake of tests/test_assoc_real.py (300 1000 Genomes samples in two institutions, one ingested
``--absent-as-ref``; an invented phenotype driven by a real variant plus population) is exported with
``genolake export hail``; Hail's ``logistic_regression_rows(test='wald')`` and ``linear_regression_rows`` are run
on that MatrixTable with the additive dosage ``GT.n_alt_alleles()`` and the same covariates (intercept, age, sex
and population one-hot with the first level dropped, as genolake encodes them; Hail drops the people with a
missing covariate, as genolake does). Samples match by pseudonym (the MatrixTable's column key).

Only genolake's Wald rows (its ``method`` column) are compared with Hail's Wald: its score and Firth rows are
other tests by design. Tier `hail` (the extra and a JVM); about a minute on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_assoc_real import MISSING_AGE, REGION, Real, real  # noqa: F401 - `real` is the module fixture

pytestmark = pytest.mark.hail
hl = pytest.importorskip("hail")

COVARIATES = "age,sex,population"
# Hail's Newton iterations stop by default when the step is below 1e-6, which leaves betas about 2e-6 off;
# with a tolerance of 1e-10 both fits are converged and agree to well under REL.
TOL = 1e-10
REL = 1e-6


@pytest.fixture(scope="module")
def mt(real: Real, tmp_path_factory: pytest.TempPathFactory) -> Any:  # noqa: F811
    from genolake.compute.export import export_hail

    out = tmp_path_factory.mktemp("hail_assoc") / "lake.mt"
    info = export_hail(real.lake, out)
    assert info["cols"] == len(real.samples)
    return hl.read_matrix_table(str(out))


def _covariates(mt: Any, cohort: Real, names: str) -> list[Any]:
    """Intercept plus genolake's encoding: numeric as is, categorical one-hot without its first (sorted) level."""
    cov: list[Any] = [1.0]
    for c in names.split(","):
        if c == "age":
            cov.append(mt.age)
        else:
            values = cohort.sex if c == "sex" else cohort.pop
            cov += [hl.float64(mt[c] == lev) for lev in sorted(set(values))[1:]]
    return cov


def _collect(ht: Any, stat: str) -> dict[tuple[int, str, str], Any]:
    rows = ht.select(pos=ht.locus.position, ref=ht.alleles[0], alt=ht.alleles[1], beta=ht.beta,
                     se=ht.standard_error, stat=ht[stat], p=ht.p_value,
                     **({"converged": ht.fit.converged} if "fit" in ht.row else {})).collect()
    return {(r.pos, r.ref, r.alt): r for r in rows}


def test_logistic_wald_matches_hail_logistic_regression_rows(real: Real, mt: Any) -> None:  # noqa: F811
    import genolake

    with genolake.open(real.lake) as lk:
        t = lk.assoc("status", region=REGION, test="logistic", covariates=COVARIATES)
    assert t.schema.metadata[b"genolake.dropped_missing_covariate"] == str(MISSING_AGE).encode()
    wald = [r for r in t.to_pylist() if r["method"] == "wald"]
    assert len(wald) > 500

    ht = hl.logistic_regression_rows(test="wald", y=hl.float64(mt.status == "case"), x=mt.GT.n_alt_alleles(),
                                     covariates=_covariates(mt, real, COVARIATES), tolerance=TOL, max_iterations=50)
    ref = _collect(ht, "z_stat")
    compared = 0
    for r in wald:
        h = ref[(r["pos"], r["ref"], r["alt"])]
        assert h.converged, r
        assert (r["beta"], r["se"], r["stat"], r["p"]) == (
            pytest.approx(h.beta, rel=REL), pytest.approx(h.se, rel=REL), pytest.approx(h.stat, rel=REL),
            pytest.approx(h.p, rel=10 * REL, abs=1e-300)), (r, h)
        compared += 1
    assert compared == len(wald)
    # the causal variant is fitted by Wald and compared
    causal = real.keys[real.causal]
    assert any((r["pos"], r["ref"], r["alt"]) == causal for r in wald)


def test_linear_matches_hail_linear_regression_rows(real: Real, mt: Any) -> None:  # noqa: F811
    import genolake

    with genolake.open(real.lake) as lk:
        t = lk.assoc("bmi", region=REGION, test="linear", covariates="sex,population")
    rows = t.to_pylist()
    assert rows and {r["method"] for r in rows} == {"linear"}

    ht = hl.linear_regression_rows(y=mt.bmi, x=mt.GT.n_alt_alleles(),
                                   covariates=_covariates(mt, real, "sex,population"))
    ref = _collect(ht, "t_stat")
    for r in rows:
        h = ref[(r["pos"], r["ref"], r["alt"])]
        assert (r["beta"], r["se"], r["stat"], r["p"]) == (
            pytest.approx(h.beta, rel=REL), pytest.approx(h.se, rel=REL), pytest.approx(h.stat, rel=REL),
            pytest.approx(h.p, rel=10 * REL, abs=1e-300)), (r, h)
    assert len(rows) > 1000
