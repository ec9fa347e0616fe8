"""Printing query results: a rich terminal table, TSV, CSV, JSON or Parquet."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.errors import UserInputError

FORMATS = ("table", "tsv", "csv", "json", "parquet")
MAX_TABLE_ROWS = 50


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def to_json(obj: Any) -> str:
    return json.dumps(_jsonable(obj), indent=2)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ",".join(_cell(x) for x in v)
    return str(v)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """A CSV cell a spreadsheet would run as a formula (``=cmd|' /C calc'!A0``, ``@SUM(...)``, ``+1+1``),
    prefixed with ``'`` as OWASP advises; plain numbers (``-0.5``) are left alone."""
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def emit_table(table: pa.Table, fmt: str, output: Path | None = None, *, title: str | None = None) -> None:
    """Write ``table`` in ``fmt`` to ``output`` or stdout."""
    if fmt not in FORMATS:
        raise UserInputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if output is None:
            raise UserInputError("--format parquet needs --output FILE")
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        return
    if fmt == "json":
        text = to_json(table.to_pylist()) + "\n"
    elif fmt in ("tsv", "csv"):
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        w.writerow(table.column_names)
        safe = neutralise if fmt == "csv" else str  # CSV opens in spreadsheets; TSV stays byte-exact for pipelines
        for row in table.to_pylist():
            w.writerow([safe(_cell(row[c])) for c in table.column_names])
        text = buf.getvalue()
    else:
        text = render_rich(table, title=title)
    if output is not None:
        output.write_text(text)
    else:
        sys.stdout.write(text)


def render_rich(table: pa.Table, *, title: str | None = None, max_rows: int = MAX_TABLE_ROWS) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for name in table.column_names:
        t.add_column(name, overflow="fold")
    shown = table.slice(0, max_rows).to_pylist()
    for row in shown:
        t.add_row(*[_cell(row[c]) for c in table.column_names])
    buf = io.StringIO()
    console = Console(file=buf, width=160, force_terminal=False, color_system=None)
    console.print(t)
    if table.num_rows > max_rows:
        console.print(f"... {table.num_rows - max_rows} more rows not shown (use --format tsv/csv/json/parquet "
                      "or --output for all)")
    elif table.num_rows == 0:
        console.print("(no rows)")
    return buf.getvalue()


def emit_object(obj: dict[str, Any], fmt: str, output: Path | None = None) -> None:
    """Write a nested result (e.g. `query variant`): JSON as is; other formats as sections of tables."""
    if fmt == "json":
        text = to_json(obj) + "\n"
        if output:
            output.write_text(text)
        else:
            sys.stdout.write(text)
        return
    parts: list[str] = []
    for key, val in obj.items():
        if isinstance(val, list) and val and isinstance(val[0], dict):
            tbl = pa.Table.from_pylist([_jsonable(v) for v in val])
            if fmt == "table":
                parts.append(render_rich(tbl, title=key))
            else:
                buf = io.StringIO()
                w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
                w.writerow(["#" + key])
                w.writerow(tbl.column_names)
                safe = neutralise if fmt == "csv" else str
                for row in tbl.to_pylist():
                    w.writerow([safe(_cell(row[c])) for c in tbl.column_names])
                parts.append(buf.getvalue())
        elif isinstance(val, dict):
            flat = {k: _cell(v) for k, v in val.items()}
            parts.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in flat.items()) + "\n")
        else:
            parts.append(f"{key}: {_cell(val)}\n")
    text = "\n".join(parts)
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)
