"""genolake.stats against independent implementations: scipy (Fisher, odds ratio), statsmodels (OLS, Logit,
BH), and a brute-force maximisation of Firth's penalised likelihood with scipy.optimize."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genolake.stats.fisher import bh_qvalues, fisher_exact_p, odds_ratio
from genolake.stats.regression import firth_logistic, linear, logistic, null_logistic, score_test

cells = st.integers(min_value=0, max_value=60)
big = st.integers(min_value=0, max_value=3000)


def _scipy_p(t: tuple[int, int, int, int]) -> float:
    from scipy.stats import fisher_exact

    return float(fisher_exact([[t[0], t[1]], [t[2], t[3]]])[1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells, cells), min_size=1, max_size=40))
def test_fisher_equals_scipy_on_small_tables(tables: list[tuple[int, int, int, int]]) -> None:
    a, b, c, d = (np.array(x) for x in zip(*tables, strict=True))
    got = fisher_exact_p(a, b, c, d)
    want = np.array([_scipy_p(t) for t in tables])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(big, big, st.integers(0, 200), big), min_size=1, max_size=10))
def test_fisher_equals_scipy_on_large_tables(tables: list[tuple[int, int, int, int]]) -> None:
    """Biobank-sized margins and extreme p-values (down to 1e-300): still 1e-12 relative."""
    a, b, c, d = (np.array(x) for x in zip(*tables, strict=True))
    got = fisher_exact_p(a, b, c, d)
    want = np.array([_scipy_p(t) for t in tables])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


def test_fisher_on_many_allelic_tables() -> None:
    """25,000 tables shaped like a case-control scan (rare to common variants), compared with scipy."""
    rng = np.random.default_rng(11)
    n = 25_000
    ac = np.minimum(rng.zipf(1.6, n), 900)
    case_an, control_an = 500, 506
    a = rng.hypergeometric(ac, case_an + control_an - ac, case_an)
    c = ac - a
    got = fisher_exact_p(a, case_an - a, c, control_an - c)
    pick = rng.choice(n, 1500, replace=False)
    want = np.array([_scipy_p((int(a[i]), int(case_an - a[i]), int(c[i]), int(control_an - c[i]))) for i in pick])
    np.testing.assert_allclose(got[pick], want, rtol=1e-12, atol=0)


def test_fisher_edge_cases() -> None:
    assert fisher_exact_p([0, 3, 0], [0, 0, 5], [0, 4, 0], [0, 0, 6]).tolist() == [1.0, 1.0, 1.0]
    assert fisher_exact_p(np.zeros((2, 3), int), 1, 1, 1).shape == (2, 3)
    with pytest.raises(ValueError, match=">= 0"):
        fisher_exact_p([-1], [1], [1], [1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells, cells), min_size=1, max_size=30))
def test_odds_ratio_equals_scipy(tables: list[tuple[int, int, int, int]]) -> None:
    import warnings

    from scipy.stats.contingency import odds_ratio as sp_or

    a, b, c, d = (np.array(x) for x in zip(*tables, strict=True))
    got = odds_ratio(a, b, c, d)
    for i, t in enumerate(tables):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = sp_or([[t[0], t[1]], [t[2], t[3]]], kind="sample")
            ci = r.confidence_interval(0.95)
        np.testing.assert_allclose([got.estimate[i], got.low[i], got.high[i]], [r.statistic, ci.low, ci.high],
                                   rtol=1e-12, equal_nan=True)


def test_bh_equals_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(size=500), rng.uniform(0, 1e-4, 20)])
    np.testing.assert_allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    with_nan = bh_qvalues(np.array([0.01, np.nan, 0.02]))
    assert np.isnan(with_nan[1]) and with_nan[0] == pytest.approx(0.02)


# ---------------------------------------------------------------------------------------------- regression
def _data(seed: int, n: int = 600, v: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    C = np.column_stack([np.ones(n), rng.normal(50, 12, n), rng.integers(0, 2, n), rng.normal(size=n)])
    af = rng.uniform(0.03, 0.5, v)
    G = ((rng.random((v, n)) < af[:, None]).astype(float) + (rng.random((v, n)) < af[:, None])).astype(float)
    eta = -0.7 + 0.02 * (C[:, 1] - 50) + 0.4 * C[:, 2] + 0.6 * G[0]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    yq = 0.05 * C[:, 1] + 0.5 * G[1] + rng.normal(size=n)
    return G, y, yq, C


def test_linear_equals_statsmodels_ols() -> None:
    import statsmodels.api as sm

    G, _y, yq, C = _data(1)
    fit = linear(G, yq, C)
    for v in range(G.shape[0]):
        r = sm.OLS(yq, np.column_stack([C, G[v]])).fit()
        np.testing.assert_allclose([fit.beta[v], fit.se[v], fit.stat[v], fit.p[v]],
                                   [r.params[-1], r.bse[-1], r.tvalues[-1], r.pvalues[-1]], rtol=1e-9)
    assert fit.p[1] < 1e-6


def test_logistic_equals_statsmodels_logit() -> None:
    import statsmodels.api as sm

    G, y, _yq, C = _data(2)
    fit = logistic(G, y, C, block=16)  # several blocks
    assert fit.converged.all()
    for v in range(G.shape[0]):
        r = sm.Logit(y, np.column_stack([C, G[v]])).fit(disp=0, tol=1e-12)
        np.testing.assert_allclose([fit.beta[v], fit.se[v], fit.stat[v], fit.p[v]],
                                   [r.params[-1], r.bse[-1], r.tvalues[-1], r.pvalues[-1]], rtol=1e-7)


def test_score_test_equals_statsmodels_score() -> None:
    """The score statistic U^2/V equals the LM test of statsmodels' GLM (binomial) for an added variable."""
    import statsmodels.api as sm

    G, y, _yq, C = _data(3, v=10)
    b0 = null_logistic(y, C)
    sc = score_test(G, y, C, b0)
    for v in range(G.shape[0]):
        full = sm.GLM(y, np.column_stack([C, G[v]]), family=sm.families.Binomial())
        stat, p, _df = full.score_test(np.r_[b0, 0.0], k_constraints=1)
        assert sc.stat[v] ** 2 == pytest.approx(float(np.squeeze(stat)), rel=1e-7)
        assert sc.p[v] == pytest.approx(float(np.squeeze(p)), rel=1e-6)


def _firth_brute(y: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """(beta of the last column, penalised LRT p) by direct maximisation of the penalised log-likelihood."""
    from scipy.optimize import minimize
    from scipy.stats import chi2

    def negpl(b: np.ndarray, fixed: bool) -> float:
        if fixed:
            b = np.append(b, 0.0)
        eta = X @ b
        mu = 1 / (1 + np.exp(-eta))
        info = (X * (mu * (1 - mu))[:, None]).T @ X
        return -float((y * eta - np.logaddexp(0, eta)).sum() + 0.5 * np.linalg.slogdet(info)[1])

    k = X.shape[1]
    full = minimize(negpl, np.zeros(k), args=(False,), method="BFGS", options={"gtol": 1e-10})
    null = minimize(negpl, np.zeros(k - 1), args=(True,), method="BFGS", options={"gtol": 1e-10})
    return float(full.x[-1]), float(chi2.sf(2 * (null.fun - full.fun), 1))


def test_firth_equals_brute_force_including_separation() -> None:
    rng = np.random.default_rng(4)
    _G, y, _yq, C = _data(4, n=400, v=2)
    G = np.zeros((6, 400))
    for i in range(6):
        G[i, rng.choice(400, 2 + i, replace=False)] = 1
    G[0] = 0
    G[0, np.flatnonzero(y == 1)[:4]] = 1  # carried by cases only: no ordinary MLE
    assert not logistic(G[:1], y, C).converged[0]
    ff = firth_logistic(G, y, C)
    assert ff.converged.all()
    for v in range(G.shape[0]):
        beta, p = _firth_brute(y, np.column_stack([C, G[v]]))
        assert ff.beta[v] == pytest.approx(beta, rel=1e-4, abs=1e-5)
        assert ff.p[v] == pytest.approx(p, rel=1e-6)
    assert np.isfinite(ff.beta[0]) and ff.beta[0] > 1
