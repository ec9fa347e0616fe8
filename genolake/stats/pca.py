"""Principal components of ancestry over the lake's people, stored as phenotypes ``pc1..pcK``.

1. **People**: every (institution, sample) of the lake, once each.
2. **Variants**: split alleles on autosomes (not X, Y, M) whose frequency among those people, by the lake's
   counting rule, is within ``[min_af, 1 - min_af]`` (0.05 by default) and that fewer than 5% of people
   miss (so the components do not follow missingness or institution-specific coverage).
3. **LD thinning**, in position order: a variant is kept when its squared correlation (r^2 of dosages) with every
   kept variant among the ``window`` (50) variants before it is at most ``r2`` (0.2): a greedy one-pass form
   of plink's ``--indep-pairwise 50 1 0.2``. At most ``max_variants`` (20,000) are kept, evenly spaced.
4. **Standardisation** as Patterson et al. (2006) and Hail's ``hwe_normalized_pca``: each kept variant's dosage
   becomes ``(g - 2p) / sqrt(2p(1-p))`` with ``p`` its allele frequency among the people with a call; a
   missing dosage becomes 0 (the mean).
5. **Components**: the ``k`` leading singular vectors of that people x variants matrix (ARPACK through
   ``scipy.sparse.linalg.svds``, deterministic start). Scores are ``U * S`` (as ``sklearn.decomposition.PCA``'s
   ``fit_transform`` of the same matrix), each sign fixed so that the score of largest magnitude is positive.

Stored with :func:`genolake.phenotypes.replace_numeric_phenotypes` as numeric phenotypes ``pc1..pcK`` (any
``pcN`` left by an earlier run is removed), ready for ``genolake query assoc --covariates pc1,pc2,...``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from genolake.errors import UserInputError

log = logging.getLogger(__name__)

NOT_AUTOSOMAL = frozenset({"X", "Y", "M", "MT", "chrX", "chrY", "chrM", "chrMT"})
_PC_NAME = re.compile(r"pc\d+")


@dataclass
class PcaResult:
    scores: pa.Table  # institution, sample_id, pc1..pcK
    eigenvalues: np.ndarray  # S^2 / variants, per component
    variance_explained: np.ndarray  # share of the total variance of the standardised matrix
    variants: pa.Table  # contig, pos, ref, alt of the variants used
    candidates: int  # common variants before LD thinning


def _people(lake: Any) -> tuple[list[str], list[str]]:
    rows = lake.engine.rows("SELECT DISTINCT institution, sample_id FROM samples ORDER BY institution, sample_id")
    return [r[0] for r in rows], [r[1] for r in rows]


def ld_thin(Z: np.ndarray, *, window: int, r2: float, prev: np.ndarray | None = None) -> np.ndarray:
    """Greedy LD thinning of standardised rows (unit norm, mean 0): mask of the rows kept. ``prev`` holds the
    kept rows just before (up to ``window``), carried across blocks."""
    v = Z.shape[0]
    keep = np.zeros(v, dtype=bool)
    kept_rows: list[int] = []
    prev = prev if prev is not None else np.zeros((0, Z.shape[1]))
    for i in range(v):
        recent = [j for j in kept_rows if j >= i - window]
        kept_rows = recent
        ok = True
        if recent:
            r = Z[recent] @ Z[i]
            ok = bool(np.all(r * r <= r2))
        if ok and prev.shape[0] and i < window:
            tail = prev[-(window - i):] if window - i < prev.shape[0] else prev
            rr = tail @ Z[i]
            ok = bool(np.all(rr * rr <= r2))
        if ok:
            keep[i] = True
            kept_rows.append(i)
    return keep


def compute_pca(lake: Any, *, k: int = 10, min_af: float = 0.05, r2: float = 0.2, window: int = 50,
                max_variants: int = 20_000, max_missing: float = 0.05, block: int = 4096) -> PcaResult:
    """Principal components of the lake's people (see the module docstring); nothing is written."""
    from scipy.sparse.linalg import svds

    from genolake.query.dosage import People, dosage_blocks
    from genolake.query.regress import people_counts

    if k < 1:
        raise UserInputError(f"--k must be >= 1, not {k}")
    if not 0 < min_af < 0.5:
        raise UserInputError(f"--min-af must be between 0 and 0.5, not {min_af}")
    inst, sid = _people(lake)
    n = len(sid)
    if n <= k + 1:
        raise UserInputError(f"the lake has {n} samples: too few for {k} principal components")
    people = People(inst, sid)
    counts = people_counts(lake, None, people)
    rows: list[np.ndarray] = []
    keys: list[pa.Table] = []
    candidates = 0
    tail: np.ndarray | None = None
    last_contig = None
    for blk in dosage_blocks(lake.engine, None, people, block=block):
        contig = blk.keys["contig"][0].as_py()
        if contig in NOT_AUTOSOMAL:
            continue
        if contig != last_contig:
            tail, last_contig = None, contig
        kk = list(zip(blk.keys["contig"].to_pylist(), blk.keys["pos"].to_pylist(), blk.keys["ref"].to_pylist(),
                      blk.keys["alt"].to_pylist(), strict=True))
        acan = np.array([counts.get(x, (0, 0)) for x in kk], dtype=np.float64).reshape(-1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            af = np.where(acan[:, 1] > 0, acan[:, 0] / acan[:, 1], 0.0)
        missing = np.isnan(blk.G).mean(axis=1)
        sel = np.flatnonzero((af >= min_af) & (af <= 1 - min_af) & (missing < max_missing))
        if not sel.size:
            continue
        candidates += sel.size
        Z = standardise(blk.G[sel])
        norm = np.sqrt((Z * Z).sum(axis=1, keepdims=True))
        U = Z / np.where(norm > 0, norm, 1.0)
        keep = ld_thin(U, window=window, r2=r2, prev=tail)
        kept_u = U[keep]
        tail = kept_u[-window:] if tail is None else np.concatenate([tail, kept_u])[-window:]
        rows.append(Z[keep])
        keys.append(blk.keys.take(pa.array(sel[keep])).select(["contig", "pos", "ref", "alt"]))
    if not rows:
        raise UserInputError(f"no autosomal variant with allele frequency between {min_af} and {1 - min_af} "
                             "among the lake's samples: nothing to compute components from")
    X = np.concatenate(rows)  # variants x people
    used = pa.concat_tables(keys)
    if X.shape[0] > max_variants:
        pick = np.linspace(0, X.shape[0] - 1, max_variants).round().astype(int)
        X, used = X[pick], used.take(pa.array(pick))
    m = X.shape[0]
    if m <= k:
        raise UserInputError(f"only {m} variants left after LD thinning: too few for {k} components "
                             "(lower --k or --min-af)")
    A = np.ascontiguousarray(X.T)  # people x variants
    v0 = np.ones(min(A.shape)) / np.sqrt(min(A.shape))
    u, s, _vt = svds(A, k=k, v0=v0, solver="arpack")
    order = np.argsort(-s)
    u, s = u[:, order], s[order]
    scores = u * s
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(k)])
    scores *= np.where(flip == 0, 1.0, flip)
    total = float((A * A).sum())
    cols: dict[str, Any] = {"institution": inst, "sample_id": sid}
    for i in range(k):
        cols[f"pc{i + 1}"] = scores[:, i]
    log.info("PCA: %d people, %d common variants, %d after LD thinning", n, candidates, m)
    return PcaResult(pa.table(cols), s * s / m, s * s / total if total else s * 0, used, candidates)


def standardise(G: np.ndarray) -> np.ndarray:
    """``(g - 2p) / sqrt(2p(1-p))`` per row, ``p`` from the non-missing dosages; missing -> 0."""
    called = ~np.isnan(G)
    cnt = called.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(called, G, 0.0).sum(axis=1, keepdims=True) / (2 * np.maximum(cnt, 1))
        sd = np.sqrt(2 * p * (1 - p))
        Z = np.where(called, (G - 2 * p) / np.where(sd > 0, sd, 1.0), 0.0)
    return Z  # type: ignore[no-any-return]


def run_pca(lake_path: Path | str, *, k: int = 10, min_af: float = 0.05, r2: float = 0.2, window: int = 50,
            max_variants: int = 20_000, write: bool = True) -> dict[str, Any]:
    """Compute the components (:func:`compute_pca`) and store them as phenotypes ``pc1..pcK``.

    Returns a report: people, candidate and used variants, eigenvalues and variance explained (no sample IDs).

    Examples
    --------
    >>> run_pca("lake", k=10)  # doctest: +SKIP
    {'people': 3000, 'variants_common': 41210, 'variants_used': 9876, 'components': [...]}
    """
    from genolake.phenotypes import replace_numeric_phenotypes
    from genolake.query.lake import Lake

    with Lake(lake_path) as lk:
        res = compute_pca(lk, k=k, min_af=min_af, r2=r2, window=window, max_variants=max_variants)
    t = res.scores
    if write:
        keys = list(zip(t["institution"].to_pylist(), t["sample_id"].to_pylist(), strict=True))
        values = {f"pc{i + 1}": dict(zip(keys, t[f"pc{i + 1}"].to_pylist(), strict=True)) for i in range(k)}
        replace_numeric_phenotypes(lake_path, values, drop=_PC_NAME)
    return {
        "people": t.num_rows,
        "variants_common": res.candidates,
        "variants_used": res.variants.num_rows,
        "written": write,
        "components": [{"pc": f"pc{i + 1}", "eigenvalue": float(res.eigenvalues[i]),
                        "variance_explained": float(res.variance_explained[i])} for i in range(k)],
    }
