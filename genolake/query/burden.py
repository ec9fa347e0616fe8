"""Weighted and covariate-adjusted burden tests over the qualifying variants of a region or gene.

Qualifying variants: allele count at least ``min_ac`` (1) and frequency at most ``max_af`` among the people
tested, by the lake's counting rule. Dosages from :mod:`genolake.query.dosage`.

- ``weights="madsen-browning"`` with the Fisher/case-control default (Madsen and Browning 2009, PLoS Genet
  5:e1000384): each person's genetic score is ``sum_v g_v / w_v`` with ``w_v = sqrt(n_v q_v (1 - q_v))``,
  ``q_v = (controls' allele count + 1) / (2 controls genotyped + 2)`` and ``n_v`` the people genotyped at ``v``
  (missing genotypes add nothing); the statistic is the sum of the cases' ranks of the score (average ranks
  for ties). Because the weights depend on who is a case, significance comes from permutations of the labels
  (weights recomputed each time; ``permutations`` = 1000, seeded): ``z`` standardises the statistic by the
  permuted ones and ``p`` is its one-sided normal tail (the paper's procedure: rare variants in excess among
  cases); ``p_permutation`` = (1 + permuted statistics >= observed) / (1 + permutations).
- ``test="logistic"`` or ``"linear"``: the phenotype regressed on one burden score per person, the sum of its
  (mean-imputed) dosages over the qualifying variants, each multiplied by a weight: 1 (``weights="none"``) or
  Madsen-Browning's ``1 / sqrt(n_v q_v (1 - q_v))`` with ``q_v`` from every person tested (not from the
  controls, so no permutation is needed), with the covariates, as in :mod:`genolake.query.regress`
  (logistic: Wald, or Firth's penalised LRT when fewer than ``firth_mac`` people carry a qualifying allele).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from genolake.errors import UserInputError

if TYPE_CHECKING:
    from genolake.query.ids import Region
    from genolake.query.lake import Lake


def _qualifying(lake: Lake, reg: Region, design: Any, min_ac: int | None,
                max_af: float | None) -> tuple[np.ndarray, int]:
    """The dosage rows (qualifying variants x people, NaN missing) and their number."""
    from genolake.query.dosage import dosage_blocks
    from genolake.query.regress import people_counts

    counts = people_counts(lake, reg, design.people)
    lo = 1 if min_ac is None else min_ac
    rows: list[np.ndarray] = []
    for blk in dosage_blocks(lake.engine, reg, design.people):
        k = blk.keys
        ac_an = np.array([counts.get(key, (0, 0)) for key in zip(
            k["contig"].to_pylist(), k["pos"].to_pylist(), k["ref"].to_pylist(), k["alt"].to_pylist(), strict=True)],
            dtype=np.int64).reshape(-1, 2)
        keep = ac_an[:, 0] >= lo
        if max_af is not None:
            keep &= ac_an[:, 0] <= max_af * ac_an[:, 1]
        rows.append(blk.G[keep])
    G = np.concatenate(rows) if rows else np.zeros((0, len(design.people)))
    return G, G.shape[0]


def burden_table(lake: Lake, phenotype: str, reg: Region | None, *, test: str, covariates: list[str],
                 case: str | None, control: str | None, min_ac: int | None, max_af: float | None,
                 weights: str, permutations: int = 1000, seed: int = 0, firth_mac: int = 20) -> pa.Table:
    from genolake.query.design import build_design

    assert reg is not None
    fit_test = "logistic" if test == "fisher" else test
    design = build_design(lake, phenotype, test=fit_test, covariates=covariates, case=case, control=control)
    G, _ = _qualifying(lake, reg, design, min_ac, max_af)
    if test == "fisher":
        return _madsen_browning(reg, G, design.y, permutations=permutations, seed=seed)
    return _regression_burden(reg, G, design, test, weights, firth_mac)


def madsen_browning_stat(G: np.ndarray, y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The rank-sum statistic for each column of ``labels`` (people x permutations, 1 = case); ``G`` with NaN."""
    from scipy.stats import rankdata

    called = ~np.isnan(G)
    G0 = np.where(called, G, 0.0)
    ctrl = 1.0 - labels
    m_u = G0 @ ctrl  # controls' allele count, variants x permutations
    n_u = called.astype(np.float64) @ ctrl  # controls genotyped
    n_all = called.sum(axis=1)[:, None]
    q = (m_u + 1) / (2 * n_u + 2)
    w = np.sqrt(n_all * q * (1 - q))
    with np.errstate(divide="ignore"):
        inv = np.where(w > 0, 1.0 / w, 0.0)
    scores = G0.T @ inv  # people x permutations
    ranks = rankdata(scores, axis=0)
    return (ranks * labels).sum(axis=0)  # type: ignore[no-any-return]


def _madsen_browning(reg: Region, G: np.ndarray, y: np.ndarray, *, permutations: int, seed: int) -> pa.Table:
    from scipy.stats import norm

    if permutations < 10:
        raise UserInputError("Madsen-Browning needs at least 10 permutations")
    rng = np.random.default_rng(seed)
    obs = float(madsen_browning_stat(G, y, y[:, None])[0]) if G.shape[0] else float("nan")
    perm = np.column_stack([rng.permutation(y) for _ in range(permutations)])
    null = madsen_browning_stat(G, y, perm) if G.shape[0] else np.full(permutations, np.nan)
    sd = float(null.std(ddof=1)) if G.shape[0] else float("nan")
    z = (obs - float(null.mean())) / sd if sd > 0 else float("nan")
    p = float(norm.sf(z)) if not np.isnan(z) else None
    p_perm = float((1 + np.sum(null >= obs)) / (1 + permutations)) if G.shape[0] else None
    row = {"region": str(reg), "variants": int(G.shape[0]), "case_samples": int(y.sum()),
           "control_samples": int(len(y) - y.sum()), "weights": "madsen-browning", "stat": obs,
           "z": None if np.isnan(z) else z, "p": p, "p_permutation": p_perm, "permutations": permutations}
    return pa.Table.from_pylist([row])


def _regression_burden(reg: Region, G: np.ndarray, design: Any, test: str, weights: str, firth_mac: int) -> pa.Table:
    from genolake.query.regress import impute_mean, standardised
    from genolake.stats.regression import firth_logistic, linear, logistic, null_logistic, single_threaded_blas

    y, C = design.y, standardised(design.C)
    Gi, _ = impute_mean(G)
    if weights == "madsen-browning" and Gi.shape[0]:
        called = ~np.isnan(G)
        n = called.sum(axis=1)
        q = (np.where(called, G, 0.0).sum(axis=1) + 1) / (2 * n + 2)
        w = 1.0 / np.sqrt(np.maximum(n * q * (1 - q), 1e-12))
    else:
        w = np.ones(Gi.shape[0])
    score = (w @ Gi)[None, :] if Gi.shape[0] else np.zeros((1, len(y)))
    carriers = int((np.nan_to_num(G) > 0).any(axis=0).sum()) if G.shape[0] else 0
    method = "linear"
    with single_threaded_blas():
        if test == "linear":
            fit = linear(score, y, C)
        else:
            b0 = null_logistic(y, C)
            if carriers < firth_mac:
                fit, method = firth_logistic(score, y, C, b0=b0), "firth"
            else:
                fit, method = logistic(score, y, C, b0=b0), "wald"
                if not fit.converged[0] and firth_mac > 0:
                    fit, method = firth_logistic(score, y, C, b0=b0), "firth"

    def num(x: np.ndarray) -> float | None:
        v = float(x[0])
        return None if np.isnan(v) else v

    row = {"region": str(reg), "variants": int(G.shape[0]), "n": len(y), "carriers": carriers,
           "weights": weights, "beta": num(fit.beta), "se": num(fit.se), "stat": num(fit.stat), "p": num(fit.p),
           "method": method if fit.converged[0] else None}
    return pa.Table.from_pylist([row])
