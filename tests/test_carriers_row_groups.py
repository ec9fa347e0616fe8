"""`lake.carriers` from `genotypes` files of many small row groups: the point reader decodes a group's FORMAT lists
only up to the row it needs (one batch of that many rows; all of them for the group's last row), on the first
queries while the read-ahead of the codes runs and afterwards; every answer equals the DuckDB `calls` view's
(point_reads=False)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def test_carriers_at_every_offset_of_small_row_groups_equal_the_sql(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from query_fixtures import two_institution_lake

    import genolake
    from genolake import store
    from genolake.query import point
    from genolake.query.lake import Lake

    # groups of 64 rows at 50 samples (the full tier's 64 rows at 1,000 samples come from 2^16 codes)
    monkeypatch.setattr(store, "GENOTYPE_GROUP_CODES_WITH_FORMAT", 64 * 50)
    lake_path = two_institution_lake(tmp_path)
    files = sorted((lake_path / "genotypes").rglob("*.parquet"))
    sizes = {pq.read_metadata(f).row_group(0).num_rows for f in files}
    assert sizes == {64} and all(pq.read_metadata(f).num_row_groups >= 4 for f in files)

    heads: list[int] = []
    read_head = point.PointReader._read_head
    monkeypatch.setattr(point.PointReader, "_read_head",
                        lambda self, *a, **k: heads.append(1) or read_head(self, *a, **k))
    fast, slow = genolake.open(lake_path), Lake(lake_path, point_reads=False)
    sites = fast.sql("SELECT contig, pos, ref, alt FROM variants WHERE institution = 'one' ORDER BY pos").to_pylist()
    # each offset of a 64-row group: the first rows, the middle, the last (every row decoded)
    picked = [sites[i] for i in (0, 1, 31, 32, 33, 47, 48, 62, 63, 64, 65, 127, 128)]
    rng = random.Random(5)
    picked += rng.sample(sites, 60)
    checked, values = 0, 0
    for s in picked:
        vid = f"{s['contig']}-{s['pos']}-{s['ref']}-{s['alt']}"
        want = slow.carriers(vid)
        got = fast.carriers(vid)
        assert got.schema == want.schema and got.equals(want), vid
        checked += got.num_rows
        values += got.num_rows - got.column("gq").null_count
    assert checked > 200 and heads  # carriers were compared, and some reads stopped early in a group
    assert values > 100  # the files have GQ: values were compared, not only nulls
    fast.close()
    slow.close()
