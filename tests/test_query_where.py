"""The --where grammar: parsing, validation, SQL with bound parameters, and SQL == Python evaluation."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genolake.errors import UserInputError
from genolake.query.ids import parse_region_text, parse_variant
from genolake.query.where import parse_where

COLS = {"case_status": "categorical", "sex": "categorical", "age": "numeric", "bmi": "numeric",
        "hpo": "list", "institution": "categorical"}
SQLCOLS = {c: f'"{c}"' for c in COLS}


def test_compiles_to_bound_parameters() -> None:
    sql, params = parse_where("case_status = 'case' AND (age > 50 OR bmi IS NULL)", COLS).to_sql(SQLCOLS)
    assert sql == '(("case_status" = $w0) AND (("age" > $w1) OR ("bmi" IS NULL)))'
    assert params == {"w0": "case", "w1": 50}


def test_values_never_reach_sql_text() -> None:
    evil = "x'; DROP TABLE calls; --"
    sql, params = parse_where(f"sex = '{evil.replace(chr(39), chr(39) * 2)}'", COLS).to_sql(SQLCOLS)
    assert "DROP" not in sql and params == {"w0": evil}


@pytest.mark.parametrize("text, match", [
    ("foo = 1", r"unknown column 'foo'; known columns: age, bmi, case_status, hpo, institution, sex"),
    ('sex = "female"', r"text values take single quotes: 'female'"),
    ('"sexx" = \'female\'', r"unknown column 'sexx'"),
    ("age > 'old'", "numeric; compare it with a number"),
    ("hpo = 'HP:0001250'", "list of codes; use hpo CONTAINS"),
    ("sex CONTAINS 'x'", "CONTAINS is for list phenotypes"),
    ("age LIKE '5%'", "LIKE is for text"),
    ("case_status = ", "expected a value"),
    ("(age > 5", "expected '\\)'"),
    ("age > 5 sex = 'male'", "unexpected"),
    ("'case' = case_status", "starts with a column name"),
    ("age > 5; DROP TABLE x", "cannot read"),
    ("", "empty condition"),
    ("sex NOT = 'male'", "after NOT"),
])
def test_errors(text: str, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        parse_where(text, COLS)


def test_keywords_any_case_and_in_between_like_contains() -> None:
    c = parse_where("SEX in ('male', 'female') and not Age between 10 and 20 or hpo contains 'HP:1' "
                    "or case_status not like 'c%' or sex = 1", COLS)
    sql, params = c.to_sql(SQLCOLS)
    assert "list_contains" in sql and "NOT BETWEEN" not in sql and "NOT LIKE" in sql
    assert params["w6"] == "1"  # a number compared with a categorical column is its text


def test_deep_nesting_refused() -> None:
    with pytest.raises(UserInputError, match="nested"):
        parse_where("(" * 100 + "age > 1" + ")" * 100, COLS)


# ------------------------------------------------------------------------- SQL and Python agree (hypothesis)
ROWS = [
    {"case_status": cs, "sex": sx, "age": ag, "bmi": bm, "hpo": hp, "institution": inst}
    for cs in ("case", "control", None)
    for sx in ("male", "female", None)
    for ag, bm in ((20, 18.5), (55, None), (None, 31.0))
    for hp in (["HP:1", "HP:2"], ["HP:3"], None)
    for inst in ("north", "south")
]
_VALUES: dict[str, Any] = {
    "case_status": st.sampled_from(["'case'", "'control'", "'other'"]),
    "sex": st.sampled_from(["'male'", "'female'"]),
    "institution": st.sampled_from(["'north'", "'south'"]),
    "age": st.sampled_from(["20", "30", "55", "60.5"]),
    "bmi": st.sampled_from(["18.5", "25", "31"]),
}


@st.composite
def predicates(draw: Any) -> str:
    col = draw(st.sampled_from(sorted(COLS)))
    if col == "hpo":
        return draw(st.sampled_from(["hpo CONTAINS 'HP:1'", "hpo NOT CONTAINS 'HP:3'", "hpo IS NULL",
                                     "hpo IS NOT NULL"]))
    v = _VALUES[col]
    kind = draw(st.sampled_from(["cmp", "in", "null", "between"] + (["like"] if COLS[col] == "categorical" else [])))
    if kind == "cmp":
        return f"{col} {draw(st.sampled_from(['=', '!=', '<', '<=', '>', '>=', '<>']))} {draw(v)}"
    if kind == "in":
        items = draw(st.lists(v, min_size=1, max_size=3))
        return f"{col} {draw(st.sampled_from(['', 'NOT ']))}IN ({', '.join(items)})"
    if kind == "between":
        return f"{col} {draw(st.sampled_from(['', 'NOT ']))}BETWEEN {draw(v)} AND {draw(v)}"
    if kind == "like":
        return f"{col} {draw(st.sampled_from(['', 'NOT ']))}LIKE {draw(st.sampled_from(['%a%', 'c_se', 'm%']))!r}"
    return f"{col} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"


conditions = st.recursive(
    predicates(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda s: f"NOT {s}"),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    import pyarrow as pa

    c = duckdb.connect()
    t = pa.Table.from_pylist(ROWS)
    c.register("t_arrow", t)
    c.execute("CREATE TABLE t AS SELECT row_number() OVER () AS i, * FROM t_arrow")
    return c


@settings(max_examples=150, deadline=None)
@given(text=conditions)
def test_sql_equals_python_evaluation(con: duckdb.DuckDBPyConnection, text: str) -> None:
    cond = parse_where(text, COLS)
    sql, params = cond.to_sql(SQLCOLS)
    got = {r[0] for r in con.execute(f"SELECT i FROM t WHERE {sql}", params).fetchall()}
    want = {i + 1 for i, row in enumerate(ROWS) if cond.evaluate(row)}
    assert got == want, (text, sql, params)


# ------------------------------------------------------------------------- variant IDs and regions
@pytest.mark.parametrize("text", ["chr20-1014254-A-T", "20:1014254:A:T", "20_1014254_a_t", "chr20:1014254:A>T",
                                  "20-1,014,254-A-T", " 20/1014254/A/T "])
def test_variant_id_forms(text: str) -> None:
    k = parse_variant(text, "plain")
    assert (k.contig, k.pos, k.ref, k.alt) == ("20", 1014254, "A", "T")
    assert parse_variant(text, "chr").contig == "chr20"


def test_variant_id_contig_with_underscore_and_mt() -> None:
    assert parse_variant("chrUn_gl000220_105_C_T", "chr").contig == "chrUn_gl000220"
    assert parse_variant("M-100-A-G", "plain").contig == "MT"
    assert parse_variant("chrX-5-AC-A", "chr").ref == "AC"


@pytest.mark.parametrize("text", ["20-1014254-A", "20-abc-A-T", "20-0-A-T", "20-5-A-A", "rs", "20-5-A-T-G",
                                  "20-99999999999-A-T"])
def test_variant_id_errors(text: str) -> None:
    with pytest.raises(UserInputError, match="malformed variant ID"):
        parse_variant(text, "plain")


def test_regions() -> None:
    r = parse_region_text("chr20:1,000,000-2,000,000", "plain")
    assert (r.contig, r.start, r.end) == ("20", 1_000_000, 2_000_000)
    assert parse_region_text("20", "chr").contig == "chr20"
    for bad in ("20:5-1", "20:abc", "20:0-5", ""):
        with pytest.raises(UserInputError, match="malformed region"):
            parse_region_text(bad, "plain")
