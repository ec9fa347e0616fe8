"""Settings chosen by measurement that nothing else would notice losing: DuckDB connections that never fetch
extensions and draw no progress bar, local Dask workers without MALLOC_TRIM_THRESHOLD_, and the Parquet row
group size per table (small for the per-variant tables that point queries read, large for `calls`)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake

from genolake.duck import connect
from genolake.schema import CALLS, VARIANTS
from genolake.store import PARQUET_OPTIONS, SMALL_ROW_GROUPS, write_parquet


def test_duckdb_connections_offline_and_quiet() -> None:
    con = connect(1)
    got = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('autoinstall_known_extensions', "
        "'autoload_known_extensions', 'enable_progress_bar', 'threads')").fetchall())
    assert got == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
                   "enable_progress_bar": "false", "threads": "1"}


@pytest.mark.cluster
def test_local_dask_workers_start_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import dask

    from genolake.compute.cluster import dask_client

    # an earlier default Dask cluster in this process leaves the variable in os.environ (Dask's nanny sets it
    # there), and workers inherit the environment as it is
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with dask_client(workers=1) as client:
        seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(seen.values()) == [None]
    # only genolake's own cluster is changed, not the process's Dask configuration
    assert "MALLOC_TRIM_THRESHOLD_" in dask.config.get("distributed.nanny.pre-spawn-environ")


def _rows(lake: Path, table: str, at_least: int) -> pa.Table:
    t = pa.concat_tables([pq.read_table(p) for p in sorted((lake / table).rglob("*.parquet"))])
    while t.num_rows < at_least:
        t = pa.concat_tables([t, t])
    return t


def test_row_groups_small_for_variant_tables_large_for_calls(sample_lake: SampleLake, tmp_path: Path) -> None:
    for table, size in ((VARIANTS, SMALL_ROW_GROUPS), (CALLS, PARQUET_OPTIONS["row_group_size"])):
        path = tmp_path / f"{table.name}.parquet"
        write_parquet(table, _rows(sample_lake.path, table.name, 2 * size + 1), path)
        md = pq.read_metadata(path)
        assert md.num_row_groups >= 3
        assert md.row_group(0).num_rows == size, table.name
    assert PARQUET_OPTIONS["row_group_size"] > SMALL_ROW_GROUPS
