"""The ``--where`` phenotype condition: a small validated grammar compiled to SQL with bound parameters.

User text never becomes SQL text: it is parsed into a tree whose column names are checked against the
known phenotype columns, and every literal becomes a bound parameter. Grammar (keywords in any case)::

    expr       := term (OR term)*
    term       := factor (AND factor)*
    factor     := NOT factor | '(' expr ')' | predicate
    predicate  := column op literal                      op: = == != <> < <= > >=
                | column [NOT] IN '(' literal (, literal)* ')'
                | column [NOT] BETWEEN literal AND literal
                | column [NOT] LIKE 'pattern'            (% and _ wildcards)
                | column [NOT] CONTAINS 'code'            (list phenotypes such as HPO terms)
                | column IS [NOT] NULL
    literal    := 'text' | number | TRUE | FALSE

Text literals take single quotes (``case_status = 'case'``); a double-quoted word is a column name. Comparisons
follow SQL: a missing value (NULL) matches nothing except ``IS NULL``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from genolake.errors import UserInputError

MAX_LENGTH = 4000
MAX_DEPTH = 40
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<qid>"(?:[^"]|"")+")
      | (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<op><=|>=|<>|!=|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "between", "contains", "true", "false"}
_OPS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Tok:
    kind: str  # str qid num op punct word kw end
    text: str
    value: Any
    at: int


# AST nodes: tuples for brevity -------------------------------------------------------------------------------
# ("or", [nodes]) ("and", [nodes]) ("not", node)
# ("cmp", col, op, value) ("in", col, [values], negated) ("between", col, lo, hi, negated)
# ("like", col, pattern, negated) ("contains", col, value, negated) ("null", col, negated)


def _tokens(text: str) -> list[Tok]:
    out: list[Tok] = []
    i = 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            j = len(text) - len(text[i:].lstrip())
            raise UserInputError(f"--where: cannot read {text[j:j + 20]!r} at character {j + 1}")
        kind = m.lastgroup or ""
        raw = m.group(kind)
        at = m.start(kind)
        if kind == "str":
            out.append(Tok("str", raw, raw[1:-1].replace("''", "'"), at))
        elif kind == "qid":
            out.append(Tok("word", raw, raw[1:-1].replace('""', '"'), at))
        elif kind == "num":
            out.append(Tok("num", raw, float(raw) if any(c in raw for c in ".eE") else int(raw), at))
        elif kind == "word" and raw.lower() in _KEYWORDS:
            out.append(Tok("kw", raw, raw.lower(), at))
        elif kind == "word":
            out.append(Tok("word", raw, raw, at))
        else:
            out.append(Tok(kind, raw, raw, at))
        i = m.end()
    out.append(Tok("end", "", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str, columns: dict[str, str]) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.columns = columns  # lower-case name -> kind
        self.depth = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at_kw(self, *words: str) -> bool:
        t = self.peek()
        return t.kind == "kw" and t.value in words

    def expect_kw(self, word: str) -> None:
        t = self.take()
        if not (t.kind == "kw" and t.value == word):
            self.fail(t, f"expected {word.upper()}")

    def expect_punct(self, p: str) -> None:
        t = self.take()
        if not (t.kind == "punct" and t.value == p):
            self.fail(t, f"expected {p!r}")

    def fail(self, t: Tok, msg: str) -> None:
        where = f"at {t.text!r} (character {t.at + 1})" if t.kind != "end" else "at the end"
        raise UserInputError(f"--where: {msg} {where}; e.g. --where \"case_status = 'case' AND age > 50\"")

    def parse(self) -> Any:
        if not self.text.strip():
            raise UserInputError("--where: empty condition")
        node = self.expr()
        if self.peek().kind != "end":
            self.fail(self.peek(), "unexpected")
        return node

    def expr(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise UserInputError(f"--where: nested more than {MAX_DEPTH} levels")
        items = [self.term()]
        while self.at_kw("or"):
            self.take()
            items.append(self.term())
        self.depth -= 1
        return items[0] if len(items) == 1 else ("or", items)

    def term(self) -> Any:
        items = [self.factor()]
        while self.at_kw("and"):
            self.take()
            items.append(self.factor())
        return items[0] if len(items) == 1 else ("and", items)

    def factor(self) -> Any:
        t = self.peek()
        if t.kind == "kw" and t.value == "not":
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise UserInputError(f"--where: nested more than {MAX_DEPTH} levels")
            node = ("not", self.factor())
            self.depth -= 1
            return node
        if t.kind == "punct" and t.value == "(":
            self.take()
            node = self.expr()
            self.expect_punct(")")
            return node
        return self.predicate()

    def column(self) -> tuple[str, str]:
        t = self.take()
        if t.kind != "word":
            if t.kind in ("str", "num"):
                self.fail(t, "a condition starts with a column name, not a value")
            self.fail(t, "expected a column name")
        name = str(t.value)
        key = name.lower()
        if key not in self.columns:
            known = ", ".join(sorted(self.columns)) or "(none: load phenotypes with `genolake phenotypes load`)"
            hint = (f" (text values take single quotes: '{name}')" if t.text.startswith('"') else "")
            raise UserInputError(f"--where: unknown column {name!r}{hint}; known columns: {known}")
        return key, self.columns[key]

    def literal(self, col: str, kind: str) -> Any:
        t = self.take()
        if t.kind == "kw" and t.value in ("true", "false"):
            value: Any = t.value
        elif t.kind in ("str", "num"):
            value = t.value
        elif t.kind == "word" and t.text.startswith('"'):
            raise UserInputError(f"--where: text values take single quotes: '{t.value}' (double quotes name columns)")
        else:
            self.fail(t, "expected a value ('text' or a number)")
            raise AssertionError  # unreachable
        if kind == "numeric":
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    raise UserInputError(f"--where: column {col!r} is numeric; compare it with a number, "
                                         f"not {t.text}") from None
            return value
        if kind in ("categorical", "list"):
            return t.text if t.kind == "num" else str(value)
        return value

    def predicate(self) -> Any:
        col, kind = self.column()
        t = self.peek()
        if t.kind == "kw" and t.value == "is":
            self.take()
            neg = False
            if self.at_kw("not"):
                self.take()
                neg = True
            self.expect_kw("null")
            return ("null", col, neg)
        neg = False
        if self.at_kw("not"):
            self.take()
            neg = True
            if not self.at_kw("in", "between", "like", "contains"):
                self.fail(self.peek(), "expected IN, BETWEEN, LIKE or CONTAINS after NOT")
        t = self.peek()
        if kind == "list" and not (t.kind == "kw" and t.value == "contains"):
            raise UserInputError(f"--where: {col!r} is a list of codes; use {col} CONTAINS 'CODE' "
                                 f"(or {col} IS NULL)")
        if t.kind == "kw" and t.value == "contains":
            self.take()
            if kind != "list":
                raise UserInputError(f"--where: CONTAINS is for list phenotypes; {col!r} is {kind}")
            return ("contains", col, self.literal(col, kind), neg)
        if t.kind == "kw" and t.value == "in":
            self.take()
            self.expect_punct("(")
            values = [self.literal(col, kind)]
            while self.peek().kind == "punct" and self.peek().value == ",":
                self.take()
                values.append(self.literal(col, kind))
            self.expect_punct(")")
            return ("in", col, values, neg)
        if t.kind == "kw" and t.value == "between":
            self.take()
            lo = self.literal(col, kind)
            self.expect_kw("and")
            hi = self.literal(col, kind)
            return ("between", col, lo, hi, neg)
        if t.kind == "kw" and t.value == "like":
            self.take()
            if kind == "numeric":
                raise UserInputError(f"--where: LIKE is for text; {col!r} is numeric")
            return ("like", col, self.literal(col, kind), neg)
        if neg:
            self.fail(t, "expected IN, BETWEEN, LIKE or CONTAINS after NOT")
        if t.kind != "op":
            self.fail(t, "expected a comparison (=, !=, <, <=, >, >=), IN, BETWEEN, LIKE or IS NULL")
        self.take()
        return ("cmp", col, _OPS[str(t.value)], self.literal(col, kind))


@dataclass(frozen=True)
class Condition:
    """A parsed, validated ``--where`` condition."""

    text: str
    tree: Any

    @property
    def columns(self) -> set[str]:
        out: set[str] = set()

        def walk(n: Any) -> None:
            if n[0] in ("or", "and"):
                for x in n[1]:
                    walk(x)
            elif n[0] == "not":
                walk(n[1])
            else:
                out.add(n[1])

        walk(self.tree)
        return out

    def to_sql(self, column_sql: dict[str, str], *, prefix: str = "w") -> tuple[str, dict[str, Any]]:
        """SQL text (columns from ``column_sql``, values as ``$prefixN`` parameters) and the parameters."""
        params: dict[str, Any] = {}

        def p(v: Any) -> str:
            key = f"{prefix}{len(params)}"
            params[key] = v
            return f"${key}"

        def go(n: Any) -> str:
            op = n[0]
            if op in ("or", "and"):
                return "(" + f" {op.upper()} ".join(go(x) for x in n[1]) + ")"
            if op == "not":
                return f"(NOT {go(n[1])})"
            col = column_sql[n[1]]
            if op == "cmp":
                return f"({col} {n[2]} {p(n[3])})"
            if op == "in":
                return f"({col} {'NOT ' if n[3] else ''}IN ({', '.join(p(v) for v in n[2])}))"
            if op == "between":
                return f"({col} {'NOT ' if n[4] else ''}BETWEEN {p(n[2])} AND {p(n[3])})"
            if op == "like":
                return f"({col} {'NOT ' if n[3] else ''}LIKE {p(n[2])})"
            if op == "contains":
                inner = f"list_contains({col}, {p(n[2])})"
                return f"(NOT {inner})" if n[3] else f"({inner})"
            if op == "null":
                return f"({col} IS {'NOT ' if n[2] else ''}NULL)"
            raise AssertionError(op)

        return go(self.tree), params

    def evaluate(self, row: dict[str, Any]) -> bool:
        """Evaluate on one row in Python with SQL's three-valued logic (for tests and small tables)."""
        return _eval(self.tree, {k.lower(): v for k, v in row.items()}) is True


def _like(value: str, pattern: str) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.DOTALL) is not None


def _eval(n: Any, row: dict[str, Any]) -> bool | None:
    op = n[0]
    if op == "or":
        vals = [_eval(x, row) for x in n[1]]
        return True if any(v is True for v in vals) else (None if any(v is None for v in vals) else False)
    if op == "and":
        vals = [_eval(x, row) for x in n[1]]
        return False if any(v is False for v in vals) else (None if any(v is None for v in vals) else True)
    if op == "not":
        v = _eval(n[1], row)
        return None if v is None else not v
    x = row.get(n[1])
    if op == "null":
        return (x is not None) if n[2] else (x is None)
    if x is None:
        return None
    if op == "cmp":
        y = n[3]
        return {"=": x == y, "<>": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[n[2]]
    if op == "in":
        hit = x in n[2]
        return (not hit) if n[3] else hit
    if op == "between":
        hit = n[2] <= x <= n[3]
        return (not hit) if n[4] else hit
    if op == "like":
        hit = _like(str(x), n[2])
        return (not hit) if n[3] else hit
    if op == "contains":
        hit = n[2] in x
        return (not hit) if n[3] else hit
    raise AssertionError(op)


def parse_where(text: str, columns: dict[str, str]) -> Condition:
    """Parse and validate ``text`` against ``columns`` (name -> kind: categorical, numeric, list).

    >>> c = parse_where("case_status = 'case' AND age > 50", {"case_status": "categorical", "age": "numeric"})
    >>> c.to_sql({"case_status": 'p."case_status"', "age": 'p."age"'})
    ('((p."case_status" = $w0) AND (p."age" > $w1))', {'w0': 'case', 'w1': 50})
    """
    if len(text) > MAX_LENGTH:
        raise UserInputError(f"--where: condition longer than {MAX_LENGTH} characters")
    cols = {k.lower(): v for k, v in columns.items()}
    return Condition(text, _Parser(text, cols).parse())
