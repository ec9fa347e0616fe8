"""`genolake export hail`: the lake as a Hail MatrixTable for GWAS in Hail (extra ``genolake[hail]``, Java).

The MatrixTable is built by :func:`genolake.compute.hail_engine.lake_matrix_table` (the same entries the Hail
aggregate engine counts), keyed for Hail's methods and written with ``MatrixTable.write``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from genolake.compute.hail_engine import init_hail, lake_matrix_table
from genolake.errors import UserInputError

log = logging.getLogger(__name__)

def export_hail(lake: Path | str, out: Path | str, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the lake as a Hail MatrixTable for GWAS in Hail.

    Rows are keyed by ``locus`` (the lake's build, GRCh37 or GRCh38) and ``alleles`` (``[ref, alt]``, one row per
    split allele; contigs the reference does not know are left out with a warning). Columns are keyed by ``s``, the
    pseudonymised sample_id, with ``institution`` and one field per phenotype. Entries: ``GT`` (implied 0/0 where
    the sample's file lists the site, hom-ref of the sample's ploidy where an absent site counts; a partly missing
    call's GT is missing), ``GQ``, ``DP``, ``AD`` (``[ref, alt]`` depths) of stored calls.

    Examples
    --------
    >>> export_hail("lake", "lake.mt")  # doctest: +SKIP
    {'rows': 346, 'cols': 100, 'path': 'lake.mt', ...}
    """
    from genolake.store import LakeStore

    out = Path(out)
    if out.exists() and not overwrite:
        raise UserInputError(f"{out} exists; remove it or pass --overwrite")
    store = LakeStore.open(lake)
    hl = init_hail()
    mt = lake_matrix_table(store, for_export=True)
    rg = store.build if store.build in ("GRCh37", "GRCh38") else None
    if rg is None:
        raise UserInputError(f"the lake's build {store.build!r} has no Hail reference genome")
    known = set(hl.get_reference(rg).contigs)
    lake_contigs = {c for cs in store.read_table("files", columns=["contigs"])["contigs"].to_pylist() for c in cs or []}
    unknown = sorted(lake_contigs - known)
    if unknown:
        log.warning("contigs unknown to Hail's %s left out of the MatrixTable: %s", rg, ", ".join(unknown))
        mt = mt.filter_rows(hl.literal(known).contains(mt.contig))
    mt = mt.annotate_rows(locus=hl.locus(mt.contig, mt.pos, reference_genome=rg), alleles=hl.array([mt.ref, mt.alt]))
    mt = mt.key_rows_by("locus", "alleles").drop("row_idx", "present", "in_callable")
    pheno = _phenotype_cols(store, hl)
    mt = mt.key_cols_by("s")
    if pheno is not None:
        mt = mt.annotate_cols(**pheno[mt.s])
    mt = mt.drop("col_idx", "files", "strata", "partial", "counted", "contig", "pos", "ref", "alt")
    mt = mt.select_entries("GT", "GQ", "DP", "AD")
    mt.write(str(out), overwrite=overwrite)
    back = hl.read_matrix_table(str(out))
    rows, cols = back.count()
    return {"path": str(out), "rows": rows, "cols": cols, "reference_genome": rg, "left_out_contigs": unknown}


def _phenotype_cols(store: Any, hl: Any) -> Any:
    """A Hail table keyed by ``s`` with one typed field per phenotype (from the `phenotypes` view), or None."""
    from genolake.query.engine import Engine, quote_ident

    eng = Engine(store, threads=2)
    try:
        kinds = dict(eng.catalog.phenotypes)
        if not kinds:
            return None
        names = sorted(kinds)
        rows = eng.rows(f"SELECT sample_id, {', '.join(quote_ident(n) for n in names)} FROM phenotypes")
    finally:
        eng.con.close()
    htype = {"categorical": hl.tstr, "numeric": hl.tfloat64, "list": hl.tarray(hl.tstr)}
    schema = hl.tstruct(s=hl.tstr, **{n: htype.get(kinds[n], hl.tstr) for n in names})
    data = [{"s": r[0], **{n: (list(v) if isinstance(v, (list, tuple)) else v) for n, v in zip(names, r[1:], strict=True)}}
            for r in rows]
    return hl.Table.parallelize(data, schema, key="s")
