"""One definition of the wide `phenotypes` view's columns and values (`schema.phenotype_columns`): the query
engine's view and the aggregate's ``--by`` reading (Arrow, without the engine) give the same people the same
values."""

from __future__ import annotations

from typing import Any

from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures

from genolake.compute.frequencies import _phenotype_rows
from genolake.query.engine import quote_ident
from genolake.schema import phenotype_columns


def test_columns_rule() -> None:
    kinds, mixed = phenotype_columns([
        ("sex", "categorical"), ("age", "numeric"), ("hpo", "list"), ("both", "numeric"), ("both", "categorical"),
        ("Bad Name", "categorical"), ("sample_id", "categorical"), ("odd", "weird"),
    ])
    assert kinds == {"age": "numeric", "both": "categorical", "hpo": "list", "odd": "categorical",
                     "sex": "categorical"}
    assert mixed == {"both", "odd"}


def test_aggregate_reads_the_views_values(opened: Any) -> None:
    view = dict(opened.engine.catalog.phenotypes)
    read = _phenotype_rows(opened.store, [c for c, k in view.items() if k != "list"])
    assert read is not None
    kinds, rows = read
    assert kinds == view
    checked = 0
    for col, kind in view.items():
        if kind == "list":
            continue
        q = quote_ident(col)
        want = sorted(opened.engine.rows(f"SELECT institution, sample_id, {q} FROM phenotypes WHERE {q} IS NOT NULL"))
        assert sorted(rows[col]) == want, col
        checked += 1
    assert checked >= 2
