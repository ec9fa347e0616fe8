"""Why a free SQL query came back empty: a contig or institution the lake does not have.

The typed commands refuse an unknown contig or institution before they run (:func:`genolake.query.region.
check_contig`), because such an answer can only be empty because of a typo (``'1'`` on a ``chr1`` lake,
``'SNUH '`` with a trailing space). Free SQL cannot be checked before it runs without refusing legitimate
queries, so :func:`explain_empty` looks afterwards: when the answer has no rows, it reads the statement's
syntax tree (DuckDB's ``json_serialize_sql``) for comparisons of a ``contig`` or ``institution`` column with a
string literal (``=`` and ``IN``, anywhere in the statement) and names the literals no committed file has.
Nothing is guessed from the text itself, and a query that returns rows is never questioned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from genolake.errors import UserInputError

#: Columns whose string literals are checked against the lake, with what the lake has of each.
CHECKED_COLUMNS = ("contig", "institution")


def compared_literals(sql: str) -> list[tuple[str, str]]:
    """``(column, literal)`` for every ``column = 'literal'`` / ``column IN ('a', ...)`` on a checked column.

    ``[]`` when DuckDB cannot serialise the statement (its parser, not this check, reports syntax errors).
    """
    from genolake import duck

    con = duck.connect(1, python_layer=False)
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except (duck.Error, json.JSONDecodeError, IndexError, TypeError):
        return []
    finally:
        con.close()
    if tree.get("error"):
        return []
    found: list[tuple[str, str]] = []
    for node in _nodes(tree):
        kind = node.get("type")
        if kind == "COMPARE_EQUAL":
            sides = [node.get("left"), node.get("right")]
        elif kind == "COMPARE_IN":
            sides = list(node.get("children") or [])
            if not sides or _column(sides[0]) is None:
                continue
        else:
            continue
        columns = [c for c in (_column(s) for s in sides) if c is not None]
        if len(columns) != 1:
            continue
        found += [(columns[0], lit) for lit in (_string(s) for s in sides) if lit is not None]
    return list(dict.fromkeys(found))


def explain_empty(sql: str, known: dict[str, list[str]]) -> None:
    """Raise :class:`UserInputError` if an empty answer compared a checked column with a value the lake lacks.

    ``known`` maps each checked column to the lake's values (its contigs, its institutions); a column the lake
    has no values for is not checked.
    """
    unknown = [(col, lit) for col, lit in compared_literals(sql) if known.get(col) and lit not in known[col]]
    if not unknown:
        return
    parts = []
    for col, lit in unknown:
        values = known[col]
        shown = ", ".join(values[:30]) + (f" (and {len(values) - 30} more)" if len(values) > 30 else "")
        parts.append(f"the lake has no {col} {lit!r} (its {col}s: {shown})")
    raise UserInputError("the query returned no rows, and " + "; ".join(parts))


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _column(node: Any) -> str | None:
    if isinstance(node, dict) and node.get("class") == "COLUMN_REF":
        names = node.get("column_names") or []
        if names and str(names[-1]).lower() in CHECKED_COLUMNS:
            return str(names[-1]).lower()
    return None


def _string(node: Any) -> str | None:
    if isinstance(node, dict) and node.get("class") == "CONSTANT":
        literal = node.get("value") or node.get("literal") or {}
        if isinstance(literal, dict) and literal.get("kind") == "STRING":
            return str(literal.get("text"))
        if isinstance(literal, dict) and literal.get("type", {}).get("id") == "VARCHAR" and not literal.get("is_null"):
            return str(literal.get("value"))
    return None
