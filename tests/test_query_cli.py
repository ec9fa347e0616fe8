"""`genolake query ...` and `genolake phenotypes ...` from the command line: formats, errors, exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake
from typer.testing import CliRunner

from genolake.cli import app

VID = "chr20-10019093-A-G"  # rs575534, listed by all three institutions


def run(sample_lake: SampleLake, *args: str) -> str:
    env = {"GENOLAKE_KEY_DIR": str(sample_lake.key_dir)}
    res = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


def proc(sample_lake: SampleLake | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if sample_lake is not None:
        env["GENOLAKE_KEY_DIR"] = str(sample_lake.key_dir)
    return subprocess.run([sys.executable, "-m", "genolake", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_variant_json_is_the_api_object(sample_lake: SampleLake, opened: Any) -> None:
    out = json.loads(run(sample_lake, "query", "variant", "20:10019093:A:G", "--lake", str(sample_lake.path),
                         "--format", "json"))
    assert set(out) == {"variant", "frequencies", "phenotypes", "annotations"}
    assert out == json.loads(json.dumps(opened.variant(VID)))
    assert out["frequencies"][0]["scope"] == "joint"
    assert {"ac", "an", "af", "nhomalt", "nhemi"} <= set(out["frequencies"][0])
    assert {(p["phenotype"], p["value"]) for p in out["phenotypes"]} >= {("sex", "female"), ("case_status", "case")}


def test_variant_table_and_rsid(sample_lake: SampleLake) -> None:
    out = run(sample_lake, "query", "variant", "rs575534", "--lake", str(sample_lake.path))
    assert "frequencies" in out and "joint" in out and "case_status" in out and "20-10019093-A-G" in out


def test_rows_commands_json_arrays(sample_lake: SampleLake) -> None:
    lake = str(sample_lake.path)
    rows = json.loads(run(sample_lake, "query", "region", "20:10000000-10100000", "--lake", lake, "-f", "json",
                          "--max-af", "0.05", "--min-ac", "1"))
    assert rows and all({"contig", "pos", "ref", "alt", "ac", "an", "af"} <= set(r) for r in rows)
    assert [r["pos"] for r in rows] == sorted(r["pos"] for r in rows)
    assert all(r["af"] <= 0.05 and r["ac"] >= 1 for r in rows)
    carriers = json.loads(run(sample_lake, "query", "carriers", VID, "--lake", lake, "-f", "json",
                              "--where", "case_status = 'case' AND age > 30"))
    assert carriers and all(r["case_status"] == "case" and r["age"] > 30 for r in carriers)
    assert all(len(r["sample_id"]) == 32 for r in carriers)
    assoc = json.loads(run(sample_lake, "query", "assoc", "--lake", lake, "--phenotype", "case_status",
                           "--region", "20:10000000-10500000", "-f", "json"))
    assert assoc and [r["p"] for r in assoc] == sorted(r["p"] for r in assoc)
    sql = json.loads(run(sample_lake, "query", "sql", "SELECT count(*) AS n FROM phenotypes", "--lake", lake, "-f",
                         "json"))
    assert sql == [{"n": 100}]


def test_tsv_csv_parquet_and_output_file(sample_lake: SampleLake, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    lake = str(sample_lake.path)
    tsv = run(sample_lake, "query", "region", "20:10000000-10100000", "--lake", lake, "-f", "tsv")
    rows = list(csv.DictReader(io.StringIO(tsv), delimiter="\t"))
    assert rows and rows[0]["contig"] == "20"
    out = tmp_path / "r.parquet"
    run(sample_lake, "query", "region", "20:10000000-10100000", "--lake", lake, "-f", "parquet", "-o", str(out))
    assert pq.read_table(out).num_rows == len(rows)
    csv_out = tmp_path / "v.csv"
    run(sample_lake, "query", "variant", VID, "--lake", lake, "-f", "csv", "-o", str(csv_out))
    freq = list(csv.DictReader(io.StringIO(csv_out.read_text())))  # one rectangular table (issue 13)
    assert [r["scope"] for r in freq] == ["joint", "east", "north", "south"] and freq[0]["variant"] == "20-10019093-A-G"


def test_long_tables_are_truncated_with_a_note(sample_lake: SampleLake) -> None:
    out = run(sample_lake, "query", "region", "20", "--lake", str(sample_lake.path))
    assert "more rows not shown" in out


def test_run_catalogue_query(sample_lake: SampleLake) -> None:
    out = json.loads(run(sample_lake, "query", "run", "queries/institution_frequencies.sql", "--lake",
                         str(sample_lake.path), "-p", "contig=chr20", "-p", "pos=10019093", "-p", "ref=A", "-p",
                         "alt=G", "-f", "json"))
    assert [r["scope"] for r in out] == ["joint", "east", "north", "south"]
    listing = run(sample_lake, "query", "catalogue", "-f", "json")
    assert any(r["name"] == "rare_variants_in_region" for r in json.loads(listing))


def test_phenotypes_load_and_list(sample_lake: SampleLake, tmp_path: Path) -> None:
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    out = json.loads(run(sample_lake, "phenotypes", "load", str(sample_lake.tmp / "north.phenotypes.tsv"), "--lake",
                         str(lake), "-i", "north", "--type", "age=numeric", "-f", "json"))
    assert out["loaded"] == 40 and out["in_table_not_in_lake"] == 0 and out["phenotypes"]["age"] == "numeric"
    listing = json.loads(run(sample_lake, "phenotypes", "list", "--lake", str(lake), "-f", "json"))
    assert {r["phenotype"] for r in listing} >= {"sex", "case_status", "age", "hpo"}


@pytest.mark.parametrize("args, message", [
    (["query", "variant", "20-10019093-A"], "malformed variant ID"),
    (["query", "region", "chr20:9-1"], "malformed region"),
    (["query", "carriers", VID, "--where", "bogus = 1"], "unknown column 'bogus'; known columns: affected, age, "),
    (["query", "region", "20:1-100", "--where", "age > "], "--where: expected a value"),
    (["query", "sql", "DELETE FROM calls"], "only read-only queries"),
    (["query", "sql", "SELECT * FROM read_csv('/etc/passwd')"], "refused"),
    (["query", "run", "nope"], "no query file 'nope'"),
    (["query", "run", "rare_variants_in_region", "-p", "contig=20"], "missing --param start"),
    (["query", "assoc", "--phenotype", "age"], "assoc needs a categorical phenotype"),
    (["query", "variant", VID, "-f", "parquet"], "--format parquet needs --output FILE"),
])
def test_errors_one_line_exit_2(sample_lake: SampleLake, args: list[str], message: str) -> None:
    res = proc(sample_lake, *args, "--lake", str(sample_lake.path))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genolake: error: ") and message in lines[0], res.stderr


def test_missing_lake_exit_2(tmp_path: Path) -> None:
    res = proc(None, "query", "variant", VID, "--lake", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "not a genolake lake" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_query_variant_imports_no_heavy_modules(sample_lake: SampleLake) -> None:
    """`genolake query variant` must start fast: no pyarrow, pandas, Dask, scipy or polars on its path."""
    code = (
        "import sys, runpy; sys.argv = ['genolake', 'query', 'variant', %r, '--lake', %r, '-f', 'json'];\n"
        "import genolake.cli\n"
        "try:\n    genolake.cli.main()\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('pyarrow', 'pandas', 'dask', 'distributed', 'scipy', 'polars', 'cyvcf2', 'pysam', 'deltalake')\n"
        "       if m in sys.modules]\n"
        "print('HEAVY', bad, file=sys.stderr)\n" % (VID, str(sample_lake.path))
    )
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "HEAVY []" in res.stderr, res.stderr
