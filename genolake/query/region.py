"""Variants of a region with joint frequencies (absent-site rules applied), filtered.

Columns: contig, pos, ref, alt, id, filters, ac, an, af, nhomalt, nhemi, institutions (how many institutions'
files list the site). With ``institution=`` the counts are that institution's only. With ``where=`` (a
phenotype condition) only variants carried by at least one matching sample are listed, with extra columns
for the matching samples: ``where_samples`` (matching samples counted at the site), ``where_carriers``,
``where_ac``, ``where_an``, ``where_af``. ``max_af`` and ``min_ac`` apply to the joint (or institution) counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from genolake.errors import UserInputError
from genolake.query.counts import fill_files, group_ctes, joint_ctes
from genolake.query.ids import Region, parse_region_text

if TYPE_CHECKING:
    from genolake.query.lake import Lake
    from genolake.query.where import Condition


def check_institution(lake: Lake, institution: str | None) -> None:
    if institution is not None and institution not in lake.engine.catalog.institutions:
        known = ", ".join(lake.engine.catalog.institutions) or "none"
        raise UserInputError(f"unknown institution {institution!r}; the lake has: {known}")


def lake_contigs(lake: Lake) -> list[str]:
    """Contigs of the lake's committed files, in the order of the contig names' natural sort (1..22, X, Y, M)."""
    return lake.engine.catalog.contigs


def check_contig(lake: Lake, contig: str, text: str | None = None) -> None:
    """Refuse a contig no committed file has: such a query can only be empty (a typo, or data not ingested)."""
    known = lake_contigs(lake)
    if known and contig not in known:
        shown = ", ".join(known[:30]) + (f" (and {len(known) - 30} more)" if len(known) > 30 else "")
        raise UserInputError(f"contig {contig!r}" + (f" (from {text!r})" if text and text != contig else "")
                             + f" is not in the lake; its contigs are: {shown}")


def as_region(lake: Lake, region: str | Region) -> Region:
    """``region`` parsed into the lake's contig naming, its contig checked against the lake's."""
    reg = region if isinstance(region, Region) else parse_region_text(region, lake.store.contig_style)
    check_contig(lake, reg.contig, region if isinstance(region, str) else None)
    return reg


def regions_table(lake: Lake, regions: list[str | Region], **options: Any) -> pa.Table:
    """:func:`region_table` over several regions (``-r A,B`` / ``-R FILE``): each variant once, in contig and
    position order, however many of the regions hold it."""
    regs = [as_region(lake, r) for r in regions]
    if len(regs) == 1:
        return region_table(lake, regs[0], **options)
    rank = {c: i for i, c in enumerate(lake_contigs(lake))}
    by_contig: dict[str, list[Region]] = {}
    for r in regs:
        by_contig.setdefault(r.contig, []).append(r)
    parts = []
    for contig in sorted(by_contig, key=lambda c: rank.get(c, len(rank))):
        merged: list[list[int]] = []  # overlapping or adjacent intervals read once
        for r in sorted(by_contig[contig], key=lambda r: r.start):
            if merged and r.start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], r.end)
            else:
                merged.append([r.start, r.end])
        parts += [region_table(lake, Region(contig, s, e), **options) for s, e in merged]
    return pa.concat_tables(parts)


def region_table(
    lake: Lake,
    region: str | Region,
    *,
    max_af: float | None = None,
    min_ac: int | None = None,
    institution: str | None = None,
    where: str | Condition | None = None,
    clinvar: str | list[str] | None = None,
    consequence: str | list[str] | None = None,
    max_external_af: float | None = None,
) -> pa.Table:
    reg = as_region(lake, region)
    table = _region_counts(lake, reg, max_af=max_af, min_ac=min_ac, institution=institution, where=where)
    if clinvar is None and consequence is None and max_external_af is None:
        return table
    return _annotation_filter(lake, reg, table, clinvar=clinvar, consequence=consequence, max_af=max_external_af)


def _annotation_filter(lake: Lake, reg: Region, table: pa.Table, **filters: Any) -> pa.Table:
    """Keep the variants whose annotations pass the ClinVar / consequence / external-AF filters."""
    from genolake.query.genes import annotation_where

    if "annotations" not in lake.engine.views:
        raise UserInputError("--clinvar, --consequence and --max-external-af need annotations: run `genolake annotate` first")
    cond, params = annotation_where(**filters)
    params.update({"r_contig": reg.contig, "r_start": reg.start, "r_end": reg.end})
    keys = lake.engine.query(
        f"SELECT contig, pos, ref, alt FROM annotations a WHERE a.contig = $r_contig "
        f"AND a.pos BETWEEN $r_start AND $r_end AND {cond}", params)
    return table.join(keys, ["contig", "pos", "ref", "alt"], join_type="inner").sort_by(
        [("pos", "ascending"), ("ref", "ascending"), ("alt", "ascending")])


def _region_counts(
    lake: Lake,
    reg: Region,
    *,
    max_af: float | None,
    min_ac: int | None,
    institution: str | None,
    where: str | Condition | None,
) -> pa.Table:
    from genolake.query.variant import compile_where

    check_institution(lake, institution)
    if max_af is not None and not 0 <= max_af <= 1:
        raise UserInputError(f"--max-af must be between 0 and 1, not {max_af}")
    if min_ac is not None and min_ac < 0:
        raise UserInputError(f"--min-ac must be >= 0, not {min_ac}")
    eng = lake.engine
    if where is None and eng.point_reads and not fill_files(eng, reg.contig, institution):
        got = _joint_arrow(lake, reg, institution=institution, min_ac=min_ac, max_af=max_af)
        if got is not None:
            return got
    params: dict[str, Any] = {}
    ctes = joint_ctes(eng, reg, institution, params)
    filters = ["TRUE"]
    if min_ac is not None:
        params["min_ac"] = min_ac
        filters.append("j.ac >= $min_ac")
    if max_af is not None:
        params["max_af"] = max_af
        filters.append("j.an > 0 AND j.ac / j.an <= $max_af")
    cols = """j.contig, j.pos, j.ref, j.alt, j.id, j.filters, j.ac, j.an,
              CASE WHEN j.an > 0 THEN j.ac / j.an END AS af, j.nhomalt, j.nhemi, j.institutions"""
    if where is None:
        sql = f"WITH {ctes} SELECT {cols} FROM joint j WHERE {' AND '.join(filters)} ORDER BY j.pos, j.ref, j.alt"
        return eng.query(sql, params)
    inst_term = "AND s.institution = $institution" if institution is not None else ""
    cond = compile_where(lake, where, pheno_alias="p", inst_expr="s.institution", params=params)
    grp = f"""SELECT DISTINCT s.institution, s.sample_id, 'where' AS g
              FROM samples s LEFT JOIN phenotypes p ON p.institution = s.institution AND p.sample_id = s.sample_id
              WHERE {cond} {inst_term}"""
    ctes += "," + group_ctes(eng, reg, institution, grp, params)
    sql = f"""WITH {ctes}
    SELECT {cols}, g.samples AS where_samples, g.carriers AS where_carriers, g.ac AS where_ac, g.an AS where_an,
           CASE WHEN g.an > 0 THEN g.ac / g.an END AS where_af
    FROM joint j JOIN gcounts g USING (contig, pos, ref, alt)
    WHERE g.carriers > 0 AND {' AND '.join(filters)}
    ORDER BY j.pos, j.ref, j.alt"""
    return eng.query(sql, params)


_SUMS = ("ac", "an", "nhomalt", "nhemi")
REGION_SCHEMA = pa.schema([("contig", pa.string()), ("pos", pa.int32()), ("ref", pa.string()), ("alt", pa.string()),
                           ("id", pa.string()), ("filters", pa.string()), ("ac", pa.int64()), ("an", pa.int64()),
                           ("af", pa.float64()), ("nhomalt", pa.int64()), ("nhemi", pa.int64()),
                           ("institutions", pa.int64())])


def _joint_arrow(lake: Lake, reg: Region, *, institution: str | None, min_ac: int | None,
                 max_af: float | None) -> pa.Table | None:
    """The joint rows of :func:`_region_counts` without ``where`` on a lake with no absent-site fill on the contig,
    from the `variants` rows read by the point reader (cached per process) and summed per site in Arrow: the
    same table as the SQL (``keys`` and ``joint`` of :func:`~genolake.query.counts.joint_ctes`), without DuckDB's
    per-query cost. None when the point reader cannot serve the read (the caller runs the SQL)."""
    import pyarrow.compute as pc

    eng = lake.engine
    equal = {"institution": institution} if institution is not None else None
    rows = eng._point_arrow("variants", reg.contig, reg.start, ["institution", "pos", "ref", "alt", "id", "filters",
                                                                 *_SUMS], equal, end=reg.end)
    if rows is None:
        return None
    rows = pa.table({n: c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c
                     for n, c in zip(rows.column_names, rows.columns, strict=True)})
    g = rows.group_by(["pos", "ref", "alt"], use_threads=False).aggregate(
        [("id", "max"), ("filters", "max"), *((c, "sum") for c in _SUMS), ("institution", "count_distinct")])
    ac, an = g.column("ac_sum").cast(pa.int64()), g.column("an_sum").cast(pa.int64())
    af = pc.if_else(pc.greater(an, 0), pc.divide(ac.cast(pa.float64()), an.cast(pa.float64())),
                    pa.scalar(None, pa.float64()))
    out = pa.table([pa.array([reg.contig] * g.num_rows, pa.string()), g.column("pos").cast(pa.int32()),
                    g.column("ref"), g.column("alt"), g.column("id_max"), g.column("filters_max"), ac, an, af,
                    g.column("nhomalt_sum").cast(pa.int64()), g.column("nhemi_sum").cast(pa.int64()),
                    g.column("institution_count_distinct").cast(pa.int64())], schema=REGION_SCHEMA)
    keep = None
    if min_ac is not None:
        keep = pc.greater_equal(out.column("ac"), min_ac)
    if max_af is not None:
        m = pc.and_(pc.greater(out.column("an"), 0), pc.less_equal(out.column("af"), max_af))
        keep = m if keep is None else pc.and_(keep, m)
    if keep is not None:
        out = out.filter(keep)
    return out.sort_by([("pos", "ascending"), ("ref", "ascending"), ("alt", "ascending")])
