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
from genolake.schema import GENOTYPES, VARIANTS
from genolake.store import PARQUET_OPTIONS, SMALL_ROW_GROUPS, genotype_group_rows, write_parquet


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


def test_row_groups_of_genotypes_are_sized_in_genotypes(sample_lake: SampleLake, tmp_path: Path) -> None:
    """Variant tables: SMALL_ROW_GROUPS rows; genotypes: about GENOTYPE_GROUP_CODES codes per row group, so a
    point read decodes the same amount whatever the cohort size."""
    first = pq.read_table(next((sample_lake.path / "genotypes").rglob("*.parquet")))
    n = len(first["gt"][0].as_py()) * 2
    every = _rows(sample_lake.path, "genotypes", 1)  # a file with FORMAT values gets smaller groups
    with_format = every["gq"].null_count < every.num_rows
    for table, size in ((VARIANTS, SMALL_ROW_GROUPS), (GENOTYPES, genotype_group_rows(n, with_format=with_format))):
        path = tmp_path / f"{table.name}.parquet"
        write_parquet(table, _rows(sample_lake.path, table.name, 2 * size + 1), path)
        md = pq.read_metadata(path)
        assert md.num_row_groups >= 3
        assert md.row_group(0).num_rows == size, table.name
    assert genotype_group_rows(1_000) == 512 and genotype_group_rows(50_000) == 16
    assert genotype_group_rows(1_000, with_format=True) == 64 and genotype_group_rows(50_000, with_format=True) == 16
    assert genotype_group_rows(10) == 4096
    assert PARQUET_OPTIONS["row_group_size"] > SMALL_ROW_GROUPS
