"""Association tests: per-variant Fisher's exact tests, regressions with covariates, and burden tests.

Cases are the samples whose categorical phenotype equals ``case``; controls are those with ``control`` (by
default: the other value when the phenotype has two, else ``control`` if it is a value, else every other
value). Samples without a value are left out. Counts follow the lake's counting rule (see
:mod:`genolake.query.counts`), so samples of files that do not cover a site are not counted there.

``test="fisher"`` (the default), per variant, sorted by ``p``:

- ``case_ac``, ``case_an``, ``control_ac``, ``control_an``: allele counts; ``case_af``, ``control_af``;
- ``or``, ``or_ci_low``, ``or_ci_high``: sample odds ratio of the allelic 2x2 table
  ``[[case_ac, case_an - case_ac], [control_ac, control_an - control_ac]]`` with its 95% confidence interval
  (Woolf's log method, as ``scipy.stats.contingency.odds_ratio(kind='sample')``);
- ``p``: Fisher's exact test (two-sided, as ``scipy.stats.fisher_exact``) on the allelic table; ``q``: its
  Benjamini-Hochberg q-value over the variants tested;
- ``case_carriers``, ``case_noncarriers``, ``control_carriers``, ``control_noncarriers`` (non-carriers: fully
  called without the allele) and ``p_carrier``: Fisher's exact test on the carrier table (dominant model).

The counts of all variants are made by the aggregate job's numpy counter over the region's codes
(:func:`genolake.query.counts.group_ctes`; implied 0/0 calls included) and joined to the sites in one DuckDB
query; the tests run on whole arrays (:mod:`genolake.stats.fisher`).

``test="logistic"`` (case-control) or ``test="linear"`` (numeric phenotype), with ``covariates``: see
:mod:`genolake.query.regress` for the model and the columns.

Burden (``burden=True``): the carriers of any qualifying variant (``min_ac``, ``max_af`` over cases and
controls) among the cases and controls with data on the region's contig, one row with the same statistics;
``weights="madsen-browning"`` gives Madsen and Browning's weighted-sum test instead, and a regression
``test`` regresses on a per-person burden score (:mod:`genolake.query.burden`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from genolake.errors import UserInputError
from genolake.genotypes import carries_sql
from genolake.query.counts import group_ctes, joint_ctes
from genolake.query.ids import Region
from genolake.query.region import as_region

if TYPE_CHECKING:
    from genolake.query.lake import Lake

TESTS = ("fisher", "logistic", "linear")
WEIGHTS = ("none", "madsen-browning")
Progress = Callable[..., None]  # progress(variants done, blocks done, blocks in all)


def gene_region(lake: Lake, gene: str) -> Region:
    """The region of a gene symbol, from the annotation stage's hook `genolake.query.genes.gene_region`."""
    try:
        from genolake.query import genes  # type: ignore[attr-defined]
    except ImportError:
        raise UserInputError(
            f"--gene {gene}: gene coordinates are not available; annotate the lake with genes first "
            "(`genolake annotate --genes ...`) or give --region CONTIG:START-END"
        ) from None
    contig, start, end = genes.gene_region(lake, gene)
    return Region(contig, int(start), int(end))


def case_control_values(lake: Lake, phenotype: str, case: str | None, control: str | None) -> tuple[str, list[str]]:
    """Check the phenotype and pick the case value and the control values."""
    eng = lake.engine
    kinds = eng.catalog.phenotypes
    name = phenotype.strip().lower()
    categorical = sorted(n for n, k in kinds.items() if k == "categorical")
    if name not in kinds:
        raise UserInputError(f"unknown phenotype {phenotype!r}; categorical phenotypes: "
                             + (", ".join(categorical) or "none (load phenotypes with `genolake phenotypes load`)"))
    if kinds[name] != "categorical":
        raise UserInputError(f"--phenotype {name} is {kinds[name]}; assoc needs a categorical phenotype such as "
                             + (", ".join(categorical) or "case_status"))
    values = [r[0] for r in eng.rows(
        "SELECT DISTINCT value_str FROM phenotypes_long WHERE name = $name AND value_str IS NOT NULL ORDER BY 1",
        {"name": name})]
    if case is None:
        if "case" in values:
            case = "case"
        else:
            raise UserInputError(f"give --case VALUE: the values of {name} are {', '.join(values[:20])}")
    if case not in values:
        raise UserInputError(f"--case {case!r} is not a value of {name}; its values are {', '.join(values[:20])}")
    others = [v for v in values if v != case]
    if control is not None:
        if control not in others:
            raise UserInputError(f"--control {control!r} is not another value of {name}; values: {', '.join(values)}")
        controls = [control]
    elif len(others) == 1 or "control" not in others:
        controls = others
    else:
        controls = ["control"]
    if not controls:
        raise UserInputError(f"{name} has no value other than {case!r}: no controls")
    return name, [case, *controls]


def resolve_region(lake: Lake, region: str | Region | None, gene: str | None) -> Region | None:
    if region is not None and gene is not None:
        raise UserInputError("give --region or --gene, not both")
    return gene_region(lake, gene) if gene is not None else (as_region(lake, region) if region is not None else None)


def assoc_table(
    lake: Lake,
    phenotype: str,
    *,
    case: str | None = None,
    control: str | None = None,
    region: str | Region | None = None,
    gene: str | None = None,
    min_ac: int | None = None,
    max_af: float | None = None,
    burden: bool = False,
    test: str = "fisher",
    covariates: str | list[str] | None = None,
    weights: str | None = None,
    firth_mac: int = 20,
    firth_p: float = 0.05,
    progress: Progress | None = None,
) -> pa.Table:
    """Association of ``phenotype`` with the variants of ``region``/``gene`` (or the whole lake); see the module
    docstring for the tests and columns. ``progress(variants_done, blocks_done, blocks_total)`` is called as
    work advances."""
    test = test.strip().lower()
    if test not in TESTS:
        raise UserInputError(f"unknown --test {test!r}; use one of {', '.join(TESTS)}")
    wname = (weights or "none").strip().lower()
    if wname not in WEIGHTS:
        raise UserInputError(f"unknown --weights {weights!r}; use one of {', '.join(WEIGHTS)}")
    if wname != "none" and not burden:
        raise UserInputError("--weights applies to a burden test: add --burden")
    from genolake.query.design import parse_covariates

    covs = parse_covariates(covariates)
    if covs and test == "fisher":
        raise UserInputError("--covariates needs a regression: add --test logistic (case-control) or --test linear")
    reg = resolve_region(lake, region, gene)
    if burden and reg is None:
        raise UserInputError("--burden needs --region or --gene (the set of variants to collapse)")
    if min_ac is not None and min_ac < 0:
        raise UserInputError(f"--min-ac must be >= 0, not {min_ac}")
    if max_af is not None and not 0 <= max_af <= 1:
        raise UserInputError(f"--max-af must be between 0 and 1, not {max_af}")
    if test != "fisher" or wname != "none":
        if burden:
            from genolake.query.burden import burden_table

            return burden_table(lake, phenotype, reg, test=test, covariates=covs, case=case, control=control,
                                min_ac=min_ac, max_af=max_af, weights=wname)
        from genolake.query.regress import regression_table

        return regression_table(lake, phenotype, reg, test=test, covariates=covs, case=case, control=control,
                                min_ac=min_ac, max_af=max_af, firth_mac=firth_mac, firth_p=firth_p,
                                progress=progress)
    name, values = case_control_values(lake, phenotype, case, control)
    eng = lake.engine
    params: dict[str, Any] = {"pheno": name, "case_value": values[0], "values": values}
    grp = """SELECT institution, sample_id, CASE WHEN value_str = $case_value THEN 'case' ELSE 'control' END AS g
             FROM phenotypes_long WHERE name = $pheno AND list_contains($values, value_str)"""
    ctes = joint_ctes(eng, reg, None, params) + "," + group_ctes(eng, reg, None, grp, params)
    params["min_ac"] = 1 if min_ac is None else min_ac
    af_term = ""
    if max_af is not None:
        params["max_af"] = max_af
        af_term = ("AND coalesce(v.case_ac, 0) + coalesce(v.control_ac, 0) "
                   "<= $max_af * (coalesce(v.case_an, 0) + coalesce(v.control_an, 0))")
    per_variant = f"""
    SELECT k.contig, k.pos, k.ref, k.alt, k.id,
           coalesce(v.case_ac, 0) AS case_ac, coalesce(v.case_an, 0) AS case_an,
           coalesce(v.control_ac, 0) AS control_ac, coalesce(v.control_an, 0) AS control_an,
           coalesce(v.case_carriers, 0) AS case_carriers, coalesce(v.case_noncarriers, 0) AS case_noncarriers,
           coalesce(v.control_carriers, 0) AS control_carriers,
           coalesce(v.control_noncarriers, 0) AS control_noncarriers
    FROM keys k LEFT JOIN (
        SELECT contig, pos, ref, alt,
               sum(ac) FILTER (WHERE g = 'case') AS case_ac, sum(an) FILTER (WHERE g = 'case') AS case_an,
               sum(carriers) FILTER (WHERE g = 'case') AS case_carriers,
               sum(noncarriers) FILTER (WHERE g = 'case') AS case_noncarriers,
               sum(ac) FILTER (WHERE g = 'control') AS control_ac, sum(an) FILTER (WHERE g = 'control') AS control_an,
               sum(carriers) FILTER (WHERE g = 'control') AS control_carriers,
               sum(noncarriers) FILTER (WHERE g = 'control') AS control_noncarriers
        FROM gcounts GROUP BY contig, pos, ref, alt) v USING (contig, pos, ref, alt)
    WHERE coalesce(v.case_ac, 0) + coalesce(v.control_ac, 0) >= $min_ac {af_term}"""
    if not burden:
        counts = eng.query(f"WITH {ctes} {per_variant}", params)  # fisher_table sorts (by p, then position)
        if progress is not None:
            progress(counts.num_rows, 1, 1)
        return fisher_table(counts)
    return _burden(lake, reg, ctes, per_variant, params)



def _nan_to_null(x: np.ndarray) -> pa.Array:
    return pa.array(x, type=pa.float64(), from_pandas=True)


def fisher_table(counts: pa.Table) -> pa.Table:
    """Per-variant tests from the count columns (case/control ac, an, carriers, noncarriers), sorted by p. The
    rows are put in site order first: numpy's vectorised log and exp may round the last bit differently by a
    value's place in the array, so the same counts must come in the same order to give the same p."""
    from genolake.stats.fisher import bh_qvalues, fisher_exact_p, odds_ratio

    counts = counts.sort_by([(k, "ascending") for k in ("contig", "pos", "ref", "alt")])
    col = {c: counts[c].to_numpy().astype(np.int64) for c in (
        "case_ac", "case_an", "control_ac", "control_an",
        "case_carriers", "case_noncarriers", "control_carriers", "control_noncarriers")}
    a, b = col["case_ac"], col["case_an"] - col["case_ac"]
    c, d = col["control_ac"], col["control_an"] - col["control_ac"]
    bad = (b < 0) | (d < 0)  # cannot happen with the counting rule; guarded as the old code did
    a_, b_, c_, d_ = (np.where(bad, 0, x) for x in (a, b, c, d))
    p = np.where(bad, np.nan, fisher_exact_p(a_, b_, c_, d_))
    ors = odds_ratio(a_, b_, c_, d_)
    empty = (a_ + b_ == 0) | (c_ + d_ == 0) | (a_ + c_ == 0) | (b_ + d_ == 0)
    # an empty margin: no odds ratio or interval, p = 1 (as before); a zero cell: OR 0 or inf, open interval
    est = np.where(empty | bad, np.nan, ors.estimate)
    low = np.where(empty | bad, np.nan, ors.low)
    high = np.where(empty | bad, np.nan, ors.high)
    p_carrier = fisher_exact_p(col["case_carriers"], col["case_noncarriers"], col["control_carriers"],
                               col["control_noncarriers"])
    with np.errstate(divide="ignore", invalid="ignore"):
        case_af = np.where(col["case_an"] > 0, col["case_ac"] / col["case_an"], np.nan)
        control_af = np.where(col["control_an"] > 0, col["control_ac"] / col["control_an"], np.nan)
    q = bh_qvalues(p)
    out = pa.table({
        "contig": counts["contig"], "pos": counts["pos"].cast(pa.int32()), "ref": counts["ref"],
        "alt": counts["alt"], "id": counts["id"],
        "case_ac": col["case_ac"], "case_an": col["case_an"], "control_ac": col["control_ac"],
        "control_an": col["control_an"],
        "case_af": _nan_to_null(case_af), "control_af": _nan_to_null(control_af),
        "or": _nan_to_null(est), "or_ci_low": _nan_to_null(low), "or_ci_high": _nan_to_null(high),
        "p": _nan_to_null(p), "q": _nan_to_null(q),
        "case_carriers": col["case_carriers"], "case_noncarriers": col["case_noncarriers"],
        "control_carriers": col["control_carriers"], "control_noncarriers": col["control_noncarriers"],
        "p_carrier": _nan_to_null(p_carrier),
    })
    return sort_by_p(out)


def sort_by_p(table: pa.Table) -> pa.Table:
    """Rows by p (missing p last), then contig, pos, ref, alt."""
    if table.num_rows == 0:
        return table
    p = table["p"].to_numpy(zero_copy_only=False).astype(np.float64)
    p = np.where(np.isnan(p), 2.0, p)
    keys = pa.table({"_p": p, "contig": table["contig"], "pos": table["pos"], "ref": table["ref"],
                     "alt": table["alt"], "_i": np.arange(table.num_rows)})
    order = keys.sort_by([("_p", "ascending"), ("contig", "ascending"), ("pos", "ascending"),
                          ("ref", "ascending"), ("alt", "ascending")])["_i"]
    return table.take(order)


def table_2x2(a: int, b: int, c: int, d: int) -> tuple[float | None, float | None, float | None, float]:
    """Sample odds ratio, its 95% CI and Fisher's exact p of one table ``[[a, b], [c, d]]`` (None: undefined)."""
    from genolake.stats.fisher import fisher_exact_p, odds_ratio

    if (a + b) == 0 or (c + d) == 0 or (a + c) == 0 or (b + d) == 0:
        return None, None, None, 1.0
    r = odds_ratio([a], [b], [c], [d])
    p = float(fisher_exact_p([a], [b], [c], [d])[0])

    def num(x: np.ndarray) -> float | None:
        v = float(x[0])
        return None if np.isnan(v) else v

    return num(r.estimate), num(r.low), num(r.high), p


_BURDEN_SCHEMA = pa.schema([
    ("region", pa.string()), ("variants", pa.int64()),
    ("case_carriers", pa.int64()), ("case_noncarriers", pa.int64()),
    ("control_carriers", pa.int64()), ("control_noncarriers", pa.int64()),
    ("case_samples", pa.int64()), ("control_samples", pa.int64()),
    ("or", pa.float64()), ("or_ci_low", pa.float64()), ("or_ci_high", pa.float64()), ("p", pa.float64()),
])


def _burden(lake: Lake, reg: Region | None, ctes: str, per_variant: str, params: dict[str, Any]) -> pa.Table:
    """Carriers of any qualifying variant vs the other cases/controls with data on the contig."""
    assert reg is not None
    eng = lake.engine
    calls = eng.scan("calls", contig=reg.contig, start=reg.start, end=reg.end,
                     columns=["institution", "file_id", "sample_id", "contig", "pos", "ref", "alt", "alt_count"])
    sql = f"""WITH {ctes},
    q AS ({per_variant}),
    carriers AS (SELECT DISTINCT gs.institution, gs.sample_id, gs.g
                 FROM {calls} AS c JOIN q USING (contig, pos, ref, alt)
                 JOIN gs ON gs.file_id = c.file_id AND gs.sample_id = c.sample_id
                 WHERE {carries_sql("c")}),
    covered AS (SELECT DISTINCT gs.institution, gs.sample_id, gs.g
                FROM gs JOIN ploidy p ON p.file_id = gs.file_id AND p.sample_id = gs.sample_id
                WHERE p.contig = $contig)
    SELECT (SELECT count(*) FROM q) AS variants,
           (SELECT count(*) FROM carriers WHERE g = 'case') AS case_carriers,
           (SELECT count(*) FROM covered WHERE g = 'case') AS case_samples,
           (SELECT count(*) FROM carriers WHERE g = 'control') AS control_carriers,
           (SELECT count(*) FROM covered WHERE g = 'control') AS control_samples"""
    nvar, cc, cs, oc, os_ = eng.rows(sql, params)[0]
    cn, on = max(cs - cc, 0), max(os_ - oc, 0)
    orr, lo, hi, p = table_2x2(int(cc), int(cn), int(oc), int(on))
    row = {"region": str(reg), "variants": nvar, "case_carriers": cc, "case_noncarriers": cn,
           "control_carriers": oc, "control_noncarriers": on, "case_samples": cs, "control_samples": os_,
           "or": orr, "or_ci_low": lo, "or_ci_high": hi, "p": p}
    return pa.Table.from_pylist([row], schema=_BURDEN_SCHEMA)
