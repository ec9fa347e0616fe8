"""Hail as a second engine: the lake as a Hail MatrixTable, allele frequencies with ``hl.agg.call_stats``.

For users who already run Hail (on Spark) clusters. Needs the extra ``pip install 'genolake[hail]'`` and a Java
runtime (Hail 0.2 is built for Java 11; it runs on Java 17 with a warning). ``hl.init`` is called only if Hail is not
initialised yet; set ``GENOLAKE_HAIL_MASTER`` (e.g. ``local[4]`` or ``yarn``) to choose the Spark master, otherwise
Spark's own default applies. Workers must see the lake's path (a shared filesystem), as for Dask.

The MatrixTable (:func:`lake_matrix_table`) has one row per split allele of ``variants`` and one column per
pseudonymised sample; entries follow the lake's counting rule exactly:

- a stored call (``calls``) is its genotype; a partly missing call (``./1``) counts its called alleles, so for
  counting it is held as a haploid call with ``partial = True`` (Hail calls cannot be partly missing) and for export
  its GT is missing;
- a sample whose file lists the site and has no stored call is ``0/0``;
- a sample whose file does not list the site is hom-ref of its ploidy on the contig (``0`` or ``0/0``) if the file is
  ``absent_mode = 'ref'``, or ``'callable'`` and the site is in one of its callable regions; otherwise the entry is
  missing (the sample does not count).

Hail represents only haploid and diploid calls: a lake with triploid (or higher) calls is refused.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.errors import LakeStateError, MissingExtraError, UserInputError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, int], None]  # (sites done, contigs done, contigs in all)


# Hail pins older rich/typer/pandas (which genolake accepts): an environment of its own keeps the user's as it is.
HAIL_ENV = ("Hail pins older rich, typer and pandas (genolake works with them); give it its own environment: "
            "python -m venv hail-env && . hail-env/bin/activate && pip install 'genolake[hail]' "
            "(from a checkout: pip install -e '.[hail]'; Java 11 or 17 on the PATH), then run the command again "
            "inside it")


def import_hail() -> Any:
    """``import hail``, or an error naming the extra to install."""
    try:
        import hail as hl
    except ImportError:
        raise MissingExtraError("hail", "hail", how=HAIL_ENV) from None
    return hl


_own_tmp: str | None = None  # the temporary folder of the Hail context genolake started (None: none, or the user's)


def init_hail(tmp_dir: str | None = None) -> Any:
    """Initialise Hail (quiet, logs and Spark's local files under ``tmp_dir``), honouring ``GENOLAKE_HAIL_MASTER``.

    A context the user started is used as it is. One genolake started is restarted when a job asks for another
    temporary folder: each aggregate keeps Spark's shuffle files (genotypes) inside its own staging folder, which
    is deleted after the commit, so a second job in the same process could not reuse the first one's context.
    """
    global _own_tmp
    hl = import_hail()
    from hail.utils.java import Env

    tmp = tmp_dir or os.path.join(os.environ.get("TMPDIR", "/tmp"), "genolake-hail")
    if Env._hc is not None:
        if _own_tmp is None or _own_tmp == tmp:
            return hl
        # Tables a previous job made with `Table.from_spark` free their Java id in whatever backend is current when
        # they are garbage-collected: collected after the restart, they would free the new job's ids ("key not
        # found: 1" in Hail's IR parser). Collect them while their own backend is still there.
        import gc

        gc.collect()
        hl.stop()
        gc.collect()
        _own_tmp = None
    import shutil

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise MissingExtraError("hail", "a Java runtime (JDK 11 or 17) for hail")
    os.makedirs(tmp, exist_ok=True)
    hl.init(quiet=True, master=os.environ.get("GENOLAKE_HAIL_MASTER") or None, tmp_dir=tmp,
            local_tmpdir=tmp, log=os.path.join(tmp, "hail.log"), min_block_size=0,
            spark_conf={"spark.ui.showConsoleProgress": "false"})
    _own_tmp = tmp
    return hl


def _spark() -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.builder.getOrCreate()


def _committed(store: Any) -> tuple[list[str], pa.Table]:
    files = store.read_table("files", columns=["file_id", "institution", "absent_mode", "contigs"])
    return sorted(files["file_id"].to_pylist()), files


def _check_ploidy(store: Any) -> None:
    import pyarrow.compute as pc

    ploidy = store.read_table("ploidy", columns=["ploidy"])
    high = pc.max(ploidy["ploidy"]).as_py() if ploidy.num_rows else None
    if high is not None and high > 2:
        raise UserInputError("the lake holds calls of ploidy > 2, which Hail cannot represent; use --engine dask")


def _long_calls(store: Any, samples: pa.Table) -> list[str]:
    """The lake's stored calls in the long layout of the ``calls`` view, as Parquet files Spark reads: each
    `genotypes` file expanded by :func:`genolake.genotypes.expand` into a folder under the lake's ``_staging``,
    removed when the process exits (Hail reads lazily, after this function returns)."""
    import atexit
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    from genolake.genotypes import expand, pseudonyms_by_file

    arrays = pseudonyms_by_file(samples["file_id"].to_pylist(), samples["column_index"].to_pylist(),
                                samples["sample_id"].to_pylist())
    (store.root / "_staging").mkdir(exist_ok=True)
    out = tempfile.mkdtemp(prefix="hail-calls-", dir=str(store.root / "_staging"))
    atexit.register(shutil.rmtree, out, True)
    paths = []
    for k, path in enumerate(store.active_files("genotypes")):
        rows = pq.read_table(path)
        long = expand(rows, lambda f: arrays.get(f, pa.array([], pa.string())))
        if long.num_rows:
            dest = os.path.join(out, f"part-{k:05d}.parquet")
            pq.write_table(long, dest)
            paths.append(dest)
    if not paths:  # Spark needs one file to know the columns
        dest = os.path.join(out, "empty.parquet")
        pq.write_table(expand(pa.table({}), lambda f: pa.array([], pa.string())), dest)
        paths.append(dest)
    return paths


def _spark_table(paths: list[str], select: str) -> Any:
    """A Spark DataFrame of Parquet files (the lake's own paths) with the columns cast for Hail."""
    df = _spark().read.option("mergeSchema", "false").parquet(*paths)
    return df.selectExpr(*[s.strip() for s in select.split(",")])


def lake_matrix_table(store: Any, *, groups: pa.Table | None = None, for_export: bool = False) -> Any:
    """The lake as a MatrixTable (see the module docstring), built by Hail from the lake's Parquet files.

    Rows: ``contig, pos, ref, alt`` (and, for export, ``locus`` and ``alleles``). Columns: ``s`` (pseudonymised
    sample_id), ``institution``, ``files``; with ``groups`` (file_id, sample_id, institution, stratum) also
    ``strata``. Entries: ``GT``, ``partial`` (a partly missing call counted as haploid), ``counted``, ``GQ``, ``DP``,
    ``AD``.
    """
    hl = import_hail()
    from genolake.duck import connect

    file_ids, files = _committed(store)
    if not file_ids:
        raise LakeStateError("the lake has no committed files; ingest VCFs first")
    _check_ploidy(store)
    samples_full = store.read_table("samples", columns=["institution", "sample_id", "file_id", "column_index"])
    samples = samples_full.select(["institution", "sample_id", "file_id"])
    ploidy = store.read_table("ploidy", columns=["sample_id", "contig", "ploidy", "file_id"])
    callable_ = store.read_table("callable", columns=["contig", "start", "end", "file_id"])
    con = connect(2)
    try:
        con.register("files_t", files)
        con.register("samples_t", samples)
        con.register("ploidy_t", ploidy)
        strata_sql = "NULL::VARCHAR[]"
        only_grouped = ""
        if groups is not None:
            # people in no group (duplicate copies left out by `aggregate --dedupe`) are not columns at all
            only_grouped = ("WHERE EXISTS (SELECT 1 FROM groups_t g WHERE g.institution = s.institution "
                            "AND g.sample_id = s.sample_id)")
            con.register("groups_t", groups)
            strata_sql = ("(SELECT list(DISTINCT g.stratum ORDER BY g.stratum) FROM groups_t g "
                          "WHERE g.institution = s.institution AND g.sample_id = s.sample_id)")
        cols = con.sql(
            f"""SELECT s.sample_id AS s, s.institution,
                       list({{'file_id': s.file_id, 'mode': f.absent_mode,
                              'contigs': coalesce((SELECT list(p.contig ORDER BY p.contig) FROM ploidy_t p
                                                   WHERE p.file_id = s.file_id AND p.sample_id = s.sample_id), []),
                              'ploidies': coalesce((SELECT list(CAST(p.ploidy AS INTEGER) ORDER BY p.contig)
                                                    FROM ploidy_t p WHERE p.file_id = s.file_id
                                                    AND p.sample_id = s.sample_id), [])}}
                            ORDER BY s.file_id) AS files,
                       {strata_sql} AS strata
                FROM samples_t s JOIN files_t f USING (file_id) {only_grouped}
                GROUP BY s.sample_id, s.institution ORDER BY s.institution, s.sample_id""").fetchall()
    finally:
        con.close()
    col_rows = [
        {"s": s, "institution": inst,
         "files": [{"file_id": f["file_id"], "mode": f["mode"],
                    "ploidy": dict(zip(f["contigs"], f["ploidies"], strict=True))} for f in fl],
         "strata": list(st) if st is not None else None}
        for s, inst, fl, st in cols
    ]
    col_type = hl.tstruct(s=hl.tstr, institution=hl.tstr,
                          files=hl.tarray(hl.tstruct(file_id=hl.tstr, mode=hl.tstr, ploidy=hl.tdict(hl.tstr, hl.tint32))),
                          strata=hl.tarray(hl.tstr))
    cols_ht = hl.Table.parallelize(col_rows, col_type).add_index("col_idx").key_by("col_idx")

    fid_set = hl.literal(set(file_ids), hl.tset(hl.tstr))
    variants = hl.Table.from_spark(_spark_table(
        store.active_files("variants"), "contig, cast(pos as int) pos, ref, alt, file_id"))
    variants = variants.filter(fid_set.contains(variants.file_id))
    sites = variants.group_by("contig", "pos", "ref", "alt").aggregate(
        present=hl.agg.collect_as_set(variants.file_id))
    # callable regions: the callable-mode files whose regions hold the site
    if callable_.num_rows:
        cb_rows = [{"contig": c, "start": int(a), "end": int(b), "file_id": f}
                   for c, a, b, f in zip(*(callable_[k].to_pylist() for k in ("contig", "start", "end", "file_id")),
                                         strict=True)]
        by_contig: dict[str, list[tuple[int, int, str]]] = {}
        for r in cb_rows:
            by_contig.setdefault(r["contig"], []).append((r["start"], r["end"], r["file_id"]))
        regions = hl.literal(by_contig, hl.tdict(hl.tstr, hl.tarray(hl.ttuple(hl.tint32, hl.tint32, hl.tstr))))
        sites = sites.annotate(in_callable=hl.set(
            regions.get(sites.contig, hl.empty_array(hl.ttuple(hl.tint32, hl.tint32, hl.tstr)))
            .filter(lambda r: (r[0] <= sites.pos) & (sites.pos <= r[1])).map(lambda r: r[2])))
    else:
        sites = sites.annotate(in_callable=hl.empty_set(hl.tstr))
    sites = sites.add_index("row_idx")
    n_rows = sites.count()
    sites = sites.key_by("row_idx")

    calls = hl.Table.from_spark(_spark_table(
        _long_calls(store, samples_full),
        "contig, cast(pos as int) pos, ref, alt, sample_id, gt, cast(ploidy as int) ploidy, "
        "cast(called as int) called, cast(alt_count as int) alt_count, phased, gq, dp, ad_ref, ad_alt, file_id"))
    calls = calls.filter(fid_set.contains(calls.file_id))
    full = calls.called == calls.ploidy
    gt = (hl.case()
          .when(calls.called == 0, hl.missing(hl.tcall))
          .when(full, hl.parse_call(calls.gt))
          .default(hl.call(calls.alt_count > 0)))  # partly missing diploid: its called allele, as a haploid call
    entry = hl.struct(GT=gt, partial=(calls.called > 0) & ~full, GQ=calls.gq, DP=calls.dp,
                      AD=hl.or_missing(hl.is_defined(calls.ad_ref) & hl.is_defined(calls.ad_alt),
                                       [calls.ad_ref, calls.ad_alt]))
    calls = calls.select(k=hl.struct(contig=calls.contig, pos=calls.pos, ref=calls.ref, alt=calls.alt),
                         sample_id=calls.sample_id, e=entry)
    by_site = calls.group_by(calls.k).aggregate(stored=hl.dict(hl.agg.collect((calls.sample_id, calls.e))))

    n_cols = len(col_rows)
    n_parts = max(1, min(64, n_rows // 2000 + 1))
    mt = hl.utils.range_matrix_table(n_rows, n_cols, n_partitions=n_parts)
    mt = mt.annotate_rows(**sites[hl.int64(mt.row_idx)])
    mt = mt.annotate_cols(**cols_ht[hl.int64(mt.col_idx)])
    mt = mt.annotate_rows(stored=by_site[hl.struct(contig=mt.contig, pos=mt.pos, ref=mt.ref, alt=mt.alt)].stored)
    e = mt.stored.get(mt.s)
    listed = hl.any(lambda f: mt.present.contains(f.file_id), mt.files)
    fill = mt.files.find(lambda f: (~mt.present.contains(f.file_id)) & f.ploidy.contains(mt.contig)
                         & ((f.mode == "ref") | ((f.mode == "callable") & mt.in_callable.contains(f.file_id))))
    fill_gt = hl.if_else(fill.ploidy[mt.contig] == 1, hl.call(0), hl.call(0, 0))
    mt = mt.annotate_entries(
        GT=hl.case().when(hl.is_defined(e), e.GT).when(listed, hl.call(0, 0))
                    .when(hl.is_defined(fill), fill_gt).or_missing(),
        partial=hl.coalesce(e.partial, False),
        counted=hl.is_defined(e) | listed | hl.is_defined(fill),
        GQ=e.GQ, DP=e.DP, AD=e.AD,
    )
    mt = mt.drop("stored")
    if for_export:
        mt = mt.annotate_entries(GT=hl.or_missing(~mt.partial, mt.GT))
        mt = mt.filter_entries(mt.counted)
    return mt


# ---------------------------------------------------------------------------------------------- aggregate
def hail_counts(store: Any, groups: pa.Table, institutions: list[str], *, adj: bool) -> pa.Table:
    """Counts (:data:`genolake.compute.frequencies.COUNT_COLUMNS`) computed by Hail with ``hl.agg.call_stats``.

    Each column lists the (scope, stratum, adj) groups it belongs to; one row aggregation explodes that list and
    groups by it (``hl.agg.explode`` + ``hl.agg.group_by``, as gnomAD's frequency annotation does), so the matrix is
    read once. ``adj:`` groups count only entries that pass the adj rule (the Dask engine's rule).
    """
    hl = import_hail()
    from genolake.schema import ADJ_AB, ADJ_DP, ADJ_DP_HAPLOID, ADJ_GQ

    mt = lake_matrix_table(store, groups=groups)
    kinds = [False, True] if adj else [False]
    mt = mt.annotate_cols(g=hl.flatmap(
        lambda scope: hl.flatmap(lambda a: mt.strata.map(lambda st: hl.struct(scope=scope, stratum=st, adj=a)),
                                 hl.literal(kinds)),
        hl.array(["joint", mt.institution])))
    g = mt.GT
    dp_min = hl.if_else((g.ploidy == 1) & ~mt.partial, ADJ_DP_HAPLOID, ADJ_DP)  # `./1` is diploid
    het = (g.ploidy == 2) & ~mt.partial & g.is_het_ref()
    passes = (hl.is_missing(mt.GQ) | (mt.GQ >= ADJ_GQ)) & (hl.is_missing(mt.DP) | (dp_min <= mt.DP)) & (
        ~het | hl.is_missing(mt.AD) | hl.is_missing(mt.AD[1]) | hl.is_missing(mt.DP) | (mt.DP == 0)
        | (mt.AD[1] * round(1 / ADJ_AB) >= mt.DP))
    # stored calls failing adj become missing; implied and absent-as-ref entries (no GQ/DP) always pass
    mt = mt.annotate_entries(adj_ok=hl.coalesce(hl.is_missing(g) | passes, True))
    mt = mt.filter_entries(mt.counted)

    def group_stats(grp: Any) -> Any:
        called = (~grp.adj | mt.adj_ok) & hl.is_defined(mt.GT)
        stats = hl.agg.filter(called, hl.agg.call_stats(mt.GT, hl.array([mt.ref, mt.alt])))
        return hl.struct(
            n_samples=hl.agg.count(),
            ac=hl.int64(stats.AC[1]),
            an=hl.int64(stats.AN),
            nhomalt=hl.agg.count_where(called & ~mt.partial & (mt.GT.ploidy == 2) & mt.GT.is_hom_var()),
            nhemi=hl.agg.count_where(called & ~mt.partial & (mt.GT.ploidy == 1) & mt.GT.is_non_ref()),
            n_called=hl.agg.count_where(called & ~mt.partial),
        )

    per_group = hl.agg.explode(
        lambda grp: hl.agg.group_by(
            hl.struct(scope=grp.scope, stratum=hl.if_else(grp.adj, "adj:" + grp.stratum, grp.stratum)),
            group_stats(grp)),
        mt.g)
    rows = mt.annotate_rows(freq=per_group).rows()
    rows = rows.select(rows.contig, rows.pos, rows.ref, rows.alt, item=hl.array(rows.freq))
    rows = rows.explode(rows.item)
    rows = rows.key_by()
    ent = rows.select("contig", "pos", "ref", "alt", scope=rows.item[0].scope, stratum=rows.item[0].stratum,
                      **{k: rows.item[1][k] for k in ("n_samples", "ac", "an", "nhomalt", "nhemi", "n_called")})
    with _tmp_parquet(store) as out:
        ent.to_spark().write.mode("overwrite").parquet(out)
        import pyarrow.dataset as ds

        raw = ds.dataset(out, format="parquet").to_table()
    return _complete(raw, institutions, adj=adj)


class _tmp_parquet:
    def __init__(self, store: Any) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="hail-", dir=str(store.root / "_staging"))

    def __enter__(self) -> str:
        return os.path.join(self.dir, "out.parquet")

    def __exit__(self, *exc: object) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def _complete(raw: pa.Table, institutions: list[str], *, adj: bool) -> pa.Table:
    """The Dask engine's row set: `all` rows for every site and scope (zeros where no sample counts), other strata
    where a sample counts; sorted as the Dask engine sorts."""
    from genolake.compute.frequencies import _arrow
    from genolake.duck import connect

    con = connect(2)
    try:
        con.register("raw", raw)
        con.register("insts", pa.table({"scope": pa.array(["joint", *institutions], pa.string())}))
        alls = "['all', 'adj:all']" if adj else "['all']"
        return _arrow(con.sql(
            f"""WITH sites AS (SELECT DISTINCT contig, pos, ref, alt FROM raw),
                base AS (SELECT s.*, i.scope, unnest({alls}) AS stratum FROM sites s CROSS JOIN insts i)
                SELECT b.contig, CAST(b.pos AS INTEGER) AS pos, b.ref, b.alt, b.scope, b.stratum,
                       CAST(coalesce(r.ac, 0) AS BIGINT) AS ac, CAST(coalesce(r.an, 0) AS BIGINT) AS an,
                       CAST(coalesce(r.nhomalt, 0) AS BIGINT) AS nhomalt,
                       CAST(coalesce(r.nhemi, 0) AS BIGINT) AS nhemi,
                       CAST(coalesce(r.n_called, 0) AS BIGINT) AS n_called
                FROM base b LEFT JOIN raw r USING (contig, pos, ref, alt, scope, stratum)
                UNION ALL
                SELECT contig, CAST(pos AS INTEGER), ref, alt, scope, stratum, CAST(ac AS BIGINT), CAST(an AS BIGINT),
                       CAST(nhomalt AS BIGINT), CAST(nhemi AS BIGINT), CAST(n_called AS BIGINT)
                FROM raw WHERE stratum NOT IN ('all', 'adj:all') AND n_samples > 0
                ORDER BY contig, pos, ref, alt, scope, stratum"""))
    finally:
        con.close()


def hail_part_results(store: Any, plan: Any, *, progress: ProgressFn | None = None) -> list[Any]:
    """Run the Hail engine for a :class:`genolake.compute.frequencies.Plan`: counts by Hail, then the same derive
    step and Parquet parts (one per contig) as the Dask engine, written into the plan's staging folder."""
    import pyarrow.compute as pc

    from genolake.compute import frequencies as fq
    from genolake.schema import ALLELE_FREQUENCIES
    from genolake.store import write_parquet

    if not plan.tasks:
        return []
    staging = Path(plan.tasks[0].staging)
    init_hail(str(staging / "hail-tmp"))
    t0 = time.perf_counter()
    counts = hail_counts(store, plan.groups, plan.institutions, adj=plan.tasks[0].adj)
    log.info("hail counts: %d rows in %.1f s", counts.num_rows, time.perf_counter() - t0)
    out = []
    by_contig: dict[str, list[Any]] = {}
    for t in plan.tasks:
        by_contig.setdefault(t.contig, []).append(t)
    done = 0
    for k, (contig, tasks) in enumerate(sorted(by_contig.items()), start=1):
        part = counts.filter(pc.equal(counts["contig"], contig))
        table = fq.derive(part, faf_groups=tasks[0].faf_groups)
        if table.num_rows == 0:
            continue
        write_parquet(ALLELE_FREQUENCIES, table, staging / ALLELE_FREQUENCIES.name / tasks[0].relpath)
        sites = table.select(["pos", "ref", "alt"]).group_by(["pos", "ref", "alt"]).aggregate([]).num_rows
        out.append(fq.PartResult(tasks[0].relpath, table.num_rows, sites, 0.0))
        done += sites
        if progress:
            progress(done, k, len(by_contig))
    return out
