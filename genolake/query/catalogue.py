"""The queries/ catalogue: named, parameterised SQL files run with bound parameters.

Each file starts with a header comment::

    -- name: rare_variants_in_region
    -- answers: Which variants of a region are rare in the joint cohort?
    -- params: contig (contig), start (int), end (int), max_af (float) = 0.01

and uses DuckDB named parameters (``$contig``). Parameter types: ``text``, ``int``, ``float``, ``bool`` and
``contig`` (text renamed to the lake's contig naming, so ``chr20`` and ``20`` both work). A ``= value`` gives a
default. Values are bound, never pasted into the SQL, and the query runs through the read-only user path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from genolake.errors import UserInputError

if TYPE_CHECKING:
    from genolake.query.lake import Lake

TYPES = ("text", "int", "float", "bool", "contig")
_PARAM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*([a-z]+)\s*\)\s*(?:=\s*(.*?))?\s*$")


@dataclass
class Param:
    name: str
    type: str
    default: str | None = None


@dataclass
class NamedQuery:
    path: Path
    name: str
    answers: str
    params: list[Param] = field(default_factory=list)
    sql: str = ""


def catalogue_dir() -> Path:
    """The repository's queries/ folder (next to the package in a source checkout / editable install)."""
    return Path(__file__).resolve().parents[2] / "queries"


def _split_params(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_query_file(path: Path) -> NamedQuery:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the query file ({exc.strerror or exc})") from None
    header: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if not s.startswith("--"):
            break
        key, sep, value = s[2:].strip().partition(":")
        if sep and key.strip().lower() in ("name", "answers", "params"):
            k = key.strip().lower()
            header[k] = (header.get(k, "") + " " + value.strip()).strip()
    missing = [k for k in ("name", "answers") if k not in header]
    if missing:
        raise UserInputError(f"{path}: the header needs '-- {missing[0]}:' (see queries/README.md)")
    params: list[Param] = []
    spec = header.get("params", "").strip()
    if spec and spec.lower() not in ("none", "-"):
        for part in _split_params(spec):
            m = _PARAM.match(part)
            if not m or m.group(2) not in TYPES:
                raise UserInputError(f"{path}: cannot read parameter {part.strip()!r}; write NAME (TYPE) with TYPE "
                                     f"one of {', '.join(TYPES)}")
            params.append(Param(m.group(1), m.group(2), m.group(3)))
    return NamedQuery(path, header["name"], header["answers"], params, text)


def find_query(ref: str | Path) -> Path:
    """A query file by path, or by NAME / NAME.sql in the catalogue."""
    p = Path(ref)
    if p.is_file():
        return p
    base = catalogue_dir()
    for cand in (base / p.name, base / f"{p.name}.sql"):
        if cand.is_file():
            return cand
    names = ", ".join(sorted(q.stem for q in base.glob("*.sql"))) if base.is_dir() else "none"
    raise UserInputError(f"no query file {str(ref)!r}; catalogue queries: {names}")


def bind(q: NamedQuery, values: dict[str, str], style: str) -> dict[str, Any]:
    """Typed parameter values for ``q`` from strings; refuses unknown and missing parameters."""
    from genolake.contigs import to_style

    declared = {p.name: p for p in q.params}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise UserInputError(f"{q.name}: unknown parameter {unknown[0]!r}; it takes: "
                             + (", ".join(f"{p.name} ({p.type})" for p in q.params) or "no parameters"))
    out: dict[str, Any] = {}
    for p in q.params:
        raw = values.get(p.name, p.default)
        if raw is None:
            raise UserInputError(f"{q.name}: missing --param {p.name}=... ({p.type}); it takes: "
                                 + ", ".join(f"{x.name} ({x.type})" for x in q.params))
        raw = raw.strip()
        try:
            if p.type == "int":
                out[p.name] = int(raw.replace(",", ""))
            elif p.type == "float":
                out[p.name] = float(raw)
            elif p.type == "bool":
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                out[p.name] = raw.lower() in ("true", "1", "yes")
            elif p.type == "contig":
                out[p.name] = to_style(raw, style)
            else:
                out[p.name] = raw
        except ValueError:
            raise UserInputError(f"{q.name}: --param {p.name}={raw!r} is not a valid {p.type}") from None
    return out


def run_query(lake: Lake, ref: str | Path, values: dict[str, str], *, timeout: float | None = None,
              memory_limit: int | None = None) -> pa.Table:
    q = parse_query_file(find_query(ref))
    params = bind(q, values, lake.store.contig_style)
    return lake.engine.user_sql(q.sql, params or None, timeout=timeout, memory_limit=memory_limit)


def catalogue_table() -> pa.Table:
    base = catalogue_dir()
    rows = []
    for path in sorted(base.glob("*.sql")) if base.is_dir() else []:
        q = parse_query_file(path)
        rows.append({"name": q.name, "file": f"queries/{path.name}", "answers": q.answers,
                     "params": ", ".join(f"{p.name} ({p.type})" + (f" = {p.default}" if p.default else "")
                                         for p in q.params)})
    return pa.Table.from_pylist(rows, schema=pa.schema([("name", pa.string()), ("file", pa.string()),
                                                        ("answers", pa.string()), ("params", pa.string())]))
