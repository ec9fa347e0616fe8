"""genolake: a genomic variant data lake and query engine.

VCFs from several institutions become one lake of partitioned Parquet (Delta Lake tables) with
pseudonymised samples, queried with DuckDB from the command line or from Python::

    import genolake
    lake = genolake.open("lake")
    lake.variant("chr20-1014254-A-T")
    lake.sql("SELECT * FROM variants LIMIT 5").to_pandas()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genolake.version import __version__

__all__ = ["Lake", "__version__", "ingest", "open"]

if TYPE_CHECKING:
    from genolake.ingest.pipeline import ingest
    from genolake.query.lake import Lake


def open(path: Any, **kwargs: Any) -> Lake:  # noqa: A001 - mirrors builtins.open / xarray.open_dataset
    """Open the lake at ``path`` for queries; see :class:`genolake.query.lake.Lake`."""
    from genolake.query.lake import Lake

    return Lake(path, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "ingest":
        from genolake.ingest.pipeline import ingest

        return ingest
    if name == "Lake":
        from genolake.query.lake import Lake

        return Lake
    raise AttributeError(name)
