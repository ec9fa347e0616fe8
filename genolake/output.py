"""Printing query results: a rich terminal table, TSV, CSV, JSON or Parquet."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genolake.errors import UserInputError

if TYPE_CHECKING:
    import pyarrow as pa
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")

FORMATS = ("table", "tsv", "csv", "json", "parquet")
MAX_TABLE_ROWS = 50


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):  # DuckDB's sum() of integers is a HUGEINT, read as a decimal: keep it an integer
        return int(v) if v == v.to_integral_value() else float(v)
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


def _delimited(names: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """One TSV/CSV table: a header line, then a line per row. CSV opens in spreadsheets, so its formula-like cells
    are neutralised (OWASP); TSV stays byte-exact for pipelines."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
    w.writerow(names)
    safe = neutralise if fmt == "csv" else str
    for row in rows:
        w.writerow([safe(_cell(row.get(c))) for c in names])
    return buf.getvalue()


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
        text = _delimited(table.column_names, table.to_pylist(), fmt)
    else:
        text = render_rich(table, title=title)
    if output is not None:
        output.write_text(text)
    else:
        sys.stdout.write(text)


_HEX_ID = re.compile(r"^[0-9a-f]{16,}$")
SHORT_HEX = 12


def _short(text: str) -> str:
    """A hash or hex ID (sha256, file_id, pseudonym) cut to its first 12 hex digits, as git shows commits."""
    return text[:SHORT_HEX] if _HEX_ID.match(text) else text


def table_width() -> int:
    """The terminal's width (or $COLUMNS), 160 when stdout is not a terminal."""
    import shutil

    return max(40, shutil.get_terminal_size((160, 24)).columns)


def render_rich(table: pa.Table, *, title: str | None = None, max_rows: int = MAX_TABLE_ROWS) -> str:
    return render_rows(table.column_names, table.slice(0, max_rows).to_pylist(), total=table.num_rows,
                       title=title, max_rows=max_rows)


def render_rows(names: list[str], rows: list[dict[str, Any]], *, total: int | None = None, title: str | None = None,
                max_rows: int = MAX_TABLE_ROWS, width: int | None = None) -> str:
    """A terminal table: one line per row, hashes and hex IDs shortened to 12 digits, and the rightmost columns
    that do not fit the width left out (named below the table; ``--format tsv`` shows every column in full)."""
    from rich.console import Console
    from rich.table import Table

    width = width or table_width()
    total = len(rows) if total is None else total
    shown = [[_short(_cell(row.get(c))) for c in names] for row in rows[:max_rows]]
    widths = [max([len(n), *(len(r[i]) for r in shown)]) for i, n in enumerate(names)]
    keep = len(names)
    while keep > 1 and sum(w + 3 for w in widths[:keep]) + 1 > width:
        keep -= 1
    t = Table(title=title, show_lines=False, header_style="bold")
    for name in names[:keep]:
        t.add_column(name, no_wrap=True, overflow="ellipsis")
    for r in shown:
        t.add_row(*r[:keep])
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    console.print(t)
    if keep < len(names):
        console.print(f"columns not shown (too wide for {width} characters): {', '.join(names[keep:])}; "
                      "use --format tsv/csv/json for all", soft_wrap=True)
    if total > max_rows:
        console.print(f"... {total - max_rows} more rows not shown (use --format tsv/csv/json/parquet "
                      "or --output for all)", soft_wrap=True)
    elif total == 0:
        console.print("(no rows)")
    return buf.getvalue()


_PART_COLUMNS = {
    "frequencies": ["variant", "scope", "ac", "an", "af", "nhomalt", "nhemi"],
    "phenotypes": ["variant", "phenotype", "value", "samples", "carriers", "ac", "an", "af", "nhomalt", "nhemi"],
    "variant": ["id", "contig", "pos", "ref", "alt", "rsid", "filters", "multiallelic", "observed", "institutions",
                "source"],
    "annotations": ["variant"],
}


def report_rows(reports: list[dict[str, Any]], part: str) -> tuple[list[str], list[dict[str, Any]]]:
    """One rectangular table (column names, rows) of a part of `query variant` objects, for tsv/csv/parquet.

    ``part``: ``frequencies`` (a row per variant and scope), ``phenotypes`` (per variant, phenotype and value),
    ``variant`` (a row per variant) or ``annotations`` (a row per variant and annotation record); every part but
    ``variant`` has a leading ``variant`` column. Plain Python: no pyarrow on `query variant`'s path.
    """
    rows: list[dict[str, Any]] = []
    for r in reports:
        vid = r["variant"]["id"]
        if part == "variant":
            v = dict(r["variant"])
            v["institutions"] = ",".join(v.get("institutions") or [])
            rows.append(v)
        elif part == "annotations":
            ann = r.get("annotations") or {}
            for rec in ann.get("records", [ann]) if ann else []:
                rows.append({"variant": vid, **{k: _cell(x) if isinstance(x, (list, dict)) else x
                                                for k, x in rec.items()}})
        else:
            rows += [{"variant": vid, **x} for x in r.get(part) or []]
    names = list(_PART_COLUMNS[part])
    for row in rows:
        names += [k for k in row if k not in names]
    return names, [{n: _jsonable(row.get(n)) for n in names} for row in rows]


def emit_rows(names: list[str], rows: list[dict[str, Any]], fmt: str, output: Path | None = None) -> None:
    """:func:`emit_table` for plain rows (no pyarrow unless ``fmt`` is parquet)."""
    if fmt == "parquet":
        emit_table(pa.Table.from_pylist(rows) if rows else pa.table({n: pa.array([], pa.string()) for n in names}),
                   fmt, output)
        return
    if fmt == "json":
        text = to_json(rows) + "\n"
    elif fmt in ("tsv", "csv"):
        text = _delimited(names, rows, fmt)
    else:
        text = render_rows(names, rows)
    if output is not None:
        output.write_text(text)
    else:
        sys.stdout.write(text)


def emit_object(obj: dict[str, Any], fmt: str, output: Path | None = None) -> None:
    """Write a nested result: JSON as is; ``table`` as sections; tsv/csv as one row under a header (nested
    values as ``key=value;...`` cells), so every tsv/csv output is one rectangular table."""
    if fmt == "json":
        text = to_json(obj) + "\n"
    elif fmt in ("tsv", "csv", "parquet"):
        def flat(v: Any) -> Any:
            if isinstance(v, dict):
                return ";".join(f"{k}={_cell(x)}" for k, x in v.items())
            if isinstance(v, list):
                return ";".join(flat(x) if isinstance(x, dict) else _cell(x) for x in v)
            return _jsonable(v)

        emit_rows(list(obj), [{k: flat(v) for k, v in obj.items()}], fmt, output)
        return
    else:
        parts: list[str] = []
        for key, val in obj.items():
            if isinstance(val, list) and val and isinstance(val[0], dict):
                names = list(dict.fromkeys(k for v in val for k in v))
                parts.append(render_rows(names, val, title=key))
            elif isinstance(val, dict):
                if val:
                    flat_d = {k: _cell(v) for k, v in val.items()}
                    parts.append(f"{key}: " + ", ".join(f"{k}={v}" for k, v in flat_d.items()) + "\n")
            elif isinstance(val, list) and not val:
                continue  # an empty section says nothing
            else:
                parts.append(f"{key}: {_cell(val)}\n")
        text = "".join(("\n" + p) if p.startswith(("\n", " ")) or "\n" in p.rstrip("\n") else p for p in parts)
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)
