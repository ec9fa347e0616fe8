"""The DuckDB engine: one in-memory connection per lake with a view per lake table, sandboxed.

Views read the Parquet files of each table's current Delta Lake version with DuckDB's built-in
``read_parquet`` (no extension is installed or loaded: hospital networks are often air-gapped). Rows of
files that are not committed (a job interrupted between two table commits) are left out: data files are
named after their ``file_id``, so uncommitted ones are dropped from the file lists (files with other names
are filtered by ``file_id`` in SQL instead).

Views: one per table (``variants`` is shown as ``variant_files``), ``variants`` (per institution sums: one row
per institution and site), ``sites`` (one row per site with joint counts, the counting rule of
:mod:`genolake.query.counts`), ``phenotypes_long`` (the stored long table), ``phenotypes`` (wide: one typed
column per phenotype) and, once aggregated, ``stratum_frequencies`` (``allele_frequencies`` with ``stratum``
split into ``adj``, ``phenotype`` and ``value``).

The library's own point and region queries do not go through the views: :class:`Catalog` keeps the
committed Parquet files of each table per contig (the ``contig=...`` folder), so a query reads only the
files of one contig and DuckDB skips row groups by their ``pos`` statistics (files are sorted by position).
Parquet footers are cached across queries (``parquet_metadata_cache``).

After the views exist the connection is locked down: no file access outside the lake, no extension
install/load, no configuration changes. This connection runs only the library's own SQL; users' SQL
(:meth:`Engine.user_sql`) runs in :mod:`genolake.query.sandbox`, on a fresh connection that can write nothing.
"""

from __future__ import annotations

import logging
import os
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from genolake.duck import confine, connect, load_python_layer
from genolake.duck import sql_ident as quote_ident
from genolake.duck import sql_string as _sql_str
from genolake.errors import UserInputError
from genolake.genotypes import (
    CALL_COLUMNS,
    FORMAT_FIELDS,
    call_values_of,
    calls_of_rows,
    calls_sql,
    carries,
    carries_sql,
    expand,
    nonzero_bytes,
    pseudonyms_by_file,
)
from genolake.lazy import DeferredType
from genolake.schema import (
    FILE_TABLES,
    PHENOTYPE_VALUE_COLUMN,
    TABLES,
    VIEWS,
    Table,
    phenotype_columns,
    valid_phenotype_name,
)
from genolake.store import LakeStore, committed_after, hive_quote

if TYPE_CHECKING:
    import pyarrow as pa
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")

log = logging.getLogger(__name__)

_DUCK_TYPES = {  # by the pyarrow type's name (no pyarrow at import: genolake.lazy)
    "string": "VARCHAR",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
}
# Small tables copied into memory at refresh (per sample or per file, never per genotype or site).
MATERIALISED = ("files", "samples", "ploidy", "callable", "phenotypes")
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERAL = re.compile(r"'(?:[^']|'')*'")


# Frequencies per institution (`scope` = institution) and joint (`scope` = 'joint') with the absent-site rules:
# a file that does not list a site adds its samples' ploidy to AN if it was ingested --absent-as-ref, or with
# --callable-regions and the site is in a callable region. A convenience for SQL users and the catalogue; the
# library's region/variant queries compute the same numbers reading one contig's files only.
SITE_FREQUENCIES = """
WITH vf AS (SELECT institution, file_id, contig, pos, ref, alt, ac, an, nhomalt, nhemi FROM variant_files),
sites AS (SELECT contig, pos, ref, alt, list(file_id) AS present FROM vf GROUP BY ALL),
absent AS (SELECT f.file_id, f.institution, f.absent_mode AS mode, p.contig, sum(p.ploidy) AS an
           FROM files f JOIN ploidy p USING (file_id)
           WHERE f.absent_mode IN ('ref', 'callable') GROUP BY ALL),
fill AS (SELECT s.contig, s.pos, s.ref, s.alt, a.institution, sum(a.an) AS an
         FROM sites s JOIN absent a ON a.contig = s.contig AND NOT list_contains(s.present, a.file_id)
         WHERE a.mode = 'ref' OR EXISTS (SELECT 1 FROM callable cb WHERE cb.file_id = a.file_id
                                          AND cb.contig = s.contig AND s.pos BETWEEN cb.start AND cb."end")
         GROUP BY ALL),
per AS (SELECT institution, contig, pos, ref, alt, ac, an, nhomalt, nhemi FROM vf
        UNION ALL SELECT institution, contig, pos, ref, alt, 0, an, 0, 0 FROM fill),
inst AS (SELECT institution, contig, pos, ref, alt, CAST(sum(ac) AS BIGINT) AS ac, CAST(sum(an) AS BIGINT) AS an,
                CAST(sum(nhomalt) AS BIGINT) AS nhomalt, CAST(sum(nhemi) AS BIGINT) AS nhemi
         FROM per GROUP BY ALL)
SELECT institution AS scope, contig, pos, ref, alt, ac, an, CASE WHEN an > 0 THEN ac / an END AS af, nhomalt, nhemi
FROM inst
UNION ALL
SELECT 'joint' AS scope, contig, pos, ref, alt, CAST(sum(ac) AS BIGINT), CAST(sum(an) AS BIGINT),
       CASE WHEN sum(an) > 0 THEN sum(ac) / sum(an) END, CAST(sum(nhomalt) AS BIGINT), CAST(sum(nhemi) AS BIGINT)
FROM inst GROUP BY ALL
"""

VARIANTS_VIEW = """
SELECT institution, contig, pos, ref, alt,
       max(id) AS id, max(qual) AS qual, max(filters) AS filters,
       CAST(sum(ac) AS BIGINT) AS ac, CAST(sum(an) AS BIGINT) AS an,
       CAST(sum(nhomalt) AS BIGINT) AS nhomalt, CAST(sum(nhemi) AS BIGINT) AS nhemi,
       CAST(sum(n_called) AS BIGINT) AS n_called, CAST(sum(n_missing) AS BIGINT) AS n_missing,
       CAST(sum(n_samples) AS BIGINT) AS n_samples,
       CASE WHEN sum(an) > 0 THEN sum(ac) / sum(an) END AS af,
       max(n_alleles) > 2 AS multiallelic, count(*) AS n_files
FROM variant_files
GROUP BY ALL
"""


# `allele_frequencies` with `stratum` split for WHERE clauses: `adj` (the `adj:` prefix), `phenotype` and `value`
# (`population=FIN` -> 'population', 'FIN'; both null for the `all` stratum).
STRATUM_FREQUENCIES = """
SELECT * EXCLUDE (stratum, s), starts_with(stratum, 'adj:') AS adj,
       CASE WHEN s <> 'all' THEN split_part(s, '=', 1) END AS phenotype,
       CASE WHEN s <> 'all' THEN substr(s, strpos(s, '=') + 1) END AS value,
       stratum
FROM (SELECT *, CASE WHEN starts_with(stratum, 'adj:') THEN substr(stratum, 5) ELSE stratum END AS s
      FROM allele_frequencies)
"""


def _sql_literal(v: Any) -> str:
    """A Python value as a DuckDB literal (the lists and numbers of the `sites` view's parameters)."""
    if isinstance(v, list):
        return "[" + ", ".join(_sql_literal(x) for x in v) + "]"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return f"CAST({v} AS BIGINT)"
    return _sql_str(str(v))


def duck_type(t: pa.DataType) -> str:
    """DuckDB's name for a pyarrow type, or for a schema column's type not built yet (``Column.declared``, a
    :class:`genolake.lazy.DeferredType`: read without importing pyarrow)."""
    if isinstance(t, DeferredType):
        if t.factory == "list_":
            return duck_type(t.args[0]) + "[]"
        if t.factory == "timestamp":
            return "TIMESTAMPTZ" if dict(t.kwargs).get("tz") or len(t.args) > 1 else "TIMESTAMP"
        return _DUCK_TYPES.get({"float32": "float", "float64": "double", "bool_": "bool"}.get(t.factory, t.factory),
                               "DATE" if t.factory == "date32" else "VARCHAR")
    got = _DUCK_TYPES.get(str(t))
    if got is not None:
        return got
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t):
        return duck_type(t.value_type) + "[]"
    if pa.types.is_date32(t):
        return "DATE"
    return "VARCHAR"


def _empty_select(table: Table) -> str:
    cols = ", ".join(f"CAST(NULL AS {duck_type(c.declared)}) AS {quote_ident(c.name)}" for c in table.columns)
    return f"SELECT {cols} LIMIT 0"


def parquet_list(paths: list[str]) -> str:
    """A ``read_parquet`` file list literal. Paths come from the Delta log, never from user input."""
    return "[" + ", ".join(_sql_str(p) for p in paths) + "]"


@dataclass
class FileInfo:
    """One committed ingested file (a row of ``files``)."""

    file_id: str
    institution: str
    absent_mode: str
    contigs: tuple[str, ...]
    n_samples: int


@dataclass
class Catalog:
    """Committed files and per-contig Parquet lists of one lake version (rebuilt by :meth:`Engine.refresh`)."""

    files: dict[str, FileInfo] = field(default_factory=dict)
    # table -> list of (path, contig or None, file_id or None)
    paths: dict[str, list[tuple[str, str | None, str | None]]] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    # wide `phenotypes` column -> kind: see the `phenotypes` property (known once the wide view is made)
    phenotype_kinds: dict[str, str] | None = None
    load_phenotypes: Any = None  # fills phenotype_kinds and phenotype_exprs on first use (makes no view)
    phenotype_exprs: dict[str, str] = field(default_factory=dict)  # wide column -> its SQL over phenotypes_long
    # True when `allele_frequencies` was committed after the last change to `files` (so it covers the lake)
    frequencies_current: bool = False
    ploidy_sums: dict[tuple[str, str], tuple[int, int]] | None = None  # (file, contig) -> (sum ploidy, samples)
    callable: dict[tuple[str, str], tuple[list[int], list[int]]] | None = None  # sorted starts, ends
    # caches of this lake version, filled on first use
    view_columns: dict[str, list[str]] = field(default_factory=dict)
    pheno_arrow: Any = None  # (phenotype columns as Arrow, (institution, sample_id) -> row), see variant.py
    pheno_by_column: Any = None  # file_id -> phenotype row of each column index (-1: none), see variant.py
    _path_info: dict[str, dict[str, tuple[str | None, str | None]]] = field(default_factory=dict)
    sandbox_tables: dict[str, Any] = field(default_factory=dict)  # materialised tables as Arrow, for user SQL
    pseudonyms: dict[str, pa.Array] | None = None  # file_id -> pseudonym by column index (null: withdrawn)
    point_plans: dict[tuple[str, str], Any] = field(default_factory=dict)  # (table, contig) -> _PointPlan

    @property
    def phenotypes(self) -> dict[str, str]:
        """Wide ``phenotypes`` column -> kind (categorical, numeric, list)."""
        if self.phenotype_kinds is None:
            if self.load_phenotypes is not None:
                self.load_phenotypes()
            if self.phenotype_kinds is None:
                self.phenotype_kinds = {}
        return self.phenotype_kinds

    def path_info(self, table: str) -> dict[str, tuple[str | None, str | None]]:
        """Each committed file of ``table`` -> (contig of its ``contig=`` folder, file_id in its name)."""
        got = self._path_info.get(table)
        if got is None:
            got = self._path_info[table] = {p: (c, f) for p, c, f in self.paths.get(table, [])}
        return got

    @property
    def institutions(self) -> list[str]:
        return sorted({f.institution for f in self.files.values()})

    @property
    def contigs(self) -> list[str]:
        """Contigs of the committed files, in the natural order of their names (1..22, X, Y, M, others)."""
        from genolake.contigs import bare

        def order(c: str) -> tuple[int, str]:
            b = bare(c)
            return (int(b), "") if b.isdigit() else (100 + "XYM".find(b) if b in "XYM" else 200, b)

        return sorted({c for f in self.files.values() for c in f.contigs}, key=order)

    def table_paths(self, table: str, *, contig: str | None = None, institution: str | None = None) -> list[str]:
        """Committed Parquet files of ``table`` (all, or only those of one contig / institution folder)."""
        out = []
        inst_dir = f"institution={hive_quote(institution)}/" if institution is not None else None
        for path, c, _fid in self.paths.get(table, []):
            if contig is not None and c is not None and c != contig:
                continue
            if inst_dir is not None and f"/{inst_dir}" not in path:
                continue
            out.append(path)
        return out

    def table_paths_in(self, table: str, *, contig: str, institution: str | None, start: int, end: int) -> list[str]:
        """:meth:`table_paths` of ``contig`` whose ``pos`` range overlaps [start, end] (footers read once per
        process, or Delta statistics; files without statistics are kept)."""
        return overlapping(self.table_paths(table, contig=contig, institution=institution), start, end)

    def needs_file_filter(self, table: str) -> bool:
        """True if some file of a per-file table is not named after its file_id (filter rows in SQL)."""
        return table in FILE_TABLES and any(fid is None for _p, _c, fid in self.paths.get(table, []))

    def absent_counting(self, contig: str) -> list[FileInfo]:
        """Files whose samples count at sites absent from the file (`ref` or `callable` mode) on ``contig``."""
        return [f for f in self.files.values() if f.absent_mode in ("ref", "callable") and contig in f.contigs]

    def in_callable(self, file_id: str, contig: str, pos: int) -> bool:
        assert self.callable is not None
        starts, ends = self.callable.get((file_id, contig), ([], []))
        i = bisect_right(starts, pos) - 1
        # regions may overlap: the running maximum of ends is kept in `ends`
        return i >= 0 and ends[i] >= pos


@dataclass
class _PointPlan:
    """What every point read of one table on one contig needs to know of its files, worked out once per lake
    version (:meth:`Engine._point_arrow`): the committed files with their ``pos`` ranges (a file without known
    range is always read), sizes, file_ids and the columns known for the whole file (file_id, institution)."""

    paths: list[str]
    lo: np.ndarray
    hi: np.ndarray
    file_ids: list[str | None]  # from the file's name
    outside: list[bool]  # not in the contig's `contig=` folder: rows are filtered on the contig column
    constants: dict[str, dict[str, str]]
    sizes: dict[str, int]  # data files are immutable: their sizes are read once per lake version
    committed: set[str] | None  # the committed file_ids when some file is not named after one (else None)
    schema: Any

    @classmethod
    def make(cls, cat: Catalog, table: str, contig: str) -> _PointPlan:
        paths = cat.table_paths(table, contig=contig)
        ranges = pos_ranges(paths) if paths else {}
        big = np.iinfo(np.int64).max
        lo = np.array([ranges[p][0] if p in ranges else -big for p in paths], np.int64)
        hi = np.array([ranges[p][1] if p in ranges else big for p in paths], np.int64)
        info = cat.path_info(table)
        sizes = {}
        for p in paths:
            try:
                sizes[p] = os.stat(p).st_size
            except OSError:  # the reader finds out and says so (the read falls back to DuckDB)
                pass
        files = cat.files
        t = TABLES.get(table)
        return cls(paths, lo, hi, [info[p][1] for p in paths], [info[p][0] != contig for p in paths],
                   {p: {"file_id": f, "institution": files[f].institution}
                    for p in paths if (f := info[p][1]) is not None and f in files},
                   sizes, set(files) if cat.needs_file_filter(table) else None,
                   _arrow_schema(t) if t is not None else None)


_POS_RANGES: dict[tuple[str, int], tuple[int, int] | None] = {}


def have_pos_ranges(paths: list[str]) -> bool:
    """True if every file's pos range is known without reading a footer (Delta stats or read before)."""
    return all((p, -1) in _POS_RANGES or p in _POS_READ for p in paths)


_POS_READ: set[str] = set()  # files whose footer statistics were read by this process


def overlapping(paths: list[str], start: int, end: int) -> list[str]:
    """The files of ``paths`` whose ``pos`` range (:func:`pos_ranges`) overlaps [start, end]; files without
    statistics are kept."""
    ranges = pos_ranges(paths)
    return [p for p in paths if p not in ranges or (ranges[p][0] <= end and ranges[p][1] >= start)]


def pos_ranges(paths: list[str]) -> dict[str, tuple[int, int]]:
    """(min, max) of the ``pos`` column of each Parquet file, from its footer statistics.

    Data files are immutable (a Delta version adds and removes whole files), so the ranges are cached per
    path and size for the life of the process. Files without statistics are left out (always read).
    """
    out: dict[str, tuple[int, int]] = {}
    for p in paths:
        known = _POS_RANGES.get((p, -1))
        if known is not None:  # from the Delta add action's statistics
            out[p] = known
            continue
        try:
            size = os.stat(p).st_size
        except OSError:
            continue
        key = (p, size)
        if key not in _POS_RANGES:
            rng: tuple[int, int] | None = None
            import pyarrow.parquet as pq  # only for files without Delta statistics

            try:
                md = pq.read_metadata(p)
                idx = next(i for i in range(md.num_columns) if md.schema.column(i).name == "pos")
                lo, hi = None, None
                for g in range(md.num_row_groups):
                    st = md.row_group(g).column(idx).statistics
                    if st is None or not st.has_min_max:
                        raise ValueError("no statistics")
                    lo = st.min if lo is None else min(lo, st.min)
                    hi = st.max if hi is None else max(hi, st.max)
                if lo is not None and hi is not None:
                    rng = (int(lo), int(hi))
            except (OSError, ValueError, StopIteration):
                rng = None
            _POS_RANGES[key] = rng
            _POS_READ.add(p)
        r = _POS_RANGES[key]
        if r is not None:
            out[p] = r
    return out


class _SpillFolder:
    """Where an engine's DuckDB spills: ``<txn>/duckdb`` in a staging folder of the lake (a locked ``.owner``
    keeps writers' recovery away while the engine lives; removed on close, at garbage collection or exit, and
    by the next writer after a kill), or nowhere when the lake is not writable (``path`` None: no spilling)."""

    def __init__(self, store: LakeStore) -> None:
        import contextlib
        import weakref

        from genolake.errors import GenolakeError

        self.path: str | None = None
        stack = contextlib.ExitStack()
        if store.root.is_dir() and os.access(store.root, os.W_OK):
            try:
                _, folder = stack.enter_context(store.staging())
                self.path = str(folder / "duckdb")
            except GenolakeError as exc:  # a read-only or full disk: queries run, without spilling
                log.info("no spill folder in the lake: %s", exc)
        self.close = weakref.finalize(self, stack.close)


class Engine:
    """A sandboxed DuckDB connection with the lake's views."""

    def __init__(self, store: LakeStore, *, threads: int | None = None, point_reads: bool = True) -> None:
        self.store = store
        self.threads = threads
        self._spill = _SpillFolder(store)
        # duckdb's Python layer is imported when a query needs it (`con`, `query`): the cold CLI runs none
        self._con = connect(threads, spill=self._spill.path, python_layer=False)
        self._con.execute("SET parquet_metadata_cache=true")
        self.views: list[str] = []
        # views (and in-memory tables) not made yet: name -> CREATE statements, or a function making it. They
        # are made when a query names them, so opening a lake reads no table it does not query.
        self._pending: dict[str, list[str] | Callable[[], None]] = {}
        self.catalog = Catalog()
        self._scans: dict[str, int] = {}
        self._points: Any = None  # a point.PointReader, made on first use
        self.point_reads = point_reads
        self.refresh()
        confine(self._con, store.root)

    @property
    def con(self) -> Any:
        """The DuckDB connection with every view made (code outside the engine may run any SQL on it)."""
        while self._pending:
            self._make(next(iter(self._pending)))
        load_python_layer()
        return self._con

    def register(self, name: str, table: pa.Table) -> None:
        """Make the Arrow ``table`` readable as ``name`` by this engine's queries, without making every pending
        view as :attr:`con` does (a query makes the views it names)."""
        load_python_layer()  # it reads Arrow objects
        self._con.register(name, table)

    def unregister(self, name: str) -> None:
        """Undo :meth:`register`."""
        self._con.unregister(name)

    def _ensure(self, sql: str) -> None:
        """Make the pending views that ``sql`` names (outside its string literals), and what they read."""
        if not self._pending:
            return
        words = set(_WORD.findall(_LITERAL.sub("''", sql)))
        for name in [n for n in self._pending if n in words]:
            if name in self._pending:
                self._make(name)

    def _make(self, name: str) -> None:
        todo = self._pending.pop(name)
        if callable(todo):
            todo()
            return
        for stmt in todo:
            self._ensure(stmt)
            self._con.execute(stmt)

    # ------------------------------------------------------------------ views
    def _lake_tables(self) -> list[str]:
        """Delta tables in the lake folder: the schema's, in its order, then any other, by name."""
        found = [name for name in self.store.table_names() if _TABLE_NAME.match(name)]
        ordered = ["files"] + [n for n in TABLES if n != "files"]
        return [n for n in ordered if n in found] + [n for n in found if n not in TABLES]

    def refresh(self) -> None:
        """(Re)create the views and the catalog from each table's current Delta version."""
        cat = Catalog()
        tables = self._lake_tables()
        for name in tables:
            try:
                data_files = self.store.data_files(name)
            except Exception as exc:  # an unreadable table of a later stage must not break queries
                log.warning("table %s not readable (%s); skipped", name, exc)
                continue
            cat.tables.append(name)
            entries = []
            for df in data_files:
                entries.append((df.path, df.contig, df.file_id))
                if df.pos_range is not None:
                    _POS_RANGES[(df.path, -1)] = df.pos_range
            cat.paths[name] = entries
        # committed files: the `files` table is the commit record of every per-file table
        if cat.paths.get("files"):
            rows = self._con.execute(
                f"SELECT file_id, institution, absent_mode, contigs, n_samples "
                f"FROM read_parquet({parquet_list([p for p, _c, _f in cat.paths['files']])})"
            ).fetchall()
            for fid, inst, mode, contigs, n in rows:
                cat.files[fid] = FileInfo(fid, inst, mode, tuple(contigs or ()), int(n))
        cat.frequencies_current = committed_after(self.store.root, "allele_frequencies", "files")
        for name in FILE_TABLES:
            if name in cat.paths:
                cat.paths[name] = [e for e in cat.paths[name] if e[2] is None or e[2] in cat.files]
        self.catalog = cat
        self._pending = {}
        self.views = sorted(set(self._create_views(self._con, cat)))

    def _create_views(self, con: Any, cat: Catalog, *, source: Any = None) -> list[str]:
        """Create the lake's views on ``con`` and return their names.

        ``source`` (the user SQL sandbox, :mod:`genolake.query.sandbox`) gives, per table, a registered
        read-only relation to read instead of ``read_parquet``, and the engine's materialised tables as
        Arrow; without it the views read the files (the library's own connection)."""
        views: list[str] = []
        lazy = source is None and con is self._con

        def create(name: str, *stmts: str) -> None:
            if lazy:
                self._pending[name] = list(stmts)
            else:
                for stmt in stmts:
                    con.execute(stmt)
            views.append(name)

        for name in cat.tables:
            target = {"variants": "variant_files", "phenotypes": "phenotypes_long"}.get(name, name)
            if source is not None and name in MATERIALISED:
                body = source.materialised(name) if target in self.views else None
                if body is not None:
                    create(target, f"CREATE OR REPLACE VIEW {target} AS {body}")
                continue
            body = self._table_select(name, cat, source=source)
            if body is None:
                continue
            if name in MATERIALISED:
                # small tables are read into memory once per refresh: joins with them cost no file I/O
                create(target, f"CREATE OR REPLACE TABLE _gl_{name} AS {body}",
                       f"CREATE OR REPLACE VIEW {target} AS SELECT * FROM _gl_{name}")
            else:
                create(target, f"CREATE OR REPLACE VIEW {target} AS {body}")
        if "variant_files" not in views:
            create("variant_files", f"CREATE OR REPLACE VIEW variant_files AS {_empty_select(TABLES['variants'])}")
        if {"genotypes", "samples"} <= set(views):  # the long view of the genotype store
            create("calls", f"CREATE OR REPLACE VIEW calls AS SELECT * FROM {calls_sql('genotypes', 'samples')}")
        # per-institution site counts: the sum over the institution's files that list the site
        create("variants", f"CREATE OR REPLACE VIEW variants AS {VARIANTS_VIEW}")
        if {"files", "ploidy", "callable"} <= set(views):
            create("site_frequencies", f"CREATE OR REPLACE VIEW site_frequencies AS {SITE_FREQUENCIES}")
        if source is not None:
            create("phenotypes", f"CREATE OR REPLACE VIEW phenotypes AS {source.materialised('phenotypes_wide')}")
        else:
            cat.phenotype_kinds = None
            have_long = "phenotypes_long" in views
            # the names and kinds are read without making the wide view (a point query's breakdown pivots the
            # few columns it needs: `phenotype_source`)
            cat.load_phenotypes = partial(self._phenotype_kinds, cat, have_long)
            if lazy:
                self._pending["phenotypes"] = partial(self._load_phenotypes, cat, have_long)
            else:
                self._load_phenotypes(cat, have_long)
            views.append("phenotypes")
        if "allele_frequencies" in views:
            create("stratum_frequencies", f"CREATE OR REPLACE VIEW stratum_frequencies AS {STRATUM_FREQUENCIES}")
        if {"files", "ploidy", "callable"} <= set(views):
            if lazy:
                self._pending["sites"] = lambda: self._sites_view(con)
            else:
                self._sites_view(con, sandboxed=source is not None)
            views.append("sites")
        return views

    def _sites_view(self, con: Any, *, sandboxed: bool = False) -> None:
        """The `sites` view: one row per variant with joint counts, from :func:`counts.joint_ctes` (the counting
        rule of `query variant` / `query region`) over every contig, its parameters written in as literals. In
        the user SQL sandbox it reads the sandbox's own `variant_files` view (no file access there)."""
        from genolake.query.counts import joint_ctes

        params: dict[str, Any] = {}
        scans = dict(self._scans)  # this scan is not a query: it must not change how later scans prune
        try:
            ctes = joint_ctes(self, None, None, params, src="(SELECT * FROM variant_files)" if sandboxed else None)
        finally:
            self._scans = scans
        ctes = re.sub(r"\$([A-Za-z_]\w*)", lambda m: _sql_literal(params[m.group(1)]), ctes)
        stmt = f"""CREATE OR REPLACE VIEW sites AS WITH {ctes}
            SELECT contig, pos, ref, alt, id, filters, ac, an, CASE WHEN an > 0 THEN ac / an END AS af,
                   nhomalt, nhemi, institutions
            FROM joint"""
        if con is self._con:
            self._ensure(stmt)
        con.execute(stmt)

    def _table_select(self, name: str, cat: Catalog, *, source: Any = None) -> str | None:
        table = TABLES.get(name)
        paths = [p for p, _c, _f in cat.paths.get(name, [])]
        if name in FILE_TABLES and not cat.files:
            return _empty_select(table) if table else None
        if paths:
            cols = ", ".join(quote_ident(n) for n in table.names) if table else "*"
            # registered tables are written with their exact schema, so the view binds from one file's footer;
            # tables of other stages may have evolved: their files are matched by column name
            if source is not None:
                body = f"SELECT {cols} FROM {source.relation(name, paths, table)}"
            else:
                union = "" if table is not None else ", union_by_name=true"
                body = f"SELECT {cols} FROM read_parquet({parquet_list(paths)}, hive_partitioning=false{union})"
            if cat.needs_file_filter(name):
                body = f"SELECT * FROM ({body}) WHERE file_id IN (SELECT file_id FROM files)"
            return body
        if table is not None:
            return _empty_select(table)
        try:  # a table of a later stage with no data yet: an empty view of its Delta schema
            schema = pa.schema(self.store.delta(name).schema().to_arrow())
        except Exception:
            return None
        cols = ", ".join(f"CAST(NULL AS {duck_type(f.type)}) AS {quote_ident(f.name)}" for f in schema)
        return f"SELECT {cols} LIMIT 0" if cols else None

    def _load_phenotypes(self, cat: Catalog, have_long: bool) -> None:
        self._pending.pop("phenotypes", None)
        self._phenotypes_wide(cat, have_long)

    def _phenotype_kinds(self, cat: Catalog, have_long: bool) -> None:
        """Fill ``cat.phenotype_kinds`` (wide column -> categorical, numeric or list) and ``cat.phenotype_exprs``
        (wide column -> its aggregate over `phenotypes_long`) from the names and kinds stored; names are validated
        identifiers."""
        if cat.phenotype_kinds is not None:
            return
        pairs: list[tuple[str, str]] = []
        if have_long:
            for name, kind in self.rows("SELECT DISTINCT name, kind FROM phenotypes_long"):
                if name in ("institution", "sample_id") or not valid_phenotype_name(name):
                    log.warning("phenotype name %r is not a valid column name; not shown in `phenotypes`", name)
                    continue
                pairs.append((name, kind))
        found, mixed = phenotype_columns(pairs)
        exprs: dict[str, str] = {}
        for name, kind in found.items():
            if name not in mixed:
                exprs[name] = f"max({PHENOTYPE_VALUE_COLUMN[kind]}) FILTER (WHERE name = {_sql_str(name)})"
            else:  # the loader keeps one kind per name; a mixed table (older data) is shown as text
                exprs[name] = (f"max(coalesce(value_str, CAST(value_num AS VARCHAR), array_to_string(value_list, ';')))"
                               f" FILTER (WHERE name = {_sql_str(name)})")
        cat.phenotype_exprs = exprs
        cat.phenotype_kinds = found

    def phenotype_source(self, names: list[str]) -> str:
        """A FROM-clause source with ``institution``, ``sample_id`` and the wide `phenotypes` columns ``names``
        (values exactly as the view has them), computed from `phenotypes_long` without making the wide view."""
        if "phenotypes_long" not in self.views:
            return "(SELECT CAST(NULL AS VARCHAR) AS institution, CAST(NULL AS VARCHAR) AS sample_id LIMIT 0)"
        self.catalog.phenotypes  # noqa: B018 - fills phenotype_exprs
        exprs = self.catalog.phenotype_exprs
        cols = "".join(f", {exprs[n]} AS {quote_ident(n)}" for n in names)
        return f"(SELECT institution, sample_id{cols} FROM phenotypes_long GROUP BY institution, sample_id)"

    def _phenotypes_wide(self, cat: Catalog, have_long: bool) -> str:
        """The wide `phenotypes` view: one typed column per phenotype name (names are validated identifiers)."""
        self._phenotype_kinds(cat, have_long)
        cols = [f"{expr} AS {quote_ident(name)}" for name, expr in cat.phenotype_exprs.items()]
        if cols:
            body = (f"SELECT institution, sample_id, {', '.join(cols)} FROM phenotypes_long "
                    "GROUP BY institution, sample_id")
        else:
            body = "SELECT CAST(NULL AS VARCHAR) AS institution, CAST(NULL AS VARCHAR) AS sample_id LIMIT 0"
        self._con.execute(f"CREATE OR REPLACE TABLE _gl_phenotypes_wide AS {body}")
        self._con.execute("CREATE OR REPLACE VIEW phenotypes AS SELECT * FROM _gl_phenotypes_wide")
        return "phenotypes"

    # ------------------------------------------------------------------ pruned reads for the library's queries
    def scan(self, table: str, *, contig: str | None = None, institution: str | None = None,
             columns: list[str] | None = None, start: int | None = None, end: int | None = None) -> str:
        """A FROM-clause source reading only the committed files of ``table`` for ``contig`` (and institution),
        and with ``start``/``end`` only the files whose ``pos`` range overlaps [start, end].

        Returns an expression usable as ``FROM {scan} AS x``; an empty typed relation if no file matches.
        ``calls`` is the long view of the genotype store: the stored calls of the ``genotypes`` rows read.
        """
        if table == "calls":
            rows = self.scan("genotypes", contig=contig, institution=institution, start=start, end=end)
            cnames = list(columns or CALL_COLUMNS)
            if rows.startswith("(SELECT") and " LIMIT 0)" in rows and "read_parquet" not in rows:
                keep = tuple(c for c in VIEWS["calls"].columns if c.name in cnames)
                return f"({_empty_select(Table('calls', '', keep))})"
            # the rows asked for, before they are expanded: a window of a contig expands that window only
            conds = [f"pos >= {int(start)}" if start is not None else "", f"pos <= {int(end)}" if end is not None else "",
                     f"contig = {_sql_str(contig)}" if contig is not None else "",
                     f"institution = {_sql_str(institution)}" if institution is not None else ""]
            if any(conds):
                rows = f"(SELECT * FROM {rows} WHERE {' AND '.join(c for c in conds if c)})"
            cols = ", ".join(quote_ident(n) for n in cnames)
            return f"(SELECT {cols} FROM {calls_sql(rows, 'samples')})"
        paths = self.catalog.table_paths(table, contig=contig, institution=institution)
        seen = self._scans.get(table, 0)
        self._scans[table] = seen + 1
        # The first scan of a table lets DuckDB skip row groups itself (it reads the footers anyway); later
        # ones read only the files whose pos range overlaps (footers read once per process, or Delta stats).
        if paths and start is not None and end is not None and (seen or have_pos_ranges(paths)):
            paths = overlapping(paths, start, end)
        t = TABLES.get(table)
        names = columns or (t.names if t else None)
        if not paths:
            if t is None:
                return f"(SELECT * FROM {table} LIMIT 0)"
            keep = tuple(c for c in t.columns if names is None or c.name in names)
            return f"({_empty_select(Table(t.name, t.doc, keep))})"
        cols = ", ".join(quote_ident(n) for n in names) if names else "*"
        src = f"(SELECT {cols} FROM read_parquet({parquet_list(paths)}, hive_partitioning=false))"
        if self.catalog.needs_file_filter(table):
            fids = ", ".join(_sql_str(f) for f in sorted(self.catalog.files))
            src = f"(SELECT * FROM {src} WHERE file_id IN ({fids or 'NULL'}))"
        return src

    def point(self, table: str, *, contig: str, pos: int, columns: list[str],
              equal: dict[str, Any] | None = None) -> pa.Table:
        """The rows of ``table`` at one position (``contig``, ``pos``, and each ``equal`` column equal to its
        value): ``columns`` only, committed rows only. Read with pyarrow from the row groups that can hold the
        position (see :mod:`genolake.query.point`); by DuckDB if that reader cannot serve it."""
        if table == "calls":
            return self._point_calls(contig, pos, columns, equal)
        got = self._point_arrow(table, contig, pos, columns, equal)
        if got is not None:
            return got
        sql, params = self._point_sql(table, contig, pos, columns, equal)
        return self.query(sql, params)

    def _point_calls(self, contig: str, pos: int, columns: list[str], equal: dict[str, Any] | None,
                     *, carriers_only: bool = False) -> pa.Table:
        """The stored calls at one position: the `genotypes` rows there, expanded (:func:`genotypes.expand`;
        without point reads, the CLI's path, by the same codec in DuckDB: no pyarrow.compute to import)."""
        if not self.point_reads:
            where, params = _at_position(contig, pos, equal)
            rows = self.scan("genotypes", contig=contig, start=pos, end=pos)
            if "read_parquet" in rows:  # the position's rows are picked before their codes are expanded
                src = f"{calls_sql(f'(SELECT * FROM {rows} WHERE {where})', 'samples')}"
            else:
                src = self.scan("calls", contig=contig, start=pos, end=pos)
            cond = carries_sql("_c") if carriers_only else "TRUE"
            return self.query(f"SELECT {', '.join(quote_ident(c) for c in columns)} FROM {src} AS _c WHERE {cond}",
                              params)
        need: list[str] = [c for c in ("institution", "contig", "pos", "ref", "alt") if c in columns]
        need += ["file_id", "gt", "gt_symbols", "other_gt",
                 *(c for c in ("gq", "dp", "ad_ref", "ad_alt") if c in columns)]
        rows = self.point("genotypes", contig=contig, pos=pos, columns=need, equal=equal)
        return expand(rows, self.file_pseudonyms, columns, carriers_only=carriers_only)

    def point_carriers(self, contig: str, pos: int, columns: list[str],
                       equal: dict[str, Any] | None = None, *, column_index: bool = False) -> pa.Table:
        """The stored calls holding the alt (:func:`~genolake.genotypes.carries`) at one position, ``columns`` of the ``calls`` view
        (and, with ``column_index``, when the point reader served it, each call's sample column in its file as a
        last column ``column_index``: see :func:`genolake.genotypes.expand`).

        The codes are read first (cached; as Python values, as the point query's breakdown reads them) and
        expanded once; the other columns, with the FORMAT lists (megabytes per row group, decoded for this
        query only, up to the site's row), are then read from the files whose row there has a carrier only (a rare
        allele is carried in one institution)."""
        if not self.point_reads:
            return self._point_calls(contig, pos, columns, equal, carriers_only=True)
        codes = self._point_arrow("genotypes", contig, pos, ["file_id", "gt", "gt_symbols", "other_gt"], equal,
                                  as_rows=True)
        if codes is None:
            return self._point_calls(contig, pos, columns, equal, carriers_only=True)
        calls = call_values_of([r[1] for r in codes], [r[2] for r in codes], [r[3] for r in codes])
        file_ids = [r[0] for r in codes]
        fids = {file_ids[i] for i in np.unique(calls.row[carries(calls.alt_count)]).tolist()}
        if not fids:
            return expand(pa.table({}), self.file_pseudonyms, columns)
        pick = [i for i, f in enumerate(file_ids) if f in fids]
        if len(pick) < len(file_ids):  # only the rows of the files with a carrier
            calls = calls_of_rows(calls, np.array(pick, dtype=np.int64))
        need: list[str] = [c for c in ("institution", "contig", "pos", "ref", "alt") if c in columns]
        need += ["file_id", *(c for c in FORMAT_FIELDS if c in columns)]
        rows = self._point_arrow("genotypes", contig, pos, need, equal, only_files=fids)
        if rows is None:
            return self._point_calls(contig, pos, columns, equal, carriers_only=True)
        got = rows.column("file_id").to_pylist()
        if len(got) != len(pick):  # a data file holding several ingested files: their rows, as in `codes`
            rows = rows.filter(pa.array([f in fids for f in got]))
            got = rows.column("file_id").to_pylist()
        if got != [file_ids[i] for i in pick]:  # both reads take the same rows of the same files: never seen
            log.warning("genotypes at %s:%d: codes and FORMAT lists read as different rows; read by DuckDB",
                        contig, pos)
            return self._point_calls(contig, pos, columns, equal, carriers_only=True)
        return expand(rows, self.file_pseudonyms, columns, carriers_only=True, calls=calls,
                      by_sample="institution" in columns, column_index=column_index)

    def file_pseudonyms(self, file_id: str) -> pa.Array:
        """The pseudonyms of a committed file's samples by column index (null where a person was withdrawn)."""
        cat = self.catalog
        if cat.pseudonyms is None:
            rows = self.rows("SELECT file_id, column_index, sample_id FROM samples") if "samples" in self.views else []
            cat.pseudonyms = pseudonyms_by_file([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                                                {f: info.n_samples for f, info in cat.files.items()})
        arr = cat.pseudonyms.get(file_id)
        return arr if arr is not None else pa.array([], pa.string())

    def view_columns(self, view: str) -> list[str]:
        """The column names of a view (cached until the next refresh)."""
        cache = self.catalog.view_columns
        if view not in cache:
            t = TABLES.get(view)
            if t is not None and view in self.catalog.tables and view not in ("variants", "phenotypes"):
                # a registered table's view selects its declared columns (`_table_select`): no need to make the
                # view (which reads the files' footers) to DESCRIBE it
                cache[view] = list(t.names)
            else:
                cache[view] = [r[0] for r in self.rows(f"DESCRIBE {quote_ident(view)}")]
        return list(cache[view])

    def point_rows(self, table: str, *, contig: str, pos: int, columns: list[str],
                   equal: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None,
                   nonzero: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
        """:meth:`point` as Python tuples. ``fixed`` conditions filter like ``equal`` ones; they are the same for
        every query of a kind (`allele_frequencies`' stratum 'all'), so the point reader caches only the rows
        that pass them. ``nonzero`` binary columns come as (bytes as a uint8 array, positions of the nonzero
        bytes): the point reader takes them from an index of its cached row group (no scan of the row)."""
        if table == "calls":
            got = self._point_calls(contig, pos, columns, equal)
            return list(zip(*(c.to_pylist() for c in got.columns), strict=True)) if got.num_columns else []
        got = self._point_arrow(table, contig, pos, columns, equal, fixed=fixed, as_rows=True, nonzero=nonzero)
        if got is not None:
            return got  # type: ignore[no-any-return]
        sql, params = self._point_sql(table, contig, pos, columns, {**(equal or {}), **(fixed or {})})
        rows = self.rows(sql, params)
        if nonzero and rows:
            at = {i for i, c in enumerate(columns) if c in nonzero}
            rows = [tuple(nonzero_bytes(v) if i in at else v for i, v in enumerate(r)) for r in rows]
        return rows

    def _point_arrow(self, table: str, contig: str, pos: int, columns: list[str],
                     equal: dict[str, Any] | None, *, only_files: set[str] | None = None,
                     fixed: dict[str, Any] | None = None, end: int | None = None, as_rows: bool = False,
                     nonzero: tuple[str, ...] = ()) -> Any:
        """:meth:`point` by the pyarrow point reader (None: it cannot serve this read); with ``only_files``,
        only from the data files of those ingested files (and files not named after one); with ``end``, the rows
        of every position from ``pos`` to ``end`` (file by file, each in position order); with ``as_rows``, as
        Python tuples (:meth:`point_rows`) instead of an Arrow table."""
        if not self.point_reads:
            return None
        from genolake.query.point import PointReader, PointReadUnavailable

        last = pos if end is None else end
        plan = self.catalog.point_plans.get((table, contig))
        if plan is None:
            plan = self.catalog.point_plans[(table, contig)] = _PointPlan.make(self.catalog, table, contig)
        hit = np.flatnonzero((plan.lo <= last) & (plan.hi >= pos)).tolist()
        paths = [plan.paths[i] for i in hit]
        if only_files is not None:
            paths = [p for p, i in zip(paths, hit, strict=True)
                     if plan.file_ids[i] is None or plan.file_ids[i] in only_files]
        if self._points is None:
            self._points = PointReader()
        match = dict(equal or {})
        if any(plan.outside[i] for i in hit):  # a file outside contig= folders: filter on the column
            match["contig"] = contig
        try:
            return self._points.read(paths, pos, columns, equal=match, constants=plan.constants,
                                     file_ids=plan.committed, schema=plan.schema,
                                     transient=FORMAT_FIELDS if table == "genotypes" else (), fixed=fixed,
                                     end=end, as_rows=as_rows, sizes=plan.sizes, nonzero=nonzero)
        except (PointReadUnavailable, OSError, pa.ArrowException) as exc:
            log.info("point read of %s by DuckDB (%s)", table, exc)
            return None

    def _point_sql(self, table: str, contig: str, pos: int, columns: list[str],
                   equal: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        src = self.scan(table, contig=contig, start=pos, end=pos,
                        columns=list(dict.fromkeys(["pos", "contig", *(equal or {}), *columns])))
        where, params = _at_position(contig, pos, equal)
        return f"SELECT {', '.join(quote_ident(c) for c in columns)} FROM {src} WHERE {where}", params

    def ploidy_sums(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(file_id, contig) -> (sum of sample ploidies, samples) for files that count absent sites."""
        cat = self.catalog
        if cat.ploidy_sums is None:
            fids = sorted(f.file_id for f in cat.files.values() if f.absent_mode in ("ref", "callable"))
            out: dict[tuple[str, str], tuple[int, int]] = {}
            if fids:
                for fid, contig, s, n in self.rows(
                    "SELECT file_id, contig, CAST(sum(ploidy) AS BIGINT), count(*) FROM ploidy "
                    "WHERE list_contains($fids, file_id) GROUP BY ALL", {"fids": fids}
                ):
                    out[(fid, contig)] = (int(s), int(n))
            cat.ploidy_sums = out
        return cat.ploidy_sums

    def callable_regions(self) -> dict[tuple[str, str], tuple[list[int], list[int]]]:
        cat = self.catalog
        if cat.callable is None:
            out: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
            if "callable" in cat.tables:
                for fid, contig, start, end in self.rows(
                    'SELECT file_id, contig, start, "end" FROM callable ORDER BY file_id, contig, start'
                ):
                    starts, ends = out.setdefault((fid, contig), ([], []))
                    starts.append(int(start))
                    ends.append(max(int(end), ends[-1]) if ends else int(end))
            cat.callable = out
        return cat.callable

    def interrupt(self) -> None:
        """Stop the query running on the connection (from another thread: makes no pending view)."""
        self._con.interrupt()

    def close(self) -> None:
        """Close the connection (views not made yet are not made), the point reader's open files and the
        spill folder."""
        self._pending = {}
        self._con.close()
        if self._points is not None:
            self._points.close()
        self._spill.close()

    # ------------------------------------------------------------------ running queries
    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run trusted SQL (the library's own) with bound parameters; return Arrow."""
        self._ensure(sql)
        load_python_layer()
        return fetch_arrow(self._con.sql(sql, params=params or None))

    def rows(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run trusted SQL with bound parameters; return Python tuples (cheaper than Arrow for a few rows)."""
        self._ensure(sql)
        return self._con.execute(sql, params or None).fetchall()

    def user_sql(self, sql: str, params: list[Any] | dict[str, Any] | None = None, *,
                 timeout: float | None = None, memory_limit: int | None = None) -> pa.Table:
        """Run a user's query in the sandbox (:mod:`genolake.query.sandbox`: a fresh connection that can read
        the lake's views and write nothing), stopped after ``timeout`` seconds (default 300) and
        ``memory_limit`` bytes (default a quarter of RAM). One statement; SELECT, WITH, VALUES, DESCRIBE or
        EXPLAIN (a friendly early refusal: the sandbox, not this check, is what keeps the lake safe)."""
        import duckdb

        from genolake.query.sandbox import run_user_sql

        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise UserInputError(f"SQL syntax error: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise UserInputError("give exactly one SQL statement")
        kind = statements[0].type
        allowed = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
        if kind not in allowed:
            raise UserInputError(
                f"only read-only queries are allowed (got {kind.name}); the lake is changed with genolake commands"
            )
        table = run_user_sql(self, sql, params, timeout=timeout, memory_limit=memory_limit)
        if table.num_rows == 0 and kind == duckdb.StatementType.SELECT:
            from genolake.query.sql_typos import explain_empty

            explain_empty(sql, {"contig": self.catalog.contigs, "institution": self.catalog.institutions})
        return table


def _at_position(contig: str, pos: int, equal: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (and its parameters) of the rows at one position whose ``equal`` columns match."""
    match = {"contig": contig, **(equal or {})}
    where = " AND ".join(["pos = $pos"] + [f"{quote_ident(k)} = $e{i}" for i, k in enumerate(match)])
    return where, {"pos": pos, **{f"e{i}": v for i, v in enumerate(match.values())}}


def fetch_arrow(cursor: Any) -> pa.Table:
    """Result as a pyarrow Table (``to_arrow_table`` in duckdb >= 1.4, ``fetch_arrow_table`` before)."""
    if cursor is None:
        return pa.table({})
    fn = getattr(cursor, "to_arrow_table", None) or cursor.fetch_arrow_table
    return fn()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_SCHEMAS: dict[str, pa.Schema] = {}


def _arrow_schema(table: Table) -> pa.Schema:
    """A registered table's Arrow schema (built once per process: tables are declared once, in schema.py)."""
    got = _SCHEMAS.get(table.name)
    if got is None:
        got = _SCHEMAS[table.name] = table.arrow_schema
    return got
