"""The point reader's cache of decoded row groups, views made on first use, and the narrowed command line:
each gives the same answers as without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake

from genolake.query.point import PointReader


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.integers(100, 100 + n // 3, n)).astype(np.int32)
    return pa.table({
        "contig": pa.array(["chr1"] * n),
        "pos": pa.array(pos),
        "ref": pa.array(rng.choice(["A", "C"], n)),
        "sample_id": pa.array([f"s{i % 17}" for i in range(n)]),
        "dp": pa.array(rng.integers(0, 50, n).astype(np.int32)),
    })


@pytest.mark.parametrize("budget", [None, 0, 2_000])
def test_cached_reads_equal_a_filter_whatever_the_budget(tmp_path: Path, budget: int | None) -> None:
    t = _table(900, 3)
    p = tmp_path / "a.parquet"
    pq.write_table(t, p, row_group_size=11)
    reader = PointReader(cache_bytes=budget)
    rows = t.to_pylist()
    positions = sorted(set(t.column("pos").to_pylist()))
    for _round in range(2):  # the second round reads from the cache (or evicts and reads again)
        for pos in positions[::2]:
            for cols in (["sample_id"], ["dp", "sample_id", "ref"]):  # a later query adds columns to a group
                want = [tuple(r[c] for c in cols) for r in rows if r["pos"] == pos]
                got = reader.read([str(p)], pos, cols)
                assert list(zip(*(got.column(c).to_pylist() for c in cols), strict=True)) == want
                assert got.schema.field("dp" if "dp" in cols else "sample_id").type == t.schema.field(
                    "dp" if "dp" in cols else "sample_id").type
    reader.wait()
    cache = reader._cache
    if budget == 0:
        assert cache.used == 0 and not cache._groups
    elif budget is not None:
        assert 0 < cache.used <= budget
    else:  # the whole file fits in a quarter of the budget: decoded once, whole (read-ahead)
        assert [k[2] for k in cache._groups] == [-1]


@pytest.mark.parametrize("budget", [None, 0, 2_000])
def test_fixed_conditions_and_transient_columns_give_a_filter(tmp_path: Path, budget: int | None) -> None:
    """``fixed`` conditions filter rows as they are decoded (only those rows are cached); ``transient``
    columns are returned and never cached: the answers are those of a plain filter either way."""
    t = _table(700, 5)
    p = tmp_path / "a.parquet"
    pq.write_table(t, p, row_group_size=13)
    reader = PointReader(cache_bytes=budget)
    rows = t.to_pylist()
    for _round in range(2):
        for pos in sorted(set(t.column("pos").to_pylist()))[::3]:
            for cols, once in ((["sample_id"], ()), (["dp", "sample_id"], ("dp",)), (["ref", "dp"], ()),
                               (["dp"], ("dp",))):
                want = [tuple(r[c] for c in cols) for r in rows if r["pos"] == pos and r["ref"] == "A"]
                got = reader.read([str(p)], pos, cols, fixed={"ref": "A"}, transient=once)
                assert list(zip(*(got.column(c).to_pylist() for c in cols), strict=True)) == want
    reader.wait()
    assert all(g.table.num_rows == g.pos.size for g in reader._cache._groups.values())
    only_once = PointReader(cache_bytes=budget)  # a column only ever asked for as transient is never cached
    for pos in sorted(set(t.column("pos").to_pylist()))[::5]:
        only_once.read([str(p)], pos, ["sample_id", "dp"], transient=("dp",))
    only_once.wait()
    assert not any("dp" in g.names for g in only_once._cache._groups.values())


def test_reads_over_files_with_constants_and_file_ids(tmp_path: Path) -> None:
    """Several files, constant columns (not read), a file_id filter and an equal condition: one filter."""
    t = _table(300, 7)
    paths = []
    for i in range(3):
        p = tmp_path / f"f{i}.parquet"
        inst = "a" if i == 0 else "b"
        pq.write_table(t.append_column("file_id", pa.array([f"f{i}"] * t.num_rows))
                       .append_column("institution", pa.array([inst] * t.num_rows)), p, row_group_size=50)
        paths.append(str(p))
    reader = PointReader()
    consts = {paths[0]: {"institution": "a"}, paths[1]: {"institution": "b"}, paths[2]: {"institution": "b"}}
    schema = pa.schema([("institution", pa.string()), ("sample_id", pa.string()), ("pos", pa.int32())])
    for pos in [*sorted(set(t.column("pos").to_pylist()))[::4], 1]:
        got = reader.read(paths, pos, ["institution", "pos", "sample_id"], equal={"ref": "C"},
                          file_ids={"f0", "f2"}, constants=consts, schema=schema)
        want = [(inst, pos, r["sample_id"]) for inst, f in (("a", 0), ("b", 2)) for r in t.to_pylist()
                if r["pos"] == pos and r["ref"] == "C"]
        assert list(zip(*(got.column(c).to_pylist() for c in got.column_names), strict=True)) == want
        assert got.schema.field("pos").type == pa.int32() and got.schema.field("institution").type == pa.string()
    # a range of positions (end=): the rows of every position in it, file by file in file order
    got = reader.read(paths, 120, ["pos", "sample_id"], end=140, file_ids={"f1"})
    want = [(r["pos"], r["sample_id"]) for r in t.to_pylist() if 120 <= r["pos"] <= 140]
    assert list(zip(got.column("pos").to_pylist(), got.column("sample_id").to_pylist(), strict=True)) == want


def test_views_are_made_when_a_query_names_them(sample_lake: SampleLake) -> None:
    from genolake.query.lake import Lake

    with Lake(sample_lake.path) as lake:
        eng = lake.engine
        assert {"sites", "calls", "variants", "samples"} <= set(eng.views)
        assert {"sites", "calls", "variants", "samples"} <= set(eng._pending)  # opening made none of them
        n = eng.rows("SELECT count(*) FROM samples")[0][0]
        assert n > 0 and "samples" not in eng._pending and "sites" in eng._pending
        # code outside the engine gets every view
        assert eng.con.execute("SELECT count(*) FROM sites").fetchone()[0] > 0 and not eng._pending
    with Lake(sample_lake.path) as a, Lake(sample_lake.path) as b:
        b.engine.con  # noqa: B018 - every view made at once
        for sql in ("SELECT contig, pos, ref, alt, ac, an FROM sites ORDER BY ALL LIMIT 50",
                    "SELECT institution, sample_id, gt FROM calls ORDER BY ALL LIMIT 50",
                    "SELECT * FROM phenotypes ORDER BY ALL"):
            assert a.sql(sql).equals(b.sql(sql))
        assert a.engine.catalog.phenotypes == b.engine.catalog.phenotypes


@pytest.mark.parametrize("argv", [["query", "variant", "--help"], ["query", "region", "--help"], ["--help"],
                                  ["query", "--help"], ["ingest", "--help"], ["query", "varient"],
                                  ["-v", "query", "sql", "--help"], ["query", "variant", "--bogus"]])
def test_the_narrowed_command_line_says_the_same(argv: list[str]) -> None:
    from typer.testing import CliRunner

    from genolake.cli import app
    from genolake.cli_narrow import narrowed

    runner = CliRunner()
    full = runner.invoke(app, argv, prog_name="genolake")
    small = runner.invoke(narrowed(app, argv), argv, prog_name="genolake")
    assert (small.exit_code, small.output) == (full.exit_code, full.output)


def test_narrowed_keeps_only_the_named_command() -> None:
    from genolake.cli import app
    from genolake.cli_narrow import narrowed

    small = narrowed(app, ["query", "variant", "--lake", "x", "1-2-A-T"])
    assert not small.registered_commands and len(small.registered_groups) == 1
    assert [c.name for c in small.registered_groups[0].typer_instance.registered_commands] == ["variant"]
    assert narrowed(app, ["--help"]) is app and narrowed(app, ["nope"]) is app
