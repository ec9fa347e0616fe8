"""Fisher's exact test, odds ratios and Benjamini-Hochberg q-values for many 2x2 tables at once.

Tables are ``[[a, b], [c, d]]`` given as four integer arrays. The two-sided p-value is the one of
``scipy.stats.fisher_exact`` (the probability of every table with the same margins that is no more likely than
the observed one, with scipy's relative tolerance of 1e-14 for ties), computed for whole arrays at once from
the ratios of consecutive hypergeometric probabilities (scipy's per-table Boost calls cost about 4 us per
pmf/cdf/sf evaluation, more than the whole computation here). The sample odds ratio and
its Woolf (log) confidence interval are those of ``scipy.stats.contingency.odds_ratio(kind='sample')``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

_EPS = 1e-14  # scipy.stats.fisher_exact's relative tolerance for "as likely as the observed table"
_GAMMA = 1 + _EPS


def _ints(x: ArrayLike) -> NDArray[np.int64]:
    return np.asarray(x, dtype=np.int64)


def fisher_exact_p(a: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike) -> NDArray[np.float64]:
    """Two-sided Fisher exact p-values of the tables ``[[a, b], [c, d]]`` (element-wise, as scipy).

    The p-value sums the hypergeometric probabilities of every table with the same margins that is no more
    likely than the observed one (within scipy's relative tolerance of 1e-14). Probabilities relative to the
    mode come from the ratio of consecutive terms, ``P(x+1)/P(x) = (n1-x)(n-x) / ((x+1)(n2-n+x+1))``, summed
    as logs in extended precision, so no factorial of a large number is ever formed and the result equals
    ``scipy.stats.fisher_exact`` to about 1e-14 relative. A table with an empty row or column has p = 1 (as
    scipy). Negative cells raise ``ValueError``. Work is done in chunks of at most ``_CELLS`` grid cells.

    Examples
    --------
    >>> fisher_exact_p([8, 1], [2, 5], [1, 9], [5, 3]).round(6).tolist()
    [0.034965, 0.202067]
    """
    a, b, c, d = np.broadcast_arrays(_ints(a), _ints(b), _ints(c), _ints(d))
    if a.size and min(a.min(), b.min(), c.min(), d.min()) < 0:
        raise ValueError("2x2 table cells must be >= 0")
    shape = a.shape
    a, b, c, d = (x.ravel() for x in (a, b, c, d))
    p = np.ones(a.shape, dtype=np.float64)
    n1, n2, n = a + b, c + d, a + c
    live = np.flatnonzero((n1 > 0) & (n2 > 0) & (n > 0) & (b + d > 0))
    if not live.size:
        return p.reshape(shape)
    # Tables with the same margins share one hypergeometric distribution: in a scan they are few (the case and
    # control allele numbers repeat, the total allele count takes a few hundred values), so each distinct
    # distribution is computed once, over its whole support, and every table of it reads its p from the sorted
    # probabilities' running sum.
    margins, inverse = np.unique(np.column_stack([n1[live], n2[live], n[live]]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    m1, m2, mn = margins[:, 0], margins[:, 1], margins[:, 2]
    lo = np.maximum(0, mn - m2)
    size = np.minimum(mn, m1) - lo + 1
    order = np.argsort(size, kind="stable")
    sizes = size[order]
    out = np.empty(live.size, dtype=np.float64)
    rows_of = np.argsort(inverse, kind="stable")  # live rows grouped by distribution
    bounds = np.searchsorted(inverse[rows_of], np.arange(len(margins) + 1))
    begin = 0
    while begin < order.size:
        # distributions sorted by support size: grow the chunk while count x widest support stays within _CELLS
        end = begin + max(1, int(np.searchsorted(sizes[begin:] * np.arange(1, order.size - begin + 1), _CELLS,
                                                 side="right")))
        dist = order[begin:end]
        dens = _densities(m1[dist], m2[dist], mn[dist], lo[dist], size[dist], int(size[dist[-1]]))
        sorted_d = np.sort(dens, axis=1)
        running = np.cumsum(sorted_d, axis=1)
        total = running[:, -1]
        for j, u in enumerate(dist):
            members = rows_of[bounds[u]:bounds[u + 1]]
            obs = dens[j, a[live[members]] - lo[u]]
            # how many of the distribution's probabilities are <= the observed one (scipy's tolerance)
            k = np.searchsorted(sorted_d[j], obs * _GAMMA, side="right")
            out[members] = np.minimum(running[j, k - 1] / total[j], 1.0)
        begin = end
    p[live] = out
    return p.reshape(shape)


_CELLS = 1 << 21


def _densities(n1: NDArray[np.int64], n2: NDArray[np.int64], n: NDArray[np.int64], lo: NDArray[np.int64],
               size: NDArray[np.int64], width: int) -> NDArray[np.float64]:
    """Hypergeometric probabilities over each support (padded with 0), relative to the mode's."""
    rows = np.arange(len(size))
    x = lo[:, None] + np.arange(width, dtype=np.int64)[None, :]
    valid = np.arange(width)[None, :] < size[:, None]
    step = valid.copy()
    step[rows, size - 1] = False  # a step x -> x+1 needs x+1 in the support
    num = ((n1[:, None] - x) * (n[:, None] - x)).astype(np.float64)
    den = ((x + 1) * (n2[:, None] - n[:, None] + x + 1)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(step, np.log(np.where(step, num / den, 1.0)), 0.0)
    cum = np.zeros((len(size), width), dtype=np.longdouble)
    np.cumsum(t[:, :-1], axis=1, dtype=np.longdouble, out=cum[:, 1:])
    mode = (n + 1) * (n1 + 1) // (n1 + n2 + 2)
    rel = (cum - cum[rows, mode - lo][:, None]).astype(np.float64)  # log P(x) - log P(mode)
    return np.where(valid, np.exp(rel), 0.0)


@dataclass
class OddsRatio:
    """Sample odds ratios ``a*d / (b*c)`` with their Woolf confidence intervals (NaN where undefined)."""

    estimate: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]


def odds_ratio(a: ArrayLike, b: ArrayLike, c: ArrayLike, d: ArrayLike, *, confidence: float = 0.95) -> OddsRatio:
    """Sample odds ratio and its two-sided Woolf (log) interval, as ``scipy.stats.contingency.odds_ratio``
    with ``kind='sample'``: NaN when ``a*d`` and ``b*c`` are both 0, inf when only ``b*c`` is; a zero cell
    gives the interval (0, inf) (or (0, NaN) when the estimate is 0); an empty row or column gives
    estimate NaN and interval (0, inf).

    Examples
    --------
    >>> r = odds_ratio([8], [2], [1], [5])
    >>> float(r.estimate[0]), round(float(r.low[0]), 4), round(float(r.high[0]), 2)
    (20.0, 1.4254, 280.6)
    """
    from scipy.special import ndtri

    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in np.broadcast_arrays(a, b, c, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where((c > 0) & (b > 0), a * d / (b * c), np.where((a == 0) | (d == 0), np.nan, np.inf))
        log_or = np.log(est)
        se = np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        z = ndtri(0.5 * confidence + 0.5)
        low = np.exp(log_or - z * se)
        high = np.exp(log_or + z * se)
    empty = (a + b == 0) | (c + d == 0) | (a + c == 0) | (b + d == 0)
    est = np.where(empty, np.nan, est)
    low = np.where(empty, 0.0, low)
    high = np.where(empty, np.inf, high)
    return OddsRatio(est, low, high)


def bh_qvalues(p: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg q-values (``scipy.stats.false_discovery_control(method='bh')``) of the non-NaN
    p-values; NaN stays NaN and does not count among the tests.

    Examples
    --------
    >>> bh_qvalues([0.01, 0.04, float("nan"), 0.03]).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    from scipy.stats import false_discovery_control

    arr = np.asarray(p, dtype=np.float64)
    q = np.full(arr.shape, np.nan)
    ok = ~np.isnan(arr)
    if ok.any():
        q[ok] = false_discovery_control(arr[ok], method="bh")
    return q
