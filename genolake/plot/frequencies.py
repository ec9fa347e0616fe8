"""Figures for notebooks: each function takes a table the API returns and gives back a matplotlib ``Figure``.

matplotlib is an optional extra (``pip install 'genolake[plot]'``), imported only when a function is called.
Figures are made with ``matplotlib.figure.Figure`` (no pyplot state, no display needed): a notebook shows the
returned figure, a script calls ``fig.savefig("out.png")``.

Tables may be a ``pyarrow.Table`` (what ``Lake.sql`` returns), a pandas or polars DataFrame, or a list of dicts.

Examples
--------
>>> import genolake, genolake.plot as gp                                      # doctest: +SKIP
>>> lake = genolake.open("genolake-demo-lake")                                 # doctest: +SKIP
>>> freqs = lake.sql("SELECT * FROM site_frequencies")                         # doctest: +SKIP
>>> gp.af_spectrum(freqs).savefig("spectrum.png")                              # doctest: +SKIP
>>> gp.af_compare(freqs, "north", "south").savefig("north_vs_south.png")       # doctest: +SKIP
>>> gp.carriers_by_phenotype(lake.variant("20-1335865-T-C"), "case_status")    # doctest: +SKIP
"""

from __future__ import annotations

import math
import sys
from typing import Any

from genolake.errors import MissingExtraError, UserInputError


def _figure(**kwargs: Any) -> Any:
    """A new matplotlib Figure, or an error naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError("plot", "matplotlib") from None
    _show_in_notebooks(Figure)
    return Figure(**kwargs)


def _show_in_notebooks(figure_class: Any) -> None:
    """In IPython/Jupyter, show a returned Figure as a PNG: a Figure made without pyplot has no display hook
    until pyplot's inline backend is loaded, so the notebook would print ``<Figure size ...>`` instead."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    from IPython.core.pylabtools import print_figure

    png = shell.display_formatter.formatters["image/png"]
    png.for_type(figure_class, lambda fig: print_figure(fig, "png", bbox_inches="tight"))


def _columns(data: Any, needed: list[str]) -> dict[str, list[Any]]:
    """Column name -> values of a pyarrow Table, pandas/polars DataFrame or list of dicts; missing ones refused."""
    if hasattr(data, "to_pydict"):  # pyarrow
        cols = data.to_pydict()
    elif hasattr(data, "to_dict") and hasattr(data, "columns") and hasattr(data, "iloc"):  # pandas
        cols = {str(k): list(v) for k, v in data.to_dict("list").items()}
    elif hasattr(data, "to_dict") and hasattr(data, "columns"):  # polars
        cols = data.to_dict(as_series=False)
    elif isinstance(data, list):
        cols = {k: [r.get(k) for r in data] for k in dict.fromkeys(k for r in data for k in r)}
    else:
        raise UserInputError(f"cannot plot a {type(data).__name__}: give a pyarrow Table, a DataFrame or a list of dicts")
    missing = [c for c in needed if c not in cols]
    if missing:
        raise UserInputError(f"the table has no column {missing[0]!r} (it has: {', '.join(cols)})")
    return cols


def _scope_column(cols: dict[str, list[Any]]) -> str:
    for name in ("scope", "institution"):
        if name in cols:
            return name
    raise UserInputError("the table needs a `scope` or `institution` column (e.g. the site_frequencies view)")


def _af(cols: dict[str, list[Any]]) -> list[float | None]:
    if "af" in cols:
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in cols["af"]]
    if "ac" in cols and "an" in cols:
        return [(a / n) if n else None for a, n in zip(cols["ac"], cols["an"], strict=True)]
    raise UserInputError("the table needs an `af` column, or `ac` and `an`")


def af_spectrum(freqs: Any, *, scopes: list[str] | None = None, bins: int = 20, folded: bool = False) -> Any:
    """Allele-frequency spectrum per institution: how many variants fall in each AF bin (log-spaced, so rare
    variants, where institutions differ most, get room), one line per scope.

    Parameters
    ----------
    freqs
        Rows with ``scope`` (or ``institution``) and ``af`` (or ``ac`` and ``an``): e.g.
        ``lake.sql("SELECT * FROM site_frequencies")`` or ``allele_frequencies`` with ``stratum = 'all'``.
    scopes
        Which scopes to draw (default: every one in the table, ``joint`` first).
    bins
        Number of log-spaced bins between the smallest non-zero AF and 1.
    folded
        Plot the minor allele frequency, min(AF, 1 - AF), instead of the AF.

    Returns
    -------
    matplotlib.figure.Figure
    """
    cols = _columns(freqs, [])
    scol = _scope_column(cols)
    afs = _af(cols)
    by: dict[str, list[float]] = {}
    for s, af in zip(cols[scol], afs, strict=True):
        if af is not None and af > 0:
            by.setdefault(str(s), []).append(min(af, 1 - af) if folded else af)
    order = scopes or sorted(by, key=lambda s: (s != "joint", s))
    fig = _figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    values = [v for s in order for v in by.get(s, []) if v > 0]
    if not values:
        ax.text(0.5, 0.5, "no variant with AF > 0", ha="center", va="center", transform=ax.transAxes)
        return fig
    lo = min(values)
    hi = 0.5 if folded else 1.0
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)] if hi > lo else [lo, hi]
    import numpy as np

    centers = np.sqrt(np.asarray(edges[:-1]) * np.asarray(edges[1:]))
    for s in order:
        counts, _ = np.histogram(by.get(s, []), bins=edges)
        keep = counts > 0  # AFs are multiples of 1/AN: narrow rare-variant bins can fall between two of them
        ax.plot(centers[keep], counts[keep], marker="o", markersize=3.5, label=f"{s} ({len(by.get(s, [])):,})",
                linewidth=2.2 if s == "joint" else 1.3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("minor allele frequency" if folded else "allele frequency")
    ax.set_ylabel("variants")
    ax.set_title("Allele-frequency spectrum per institution")
    ax.legend(title="scope (variants with AF > 0)", fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return fig


def af_compare(freqs: Any, x: str, y: str, *, max_diff: float = 0.2, min_an: int = 20, gridsize: int = 40) -> Any:
    """AF in institution ``x`` against institution ``y`` for the variants both count (hexbin), with the
    discordant ones (|AF difference| > ``max_diff``, each side with AN >= ``min_an``) drawn on top in red: batch
    effects, build or strand problems and real population differences show up off the diagonal.

    Parameters
    ----------
    freqs
        Rows with ``scope`` (or ``institution``), ``contig``, ``pos``, ``ref``, ``alt``, ``an`` and ``af`` (or
        ``ac``): e.g. ``lake.sql("SELECT * FROM site_frequencies")``.
    x, y
        The two scopes (institution names) to compare.
    max_diff
        Absolute AF difference above which a variant counts as discordant.
    min_an
        Variants with fewer counted alleles on either side are left out (their AF is noise).
    gridsize
        Hexagons across the x axis.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.discordant`` holds the discordant variants as a list of dicts (contig, pos, ref, alt, af_x, af_y).
    """
    cols = _columns(freqs, ["contig", "pos", "ref", "alt", "an"])
    scol = _scope_column(cols)
    afs = _af(cols)
    sides: dict[str, dict[tuple[Any, ...], tuple[float, int]]] = {x: {}, y: {}}
    for i, s in enumerate(cols[scol]):
        if s in sides and afs[i] is not None and (cols["an"][i] or 0) >= min_an:
            key = (cols["contig"][i], cols["pos"][i], cols["ref"][i], cols["alt"][i])
            sides[s][key] = (afs[i], cols["an"][i])  # type: ignore[assignment]
    for s in (x, y):
        if not sides[s]:
            raise UserInputError(f"no variant of scope {s!r} with AN >= {min_an} in the table; scopes there: "
                                 f"{', '.join(sorted({str(v) for v in cols[scol]}))}")
    keys = sorted(set(sides[x]) & set(sides[y]), key=lambda k: (str(k[0]), k[1], k[2], k[3]))
    ax_v = [sides[x][k][0] for k in keys]
    ay_v = [sides[y][k][0] for k in keys]
    disc = [(k, a, b) for k, a, b in zip(keys, ax_v, ay_v, strict=True) if abs(a - b) > max_diff]
    fig = _figure(figsize=(5.6, 5), layout="constrained")
    ax = fig.add_subplot()
    hb = ax.hexbin(ax_v, ay_v, gridsize=gridsize, bins="log", extent=(0, 1, 0, 1), cmap="Blues", mincnt=1)
    fig.colorbar(hb, ax=ax, label="variants (log)")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    if disc:
        ax.scatter([d[1] for d in disc], [d[2] for d in disc], s=14, color="crimson", zorder=3,
                   label=f"|AF difference| > {max_diff:g}: {len(disc):,}")
        ax.legend(loc="upper left", fontsize="small")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"AF in {x}")
    ax.set_ylabel(f"AF in {y}")
    ax.set_title(f"{x} vs {y}: {len(keys):,} variants counted in both")
    fig.discordant = [  # type: ignore[attr-defined]
        {"contig": k[0], "pos": k[1], "ref": k[2], "alt": k[3], "af_x": a, "af_y": b} for k, a, b in disc]
    return fig


def carriers_by_phenotype(report: dict[str, Any], phenotype: str) -> Any:
    """Carriers of one variant per value of a categorical phenotype: samples counted at the site (light bars),
    carriers among them (dark bars) and the AF of each group above the bars.

    Parameters
    ----------
    report
        ``lake.variant(ID)`` (its ``phenotypes`` part: phenotype, value, samples, carriers, af).
    phenotype
        A categorical phenotype shown in the report, e.g. ``case_status`` or ``population``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = [r for r in report.get("phenotypes") or [] if r.get("phenotype") == phenotype]
    if not rows:
        have = sorted({r.get("phenotype") for r in report.get("phenotypes") or []})
        raise UserInputError(f"the report has no values of {phenotype!r}; it has: {', '.join(map(str, have)) or 'none'}")
    rows.sort(key=lambda r: str(r["value"]))
    fig = _figure(figsize=(max(4.5, 0.9 * len(rows) + 2), 4), layout="constrained")
    ax = fig.add_subplot()
    xs = list(range(len(rows)))
    ax.bar(xs, [r["samples"] for r in rows], color="#c6dbef", label="samples counted")
    ax.bar(xs, [r["carriers"] for r in rows], color="#2171b5", label="carriers")
    for i, r in enumerate(rows):
        af = r.get("af")
        ax.annotate(f"AF {af:.3f}" if af is not None else "AF -", (i, r["samples"]), ha="center", va="bottom",
                    fontsize="small", xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(xs, [str(r["value"]) for r in rows])
    ax.set_xlabel(phenotype)
    ax.set_ylabel("samples")
    ax.margins(y=0.12)
    v = report.get("variant", {})
    ax.set_title(f"{v.get('id', '')} carriers by {phenotype}")
    ax.legend(fontsize="small")
    return fig
