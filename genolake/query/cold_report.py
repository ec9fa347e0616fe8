"""`genolake query variant`'s reports for one process: a few DuckDB queries and plain Python, without numpy.

The cold command (issue 10: whole process <= 0.35 s, benchmarks/suites/cli.py) answers one or a few point
queries and exits, so what the library builds once per opened lake and reuses (the engine's views, the
in-memory copies of `samples` and `phenotypes`, the numpy sample index of :mod:`genolake.query.strata`, a
spill folder in the lake) is start-up cost here, and numpy's import alone was the largest item of it. This
module gives exactly the reports of :func:`genolake.query.variant.variant_report` with:

- the Delta logs of the tables it reads only (:meth:`LakeStore.data_files`, with the logs' ``pos`` ranges), and
  one DuckDB connection without duckdb's Python layer, spilling nowhere, locked down as the engine's is;
- per variant: the `variants` rows at the position, the `allele_frequencies` rows (stratum ``all``), one query
  that counts the phenotype breakdown in SQL (the site's stored calls by the codec's SQL,
  :func:`genolake.genotypes.stored_calls_sql`, counted by the one counting rule,
  :func:`genolake.genotypes.call_counts_sql`, joined to the samples' phenotype values), and the `annotations`
  row; each reads only the files of the contig whose ``pos`` range holds the position.

Whatever it does not serve exactly as the library does, it leaves to the library (:func:`reports` returns None
and the command opens a :class:`genolake.query.lake.Lake`): more than :data:`MAX_IDS` IDs (the library is then
faster: it reads the samples and phenotypes once), rsIDs, a variant no file lists (its message names
what is at the position), phenotype names the library would warn about or show as text, two stored calls of one
sample at the site, a table the engine would read differently (data files not named after their file_id, an
unregistered annotations table) or could not read (it warns). Files that count absent sites (absent-as-ref,
callable regions) are counted here as the library counts them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from genolake.duck import sql_ident as _ident
from genolake.duck import sql_string as _str
from genolake.query.ids import VariantKey, is_rsid, parse_variant
from genolake.query.site_summary import SITE_COLUMNS, allele_rows, variant_summary
from genolake.query.site_summary import frequency_row as _freq
from genolake.schema import FILE_TABLES, ID_PHENOTYPES, MAX_BREAKDOWN_VALUES, PHENOTYPE_VALUE_COLUMN
from genolake.store import DataFile, LakeStore, committed_after

log = logging.getLogger(__name__)

__all__ = ["reports"]

# More IDs than this go to the library: it pays its start-up (its engine's views, the sample index: ~0.15 s of
# CPU) once and then ~17 ms per variant, where this path reads the phenotypes and samples again for each
# variant (~40 ms): equal at 4 IDs (3 x 1,000 samples, CPU time of whole commands on the benchmark machine).
MAX_IDS = 3
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FREQ_COLUMNS = ("scope", "ac", "an", "nhomalt", "nhemi")


class _Unserved(Exception):
    """The library answers this command line (see the module's docstring)."""


def _files(paths: list[str]) -> str:
    return "[" + ", ".join(_str(p) for p in paths) + "]"


class _ColdLake:
    """The tables one process needs: committed data files per table and contig, and a DuckDB connection."""

    def __init__(self, store: LakeStore) -> None:
        from genolake.duck import confine, connect

        self.store = store
        self.tables = {n for n in store.table_names() if _TABLE_NAME.match(n)}
        self._data: dict[str, list[DataFile]] = {}
        self.con = connect(1, python_layer=False)
        confine(self.con, store.root)
        self.files: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # file_id -> institution, absent_mode, contigs
        if "files" in self.tables and self.data("files"):
            for fid, inst, mode, contigs in self.rows(
                    "SELECT file_id, institution, absent_mode, contigs "
                    f"FROM read_parquet({_files([d.path for d in self.data('files')])})"):
                self.files[fid] = (inst, mode, tuple(contigs or ()))
        self.institutions = sorted({f[0] for f in self.files.values()})
        for name in sorted(self.tables):  # every table's log, as the engine reads them: one it cannot read is
            self.data(name)  # warned about by the library (a log is well under a millisecond)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params or None).fetchall()

    def data(self, table: str) -> list[DataFile]:
        """Committed data files of ``table`` (the engine's catalog: per-file tables keep the committed files')."""
        got = self._data.get(table)
        if got is None:
            try:
                got = self.store.data_files(table) if table in self.tables else []
            except Exception as exc:  # the engine warns and skips the table: the library says so
                raise _Unserved(f"table {table} not readable") from exc
            if table in FILE_TABLES:
                if any(d.file_id is None for d in got):
                    raise _Unserved(f"{table}: a data file not named after its file_id")
                got = [d for d in got if d.file_id in self.files]
            self._data[table] = got
        return got

    def at(self, table: str, key: VariantKey) -> str | None:
        """``read_parquet`` of the files of ``table`` that can hold ``key``'s position (None: no file)."""
        paths = [d.path for d in self.data(table) if (d.contig is None or d.contig == key.contig)
                 and (d.pos_range is None or d.pos_range[0] <= key.pos <= d.pos_range[1])]
        return f"read_parquet({_files(paths)}, hive_partitioning=false)" if paths else None

    def close(self) -> None:
        self.con.close()


def reports(lake: Path, texts: list[str]) -> list[dict[str, Any]] | None:
    """The reports of the variant IDs ``texts`` (as :meth:`genolake.query.lake.Lake.variant` gives them), or
    None when the library must answer (see the module's docstring). Raises the library's errors for a lake it
    cannot open and for a malformed ID, in the same order."""
    if len(texts) > MAX_IDS or any(is_rsid(t) for t in texts):
        return None
    store = LakeStore.open(lake)
    keys = [parse_variant(t, store.contig_style) for t in texts]
    from genolake.duck import Error as DuckDBError

    # a file DuckDB cannot read here is left to the library too: it reports it its own way
    try:
        cold = _ColdLake(store)
    except (_Unserved, DuckDBError) as exc:
        log.info("query variant by the library: %s", exc)
        return None
    try:
        return [_report(cold, k) for k in keys]
    except (_Unserved, DuckDBError) as exc:
        log.info("query variant by the library: %s", exc)
        return None
    finally:
        cold.close()


def _report(cold: _ColdLake, key: VariantKey) -> dict[str, Any]:
    """:func:`genolake.query.variant.variant_report` of one allele."""
    src = cold.at("variants", key)
    found = cold.rows(f"SELECT {', '.join(SITE_COLUMNS)}, ref, alt FROM {src} WHERE pos = $pos AND contig = $c",
                      {"pos": key.pos, "c": key.contig}) if src else []
    rows = allele_rows(found, key)
    if not rows:
        raise _Unserved("not in the lake")  # the library's message names what the position holds
    present = sorted({r[0] for r in rows})
    fill = _counting_absent(cold, key, set(present))
    freqs = _precomputed(cold, key) or _live(cold, key, rows, fill)
    variant = variant_summary(key, rows, precomputed=freqs[0] is not None)
    return {"variant": variant, "frequencies": freqs[1], "phenotypes": _breakdown(cold, key, present, fill),
            "annotations": _annotations(cold, key)}


def _in(values: list[str]) -> str:
    """A SQL ``IN`` list of string literals (``NULL`` for none: matches nothing)."""
    return "(" + (", ".join(_str(v) for v in values) or "NULL") + ")"


def _counting_absent(cold: _ColdLake, key: VariantKey, present: set[str]) -> list[str]:
    """Files that do not list the site but whose samples count there: ingested --absent-as-ref, or with
    --callable-regions and the site in one of the file's regions
    (:func:`genolake.query.variant.counting_absent_files`)."""
    out: list[str] = []
    regions: list[str] = []
    for fid, (_inst, mode, contigs) in cold.files.items():
        if mode in ("ref", "callable") and key.contig in contigs and fid not in present:
            (out if mode == "ref" else regions).append(fid)
    if regions:
        paths = [d.path for d in cold.data("callable")]
        inside = {r[0] for r in cold.rows(
            f"SELECT DISTINCT file_id FROM read_parquet({_files(paths)}, hive_partitioning=false) "
            f'WHERE contig = $c AND start <= $pos AND "end" >= $pos AND file_id IN {_in(regions)}',
            {"c": key.contig, "pos": key.pos})} if paths else set()
        out += [f for f in regions if f in inside]
    return out


def _live(cold: _ColdLake, key: VariantKey, rows: list[tuple[Any, ...]],
          fill: list[str]) -> tuple[None, list[dict[str, Any]]]:
    """Per-institution and joint counts summed from the site's `variants` rows, plus the ploidy of the samples
    of the files counting the absent site (:func:`genolake.query.variant.live_frequencies`)."""
    per: dict[str, list[int]] = {inst: [0, 0, 0, 0] for inst in cold.institutions}
    for _fid, inst, ac, an, nhomalt, nhemi, *_rest in rows:
        acc = per.setdefault(inst, [0, 0, 0, 0])
        acc[0] += ac
        acc[1] += an
        acc[2] += nhomalt
        acc[3] += nhemi
    paths = [d.path for d in cold.data("ploidy")] if fill else []
    if paths:
        for fid, total in cold.rows(
                f"SELECT file_id, CAST(sum(ploidy) AS BIGINT) FROM read_parquet({_files(paths)}, "
                f"hive_partitioning=false) WHERE contig = $c AND file_id IN {_in(fill)} GROUP BY file_id",
                {"c": key.contig}):
            per[cold.files[fid][0]][1] += int(total)
    joint = [sum(v[i] for v in per.values()) for i in range(4)]
    return None, [_freq("joint", *joint)] + [_freq(inst, *per[inst]) for inst in sorted(per)]


def _precomputed(cold: _ColdLake, key: VariantKey) -> tuple[str, list[dict[str, Any]]] | None:
    """Frequencies from `allele_frequencies` when it covers the lake and the allele (joint and every
    institution), as :func:`genolake.query.variant.precomputed_frequencies`."""
    if "allele_frequencies" not in cold.tables or not committed_after(cold.store.root, "allele_frequencies", "files"):
        return None
    src = cold.at("allele_frequencies", key)
    if src is None:
        return None
    try:
        got_rows = cold.rows(f"SELECT {', '.join(_FREQ_COLUMNS)} FROM {src} WHERE pos = $pos AND contig = $c "
                             "AND ref = $r AND alt = $a AND stratum = 'all'",
                             {"pos": key.pos, "c": key.contig, "r": key.ref, "a": key.alt})
    except Exception as exc:  # a table of another version/shape: the library falls back to the lake, and logs it
        raise _Unserved("allele_frequencies not usable") from exc
    got = {r[0]: r for r in got_rows}
    scopes = ["joint", *cold.institutions]
    if not all(s in got for s in scopes):
        return None
    return "allele_frequencies", [_freq(s, *(int(x or 0) for x in got[s][1:])) for s in scopes]


_KINDS_SQL = "SELECT name, list(DISTINCT kind) AS kinds, count(DISTINCT value_str) AS n_values FROM {src} GROUP BY name"


def _breakdown_names(kinds: list[tuple[Any, ...]]) -> list[str]:
    """Categorical phenotypes shown per value (:func:`genolake.query.variant.breakdown_names`), from the rows
    (name, kinds, distinct values) of the stored phenotypes; a name the library would warn about or show as text
    (mixed kinds) is left to the library."""
    from genolake.schema import valid_phenotype_name

    names = []
    for name, kinds_of, n_values in sorted(kinds):
        if name in ("institution", "sample_id") or not valid_phenotype_name(name):
            raise _Unserved("a phenotype name the library warns about")
        if len(kinds_of) != 1 or kinds_of[0] not in PHENOTYPE_VALUE_COLUMN:
            raise _Unserved("a phenotype of mixed kinds")
        if kinds_of[0] == "categorical" and name not in ID_PHENOTYPES and 0 < n_values <= MAX_BREAKDOWN_VALUES:
            names.append(name)
    return names


def _breakdown(cold: _ColdLake, key: VariantKey, present: list[str], fill: list[str]) -> list[dict[str, Any]]:
    """Per categorical phenotype and value: samples counted at the site, carriers, AC, AN, AF, nhomalt, nhemi
    (:func:`genolake.query.strata.count_breakdown`), counted in one SQL query that also returns the phenotypes'
    names and kinds (which phenotypes are shown: :func:`_breakdown_names`, checked against the same rule in SQL).

    A sample counts at the site when its file lists the site (``present``: an implied 0/0, AN 2) or counts the
    absent site (``fill``: when it has a ploidy on the contig, AN that ploidy); a stored call of a counted
    sample then counts by the lake's rule instead (its alleles, carrier, hom-alt, hemizygous)."""
    from genolake.genotypes import call_counts_sql, carries_sql, stored_calls_sql

    pheno_paths = [d.path for d in cold.data("phenotypes")]
    if not pheno_paths:
        return []
    pheno = f"read_parquet({_files(pheno_paths)}, hive_partitioning=false)"
    samples = [d.path for d in cold.data("samples")]
    if not samples or not (present or fill):
        _breakdown_names(cold.rows(_KINDS_SQL.format(src=pheno)))
        return []
    geno = cold.at("genotypes", key)
    counted = _in(present + fill)
    counts = call_counts_sql("_t")
    if geno:
        rows = (f"(SELECT institution, contig, pos, ref, alt, file_id, gt, gt_symbols, other_gt, NULL::INTEGER[] AS gq,"
                f" NULL::INTEGER[] AS dp, NULL::INTEGER[] AS ad_ref, NULL::INTEGER[] AS ad_alt FROM {geno} WHERE "
                f"pos = $pos AND contig = $c AND ref = $r AND alt = $a AND file_id IN {counted})")
        calls = (f"SELECT file_id, column_index, {counts['ac']} AS ac, {counts['an']} AS an, "
                 f"CAST({carries_sql('_t')} AS INTEGER) AS carrier, {counts['nhomalt']} AS nhomalt, "
                 f"{counts['nhemi']} AS nhemi FROM {stored_calls_sql(rows)} AS _t")
    else:
        calls = ("SELECT NULL::VARCHAR AS file_id, 0::BIGINT AS column_index, 0 AS ac, 0 AS an, 0 AS carrier, "
                 "0 AS nhomalt, 0 AS nhemi LIMIT 0")
    ploidy = [d.path for d in cold.data("ploidy")] if fill else []
    if ploidy:
        base = f"CASE WHEN _sm.file_id IN {_in(present)} THEN 2 ELSE coalesce(_p.ploidy, 0) END"
        with_ploidy = (f"LEFT JOIN (SELECT file_id, sample_id, ploidy FROM read_parquet({_files(ploidy)}, "
                       f"hive_partitioning=false) WHERE contig = $c AND file_id IN {_in(fill)}) AS _p "
                       "USING (file_id, sample_id)")
    else:
        base, with_ploidy = "2", ""
    ids = "(" + ", ".join(_str(n) for n in sorted(ID_PHENOTYPES)) + ")"
    got = cold.rows(f"""
        WITH _calls AS MATERIALIZED ({calls}),
        _ph AS MATERIALIZED (SELECT institution, sample_id, name, kind, value_str FROM {pheno}),
        _k AS ({_KINDS_SQL.format(src="_ph")}),
        _w AS (SELECT institution, sample_id, name, max(value_str) AS value FROM _ph
               WHERE name IN (SELECT name FROM _k WHERE kinds = ['categorical'] AND name NOT IN {ids}
                                                  AND n_values BETWEEN 1 AND {MAX_BREAKDOWN_VALUES})
               GROUP BY ALL),
        _s AS (SELECT file_id, institution, sample_id, column_index, {base} AS base
               FROM read_parquet({_files(samples)}, hive_partitioning=false) AS _sm {with_ploidy}
               WHERE file_id IN {counted}),
        _sv AS (SELECT _s.file_id, _s.column_index, _s.base, _w.name, _w.value
                FROM _s JOIN _w USING (institution, sample_id) WHERE _w.value IS NOT NULL AND _s.base > 0)
        SELECT _sv.name, _sv.value, NULL::VARCHAR[], count(*), CAST(sum(_sv.base) AS BIGINT), coalesce(sum(_c.ac), 0),
               coalesce(sum(_c.an - _sv.base), 0), coalesce(sum(_c.carrier), 0), coalesce(sum(_c.nhomalt), 0),
               coalesce(sum(_c.nhemi), 0), (SELECT count(*) - count(DISTINCT (file_id, column_index)) FROM _calls)
        FROM _sv LEFT JOIN _calls AS _c USING (file_id, column_index)
        GROUP BY ALL
        UNION ALL
        SELECT name, NULL, kinds, n_values, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM _k""",
                    {"pos": key.pos, "c": key.contig, "r": key.ref, "a": key.alt} if geno else
                    {"c": key.contig} if with_ploidy else None)
    names = _breakdown_names([(r[0], r[2], r[3]) for r in got if r[2] is not None])
    counts_of = {(r[0], r[1]): r for r in got if r[2] is None}
    if any(r[10] for r in counts_of.values()):
        raise _Unserved("two stored calls of one sample at the site")
    if {n for n, _v in counts_of} - set(names):
        raise _Unserved("the breakdown's phenotypes in SQL are not those of _breakdown_names")
    out = []
    for name in names:
        for value in sorted(v for n, v in counts_of if n == name):
            _n, _v, _k, samples_n, an_base, ac, an_calls, carriers, nhomalt, nhemi, _dup = counts_of[(name, value)]
            an = an_base + an_calls
            out.append({"phenotype": name, "value": value, "samples": int(samples_n), "carriers": int(carriers),
                        "ac": int(ac), "an": int(an), "af": ac / an if an else None, "nhomalt": int(nhomalt),
                        "nhemi": int(nhemi)})
    return out


def _annotations(cold: _ColdLake, key: VariantKey) -> dict[str, Any]:
    """The variant's `annotations` row with its external frequencies (:func:`genolake.query.genes.annotation_of`)."""
    if "annotations" not in cold.tables:
        return {}
    from genolake.schema import TABLES

    table = TABLES.get("annotations")
    if table is None:
        raise _Unserved("annotations table not registered")
    cold.data("annotations")
    src = cold.at("annotations", key)
    if src is None:
        return {}
    cols = list(table.names)
    allele = {"pos": key.pos, "c": key.contig, "r": key.ref, "a": key.alt}
    where = "WHERE pos = $pos AND contig = $c AND ref = $r AND alt = $a"
    rows = cold.rows(f"SELECT {', '.join(_ident(c) for c in cols)} FROM {src} {where}", allele)
    if not rows:
        return {}
    out = dict(zip(cols, rows[0], strict=True))
    if "external_frequencies" in cold.tables:
        fcols = ["source", "af", "ac", "an", "nhomalt", "popmax", "popmax_af"]
        fsrc = cold.at("external_frequencies", key)
        freq = [dict(zip(fcols, r, strict=True))
                for r in (cold.rows(f"SELECT {', '.join(fcols)} FROM {fsrc} {where}", allele) if fsrc else [])]
        freq.sort(key=lambda r: r["source"])
        out["external_frequencies"] = {r.pop("source"): r for r in freq}
    return out
