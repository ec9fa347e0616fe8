"""User SQL runs on its own DuckDB connection that can read the lake and write nothing.

The guard is structural rather than a list of refused statement types: whatever a statement is (EXPLAIN
ANALYZE COPY, PREPARE/EXECUTE, a CTE, a pragma, a table function, several statements), it runs on a
connection where

- DuckDB has no file system at all: ``enable_external_access`` is off with *no* allowed directory or path,
  so ``COPY ... TO``, ``EXPORT``, ``ATTACH``, ``read_text``/``read_csv``/``glob`` of any path, ``INSTALL``,
  persistent secrets and log/profile files are refused by DuckDB itself;
- the lake's tables are pyarrow datasets registered with the connection (pyarrow opens the committed Parquet
  files read-only; DuckDB cannot write into a registered Arrow object), the small tables Arrow copies;
- no temporary directory (``temp_directory = ''``: nothing is spilled anywhere, so nothing can be read from
  or written to one), a ``memory_limit`` well under the machine's RAM, no Python replacement scans;
- ``lock_configuration`` is on, so none of this can be changed by a ``SET``/``PRAGMA``/``RESET``;
- the connection is new for every query and closed after it: a ``CREATE OR REPLACE VIEW samples`` in one
  query cannot change what the next query (or the library's own queries, on another connection) sees.

A timer thread calls ``interrupt()`` after ``timeout`` seconds.

The price is speed: DuckDB reads Arrow datasets slower than its own Parquet reader (string columns are read
as dictionaries to keep the gap small). The library's own queries (variant, region, carriers, aggregate...)
use the engine's connection and its native reader; they never run user text (``--where`` is compiled to
bound parameters, :mod:`genolake.query.where`).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from genolake.errors import UserInputError

if TYPE_CHECKING:
    from genolake.query.engine import Engine
    from genolake.schema import Table

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 300.0  # seconds
_MEMORY_SHARE = 0.25  # default memory limit: this share of physical RAM
_MEMORY_FLOOR = 1 << 30


def default_memory_limit() -> int:
    """A quarter of the machine's RAM (at least 1 GiB): bytes."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return max(_MEMORY_FLOOR, int(total * _MEMORY_SHARE))


def parse_size(text: str) -> int:
    """``'2GB'``, ``'512MiB'``, ``'1e9'`` -> bytes (for ``--memory-limit``)."""
    t = text.strip().upper().replace(" ", "")
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
             "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "B": 1}
    num, mult = t, 1
    for unit, factor in units.items():
        if t.endswith(unit):
            num, mult = t[: -len(unit)], factor
            break
    try:
        value = float(num) * mult
    except ValueError:
        raise UserInputError(f"--memory-limit {text!r}: give a size such as 2GB or 512MiB") from None
    if value < 16 * (1 << 20):
        raise UserInputError(f"--memory-limit {text!r} is too small (at least 16MiB)")
    return int(value)


def _dictionary_schema(schema: pa.Schema) -> pa.Schema:
    """String columns as dictionaries: pyarrow then hands DuckDB the Parquet dictionary pages as they are."""
    return pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), pa.string()), f.nullable)
                      if pa.types.is_string(f.type) else f for f in schema])


class _Sources:
    """What the sandbox connection reads: registered read-only relations (see :meth:`Engine._create_views`)."""

    def __init__(self, engine: Engine, con: Any) -> None:
        self.engine = engine
        self.con = con

    def relation(self, name: str, paths: list[str], table: Table | None) -> str:
        """A registered pyarrow dataset over ``paths`` (the committed files of table ``name``)."""
        import pyarrow.dataset as ds
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        if table is not None:
            schema = table.arrow_schema
        else:  # a table of a later stage: its files are matched by column name, as read_parquet(union_by_name)
            schema = pa.unify_schemas([pq.read_schema(p) for p in paths], promote_options="permissive")
        schema = _dictionary_schema(schema)
        strings = [f.name for f in schema if pa.types.is_dictionary(f.type)]
        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=strings))
        # each file's hive folder values (institution, contig) as its partition expression: a query's filter
        # on them then skips the other files without opening them (as the native reader's file filters do)
        dataset = ds.FileSystemDataset.from_paths(paths, schema=schema, format=fmt,
                                                  filesystem=pafs.LocalFileSystem(),
                                                  partitions=[_partition_expression(p, schema) for p in paths])
        rel = f"_gl_src_{name}"
        self.con.register(rel, dataset)
        return rel

    def materialised(self, name: str) -> str:
        """A copy of the engine's in-memory table ``_gl_{name}`` (small: per sample or per file)."""
        from genolake.query.engine import fetch_arrow

        cache = self.engine.catalog.sandbox_tables
        if name not in cache:
            cache[name] = fetch_arrow(self.engine.con.sql(f"SELECT * FROM _gl_{name}"))
        rel = f"_gl_{name}"
        self.con.register(rel, cache[name])
        return f"SELECT * FROM {rel}"


def _partition_expression(path: str, schema: pa.Schema) -> Any:
    """The filter every row of the data file at ``path`` passes by its folders (``institution=x/contig=y``),
    for the columns ``schema`` has; ``True`` for a file outside such folders."""
    import pyarrow.dataset as ds

    from genolake.store import partition_values

    expr = ds.scalar(True)
    for key, value in partition_values(path).items():
        if key in schema.names:
            expr = expr & (ds.field(key) == pa.scalar(value, pa.string()))
    return expr


def connect_sandbox(engine: Engine, *, memory_limit: int | None = None) -> Any:
    """A new locked-down connection with the lake's views (see the module docstring)."""
    from genolake.duck import connect

    con = connect(engine.threads)
    con.execute("SET python_enable_replacements = false")
    con.execute("SET temp_directory = ''")
    con.execute(f"SET memory_limit = '{int(memory_limit or default_memory_limit())}B'")
    con.execute("SET allow_community_extensions = false")
    engine._create_views(con, engine.catalog, source=_Sources(engine, con))
    con.execute("SET allowed_directories = []")
    con.execute("SET allowed_paths = []")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_user_sql(engine: Engine, sql: str, params: list[Any] | dict[str, Any] | None = None, *,
                 timeout: float | None = None, memory_limit: int | None = None) -> pa.Table:
    """Run one user statement in a fresh sandbox connection; stop it after ``timeout`` seconds."""
    from genolake.query.engine import _first_line, fetch_arrow

    limit = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    if limit <= 0:
        raise UserInputError("--timeout must be a positive number of seconds")
    con = connect_sandbox(engine, memory_limit=memory_limit)
    timer = threading.Timer(limit, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        return fetch_arrow(con.sql(sql, params=params or None))
    except duckdb.InterruptException:
        raise UserInputError(f"query stopped after {limit:g} s (the time limit; raise it with --timeout, "
                             "or narrow the query)") from None
    except duckdb.OutOfMemoryException:
        raise UserInputError("query stopped: it needs more memory than its limit "
                             f"({_gib(memory_limit or default_memory_limit())}; raise it with --memory-limit, "
                             "or narrow the query)") from None
    except duckdb.PermissionException as exc:
        raise UserInputError(f"refused: {_first_line(exc)} (queries may read only the lake's views)") from None
    except duckdb.Error as exc:
        msg = _first_line(exc)
        if "configuration has been locked" in msg:
            raise UserInputError(f"refused: {msg} (settings of the query sandbox are fixed)") from None
        raise UserInputError(f"query failed: {msg}") from None
    finally:
        timer.cancel()
        con.close()


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"
