"""Free SQL whose answer can only be empty because of a typo says so (the brief: an unknown contig or a value no
sample has is named, exit 2), and a query that is legitimately empty or returns rows is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake

from genolake.errors import UserInputError
from genolake.query.sql_typos import compared_literals


def test_literals_found_anywhere_in_the_statement() -> None:
    sql = ("WITH x AS (SELECT * FROM variants WHERE contig = '1') SELECT * FROM x JOIN calls c "
           "ON c.contig = x.contig AND c.institution IN ('SNUH', 'AMC') WHERE lower(contig) = 'x' AND pos > 3")
    assert sorted(compared_literals(sql)) == [("contig", "1"), ("institution", "AMC"), ("institution", "SNUH")]
    assert compared_literals("SELECT 'contig' = 'x'") == []
    assert compared_literals("SELECT * FROM variants WHERE contig <> '1'") == []
    assert compared_literals("not sql at all") == []


@pytest.mark.parametrize("sql, named", [
    ("SELECT * FROM variants WHERE contig = 'chr20'", "no contig 'chr20'"),  # the lake's contig is '20'
    ("SELECT count(*) AS n FROM calls WHERE contig IN ('21', '22') GROUP BY contig", "no contig '21'"),
    ("SELECT * FROM samples WHERE institution = 'North'", "no institution 'North'"),
])
def test_empty_answer_with_an_unknown_value_is_refused(opened: Any, sql: str, named: str) -> None:
    with pytest.raises(UserInputError, match=named) as err:
        opened.sql(sql)
    assert "its contigs: 20)" in str(err.value) or "its institutions: east, north, south" in str(err.value)


@pytest.mark.parametrize("sql, rows", [
    ("SELECT * FROM variants WHERE contig = '20' AND pos < 0", 0),  # empty, but every value is the lake's
    ("SELECT * FROM variants WHERE contig <> 'chr20' LIMIT 1", 1),  # rows: never questioned
    ("SELECT * FROM variants WHERE contig = 'chr20' OR contig = '20' LIMIT 1", 1),
    ("SELECT count(*) AS n FROM variants WHERE contig = 'chr20'", 1),  # one row (n = 0): not an empty answer
])
def test_legitimate_queries_are_left_alone(opened: Any, sql: str, rows: int) -> None:
    assert opened.sql(sql).num_rows == rows


def test_cli_says_one_line_and_exits_2(sample_lake: SampleLake) -> None:
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "sql", "--lake", str(sample_lake.path),
                          "SELECT pos FROM variants WHERE contig = 'chr20'"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "no contig 'chr20'" in res.stderr
    assert "Traceback" not in res.stderr
