"""The engine: the quick Delta log reader agrees with deltalake (also across checkpoints), views show
committed rows only, the phenotypes views, and the sandbox refuses writes and outside file access."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake

from genolake.errors import UserInputError
from genolake.store import delta_adds


def test_delta_reader_equals_deltalake(sample_lake: SampleLake) -> None:
    from genolake.store import LakeStore

    store = LakeStore.open(sample_lake.path)
    for table in ("files", "genotypes", "variants", "samples", "ploidy", "callable", "phenotypes"):
        assert [p for p, _ in delta_adds(sample_lake.path / table)] == sorted(store.relpaths(table)), table


def test_delta_reader_across_checkpoints(sample_lake: SampleLake, tmp_path: Path) -> None:
    """25 reloads of one institution's phenotypes pass a Delta checkpoint (every 20 versions)."""
    import genolake
    from genolake.phenotypes import load_phenotypes
    from genolake.store import LakeStore

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    src = sample_lake.tmp / "north.phenotypes.tsv"
    for _ in range(25):
        load_phenotypes(lake, "north", src)
    log = lake / "phenotypes" / "_delta_log"
    assert any(p.name.endswith(".checkpoint.parquet") for p in log.iterdir())
    got = [p for p, _ in delta_adds(lake / "phenotypes")]
    assert got == sorted(LakeStore.open(lake).relpaths("phenotypes"))
    assert sum("institution=north" in p for p in got) == 1
    with genolake.open(lake) as lk:
        assert lk.sql("SELECT count(*) AS n FROM phenotypes").to_pylist()[0]["n"] == 100


def test_uncommitted_files_are_invisible(sample_lake: SampleLake, tmp_path: Path) -> None:
    """Rows of a file whose `files` row was never committed (a crash between table commits) do not show."""
    import genolake
    from genolake.store import LakeStore

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    store = LakeStore.open(lake)
    with genolake.open(lake) as lk:
        before = lk.sql("SELECT count(*) AS n FROM calls").to_pylist()[0]["n"]
        region = lk.region("20:10000000-11000000").to_pylist()
    # drop `south` from the commit record only: its calls/variants files stay in their Delta tables
    from deltalake.transaction import RemoveAction

    dt = store.delta("files")
    rel = next(p for p in store.relpaths("files") if "institution=south" in p)
    dt.create_write_transaction([RemoveAction(rel, True, 0, None, {})], mode="append",
                                schema=dt.schema().to_arrow())  # type: ignore[arg-type]
    with genolake.open(lake) as lk:
        after = lk.sql("SELECT count(*) AS n FROM calls").to_pylist()[0]["n"]
        assert 0 < after < before
        assert lk.sql("SELECT count(*) AS n FROM calls WHERE institution = 'south'").to_pylist()[0]["n"] == 0
        assert [f["scope"] for f in lk.variant("20-10019093-A-G")["frequencies"]] == ["joint", "east", "north"]
        assert lk.region("20:10000000-11000000").to_pylist() != region


def test_phenotype_views(opened: Any) -> None:
    cols = {r["column_name"]: r["column_type"] for r in opened.sql("DESCRIBE phenotypes").to_pylist()}
    assert cols["age"] == "DOUBLE" and cols["sex"] == "VARCHAR" and cols["hpo"] == "VARCHAR[]"
    assert list(cols)[:2] == ["institution", "sample_id"]
    long = opened.sql("SELECT DISTINCT kind FROM phenotypes_long ORDER BY 1").to_pylist()
    assert [r["kind"] for r in long] == ["categorical", "list", "numeric"]
    assert opened.sql("SELECT count(*) AS n FROM phenotypes").to_pylist()[0]["n"] == 100


@pytest.mark.parametrize("sql, match", [
    ("CREATE TABLE x AS SELECT 1", "only read-only"),
    ("COPY (SELECT 1) TO '/tmp/x.csv'", "only read-only"),
    ("ATTACH '/tmp/x.db'", "only read-only"),
    ("INSTALL httpfs", "only read-only"),
    ("LOAD httpfs", "only read-only"),
    ("SET threads = 1", "only read-only"),
    ("SELECT * FROM read_parquet('/etc/*.parquet')", "refused"),
    ("SELECT * FROM read_csv('/etc/passwd')", "refused"),
    ("SELECT 1; SELECT 2", "exactly one"),
    ("SELEC 1", "syntax error"),
])
def test_sandbox(opened: Any, sql: str, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        opened.sql(sql)


def test_user_sql_reads_views_not_files(opened: Any, sample_lake: SampleLake) -> None:
    """User SQL has no file system (issue 15): even the lake's own files are read through the views only."""
    path = next((sample_lake.path / "variants").rglob("*.parquet"))
    with pytest.raises(UserInputError, match=r"refused: .*file system operations are disabled"):
        opened.sql(f"SELECT count(*) AS n FROM read_parquet('{path}')")
    assert opened.sql("SELECT count(*) AS n FROM variant_files").to_pylist()[0]["n"] > 0


def test_refresh_sees_new_commits(sample_lake: SampleLake, tmp_path: Path) -> None:
    import genolake
    from genolake.phenotypes import load_phenotypes

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    with genolake.open(lake) as lk:
        f = tmp_path / "p.tsv"
        f.write_text("sample_id\tsmoker\n" + "".join(f"{s}\tyes\n" for s in sample_lake.institutions["east"]))
        load_phenotypes(lake, "east", f)
        assert "smoker" not in lk.engine.catalog.phenotypes
        lk.refresh()
        assert lk.engine.catalog.phenotypes["smoker"] == "categorical"
        assert "case_status" in lk.engine.catalog.phenotypes  # north and south still have it
