"""DuckDB connections as genolake opens them: nothing is installed or loaded from the internet (air-gapped
hospital networks; the Parquet reader is built into the wheel), and no progress bar of DuckDB's own on
stderr (genolake's commands draw their own), and no spill files outside the lake: DuckDB's default
``temp_directory`` is ``./.tmp`` of the current directory, where a killed process would leave pseudonymised
rows. A connection spills only into the folder it is given (the query engine gives a locked folder under the
lake's ``_staging``, removed on close and by the next writer after a kill); without one it does not spill and
a query that outgrows memory fails with DuckDB's out-of-memory error."""

from __future__ import annotations

import os
from typing import Any

import duckdb

__all__ = ["connect"]


def connect(threads: int | None = None, *, spill: str | os.PathLike[str] | None = None) -> Any:
    """A new in-memory DuckDB connection with ``threads`` threads (default: up to 4, the machine's cores) that
    spills to the folder ``spill`` (made by DuckDB when it first spills; its parent must exist), or never."""
    con = duckdb.connect(":memory:", config={
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "threads": threads or min(4, os.cpu_count() or 1),
        "temp_directory": os.fspath(spill) if spill is not None else "",
    })
    try:
        con.execute("SET enable_progress_bar = false")  # a per-connection setting (not allowed in config)
    except duckdb.InvalidInputException:
        # in Jupyter DuckDB refuses to change the setting at all without ipywidgets (its notebook progress bar)
        pass
    return con
