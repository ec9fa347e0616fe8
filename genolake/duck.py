"""DuckDB connections as genolake opens them: nothing is installed or loaded from the internet (air-gapped
hospital networks; the Parquet reader is built into the wheel), and no progress bar of DuckDB's own on
stderr (genolake's commands draw their own)."""

from __future__ import annotations

import os
from typing import Any

import duckdb

__all__ = ["connect"]


def connect(threads: int | None = None) -> Any:
    """A new in-memory DuckDB connection with ``threads`` threads (default: up to 4, the machine's cores)."""
    con = duckdb.connect(":memory:", config={
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "threads": threads or min(4, os.cpu_count() or 1),
    })
    try:
        con.execute("SET enable_progress_bar = false")  # a per-connection setting (not allowed in config)
    except duckdb.InvalidInputException:
        # in Jupyter DuckDB refuses to change the setting at all without ipywidgets (its notebook progress bar)
        pass
    return con
