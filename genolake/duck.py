"""DuckDB connections as genolake opens them: nothing is installed or loaded from the internet (air-gapped
hospital networks; the Parquet reader is built into the wheel), and no progress bar of DuckDB's own on
stderr (genolake's commands draw their own), and no spill files outside the lake: DuckDB's default
``temp_directory`` is ``./.tmp`` of the current directory, where a killed process would leave pseudonymised
rows. A connection spills only into the folder it is given (the query engine gives a locked folder under the
lake's ``_staging``, removed on close and by the next writer after a kill); without one it does not spill and
a query that outgrows memory fails with DuckDB's out-of-memory error.

Since duckdb 2 the package is two modules: the compiled engine ``_duckdb`` (connections, ``execute``,
``fetchall``, the exception classes) and the Python layer ``duckdb`` over it (relations, expressions,
``sql``/``to_arrow_table``/``from_arrow`` and the other methods it adds to the connection class when it is
imported, and its version read from the package metadata). Importing the layer costs three to four times the
engine (``python -X importtime``: 70-100 ms against 12-20 ms of CPU on the 2-core benchmark machine), and the
cold `genolake query variant` needs only ``execute`` and ``fetchall``, so :func:`connect` can leave it out
(``python_layer=False``); :func:`load_python_layer` imports it before any of its methods is used. With duckdb 1.x
(no ``_duckdb``) the whole package is imported, as before.
"""

from __future__ import annotations

import os
from typing import Any

try:
    import _duckdb as _engine  # duckdb >= 2: the compiled engine alone
except ImportError:  # duckdb 1.x: one package
    import duckdb as _engine  # type: ignore[no-redef]

__all__ = ["Error", "confine", "connect", "load_python_layer", "sql_ident", "sql_string"]

Error = _engine.Error  # the base class of DuckDB's exceptions


def load_python_layer() -> None:
    """Import duckdb's Python layer, which adds ``sql``, ``to_arrow_table`` and the other Python-level methods to
    every connection (those made before it too: they are set on the connection class). Cheap once imported."""
    import duckdb  # noqa: F401


def connect(threads: int | None = None, *, spill: str | os.PathLike[str] | None = None,
            python_layer: bool = True) -> Any:
    """A new in-memory DuckDB connection with ``threads`` threads (default: up to 4, the machine's cores) that
    spills to the folder ``spill`` (made by DuckDB when it first spills; its parent must exist), or never.

    With ``python_layer=False`` duckdb's Python layer is not imported (see the module's docstring): the
    connection then offers only the engine's own methods (``execute``, ``fetchall``, ``interrupt``, ``close``,
    ``register``...) until :func:`load_python_layer` is called.
    """
    con = _engine.connect(":memory:", config={
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "threads": threads or min(4, os.cpu_count() or 1),
        "temp_directory": os.fspath(spill) if spill is not None else "",
    })
    try:
        con.execute("SET enable_progress_bar = false")  # a per-connection setting (not allowed in config)
    except _engine.InvalidInputException:
        # in Jupyter DuckDB refuses to change the setting at all without ipywidgets (its notebook progress bar)
        pass
    if python_layer:
        load_python_layer()
    return con


def sql_string(s: str) -> str:
    """``s`` as a SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def confine(con: Any, root: str | os.PathLike[str]) -> None:
    """Lock a connection that reads a lake to the lake's folder: no other file, no network, and no setting can
    be changed afterwards (the query engine's and the cold `query variant`'s connections)."""
    folder = os.fspath(root).rstrip("/") + "/"
    con.execute(f"SET allowed_directories=[{sql_string(folder)}]")
    con.execute("SET enable_external_access=false")
    con.execute("SET lock_configuration=true")
