"""Regression: the plain-rows writer (`query variant`/`info` tsv/csv) did not neutralise spreadsheet formulas in
CSV as the Arrow-table writer does (issue 15.8); both now share one delimited writer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from genolake.output import emit_rows, emit_table

ROWS = [{"phenotype": "note", "value": "=cmd|' /C calc'!A0", "ac": 3, "af": -0.5}]


def test_csv_neutralises_formulas_in_both_writers(tmp_path: Path) -> None:
    a, b = tmp_path / "rows.csv", tmp_path / "table.csv"
    emit_rows(list(ROWS[0]), ROWS, "csv", a)
    emit_table(pa.Table.from_pylist(ROWS), "csv", b)
    assert a.read_text() == b.read_text()
    assert "'=cmd|" in a.read_text() and ",-0.5" in a.read_text()  # numbers stay numbers


def test_tsv_stays_byte_exact(tmp_path: Path) -> None:
    out = tmp_path / "rows.tsv"
    emit_rows(list(ROWS[0]), ROWS, "tsv", out)
    assert out.read_text().splitlines()[1].split("\t")[1] == "=cmd|' /C calc'!A0"
