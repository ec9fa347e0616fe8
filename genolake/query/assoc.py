"""Case-control association: per-variant Fisher's exact tests and a collapsing burden test.

Cases are the samples whose categorical phenotype equals ``case``; controls are those with ``control`` (by
default: the other value when the phenotype has two, else ``control`` if it is a value, else every other
value). Samples without a value are left out. Counts follow the lake's counting rule (see
:mod:`genolake.query.counts`), so samples of files that do not cover a site are not counted there.

Per variant (sorted by ``p``):

- ``case_ac``, ``case_an``, ``control_ac``, ``control_an``: allele counts; ``case_af``, ``control_af``;
- ``or``, ``or_ci_low``, ``or_ci_high``: sample odds ratio of the allelic 2x2 table
  ``[[case_ac, case_an - case_ac], [control_ac, control_an - control_ac]]`` with its 95% confidence interval
  (``scipy.stats.contingency.odds_ratio(kind='sample')``, Woolf's log method);
- ``p``: Fisher's exact test (two-sided, ``scipy.stats.fisher_exact``) on the allelic table;
- ``case_carriers``, ``case_noncarriers``, ``control_carriers``, ``control_noncarriers`` (non-carriers: fully
  called without the allele) and ``p_carrier``: Fisher's exact test on the carrier table (dominant model).

Burden (``burden=True``): the carriers of any qualifying variant (``min_ac``, ``max_af`` over cases and
controls) among the cases and controls with data on the region's contig, one row with the same statistics.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from genolake.errors import UserInputError
from genolake.query.counts import group_ctes, joint_ctes
from genolake.query.ids import Region
from genolake.query.region import as_region

if TYPE_CHECKING:
    from genolake.query.lake import Lake


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


def _tests(a: int, b: int, c: int, d: int) -> tuple[float | None, float | None, float | None, float | None]:
    """Sample odds ratio, its 95% CI and Fisher's exact p for [[a, b], [c, d]]."""
    from scipy.stats import fisher_exact
    from scipy.stats.contingency import odds_ratio

    if min(a, b, c, d) < 0:
        return None, None, None, None
    table = [[a, b], [c, d]]
    if (a + b) == 0 or (c + d) == 0 or (a + c) == 0 or (b + d) == 0:
        return None, None, None, 1.0
    _stat, p = fisher_exact(table)
    with warnings.catch_warnings():  # a zero cell gives OR 0 or inf and an open interval: expected, not noise
        warnings.simplefilter("ignore", RuntimeWarning)
        res = odds_ratio(table, kind="sample")
        ci = res.confidence_interval(0.95)
    return _num(res.statistic), _num(ci.low), _num(ci.high), float(p)


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


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
) -> pa.Table:
    if region is not None and gene is not None:
        raise UserInputError("give --region or --gene, not both")
    reg = gene_region(lake, gene) if gene is not None else (as_region(lake, region) if region is not None else None)
    if burden and reg is None:
        raise UserInputError("--burden needs --region or --gene (the set of variants to collapse)")
    if min_ac is not None and min_ac < 0:
        raise UserInputError(f"--min-ac must be >= 0, not {min_ac}")
    if max_af is not None and not 0 <= max_af <= 1:
        raise UserInputError(f"--max-af must be between 0 and 1, not {max_af}")
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
        af_term = ("AND coalesce(ca.ac, 0) + coalesce(co.ac, 0) "
                   "<= $max_af * (coalesce(ca.an, 0) + coalesce(co.an, 0))")
    per_variant = f"""
    SELECT k.contig, k.pos, k.ref, k.alt, k.id,
           coalesce(ca.ac, 0) AS case_ac, coalesce(ca.an, 0) AS case_an,
           coalesce(co.ac, 0) AS control_ac, coalesce(co.an, 0) AS control_an,
           coalesce(ca.carriers, 0) AS case_carriers, coalesce(ca.noncarriers, 0) AS case_noncarriers,
           coalesce(co.carriers, 0) AS control_carriers, coalesce(co.noncarriers, 0) AS control_noncarriers
    FROM keys k LEFT JOIN (SELECT * FROM gcounts WHERE g = 'case') ca USING (contig, pos, ref, alt)
                LEFT JOIN (SELECT * FROM gcounts WHERE g = 'control') co USING (contig, pos, ref, alt)
    WHERE coalesce(ca.ac, 0) + coalesce(co.ac, 0) >= $min_ac {af_term}"""
    if not burden:
        rows = eng.rows(f"WITH {ctes} {per_variant} ORDER BY k.contig, k.pos, k.ref, k.alt", params)
        return _per_variant_table(rows)
    return _burden(lake, reg, ctes, per_variant, params, name, values)


_VARIANT_SCHEMA = pa.schema([
    ("contig", pa.string()), ("pos", pa.int32()), ("ref", pa.string()), ("alt", pa.string()), ("id", pa.string()),
    ("case_ac", pa.int64()), ("case_an", pa.int64()), ("control_ac", pa.int64()), ("control_an", pa.int64()),
    ("case_af", pa.float64()), ("control_af", pa.float64()),
    ("or", pa.float64()), ("or_ci_low", pa.float64()), ("or_ci_high", pa.float64()), ("p", pa.float64()),
    ("case_carriers", pa.int64()), ("case_noncarriers", pa.int64()),
    ("control_carriers", pa.int64()), ("control_noncarriers", pa.int64()), ("p_carrier", pa.float64()),
])


def _per_variant_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    from scipy.stats import fisher_exact

    out: list[dict[str, Any]] = []
    for contig, pos, ref, alt, vid, cac, can, oac, oan, cc, cn, oc, on in rows:
        orr, lo, hi, p = _tests(int(cac), int(can - cac), int(oac), int(oan - oac))
        carrier_table = [[int(cc), int(cn)], [int(oc), int(on)]]
        pc = float(fisher_exact(carrier_table)[1]) if (cc + cn) and (oc + on) and (cc + oc) and (cn + on) else 1.0
        out.append({
            "contig": contig, "pos": pos, "ref": ref, "alt": alt, "id": vid,
            "case_ac": cac, "case_an": can, "control_ac": oac, "control_an": oan,
            "case_af": cac / can if can else None, "control_af": oac / oan if oan else None,
            "or": orr, "or_ci_low": lo, "or_ci_high": hi, "p": p,
            "case_carriers": cc, "case_noncarriers": cn, "control_carriers": oc, "control_noncarriers": on,
            "p_carrier": pc,
        })
    out.sort(key=lambda r: (r["p"] if r["p"] is not None else 2.0, r["contig"], r["pos"], r["ref"], r["alt"]))
    return pa.Table.from_pylist(out, schema=_VARIANT_SCHEMA)


_BURDEN_SCHEMA = pa.schema([
    ("region", pa.string()), ("variants", pa.int64()),
    ("case_carriers", pa.int64()), ("case_noncarriers", pa.int64()),
    ("control_carriers", pa.int64()), ("control_noncarriers", pa.int64()),
    ("case_samples", pa.int64()), ("control_samples", pa.int64()),
    ("or", pa.float64()), ("or_ci_low", pa.float64()), ("or_ci_high", pa.float64()), ("p", pa.float64()),
])


def _burden(lake: Lake, reg: Region | None, ctes: str, per_variant: str, params: dict[str, Any], name: str,
            values: list[str]) -> pa.Table:
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
                 WHERE c.alt_count > 0),
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
    orr, lo, hi, p = _tests(int(cc), int(cn), int(oc), int(on))
    row = {"region": str(reg), "variants": nvar, "case_carriers": cc, "case_noncarriers": cn,
           "control_carriers": oc, "control_noncarriers": on, "case_samples": cs, "control_samples": os_,
           "or": orr, "or_ci_low": lo, "or_ci_high": hi, "p": p}
    return pa.Table.from_pylist([row], schema=_BURDEN_SCHEMA)
