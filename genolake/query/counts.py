"""Allele and carrier counts for sets of samples at sets of sites, with the lake's absent-site rules.

The one counting rule (docs/SCHEMA.md, docs/ARCHITECTURE.md), for any group G of samples at a site:

- samples of G in a file that *lists* the site count: each adds 2 alleles to AN unless it has a stored call
  (``calls`` holds every genotype but diploid 0/0), which adds its ``called`` alleles instead; AC = sum of
  ``alt_count`` of the stored calls;
- samples of G in a file that does *not* list the site count only if the file was ingested with
  ``--absent-as-ref`` (``files.absent_mode = 'ref'``) or with ``--callable-regions`` and the site lies in one
  of its ``callable`` regions; each then adds its ``ploidy`` on the contig (from ``ploidy``; a file that has no
  record on the contig has no ploidy row there and does not count) and AC 0;
- other samples (``no_call`` files, files of other contigs) do not count.

So ``AN = 2 * n_listing + sum(called - 2 over stored calls) + sum(ploidy over counting absent files)``. The
joint counts (:func:`joint_ctes`) sum the per-file counts of ``variants`` in SQL; the counts per group of people
(:func:`group_ctes`: assoc, ``region --where``, regressions, ``annotate-vcf`` strata) are made by
:func:`genolake.counting.count_range`, the aggregate job's numpy counter, over the region's codes (a test
checks them row for row against the SQL form over the ``calls`` view, :func:`group_ctes_sql`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genolake.genotypes import call_counts_sql, carries_sql

if TYPE_CHECKING:
    from genolake.query.engine import Engine
    from genolake.query.ids import Region


@dataclass
class FillFiles:
    """Files whose samples count at sites absent from them, for a contig (or all contigs)."""

    ref: list[str]
    callable: list[str]

    @property
    def all(self) -> list[str]:
        return self.ref + self.callable

    def __bool__(self) -> bool:
        return bool(self.ref or self.callable)


def fill_files(eng: Engine, contig: str | None, institution: str | None = None) -> FillFiles:
    files = [
        f for f in eng.catalog.files.values()
        if f.absent_mode in ("ref", "callable") and (contig is None or contig in f.contigs)
        and (institution is None or f.institution == institution)
    ]
    return FillFiles(sorted(f.file_id for f in files if f.absent_mode == "ref"),
                     sorted(f.file_id for f in files if f.absent_mode == "callable"))


def _start(region: Region | None) -> int | None:
    return region.start if region is not None else None


def _end(region: Region | None) -> int | None:
    return region.end if region is not None else None


def site_filter(alias: str, region: Region | None, institution: str | None, params: dict[str, Any]) -> str:
    """WHERE terms selecting the region (and institution) on a table aliased ``alias``."""
    terms = ["TRUE"]
    if region is not None:
        params.update(contig=region.contig, start=region.start, end=region.end)
        terms.append(f"{alias}.contig = $contig AND {alias}.pos BETWEEN $start AND $end")
    if institution is not None:
        params["institution"] = institution
        terms.append(f"{alias}.institution = $institution")
    return " AND ".join(terms)


def joint_ctes(eng: Engine, region: Region | None, institution: str | None, params: dict[str, Any], *,
               src: str | None = None) -> str:
    """CTEs ``vf`` (file rows of the sites), ``keys`` (sites with the files listing them) and ``joint``
    (site, ac, an, nhomalt, nhemi, id, filters, institutions) with absent-site fill applied.

    ``src`` replaces the scan of the ``variants`` files (the user SQL sandbox passes its own view)."""
    contig = region.contig if region else None
    if src is None:
        src = eng.scan("variants", contig=contig, institution=institution, start=_start(region), end=_end(region),
                       columns=["institution", "file_id", "contig", "pos", "ref", "alt", "id", "filters",
                                "ac", "an", "nhomalt", "nhemi"])
    where = site_filter("v", region, institution, params)
    ff = fill_files(eng, contig, institution)
    ctes = f"""
    vf AS (SELECT * FROM {src} AS v WHERE {where}),
    keys AS (SELECT contig, pos, ref, alt, list(file_id) AS present, max(id) AS id, max(filters) AS filters,
                    CAST(sum(ac) AS BIGINT) AS ac, CAST(sum(an) AS BIGINT) AS an,
                    CAST(sum(nhomalt) AS BIGINT) AS nhomalt, CAST(sum(nhemi) AS BIGINT) AS nhemi,
                    length(list_distinct(list(institution))) AS institutions
             FROM vf GROUP BY contig, pos, ref, alt)"""
    if not ff:
        return ctes + """,
    joint AS (SELECT * EXCLUDE (present) FROM keys)"""
    sums = eng.ploidy_sums()
    ids, ans, modes, contigs = [], [], [], []
    for fid in ff.all:
        for (f, c), (s, _n) in sums.items():
            if f == fid and (contig is None or c == contig):
                ids.append(fid)
                contigs.append(c)
                ans.append(s)
                modes.append("ref" if fid in ff.ref else "callable")
    if not ids:
        return ctes + """,
    joint AS (SELECT * EXCLUDE (present) FROM keys)"""
    params.update(ff_ids=ids, ff_an=ans, ff_mode=modes, ff_contig=contigs)
    return ctes + f""",
    ff AS (SELECT unnest($ff_ids) AS file_id, unnest($ff_an) AS an, unnest($ff_mode) AS mode,
                  unnest($ff_contig) AS contig),
    fill AS (SELECT k.contig, k.pos, k.ref, k.alt, CAST(sum(ff.an) AS BIGINT) AS an_fill
             FROM keys k JOIN ff ON ff.contig = k.contig AND NOT list_contains(k.present, ff.file_id)
             WHERE ff.mode = 'ref' OR {_in_callable('ff.file_id', 'k')}
             GROUP BY ALL),
    joint AS (SELECT k.* EXCLUDE (present, an), k.an + coalesce(fill.an_fill, 0) AS an
              FROM keys k LEFT JOIN fill USING (contig, pos, ref, alt))"""


def _in_callable(file_expr: str, site: str) -> str:
    return (f"EXISTS (SELECT 1 FROM callable cb WHERE cb.file_id = {file_expr} AND cb.contig = {site}.contig "
            f"AND {site}.pos BETWEEN cb.start AND cb.\"end\")")


def group_ctes(eng: Engine, region: Region | None, institution: str | None, grp_sql: str,
               params: dict[str, Any]) -> str:
    """CTEs ending in ``gcounts``: per site (of ``keys``) and group ``g`` of ``grp_sql`` (a SELECT of distinct
    institution, sample_id, g): samples, ac, an, carriers, noncarriers (fully called, no alt), nhomalt, nhemi.
    Also ``grp`` and ``gs`` (the groups' people with their file_id).

    Needs the ``vf`` and ``keys`` CTEs of :func:`joint_ctes` before it. The counts are made with numpy
    (:func:`group_counts`, the aggregate job's counter) and handed to DuckDB as the relation ``_gl_gcounts``,
    which stays registered on the engine's connection until the next call; the SQL form
    (:func:`group_ctes_sql`, calls expanded by the ``calls`` view) serves groups labelled null.
    """
    got = group_counts(eng, region, institution, grp_sql, params)
    if got is None:
        return group_ctes_sql(eng, region, institution, grp_sql, params)
    eng.register(GCOUNTS_RELATION, got)
    return f"""
    grp AS ({grp_sql}),
    gs AS (SELECT s.file_id, grp.institution, grp.sample_id, grp.g
           FROM grp JOIN samples s ON s.institution = grp.institution AND s.sample_id = grp.sample_id),
    gcounts AS (SELECT * FROM {GCOUNTS_RELATION})"""


GCOUNTS_RELATION = "_gl_gcounts"
GCOUNTS_COLUMNS = ("contig", "pos", "ref", "alt", "g", "samples", "ac", "an", "carriers", "noncarriers", "nhomalt",
                   "nhemi")
_RANGE_GT_BYTES = 64 << 20  # `gt` bytes (uncompressed) counted at once


def group_counts(eng: Engine, region: Region | None, institution: str | None, grp_sql: str,
                 params: dict[str, Any]) -> Any:
    """The ``gcounts`` rows of :func:`group_ctes` (columns :data:`GCOUNTS_COLUMNS`, an Arrow table) counted with
    :func:`genolake.counting.count_range` over the region's files, a range of about 64 MB of codes at a
    time; None when a group label is null (the SQL form counts those people as a group of their own)."""
    import re

    import pyarrow as pa
    import pyarrow.compute as pc

    from genolake.counting import MAX_POS, count_range, row_group_loads, split_ranges

    used = {k: v for k, v in params.items() if re.search(r"\$" + re.escape(k) + r"\b", grp_sql)}
    people = eng.query(f"""WITH grp AS ({grp_sql})
        SELECT s.file_id, s.sample_id, s.institution, grp.g, 'g:' || CAST(grp.g AS VARCHAR) AS stratum,
               s.column_index
        FROM grp JOIN samples s ON s.institution = grp.institution AND s.sample_id = grp.sample_id""", used)
    labels = people.column("stratum").to_pylist()  # prefixed: a group named `all` is not the counter's own
    if any(x is None for x in labels):
        return None
    value_of = dict(zip(labels, people.column("g").to_pylist(), strict=True))
    cat = eng.catalog
    files = [f for f in cat.files.values() if institution is None or f.institution == institution]
    if institution is not None:
        people = people.filter(pa.array([i == institution for i in people.column("institution").to_pylist()]))
    groups = people.select(["file_id", "sample_id", "institution", "stratum", "column_index"])
    institutions = sorted({f.institution for f in files})
    contigs = [region.contig] if region is not None else sorted({c for f in files for c in f.contigs})
    lo, hi = (region.start, region.end) if region is not None else (1, MAX_POS)
    fids = sorted(f.file_id for f in files)
    parts: list[pa.Table] = []
    for contig in contigs:
        variants = cat.table_paths_in("variants", contig=contig, institution=institution, start=lo, end=hi)
        if not variants or not groups.num_rows:
            continue
        calls = cat.table_paths_in("genotypes", contig=contig, institution=institution, start=lo, end=hi)
        fill, callable_ = _fill_of(eng, contig, institution, groups)
        ranges = [(lo, hi)]
        if sum(os.path.getsize(p) for p in calls) > _RANGE_GT_BYTES // 8:  # (codes compress ~5-10x)
            loads = [(a, b, float(r)) for a, b, r in row_group_loads(calls) if b >= lo and a <= hi]
            ranges = split_ranges(loads, max(1, -(-int(sum(r for _a, _b, r in loads)) // _RANGE_GT_BYTES)))
        for a, b in ranges:
            start, end = max(a, lo), min(b, hi)
            if start > end:
                continue
            got = count_range(contig=contig, start=start, end=end, calls=calls, variants=variants,
                              institutions=institutions, fill=fill, callable_=callable_, adj=False, groups=groups,
                              file_ids=fids, carriers=True)
            if not got.num_rows:
                continue
            scope = got.column("scope").cast(pa.string())
            stratum = got.column("stratum").cast(pa.string())
            keep = pc.and_(pc.equal(scope, "joint"), pc.and_(pc.not_equal(stratum, "all"),
                                                             pc.greater(got.column("samples"), 0)))
            got = got.filter(keep)
            g = [value_of[x] for x in got.column("stratum").cast(pa.string()).to_pylist()]
            parts.append(pa.table({
                "contig": got.column("contig").cast(pa.string()), "pos": got.column("pos"),
                "ref": got.column("ref"), "alt": got.column("alt"), "g": pa.array(g),
                **{c: got.column(c) for c in GCOUNTS_COLUMNS[5:]}}))
    if not parts:
        g_type = people.schema.field("g").type
        return pa.table({c: pa.array([], g_type if c == "g" else pa.string() if c in ("contig", "ref", "alt")
                                     else pa.int32() if c == "pos" else pa.int64()) for c in GCOUNTS_COLUMNS})
    return pa.concat_tables(parts, promote_options="permissive")


def _fill_of(eng: Engine, contig: str, institution: str | None, groups: Any) -> tuple[Any, Any]:
    """:func:`genolake.counting.count_range`'s ``fill`` (:func:`genolake.counting.fill_groups` of the group members
    of files counting sites they do not list, on ``contig``) and ``callable_`` (file_id, start, end) tables."""
    import pyarrow as pa

    from genolake.counting import FILL_SCHEMA, fill_groups

    ff = fill_files(eng, contig, institution)
    empty_cb = pa.table({"file_id": pa.array([], pa.string()), "start": pa.array([], pa.int64()),
                         "end": pa.array([], pa.int64())})
    if not ff:
        return FILL_SCHEMA.empty_table().drop(["contig"]), empty_cb
    files = [eng.catalog.files[f] for f in ff.all]
    ploidy = eng.query("SELECT file_id, sample_id, contig, ploidy FROM ploidy WHERE contig = $contig "
                       "AND list_contains($files, file_id)", {"contig": contig, "files": ff.all})
    fill = fill_groups(pa.table({"file_id": pa.array([f.file_id for f in files], pa.string()),
                                 "institution": pa.array([f.institution for f in files], pa.string()),
                                 "absent_mode": pa.array([f.absent_mode for f in files], pa.string())}),
                       groups, ploidy).drop(["contig"])
    if not ff.callable:
        return fill, empty_cb
    callable_ = eng.query('SELECT file_id, CAST(start AS BIGINT) AS start, CAST("end" AS BIGINT) AS "end" '
                          "FROM callable WHERE contig = $contig AND list_contains($files, file_id)",
                          {"contig": contig, "files": ff.callable})
    return fill, callable_


def group_ctes_sql(eng: Engine, region: Region | None, institution: str | None, grp_sql: str,
                   params: dict[str, Any]) -> str:
    """:func:`group_ctes` in SQL alone: the stored calls expanded by the ``calls`` view and summed under
    :func:`genolake.genotypes.call_counts_sql` (~180 ns a call; the numpy counter is several times faster)."""
    contig = region.contig if region else None
    calls = eng.scan("calls", contig=contig, institution=institution, start=_start(region), end=_end(region),
                     columns=["institution", "file_id", "sample_id", "contig", "pos", "ref", "alt", "ploidy",
                              "called", "alt_count"])
    cwhere = site_filter("c", region, institution, params)
    ff = fill_files(eng, contig, institution)
    rule = call_counts_sql("c")  # the lake's one counting rule, per stored call
    ctes = f"""
    grp AS ({grp_sql}),
    gs AS (SELECT s.file_id, grp.institution, grp.sample_id, grp.g
           FROM grp JOIN samples s ON s.institution = grp.institution AND s.sample_id = grp.sample_id),
    gfile AS (SELECT file_id, g, count(*) AS n FROM gs GROUP BY ALL),
    pres AS (SELECT vf.contig, vf.pos, vf.ref, vf.alt, gfile.g, sum(gfile.n) AS n
             FROM vf JOIN gfile USING (file_id) GROUP BY ALL),
    cs AS (SELECT c.contig, c.pos, c.ref, c.alt, gs.g,
                  sum({rule["ac"]}) AS ac, sum({rule["an"]} - 2) AS an_adj,
                  count(*) FILTER (WHERE {carries_sql("c")}) AS carriers,
                  count(*) FILTER (WHERE {carries_sql("c")} OR {rule["missing"]} = 1) AS not_noncarrier,
                  sum({rule["nhomalt"]}) AS nhomalt, sum({rule["nhemi"]}) AS nhemi
           FROM {calls} AS c JOIN gs ON gs.file_id = c.file_id AND gs.sample_id = c.sample_id
           WHERE {cwhere}
           GROUP BY ALL)"""
    if ff:
        params.update(gff_all=ff.all, gff_ref=ff.ref or [""])
        pl_contig = "AND p.contig = $contig" if region is not None else ""
        ctes += f""",
    gpl AS (SELECT gs.file_id, p.contig, gs.g, sum(p.ploidy) AS psum, count(*) AS n
            FROM gs JOIN ploidy p ON p.file_id = gs.file_id AND p.sample_id = gs.sample_id
            WHERE list_contains($gff_all, gs.file_id) {pl_contig}
            GROUP BY ALL),
    gfill AS (SELECT k.contig, k.pos, k.ref, k.alt, gpl.g, sum(gpl.psum) AS psum, sum(gpl.n) AS n
              FROM keys k JOIN gpl ON gpl.contig = k.contig AND NOT list_contains(k.present, gpl.file_id)
              WHERE list_contains($gff_ref, gpl.file_id) OR {_in_callable('gpl.file_id', 'k')}
              GROUP BY ALL)"""
    else:
        ctes += """,
    gfill AS (SELECT contig, pos, ref, alt, g, 0 AS psum, 0 AS n FROM pres WHERE FALSE)"""
    ctes += """,
    gk AS (SELECT contig, pos, ref, alt, g FROM pres UNION SELECT contig, pos, ref, alt, g FROM gfill),
    gcounts AS (
      SELECT gk.contig, gk.pos, gk.ref, gk.alt, gk.g,
             CAST(coalesce(pres.n, 0) + coalesce(gfill.n, 0) AS BIGINT) AS samples,
             CAST(coalesce(cs.ac, 0) AS BIGINT) AS ac,
             CAST(2 * coalesce(pres.n, 0) + coalesce(cs.an_adj, 0) + coalesce(gfill.psum, 0) AS BIGINT) AS an,
             CAST(coalesce(cs.carriers, 0) AS BIGINT) AS carriers,
             CAST(coalesce(pres.n, 0) + coalesce(gfill.n, 0) - coalesce(cs.not_noncarrier, 0) AS BIGINT)
               AS noncarriers,
             CAST(coalesce(cs.nhomalt, 0) AS BIGINT) AS nhomalt,
             CAST(coalesce(cs.nhemi, 0) AS BIGINT) AS nhemi
      FROM gk LEFT JOIN pres USING (contig, pos, ref, alt, g)
              LEFT JOIN gfill USING (contig, pos, ref, alt, g)
              LEFT JOIN cs USING (contig, pos, ref, alt, g))"""
    return ctes
