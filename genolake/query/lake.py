"""The Python API: ``genolake.open(path)`` returns a :class:`Lake`.

One DuckDB connection per ``Lake``, reused across queries. Every method returns a ``pyarrow.Table``
(``.to_pandas()``, ``polars.from_arrow(...)``) except :meth:`Lake.variant` and :meth:`Lake.info`,
which return plain dicts (the same objects the CLI prints with ``--format json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.query.engine import Engine
from genolake.store import LakeStore


class Lake:
    """An opened lake.

    Examples
    --------
    >>> lake = Lake("lake")  # doctest: +SKIP
    >>> lake.sql("SELECT institution, count(*) AS n FROM samples GROUP BY 1").to_pandas()  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.store = LakeStore.open(path)
        self.engine = Engine(self.store, threads=threads)

    @property
    def path(self) -> Path:
        return self.store.root

    @property
    def build(self) -> str:
        return self.store.build

    def refresh(self) -> None:
        """Pick up commits made since the lake was opened."""
        self.engine.refresh()

    def sql(self, text: str, params: list[Any] | dict[str, Any] | None = None) -> pa.Table:
        """Run a read-only SQL query over the views (see docs/SCHEMA.md) and return Arrow."""
        return self.engine.user_sql(text, params)

    def info(self) -> dict[str, Any]:
        """Institutions, files, samples, variants, calls, build and bytes on disk."""
        from genolake.query.info import lake_info

        return lake_info(self)

    def close(self) -> None:
        self.engine.con.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
