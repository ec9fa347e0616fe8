"""The user SQL sandbox (issue 15): a corpus of escape attempts, none of which may write or read outside the
lake's views. Each attempt runs twice: through ``Lake.sql`` (the public path, with its early statement check)
and straight on a sandbox connection (bypassing that check: the connection itself must hold). After every
attempt the lake is byte-identical, no target file exists and queries still give the right answer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from ingest_helpers import lake_fingerprint

import genolake
from genolake.errors import UserInputError
from genolake.ingest.pipeline import ingest

VCF = Path(__file__).resolve().parent / "data" / "hail_sample_1kg_chr20_100s.vcf.gz"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sandbox") / "lake"
    ingest(path, "north", [VCF], build="GRCh37", workers=0)
    return path


@pytest.fixture()
def opened(lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)  # DuckDB's default temp directory is ./.tmp: make it a place we can watch
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text("secret")
    with genolake.open(lake) as lk:
        yield lk


# {F}: a committed data file, {LOG}: a Delta log entry, {REC}: the lake record, {OUT}: a new file outside,
# {NEWLOG}: a new Delta commit (a forged one would add or remove files), {LAKE}: the lake folder
CORPUS = [
    "EXPLAIN ANALYZE COPY (SELECT * REPLACE ('1/1' AS gt) FROM read_parquet('{F}')) TO '{F}' (FORMAT parquet)",
    "EXPLAIN ANALYZE COPY (SELECT * REPLACE ('1/1' AS gt) FROM calls) TO '{F}' (FORMAT parquet)",
    "EXPLAIN ANALYZE COPY (SELECT 'x' AS a) TO '{LOG}' (FORMAT csv, HEADER false)",
    "EXPLAIN ANALYZE COPY (SELECT '{{}}' AS a) TO '{NEWLOG}' (FORMAT csv, HEADER false, QUOTE '')",
    "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{OUT}'",
    "EXPLAIN COPY (SELECT 1 AS a) TO '{OUT}'",
    "EXPLAIN ANALYZE CREATE OR REPLACE VIEW samples AS SELECT 'fake' AS institution, 'x' AS sample_id",
    "EXPLAIN ANALYZE DROP VIEW calls",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
    "EXPLAIN ANALYZE ATTACH '{OUT}' AS x",
    "EXPLAIN ANALYZE EXPORT DATABASE '{OUT}'",
    "EXPLAIN ANALYZE INSTALL httpfs",
    "EXPLAIN ANALYZE SET enable_external_access = true",
    "COPY (SELECT 1 AS a) TO '{OUT}'",
    "COPY calls TO '{F}' (FORMAT parquet)",
    "/* a comment */ COPY (SELECT 1 AS a) TO '{OUT}'",
    "-- a comment\nCOPY (SELECT 1 AS a) TO '{OUT}'",
    "SELECT 1; COPY (SELECT 1 AS a) TO '{OUT}'",
    "SELECT 1 /* ; */; COPY (SELECT 1 AS a) TO '{OUT}'",
    "PREPARE p AS COPY (SELECT 1 AS a) TO '{OUT}'; EXECUTE p",
    "PREPARE p AS SELECT * FROM read_text('{REC}'); EXECUTE p",
    "WITH x AS (SELECT 1 AS a) SELECT * FROM x; COPY (SELECT 1 AS a) TO '{OUT}'",
    "WITH t AS (SELECT * FROM read_text('{REC}')) SELECT * FROM t",
    "SELECT * FROM read_text('{REC}')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('{F}')",
    "SELECT * FROM read_csv('{REC}')",
    "SELECT * FROM read_json('{REC}')",
    "SELECT * FROM read_parquet('{F}')",
    "SELECT * FROM parquet_metadata('{F}')",
    "SELECT * FROM glob('{LAKE}/*')",
    "SELECT * FROM glob('*')",
    "SELECT * FROM read_text('.tmp/secret.txt')",
    "COPY (SELECT 1 AS a) TO '.tmp/x.csv'",
    "SELECT * FROM query('SELECT * FROM read_text(''{REC}'')')",
    "SELECT * FROM query_table('calls')",
    "ATTACH '{OUT}' AS x",
    "ATTACH ':memory:' AS m; CREATE TABLE m.t AS SELECT 1; COPY m.t TO '{OUT}'",
    "EXPORT DATABASE '{OUT}'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{OUT}'",
    "SET enable_external_access = true; COPY (SELECT 1 AS a) TO '{OUT}'",
    "RESET enable_external_access; COPY (SELECT 1 AS a) TO '{OUT}'",
    "SET lock_configuration = false",
    "SET allowed_directories = ['/']",
    "SET temp_directory = '{OUT}'",
    "SET memory_limit = '1TB'",
    "PRAGMA enable_profiling = 'json'",
    "SET profile_output = '{OUT}'",
    "PRAGMA memory_limit = '1TB'",
    "CALL enable_logging(storage = 'file', storage_path = '{OUT}')",
    "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "CHECKPOINT",
    "VACUUM",
    "CREATE OR REPLACE VIEW samples AS SELECT 'fake' AS institution, 'x' AS sample_id",
    "DROP VIEW calls",
    "SELECT * FROM secret_frame",  # a Python variable of the caller (replacement scan)
    "SELECT getenv('GENOLAKE_KEY_DIR')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "SELECT * FROM sniff_csv('{REC}')",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM iceberg_scan('{LAKE}/genotypes')",
    "SELECT * FROM delta_scan('{LAKE}/genotypes')",
]


def _fill(sql: str, lake: Path, out: Path) -> str:
    data = next((lake / "genotypes").rglob("*.parquet"))
    log = sorted((lake / "genotypes" / "_delta_log").glob("*.json"))[-1]
    newlog = lake / "genotypes" / "_delta_log" / f"{int(log.stem) + 1:020d}.json"
    return sql.format(F=data, LOG=log, NEWLOG=newlog, REC=lake / "genolake.json", OUT=out, LAKE=lake)


def _truth(lk: Any) -> list[dict[str, Any]]:
    return lk.sql("SELECT institution, count(*) AS n, count(DISTINCT sample_id) AS s, "
                  "sum(alt_count) AS ac FROM calls JOIN samples USING (institution, sample_id) "
                  "GROUP BY ALL").to_pylist()


@pytest.mark.parametrize("attempt", CORPUS)
def test_escape_refused_through_lake_sql(attempt: str, lake: Path, opened: Any, tmp_path: Path) -> None:
    secret_frame = pa.table({"key": ["do not show"]})  # noqa: F841 - a replacement scan would find it
    before = lake_fingerprint(lake)
    truth = _truth(opened)
    out = tmp_path / "escaped"
    try:
        got = opened.sql(_fill(attempt, lake, out))
    except UserInputError as exc:
        assert "\n" not in str(exc)
    else:  # a statement that ran (EXPLAIN ...) did nothing
        assert "secret" not in str(got.to_pylist())
    assert lake_fingerprint(lake) == before
    assert not out.exists()
    assert sorted(os.listdir(tmp_path / ".tmp")) == ["secret.txt"]
    assert _truth(opened) == truth


@pytest.mark.parametrize("attempt", CORPUS)
def test_escape_refused_by_the_connection_itself(attempt: str, lake: Path, opened: Any, tmp_path: Path) -> None:
    """Without the statement-type check: the sandbox connection runs anything and still cannot escape."""
    from genolake.query.sandbox import connect_sandbox

    secret_frame = pa.table({"key": ["do not show"]})  # noqa: F841
    before = lake_fingerprint(lake)
    out = tmp_path / "escaped"
    con = connect_sandbox(opened.engine)
    rows: list[Any] = []
    try:
        rows = con.execute(_fill(attempt, lake, out)).fetchall()
    except duckdb.Error:
        pass
    finally:
        con.close()
    assert "secret" not in str(rows) and "do not show" not in str(rows)
    assert '"lake_id"' not in str(rows)
    assert lake_fingerprint(lake) == before
    assert not out.exists()
    assert sorted(os.listdir(tmp_path / ".tmp")) == ["secret.txt"]


def test_a_view_replaced_in_one_query_is_back_in_the_next(opened: Any) -> None:
    """The issue's Python reproduction: EXPLAIN ANALYZE CREATE OR REPLACE VIEW samples made later queries
    return fake rows. Each query now has its own connection."""
    truth = opened.sql("SELECT count(*) AS n FROM samples").to_pylist()
    opened.sql("EXPLAIN ANALYZE CREATE OR REPLACE VIEW samples AS SELECT 'fake' AS institution, 'x' AS sample_id")
    assert opened.sql("SELECT count(*) AS n FROM samples").to_pylist() == truth == [{"n": 100}]
    assert opened.sql("SELECT count(*) AS n FROM samples WHERE institution = 'fake'").to_pylist() == [{"n": 0}]


def test_views_answer_as_the_library_connection(opened: Any) -> None:
    """The sandbox reads the same rows as the library's own connection (native Parquet reader)."""
    for view in ("calls", "variant_files", "variants", "samples", "files", "ploidy", "site_frequencies"):
        want = sorted(map(str, opened.engine.query(f"SELECT * FROM {view}").to_pylist()))
        assert sorted(map(str, opened.sql(f"SELECT * FROM {view}").to_pylist())) == want, view


def test_time_limit_stops_the_query(opened: Any) -> None:
    with pytest.raises(UserInputError, match=r"query stopped after 1 s .*--timeout"):
        opened.sql("SELECT count(*) FROM range(200000000000)", timeout=1)
    assert opened.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 100}]


def test_cross_join_is_stopped(opened: Any) -> None:
    with pytest.raises(UserInputError, match="query stopped after"):
        opened.sql("SELECT count(*) FROM calls a, calls b, calls c", timeout=1)


def test_memory_limit_stops_the_query(opened: Any) -> None:
    with pytest.raises(UserInputError, match=r"needs more memory than its limit .*--memory-limit"):
        opened.sql("SELECT list(range) FROM range(100000000)", memory_limit=64 << 20)


def test_cli_timeout_is_one_line(lake: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "sql", "--lake", str(lake), "--timeout", "1",
                          "SELECT count(*) FROM range(200000000000)"], capture_output=True, text=True,
                         timeout=120, env=os.environ.copy())
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "query stopped after 1 s" in res.stderr


def test_cli_memory_limit_option(lake: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "sql", "--lake", str(lake),
                          "--memory-limit", "64MiB", "SELECT list(range) FROM range(100000000)"],
                         capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert res.returncode == 2 and "needs more memory" in res.stderr
    assert res.stderr.strip().count("\n") == 0


def test_catalogue_queries_run_in_the_sandbox_with_its_limits(lake: Path, tmp_path: Path) -> None:
    """A .sql file given to `query run` is user SQL too: same sandbox, same time limit."""
    slow = tmp_path / "slow.sql"
    slow.write_text("-- name: slow\n-- answers: nothing, slowly\nSELECT count(*) AS n FROM range(200000000000)\n")
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "run", str(slow), "--lake", str(lake),
                          "--timeout", "1"], capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert res.returncode == 2 and "query stopped after 1 s" in res.stderr, res.stderr
    escape = tmp_path / "escape.sql"
    escape.write_text(f"-- name: escape\n-- answers: nothing\nSELECT * FROM read_text('{lake / 'genolake.json'}')\n")
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "run", str(escape), "--lake", str(lake)],
                         capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert res.returncode == 2 and "file system operations are disabled" in res.stderr, res.stderr
