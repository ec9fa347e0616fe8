"""Plots of query results (matplotlib, the ``plot`` extra: ``pip install 'genolake[plot]'``).

matplotlib is imported only when a plot is drawn; without it the functions raise :class:`MissingExtraError`
naming the extra. Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI backend), so they
work in scripts, servers and notebooks alike.

Association plots (results of :meth:`genolake.query.lake.Lake.assoc`: any table with ``contig``, ``pos`` and
``p`` columns, as a ``pyarrow.Table``, a pandas DataFrame or a dict of arrays):

- :func:`manhattan`: ``-log10(p)`` along the genome, contigs in karyotype order;
- :func:`qq`: observed against expected ``-log10(p)`` under the null, with a 95% band and the genomic
  inflation factor lambda (median chi-square over its expected 0.4549);
- :func:`save_assoc_plot`: both side by side, written to a file (what ``genolake query assoc --plot`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genolake.errors import MissingExtraError

GENOME_WIDE = 5e-8
SUGGESTIVE = 1e-5


def require_matplotlib() -> Any:
    """Import matplotlib, or raise :class:`MissingExtraError` naming ``pip install 'genolake[plot]'``."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtraError("plot", "matplotlib") from None
    return matplotlib


def _columns(results: Any, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in names:
        try:
            col = results[name]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"results need a {name!r} column (as returned by Lake.assoc)") from None
        if hasattr(col, "to_numpy"):
            try:
                arr = col.to_numpy(zero_copy_only=False)
            except TypeError:
                arr = col.to_numpy()
        else:
            arr = np.asarray(col)
        out[name] = arr
    return out


def _contig_rank(contig: str) -> tuple[int, str]:
    c = contig.removeprefix("chr")
    if c.isdigit():
        return int(c), ""
    order = {"X": 1000, "Y": 1001, "M": 1002, "MT": 1002}
    return order.get(c.upper(), 2000), c


def _pvalues(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid p-values (0 < p <= 1) and their mask; p = 0 (underflow) is shown at the smallest positive double."""
    p = np.asarray(p, dtype=np.float64)
    ok = ~np.isnan(p) & (p <= 1) & (p >= 0)
    return np.clip(p, np.finfo(np.float64).tiny, 1.0), ok


def _figure(figsize: tuple[float, float]) -> Any:
    require_matplotlib()
    from genolake.plot.frequencies import _figure as figure  # one Figure maker: it also shows in notebooks

    return figure(figsize=figsize, layout="constrained")


def manhattan(results: Any, *, ax: Any = None, title: str | None = None, genome_wide: float = GENOME_WIDE,
              suggestive: float | None = SUGGESTIVE, label_top: int = 1,
              colors: tuple[str, str] = ("#1f4e79", "#6fa8dc"), figsize: tuple[float, float] = (11, 4)) -> Any:
    """Manhattan plot of ``-log10(p)`` by position; returns the matplotlib ``Figure``.

    Contigs are laid end to end in karyotype order (1..22, X, Y, M, then others), each as wide as its span of
    tested positions, in alternating colours; dashed lines at ``genome_wide`` (5e-8) and ``suggestive``
    (1e-5); the ``label_top`` smallest p-values are labelled ``contig:pos``. Rows without a p are skipped.

    Examples
    --------
    >>> fig = manhattan(lake.assoc("case_status", region="20:1-5000000"))  # doctest: +SKIP
    >>> fig.savefig("manhattan.png")  # doctest: +SKIP
    """
    cols = _columns(results, ("contig", "pos", "p"))
    p, ok = _pvalues(cols["p"])
    contig = np.asarray(cols["contig"], dtype=object)[ok]
    pos = np.asarray(cols["pos"], dtype=np.float64)[ok]
    y = -np.log10(p[ok])
    fig = ax.figure if ax is not None else _figure(figsize)
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    names = sorted(set(contig.tolist()), key=_contig_rank)
    x = np.zeros(pos.shape)
    if len(names) == 1:  # one contig: real positions, in Mb
        x = pos / 1e6
        ax.scatter(x, y, s=6, color=colors[0], linewidths=0, rasterized=True)
        ax.set_xlabel(f"position on {names[0]} (Mb)")
    else:
        ticks, offset = [], 0.0
        for i, name in enumerate(names):
            m = contig == name
            lo, hi = pos[m].min(), pos[m].max()
            x[m] = offset + pos[m] - lo
            ax.scatter(x[m], y[m], s=6, color=colors[i % 2], linewidths=0, rasterized=True)
            ticks.append(offset + (hi - lo) / 2)
            offset += (hi - lo) + max(1.0, 0.02 * (hi - lo)) + 1
        ax.set_xticks(ticks, [n.removeprefix("chr") for n in names])
        ax.set_xlabel("contig")
    ax.set_ylabel(r"$-\log_{10}(p)$")
    ymax = max(float(y.max()) if y.size else 1.0, -np.log10(genome_wide)) * 1.08
    ax.set_ylim(0, ymax)
    ax.axhline(-np.log10(genome_wide), color="#c00000", linestyle="--", linewidth=0.8)
    if suggestive is not None:
        ax.axhline(-np.log10(suggestive), color="#808080", linestyle=":", linewidth=0.8)
    if label_top and y.size:
        for i in np.argsort(-y, kind="stable")[:label_top]:
            ax.annotate(f"{contig[i]}:{int(pos[i])}", (x[i], y[i]), textcoords="offset points", xytext=(4, 4),
                        fontsize=8)
    ax.set_title(title or f"Manhattan plot ({int(ok.sum()):,} variants)")
    return fig


def qq(results: Any, *, ax: Any = None, title: str | None = None, band: bool = True,
       figsize: tuple[float, float] = (5, 5)) -> Any:
    """QQ plot of observed against expected ``-log10(p)`` under the uniform null; returns the ``Figure``.

    The grey band is the pointwise 95% interval of the order statistics (Beta(i, n - i + 1)); the title gives
    the genomic inflation factor lambda = median(chi2) / 0.4549 of the p-values (1 under the null).
    """
    from scipy.stats import beta as beta_dist
    from scipy.stats import chi2

    cols = _columns(results, ("p",))
    p, ok = _pvalues(cols["p"])
    p = np.sort(p[ok])
    n = p.size
    fig = ax.figure if ax is not None else _figure(figsize)
    ax = ax if ax is not None else fig.add_subplot(1, 1, 1)
    if n == 0:
        ax.set_title(title or "QQ plot (no p-values)")
        return fig
    i = np.arange(1, n + 1)
    expected = -np.log10(i / (n + 1))
    if band:
        lo = -np.log10(beta_dist.ppf(0.975, i, n - i + 1))
        hi = -np.log10(beta_dist.ppf(0.025, i, n - i + 1))
        ax.fill_between(expected, lo, hi, color="#d9d9d9", linewidth=0)
    top = float(max(expected.max(), -np.log10(p[0])))
    ax.plot([0, top], [0, top], color="#c00000", linewidth=0.8)
    ax.scatter(expected, -np.log10(p), s=6, color="#1f4e79", linewidths=0, rasterized=True)
    lam = float(np.median(chi2.isf(p, 1)) / chi2.ppf(0.5, 1))
    ax.set_xlabel(r"expected $-\log_{10}(p)$")
    ax.set_ylabel(r"observed $-\log_{10}(p)$")
    ax.set_title(title or f"QQ plot ({n:,} variants, $\\lambda$ = {lam:.3f})")
    return fig


def save_assoc_plot(results: Any, path: Path | str, *, title: str | None = None) -> Path:
    """Manhattan and QQ plots side by side, saved to ``path`` (format from its suffix)."""
    fig = _figure((15, 4.5))
    grid = fig.add_gridspec(1, 4)
    manhattan(results, ax=fig.add_subplot(grid[0, :3]), title=title)
    qq(results, ax=fig.add_subplot(grid[0, 3]))
    out = Path(path)
    fig.savefig(out, dpi=150)
    return out
