"""Every queries/*.sql file has a valid header and runs against the sample lake; parameters are bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures

from genolake.errors import UserInputError
from genolake.query.catalogue import catalogue_dir, parse_query_file

QUERIES = sorted(catalogue_dir().glob("*.sql"))
# values for every parameter name used in the catalogue (a test fails if a new name has none here)
VALUES = {
    "contig": "chr20", "start": "10000000", "end": "11000000", "max_af": "0.05", "pos": "10019093", "ref": "A",
    "alt": "G", "phenotype": "case_status", "code": "HP:0001250",
}


def test_catalogue_is_not_empty() -> None:
    assert len(QUERIES) >= 6


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_every_query_runs(opened: Any, path: Path) -> None:
    q = parse_query_file(path)
    assert q.name == path.stem, "the file is named after its -- name:"
    assert q.answers.endswith("?"), "-- answers: is a question"
    missing = [p.name for p in q.params if p.name not in VALUES and p.default is None]
    assert not missing, f"add test values for {missing}"
    for p in q.params:
        assert f"${p.name}" in q.sql, f"parameter {p.name} is declared but not used"
    t = opened.run(path, {p.name: VALUES[p.name] for p in q.params if p.default is None})
    assert t.num_rows > 0, f"{path.name} returned no rows on the sample lake"


def test_institution_frequencies_equal_variant_api(opened: Any) -> None:
    rows = opened.run("institution_frequencies", {"contig": "20", "pos": "10019093", "ref": "a", "alt": "g"})
    api = opened.variant("20-10019093-A-G")["frequencies"]
    assert [(r["scope"], r["ac"], r["an"]) for r in rows.to_pylist()] == [(f["scope"], f["ac"], f["an"]) for f in api]


def test_case_control_counts_equal_variant_breakdown(opened: Any) -> None:
    rows = opened.run("case_control_counts", {"contig": "20", "pos": "10019093", "ref": "A", "alt": "G",
                                              "phenotype": "sex"}).to_pylist()
    api = [p for p in opened.variant("20-10019093-A-G")["phenotypes"] if p["phenotype"] == "sex"]
    assert [(r["value"], r["samples"], r["carriers"], r["ac"], r["an"]) for r in rows] == [
        (p["value"], p["samples"], p["carriers"], p["ac"], p["an"]) for p in api]


def test_rare_variants_equal_region_api(opened: Any) -> None:
    rows = opened.run("rare_variants_in_region", {"contig": "chr20", "start": "10000000", "end": "12000000",
                                                  "max_af": "0.05"}).to_pylist()
    api = opened.region("20:10000000-12000000", max_af=0.05, min_ac=1).to_pylist()
    assert [(r["pos"], r["ref"], r["alt"], r["ac"], r["an"]) for r in rows] == [
        (r["pos"], r["ref"], r["alt"], r["ac"], r["an"]) for r in api]


def test_parameter_errors(opened: Any) -> None:
    with pytest.raises(UserInputError, match="unknown parameter 'x'"):
        opened.run("samples_per_institution", {"x": "1"})
    with pytest.raises(UserInputError, match="missing --param pos"):
        opened.run("institution_frequencies", {"contig": "20"})
    with pytest.raises(UserInputError, match="not a valid int"):
        opened.run("institution_frequencies", {"contig": "20", "pos": "ten", "ref": "A", "alt": "G"})
    with pytest.raises(UserInputError, match="no query file"):
        opened.run("no_such_query", {})


def test_user_query_files_are_read_only(opened: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("-- name: bad\n-- answers: Can it write?\n-- params: none\nCREATE TABLE x AS SELECT 1\n")
    with pytest.raises(UserInputError, match="only read-only queries"):
        opened.run(bad, {})
    nohead = tmp_path / "nohead.sql"
    nohead.write_text("SELECT 1\n")
    with pytest.raises(UserInputError, match="needs '-- name:'"):
        opened.run(nohead, {})
