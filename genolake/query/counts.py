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

So ``AN = 2 * n_listing + sum(called - 2 over stored calls) + sum(ploidy over counting absent files)``, with
every term a grouped join of small tables; the large ``calls`` table is read for the region only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genolake.genotypes import call_counts_sql

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

    Needs the ``vf`` and ``keys`` CTEs of :func:`joint_ctes` before it.
    """
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
                  count(*) FILTER (WHERE c.alt_count > 0) AS carriers,
                  count(*) FILTER (WHERE c.alt_count > 0 OR {rule["missing"]} = 1) AS not_noncarrier,
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
