"""Point reads with pyarrow (genolake.query.point) give exactly what DuckDB gives: on a synthetic file with
many small row groups (a position spanning two row groups, filters, uncommitted rows) and through
`lake.variant` / `lake.carriers` on the three-institution sample lake."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake

from genolake.query.point import PointReader, PointReadUnavailable


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.integers(100, 100 + n // 3, n)).astype(np.int32)  # ~3 rows a position: runs cross groups
    return pa.table({
        "contig": pa.array(["chr1"] * n),
        "pos": pa.array(pos),
        "ref": pa.array(rng.choice(["A", "C"], n)),
        "sample_id": pa.array([f"s{i % 17}" for i in range(n)]),
        "dp": pa.array(rng.integers(0, 50, n).astype(np.int32)),
        "file_id": pa.array(rng.choice(["f1", "f2"], n)),
    })


def test_point_reader_equals_a_filter(tmp_path: Path) -> None:
    t = _table(600, 1)
    paths = []
    for i, part in enumerate((t.slice(0, 350), t.slice(350))):  # two files, the second one's positions overlap
        p = tmp_path / f"part{i}.parquet"
        pq.write_table(part, p, row_group_size=7)
        paths.append(str(p))
    reader = PointReader()
    rows = t.to_pylist()
    for pos in [*sorted(set(t.column("pos").to_pylist()))[::3], 1, 10**6]:
        for equal, fids in (({}, None), ({"ref": "A"}, None), ({"ref": "C", "contig": "chr1"}, {"f1"})):
            want = [(r["sample_id"], r["dp"]) for r in rows
                    if r["pos"] == pos and all(r[k] == v for k, v in equal.items())
                    and (fids is None or r["file_id"] in fids)]
            got = reader.read(paths, pos, ["sample_id", "dp"], equal=equal, file_ids=fids)
            assert list(zip(*(got.column(c).to_pylist() for c in ("sample_id", "dp")), strict=True)) == want


def test_point_reader_empty_result_is_typed_and_missing_column_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(_table(50, 2), p, row_group_size=10)
    schema = pa.schema([("sample_id", pa.string()), ("dp", pa.int32())])
    got = PointReader().read([str(p)], 10**6, ["sample_id", "dp"], schema=schema)
    assert got.num_rows == 0 and got.schema == schema
    with pytest.raises(PointReadUnavailable):
        PointReader().read([str(p)], 120, ["no_such_column"])


def test_lake_point_reads_equal_duckdb(sample_lake: SampleLake) -> None:
    """Every answer of `variant` and `carriers` (with and without --where) is the same through both readers."""
    import genolake
    from genolake.query.lake import Lake

    fast = genolake.open(sample_lake.path)
    slow = Lake(sample_lake.path, point_reads=False)
    keys = fast.sql("SELECT DISTINCT contig, pos, ref, alt FROM variants ORDER BY ALL").to_pylist()
    assert len(keys) > 100
    random.seed(5)
    for k in random.sample(keys, 60):
        vid = f"{k['contig']}-{k['pos']}-{k['ref']}-{k['alt']}"
        assert fast.variant(vid) == slow.variant(vid), vid
        assert fast.carriers(vid).to_pylist() == slow.carriers(vid).to_pylist(), vid
        where = "sex = 'female'"
        assert fast.carriers(vid, where=where).to_pylist() == slow.carriers(vid, where=where).to_pylist(), vid
    fast.close()
    slow.close()
