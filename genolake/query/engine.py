"""The DuckDB engine: one in-memory connection per lake with a view per lake table, sandboxed.

Views read the Parquet files of each table's current Delta Lake version with DuckDB's built-in
``read_parquet`` (no extension is installed or loaded: hospital networks are often air-gapped). Rows of
files that are not committed (a job interrupted between two table commits) are filtered out.

After the views exist the connection is locked down: no file access outside the lake, no extension
install/load, no configuration changes. :meth:`Engine.user_sql` also refuses anything but a read query.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import duckdb
import pyarrow as pa

from genolake.errors import UserInputError
from genolake.schema import FILE_TABLES, TABLES, Table
from genolake.store import LakeStore

log = logging.getLogger(__name__)

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float32(): "FLOAT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
}


def duck_type(t: pa.DataType) -> str:
    if t in _DUCK_TYPES:
        return _DUCK_TYPES[t]
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t):
        return duck_type(t.value_type) + "[]"
    if pa.types.is_date32(t):
        return "DATE"
    return "VARCHAR"


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _empty_select(table: Table) -> str:
    cols = ", ".join(f"CAST(NULL AS {duck_type(c.type)}) AS {c.name}" for c in table.columns)
    return f"SELECT {cols} LIMIT 0"


class Engine:
    """A sandboxed DuckDB connection with the lake's views."""

    def __init__(self, store: LakeStore, *, threads: int | None = None) -> None:
        self.store = store
        self.con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "threads": threads or min(4, os.cpu_count() or 1),
            },
        )
        self.views: list[str] = []
        self.refresh()
        root = str(store.root).rstrip("/") + "/"
        self.con.execute(f"SET allowed_directories=[{_sql_str(root)}]")
        self.con.execute("SET enable_external_access=false")
        self.con.execute("SET lock_configuration=true")

    def refresh(self) -> None:
        """(Re)create the views from each table's current Delta version."""
        from genolake.schema import _load_all

        _load_all()
        views: list[str] = []
        files_list = self.store.active_files("files")
        ordered = ["files"] + [n for n in TABLES if n != "files"]
        for name in ordered:
            table = TABLES[name]
            if not self.store.has_table(name):
                continue
            paths = self.store.active_files(name)
            if paths:
                plist = "[" + ", ".join(_sql_str(p) for p in paths) + "]"
                body = f"SELECT {', '.join(table.names)} FROM read_parquet({plist}, hive_partitioning=false, union_by_name=true)"
            else:
                body = _empty_select(table)
            if name in FILE_TABLES:
                if files_list:
                    body = f"SELECT * FROM ({body}) WHERE file_id IN (SELECT file_id FROM files)"
                else:
                    body = _empty_select(table)
            target = "variant_files" if name == "variants" else name
            self.con.execute(f"CREATE OR REPLACE VIEW {target} AS {body}")
            views.append(target)
        # per-institution site counts: the sum over the institution's files that list the site
        self.con.execute(
            """
            CREATE OR REPLACE VIEW variants AS
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
        )
        views.append("variants")
        self.views = sorted(views)

    # ------------------------------------------------------------------ running queries
    def query(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run trusted SQL (the library's own) with bound parameters; return Arrow."""
        return fetch_arrow(self.con.sql(sql, params=params or None))

    def user_sql(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run a user's read-only query. Anything but SELECT (and WITH/VALUES/DESCRIBE/EXPLAIN) is refused."""
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
        try:
            return fetch_arrow(self.con.sql(sql, params=params or None))
        except duckdb.PermissionException as exc:
            raise UserInputError(f"refused: {_first_line(exc)} (queries may read only the lake's views)") from None
        except duckdb.Error as exc:
            raise UserInputError(f"query failed: {_first_line(exc)}") from None


def fetch_arrow(cursor: Any) -> pa.Table:
    """Result as a pyarrow Table (``to_arrow_table`` in duckdb >= 1.4, ``fetch_arrow_table`` before)."""
    if cursor is None:
        return pa.table({})
    fn = getattr(cursor, "to_arrow_table", None) or cursor.fetch_arrow_table
    return fn()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
