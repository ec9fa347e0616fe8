"""Gene queries over the annotations written by `genolake annotate`.

- :func:`gene_region`: a gene's coordinates from the current gene source (``annotation_genes``), for
  ``query assoc --gene``.
- :func:`gene_variants`: the lake's variants annotated to a gene, with ClinVar, consequence and external
  frequencies (pivoted to ``<prefix>_af`` ...), filtered by ClinVar class, AF and consequence.
- :func:`annotation_where`: the same filters as SQL for other queries (``query region``);
  :func:`variants_by_rsid` and :func:`annotation_of` for ``query variant``.

Every function takes an opened :class:`genolake.query.lake.Lake`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from genolake.errors import UserInputError

if TYPE_CHECKING:
    import pyarrow as pa
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")

_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_CLASS = re.compile(r"^[a-z][a-z_]*$")
CLINVAR_CLASSES = ("pathogenic", "likely_pathogenic", "uncertain", "likely_benign", "benign", "conflicting",
                   "risk_factor", "drug_response", "association", "protective", "affects", "not_provided", "other")
FREQ_FIELDS = ("af", "ac", "an", "nhomalt", "popmax", "popmax_af")


def _require(lake: Any, view: str, what: str) -> None:
    if view not in lake.engine.views:
        raise UserInputError(f"the lake has no {what} yet: run `genolake annotate` first")


def gene_region(lake: Any, symbol: str) -> tuple[str, int, int]:
    """(contig, start, end) of a gene (symbol or gene ID, 1-based inclusive) from the current gene source.

    A symbol listed several times on one contig gives the span of all its entries; on several contigs
    (e.g. X and Y pseudo-autosomal copies) it is an error that lists them.

    Examples
    --------
    >>> gene_region(lake, "BRCA2")  # doctest: +SKIP
    ('13', 32889617, 32973809)
    """
    _require(lake, "annotation_genes", "gene source (`genolake annotate --genes GTF`)")
    sql = ("SELECT contig, min(start) AS s, max(\"end\") AS e FROM annotation_genes "
           "WHERE gene_symbol = $g OR gene_id = $g OR split_part(gene_id, '.', 1) = $g GROUP BY contig ORDER BY contig")
    rows = lake.engine.query(sql, {"g": symbol}).to_pylist()
    if not rows:
        rows = lake.engine.query(sql.replace("gene_symbol = $g", "upper(gene_symbol) = upper($g)"),
                                 {"g": symbol}).to_pylist()
    if not rows:
        raise UserInputError(f"gene {symbol!r} is not in the lake's gene source (annotation_genes); check the "
                             "symbol or annotate with a gene source that has it")
    if len(rows) > 1:
        places = ", ".join(f"{r['contig']}:{r['s']}-{r['e']}" for r in rows)
        raise UserInputError(f"gene {symbol!r} lies on several contigs ({places}); give a region instead")
    r = rows[0]
    return str(r["contig"]), int(r["s"]), int(r["e"])


def _classes(clinvar: str | list[str] | None) -> list[str] | None:
    if clinvar is None:
        return None
    items = clinvar if isinstance(clinvar, list) else re.split(r"[|,]", clinvar)
    out = []
    for item in items:
        c = item.strip().lower().replace(" ", "_").replace("-", "_")
        if not c:
            continue
        if c == "vus":
            c = "uncertain"
        if not _CLASS.match(c):
            raise UserInputError(f"--clinvar {item!r}: use classes such as {', '.join(CLINVAR_CLASSES[:6])} or any")
        out.append(c)
    return out or None


def _consequence_terms(consequence: str | list[str] | None) -> tuple[list[str], list[str]]:
    """(terms to match in consequence_terms, impacts to match) for a consequence filter.

    ``missense_variant`` (or ``missense``): any transcript has the term; ``missense_variant+``: any term at least as
    severe; ``HIGH``: the impact is HIGH; ``MODERATE+``: HIGH or MODERATE.
    """
    from genolake.annotation import csq as C

    if consequence is None:
        return [], []
    items = consequence if isinstance(consequence, list) else re.split(r"[|,]", consequence)
    terms: list[str] = []
    impacts: list[str] = []
    for item in items:
        t = item.strip()
        if not t:
            continue
        plus = t.endswith("+")
        t = t.rstrip("+")
        if t.upper() in C.IMPACTS:
            i = C.IMPACTS.index(t.upper())
            impacts += list(C.IMPACTS[: i + 1]) if plus else [t.upper()]
            continue
        rank = C.term_rank(t)
        if rank >= len(C.SEVERITY):
            rank = C.term_rank(t + "_variant")
            if rank < len(C.SEVERITY):
                t = t + "_variant"
        if rank >= len(C.SEVERITY):
            raise UserInputError(f"--consequence {item!r}: not a known consequence term (e.g. missense_variant, "
                                 "stop_gained, frameshift_variant, missense_variant+ for at least as severe, HIGH)")
        if plus:
            names = [s for s, _ in C.SEVERITY[: rank + 1]]
            names += [a for a, target in C.ALIASES.items() if C.term_rank(target) <= rank]
            terms += names
        else:
            terms += [t] + [a for a, target in C.ALIASES.items() if target.lower() == t.lower()]
    return sorted(set(terms)), sorted(set(impacts))


def annotation_where(
    *, clinvar: str | list[str] | None = None, max_af: float | None = None, consequence: str | list[str] | None = None,
    alias: str = "a",
) -> tuple[str, dict[str, Any]]:
    """SQL condition (over the `annotations` view aliased ``alias``) and its named parameters for the filters.

    ``clinvar``: ClinVar classes, any of which must apply (``pathogenic|likely_pathogenic``; ``any`` = in ClinVar);
    ``max_af``: greatest external AF at most this (a variant no source lists passes); ``consequence``: see
    :func:`_consequence_terms`. Returns ``("TRUE", {})`` without filters.
    """
    conds: list[str] = []
    params: dict[str, Any] = {}
    classes = _classes(clinvar)
    if classes:
        if "any" in classes:
            conds.append(f"{alias}.clinvar_significance IS NOT NULL")
        else:
            conds.append(f"list_has_any({alias}.clinvar_class, $clinvar_classes)")
            params["clinvar_classes"] = classes
    if max_af is not None:
        if not 0 <= max_af <= 1:
            raise UserInputError("--max-af must be between 0 and 1")
        conds.append(f"coalesce({alias}.max_external_af, 0) <= $max_af")
        params["max_af"] = float(max_af)
    terms, impacts = _consequence_terms(consequence)
    parts = []
    if terms:
        parts.append(f"list_has_any({alias}.consequence_terms, $csq_terms)")
        params["csq_terms"] = terms
    if impacts:
        parts.append(f"{alias}.impact IN (SELECT unnest($csq_impacts))")
        params["csq_impacts"] = impacts
    if parts:
        conds.append("(" + " OR ".join(parts) + ")")
    return (" AND ".join(conds) or "TRUE"), params


def _freq_pivot(lake: Any) -> tuple[str, list[str]]:
    """SELECT over external_frequencies pivoted to one column per prefix and field, and those column names."""
    if "external_frequencies" not in lake.engine.views:
        return "", []
    sources = [r["source"] for r in lake.engine.query(
        "SELECT DISTINCT source FROM external_frequencies ORDER BY source").to_pylist()]
    cols: list[str] = []
    exprs = []
    for src in sources:
        if not _IDENT.match(src):
            continue
        for f in FREQ_FIELDS:
            name = f"{src}_{f}"
            cols.append(name)
            exprs.append(f"max({f}) FILTER (WHERE source = '{src}') AS {name}")
    if not exprs:
        return "", []
    return (f"SELECT contig, pos, ref, alt, {', '.join(exprs)} FROM external_frequencies GROUP BY contig, pos, ref, alt",
            cols)


_SHOW = ("gene_symbols", "region_class", "consequence", "impact", "csq_gene", "csq_transcript", "hgvsc", "hgvsp",
         "clinvar_significance", "clinvar_stars", "clinvar_review_status", "clinvar_conditions",
         "clinvar_variation_id", "rsid", "max_external_af")


def gene_variants(
    lake: Any, symbol: str, *, clinvar: str | list[str] | None = None, max_af: float | None = None,
    consequence: str | list[str] | None = None,
) -> pa.Table:
    """The lake's variants annotated to a gene (symbol or gene ID), with their annotations and lake counts.

    A variant belongs to the gene if the gene source lists the gene for it (``gene_symbols``/``gene_ids``) or the
    VEP/SnpEff consequence names it (``csq_gene``/``csq_gene_id``). Columns: the key, ``ac`` (alternate alleles in
    the lake, summed over files), ``institutions`` (that hold it), the annotation columns and one column per
    external frequency source and field (``gnomad_af``, ...). Filters as in :func:`annotation_where`.

    Examples
    --------
    >>> gene_variants(lake, "BRCA2", clinvar="pathogenic|likely_pathogenic", max_af=0.01)  # doctest: +SKIP
    """
    _require(lake, "annotations", "annotations")
    if max_af is not None and not _freq_pivot(lake)[1]:
        raise UserInputError("--max-af needs external frequencies: run `genolake annotate --frequencies VCF "
                             "--prefix NAME` first")
    where, params = annotation_where(clinvar=clinvar, max_af=max_af, consequence=consequence)
    params["g"] = symbol
    gene_ids: list[str] = []
    if "annotation_genes" in lake.engine.views:
        gene_ids = [r["gene_id"] for r in lake.engine.query(
            "SELECT DISTINCT gene_id FROM annotation_genes WHERE gene_symbol = $g AND gene_id IS NOT NULL",
            {"g": symbol}).to_pylist()]
    params["ids"] = [str(symbol), *[str(g) for g in gene_ids]]
    pivot, fcols = _freq_pivot(lake)
    freq_join = f"LEFT JOIN ({pivot}) f USING (contig, pos, ref, alt)" if pivot else ""
    sql = f"""
        WITH a AS (
            SELECT * FROM annotations
            WHERE list_contains(gene_symbols, $g) OR list_has_any(gene_ids, $ids)
               OR csq_gene = $g OR list_contains($ids, csq_gene_id)
        ),
        v AS (
            SELECT contig, pos, ref, alt, CAST(sum(ac) AS BIGINT) AS ac,
                   list_sort(list(DISTINCT institution)) AS institutions
            FROM variant_files SEMI JOIN a USING (contig, pos, ref, alt)
            GROUP BY contig, pos, ref, alt
        )
        SELECT a.contig, a.pos, a.ref, a.alt, v.ac, v.institutions,
               {', '.join(f'a.{c}' for c in _SHOW)}{''.join(f', f.{c}' for c in fcols)}
        FROM a LEFT JOIN v USING (contig, pos, ref, alt) {freq_join}
        WHERE {where}
        ORDER BY a.contig, a.pos, a.ref, a.alt
    """
    out: pa.Table = lake.engine.query(sql, params)
    return out


def variants_by_rsid(lake: Any, rsid: str) -> list[tuple[str, int, str, str]]:
    """Variant keys annotated with an rsID (``annotate --dbsnp``; case-insensitive), sorted; empty if none."""
    if "annotations" not in lake.engine.views:
        return []
    rows = lake.engine.query(
        "SELECT contig, pos, ref, alt FROM annotations WHERE lower(rsid) = $r "
        "OR list_contains(string_split(lower(rsid), ';'), $r) ORDER BY contig, pos, ref, alt",
        {"r": rsid.strip().lower()}).to_pylist()
    return [(r["contig"], int(r["pos"]), r["ref"], r["alt"]) for r in rows]


def annotation_of(lake: Any, contig: str, pos: int, ref: str, alt: str) -> dict[str, Any] | None:
    """All annotation columns of one variant plus its external frequencies (``{prefix: {af, ac, ...}}``)."""
    if "annotations" not in lake.engine.views:
        return None
    eng = lake.engine
    allele = {"ref": ref, "alt": alt}
    # Python rows, not Arrow: the cold `query variant` imports no pyarrow (genolake.lazy)
    cols = eng.view_columns("annotations")
    rows = eng.point_rows("annotations", contig=contig, pos=pos, columns=cols, equal=allele)
    if not rows:
        return None
    out = dict(zip(cols, rows[0], strict=True))
    if "external_frequencies" in eng.views:
        fcols = ["source", "af", "ac", "an", "nhomalt", "popmax", "popmax_af"]
        freq = [dict(zip(fcols, r, strict=True))
                for r in eng.point_rows("external_frequencies", contig=contig, pos=pos, equal=allele, columns=fcols)]
        freq.sort(key=lambda r: r["source"])
        out["external_frequencies"] = {r.pop("source"): r for r in freq}
    return out
