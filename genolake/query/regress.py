"""Per-variant regressions with covariates: ``test="logistic"`` (case-control) and ``test="linear"`` (numeric).

Model per variant: ``phenotype ~ intercept + covariates + dosage``, the dosage being the additive allele count
of the split allele (0, 1, 2; haploid 0, 1) from :mod:`genolake.query.dosage`; a person's missing dosage is
replaced by the mean dosage of the people with a call at the variant (mean imputation, as Hail's
``logistic_regression_rows`` and plink2 do), counted in ``n_missing``. People, response and covariates (with
one-hot encoded categorical covariates and the count of people dropped for a missing covariate): see
:mod:`genolake.query.design`.

Columns, sorted by ``p``:

- ``contig``, ``pos``, ``ref``, ``alt``, ``id``;
- ``n``: people analysed; ``n_missing``: of them, without a call here (imputed);
- ``ac``, ``an``, ``af``: allele count, number and frequency among the people analysed, by the lake's counting
  rule (``min_ac``/``max_af`` apply to these); ``mac``: minor allele count, ``min(ac, an - ac)``;
- ``beta``: effect of one allele (log odds ratio for logistic, phenotype units for linear); ``se`` its standard
  error; ``stat``: the t statistic (linear, ``n - k - 1`` degrees of freedom), the Wald z (logistic), or the
  signed square root of the penalised likelihood ratio statistic (Firth); ``p``; ``q``: Benjamini-Hochberg
  q-value over the variants with a p; ``or``: ``exp(beta)`` for logistic;
- ``method``: ``linear``, ``wald`` (ordinary logistic fit) or ``firth`` (see below); null when the fit is
  undefined (a variant without variation among the people analysed).

Rare variants (logistic): the Wald test of an ordinary fit is badly calibrated at low allele counts and
undefined under separation (a variant carried only by cases has no finite estimate). So a variant whose minor
allele count among the people analysed is below ``firth_mac`` (20 by default), or whose ordinary fit does not
converge, is first given the score test under the covariate-only model (fitted once for all variants;
``method`` = ``score``, ``beta`` the one-step estimate ``U/V``), and those with a score p below ``firth_p``
(0.05) are then fitted by Firth's penalised likelihood and tested by the penalised likelihood ratio test
(``method`` = ``firth``; :func:`genolake.stats.regression.firth_logistic`): Firth estimates stay finite and the
penalised LRT keeps the type I error near nominal at low counts (Ma et al. 2013). Firth is costly per variant,
and changes nothing of interest far from significance, hence the score-test gate (regenie's approach).
``firth_mac=0`` turns rare-variant handling off (every variant gets the Wald test; separated ones no p);
``firth_p=1`` applies Firth to every rare variant.

All variants of a block (2,048 by default) are fitted together (:mod:`genolake.stats.regression`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from genolake.errors import UserInputError
from genolake.query.counts import group_ctes, joint_ctes

if TYPE_CHECKING:
    from genolake.query.design import Design
    from genolake.query.dosage import People
    from genolake.query.ids import Region
    from genolake.query.lake import Lake

log = logging.getLogger(__name__)


def people_counts(lake: Lake, reg: Region | None, people: People) -> dict[tuple[str, int, str, str], tuple[int, int]]:
    """(contig, pos, ref, alt) -> (AC, AN) over ``people`` (one group), by :mod:`genolake.query.counts`."""
    eng = lake.engine
    params: dict[str, Any] = {"p_inst": people.institution, "p_sid": people.sample_id}
    grp = "SELECT unnest($p_inst) AS institution, unnest($p_sid) AS sample_id, 'all' AS g"
    ctes = joint_ctes(eng, reg, None, params) + "," + group_ctes(eng, reg, None, grp, params)
    out: dict[tuple[str, int, str, str], tuple[int, int]] = {}
    for contig, pos, ref, alt, ac, an in eng.rows(
            f"WITH {ctes} SELECT contig, pos, ref, alt, ac, an FROM gcounts", params):
        out[(contig, int(pos), ref, alt)] = (int(ac), int(an))
    return out


def standardised(C: np.ndarray) -> np.ndarray:
    """Covariates centred and scaled (the intercept kept): the dosage's coefficient, its SE and every test are
    unchanged by this affine change of the covariates, and the fits are better conditioned (age in years next
    to 0/1 indicators)."""
    out = C.copy()
    if C.shape[1] > 1:
        sd = C[:, 1:].std(axis=0)
        out[:, 1:] = (C[:, 1:] - C[:, 1:].mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return out


def impute_mean(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Missing dosages replaced (in place) by the row mean of the others (0 when none is called); returns
    ``G`` and the count of missing entries per row."""
    miss = np.isnan(G)
    nmiss = miss.sum(axis=1)
    if nmiss.any():
        rows, cols = np.nonzero(miss)
        G[rows, cols] = 0.0
        called = G.shape[1] - nmiss
        mean = np.divide(G.sum(axis=1), called, out=np.zeros(G.shape[0]), where=called > 0)
        G[rows, cols] = mean[rows]
    return G, nmiss


def regression_table(
    lake: Lake,
    phenotype: str,
    reg: Region | None,
    *,
    test: str,
    covariates: list[str],
    case: str | None = None,
    control: str | None = None,
    min_ac: int | None = None,
    max_af: float | None = None,
    firth_mac: int = 20,
    firth_p: float = 0.05,
    block: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    from genolake.query.design import build_design
    from genolake.stats.fisher import bh_qvalues
    from genolake.stats.regression import null_logistic, single_threaded_blas

    if firth_mac < 0:
        raise UserInputError(f"--firth-mac must be >= 0, not {firth_mac}")
    design = build_design(lake, phenotype, test=test, covariates=covariates, case=case, control=control)
    log.info("%s regression on %d people (%d dropped for a missing covariate), covariates: %s", test,
             len(design.people), design.dropped_missing_covariate, ", ".join(design.names[1:]) or "none")
    counts = people_counts(lake, reg, design.people)
    lo_ac = 1 if min_ac is None else min_ac
    y, C = design.y, standardised(design.C)
    b0 = null_logistic(y, C) if test == "logistic" else None
    with single_threaded_blas():
        parts = _fit_blocks(lake, reg, design, test, y, C, b0, counts, lo_ac, max_af, firth_mac, firth_p, block,
                            progress)
    return _assemble(parts, test, len(design.people), design, bh_qvalues)


def _fit_blocks(lake: Lake, reg: Region | None, design: Design, test: str, y: np.ndarray, C: np.ndarray,
                b0: np.ndarray | None, counts: dict[tuple[str, int, str, str], tuple[int, int]], lo_ac: int,
                max_af: float | None, firth_mac: int, firth_p: float, block: int,
                progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    from genolake.query.dosage import dosage_blocks
    from genolake.stats.regression import firth_logistic, linear, logistic, score_test

    parts: list[dict[str, Any]] = []
    done = 0
    for blocks, blk in enumerate(dosage_blocks(lake.engine, reg, design.people, block=block), start=1):
        k = blk.keys
        keys = list(zip(k["contig"].to_pylist(), k["pos"].to_pylist(), k["ref"].to_pylist(), k["alt"].to_pylist(),
                        strict=True))
        acan = np.array([counts.get(key, (0, 0)) for key in keys], dtype=np.int64).reshape(-1, 2)
        ac, an = acan[:, 0], acan[:, 1]
        keep = ac >= lo_ac
        if max_af is not None:
            keep &= ac <= max_af * an
        idx = np.flatnonzero(keep)
        done += len(keys)
        if idx.size:
            G, nmiss = impute_mean(blk.G[idx])
            mac = np.minimum(ac[idx], an[idx] - ac[idx])
            method = np.full(idx.size, None, dtype=object)
            if test == "linear":
                fit = linear(G, y, C)
                method[fit.converged] = "linear"
                beta, se, stat, p = fit.beta, fit.se, fit.stat, fit.p
            else:
                beta, se, stat, p = (np.full(idx.size, np.nan) for _ in range(4))
                poly = np.ptp(G, axis=1) > 0
                rare = poly & (mac < firth_mac)
                common = np.flatnonzero(poly & ~rare)
                if common.size:
                    fit = logistic(G[common], y, C, b0=b0)
                    beta[common], se[common], stat[common], p[common] = fit.beta, fit.se, fit.stat, fit.p
                    method[common[fit.converged]] = "wald"
                    if firth_mac > 0:
                        rare[common[~fit.converged]] = True  # separation: Firth keeps a finite estimate
                r = np.flatnonzero(rare)
                if r.size and b0 is not None:
                    sc = score_test(G[r], y, C, b0)
                    beta[r], se[r], stat[r], p[r] = sc.beta, sc.se, sc.stat, sc.p
                    method[r[sc.converged]] = "score"
                    f = r[sc.converged & ~(sc.p >= firth_p)]
                    if f.size:
                        ff = firth_logistic(G[f], y, C, b0=b0)
                        beta[f], se[f], stat[f], p[f] = ff.beta, ff.se, ff.stat, ff.p
                        method[f] = None
                        method[f[ff.converged]] = "firth"
            with np.errstate(divide="ignore", invalid="ignore"):
                af = np.where(an[idx] > 0, ac[idx] / an[idx], np.nan)
            parts.append({"keys": k.take(pa.array(idx)), "n_missing": nmiss, "ac": ac[idx], "an": an[idx],
                          "af": af, "mac": mac, "beta": beta, "se": se, "stat": stat, "p": p,
                          "method": method})
        if progress is not None:
            progress(done, blocks)
    return parts


def _assemble(parts: list[dict[str, Any]], test: str, n: int, design: Design, bh: Any) -> pa.Table:
    from genolake.query.assoc import sort_by_p

    def cat(name: str) -> np.ndarray:
        return np.concatenate([pt[name] for pt in parts]) if parts else np.zeros(0)

    keys = pa.concat_tables([pt["keys"] for pt in parts]) if parts else pa.table({
        "contig": pa.array([], pa.string()), "pos": pa.array([], pa.int32()), "ref": pa.array([], pa.string()),
        "alt": pa.array([], pa.string()), "id": pa.array([], pa.string())})
    p = cat("p").astype(np.float64)
    beta = cat("beta").astype(np.float64)

    def f64(x: np.ndarray) -> pa.Array:
        return pa.array(x.astype(np.float64), type=pa.float64(), from_pandas=True)

    cols: dict[str, Any] = {
        "contig": keys["contig"], "pos": keys["pos"].cast(pa.int32()), "ref": keys["ref"], "alt": keys["alt"],
        "id": keys["id"],
        "n": pa.array(np.full(keys.num_rows, n, dtype=np.int64)),
        "n_missing": pa.array(cat("n_missing").astype(np.int64)),
        "ac": pa.array(cat("ac").astype(np.int64)), "an": pa.array(cat("an").astype(np.int64)),
        "af": f64(cat("af")), "mac": pa.array(cat("mac").astype(np.int64)),
        "beta": f64(beta), "se": f64(cat("se")), "stat": f64(cat("stat")), "p": f64(p), "q": f64(bh(p)),
    }
    if test == "logistic":
        with np.errstate(over="ignore"):
            cols["or"] = f64(np.exp(beta))
    cols["method"] = pa.array(cat("method").tolist() if parts else [], type=pa.string())
    table = pa.table(cols)
    meta = {"genolake.test": test, "genolake.people": str(n),
            "genolake.dropped_missing_covariate": str(design.dropped_missing_covariate),
            "genolake.covariates": ",".join(design.names[1:])}
    if design.cases is not None:
        meta.update({"genolake.cases": str(design.cases), "genolake.controls": str(design.controls)})
    return sort_by_p(table).replace_schema_metadata(meta)
