"""The chunk writer of `genolake annotate-vcf`: looks the alleles of a chunk up in the lake, formats every column of
their values at once, writes the chunk's records with the new INFO fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genolake.vcfout.common import fmt_value

if TYPE_CHECKING:
    from genolake.vcfout.annotate_lookup import Group, Key, Lookup, Seen, Values


@dataclass
class AnnotateReport:
    """What :func:`annotate_vcf` wrote."""

    output: Path
    n_records: int = 0
    n_alleles: int = 0
    n_found: int = 0  # alleles the lake has seen
    n_absent: int = 0  # alleles the lake has not seen that got an AN from the absent-site rules
    source: str = "lake"  # "allele_frequencies" or "lake"
    info_fields: list[str] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


class ChunkWriter:
    """Buffers the records of one chunk, looks their alleles up, writes them with the new INFO fields.

    ``rows`` holds each record's text fields and ``counts`` its number of alleles; ``pos``, ``ref`` and ``alt``
    the lake keys of those alleles, record after record."""

    def __init__(self, sink: Any, lookup: Lookup, columns: list[tuple[str, str, Group]], report: AnnotateReport,
                 ours: set[str]) -> None:
        self.sink = sink
        self.lookup = lookup
        self.columns = columns
        self.report = report
        self.ours = ours
        self.contig = ""
        self.rows: list[list[str]] = []
        self.counts: list[int] = []
        self.pos: list[int] = []
        self.ref: list[str] = []
        self.alt: list[str] = []
        self.groups = list(dict.fromkeys(c[2] for c in columns))

    def add(self, fields: list[str], keys: list[Key]) -> None:
        """One record and the keys of its alleles."""
        self.rows.append(fields)
        self.counts.append(len(keys))
        for p, r, a in keys:
            self.pos.append(p)
            self.ref.append(r)
            self.alt.append(a)

    def _absent(self, contig: str, pos: int) -> tuple[int | None, ...]:
        return tuple(self.lookup.absent_an(contig, pos, g) for g in self.groups)

    def strings(self, contig: str) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
        """For the alleles of the chunk: the formatted values of every column (``.`` where missing), whether the
        lake has seen each allele, and whether an unseen one got an AN from the absent-site rules."""
        n = len(self.pos)
        seen = self.lookup.seen(contig, self.pos, self.ref, self.alt)
        gi = {g: i for i, g in enumerate(self.groups)}
        found = np.zeros(n, dtype=bool)
        found[seen.key] = True
        has_fill = bool(self.lookup.fill_files(contig))
        none = (None,) * len(self.groups)
        absent_of: dict[int, tuple[int | None, ...]] = {}

        def absent(j: int) -> tuple[int | None, ...]:
            pos = self.pos[j]
            if pos not in absent_of:
                absent_of[pos] = self._absent(contig, pos) if has_fill else none
            return absent_of[pos]

        unseen = np.flatnonzero(~found).tolist()
        rows_of = _rows_by_group(seen, len(self.groups))
        out: list[list[str]] = []
        for _key, f, g in self.columns:
            col = np.empty(n, dtype=object)
            i = gi[g]
            rows = rows_of[i]
            if rows is None:  # every row is of this group, in order
                col[seen.key] = column(f, seen)
                has = found
            else:
                col[[seen.key[r] for r in rows]] = column(f, seen, rows)
                has = np.zeros(n, dtype=bool)
                has[[seen.key[r] for r in rows]] = True
            if has_fill:
                cache: dict[int | None, str] = {}
                for j in unseen:
                    an = absent(j)[i]
                    col[j] = cache[an] if an in cache else cache.setdefault(an, value(f, _unseen(an)))
            elif unseen:
                col[unseen] = value(f, _unseen(None))
            for j in np.flatnonzero(found & ~has).tolist():  # a seen allele none of whose group's files lists it
                an_g = absent(j)[i] or 0
                col[j] = value(f, (0, an_g, 0, 0, 0.0 if an_g else None, None))
            out.append(col.tolist())
        known = np.zeros(n, dtype=bool)
        if has_fill:
            for j in unseen:
                known[j] = any(a is not None for a in absent(j))
        return out, found, known

    def flush(self) -> None:
        rows = self.rows
        if not rows:
            return
        cols, found, known = self.strings(self.contig)
        parts: list[Any] = []  # "K1=", v1, ";K2=", v2, ...: the INFO text of each allele alone, by one join each
        for i, (name, vals) in enumerate(zip((c[0] for c in self.columns), cols, strict=True)):
            parts += [repeat(("" if i == 0 else ";") + name + "="), vals]
        texts = list(map("".join, zip(*parts, strict=False)))  # strict=False: the repeats are endless
        rep = self.report
        rep.n_found += int(found.sum())
        rep.n_absent += int(known.sum())
        adds: list[str | None]
        if len(texts) == len(rows) and self.counts.count(1) == len(rows):
            adds = texts  # type: ignore[assignment]
        else:
            adds, j = [], 0
            for c in self.counts:
                adds.append(texts[j] if c == 1 else self._several(j, c, cols))
                j += c
        infos = list(map(itemgetter(7), rows))
        strip = self.ours  # INFO keys of ours the input already declared: replaced, not repeated
        if strip:
            new = [info if add is None else _merge(info, add, strip) for info, add in zip(infos, adds, strict=True)]
        else:
            new = [info if add is None else add if info == "." or not info else f"{info};{add}"
                   for info, add in zip(infos, adds, strict=True)]
        for fields, info in zip(rows, new, strict=True):
            fields[7] = info
        rep.n_records += len(rows)
        rep.n_alleles += len(texts)
        self.sink.write(("\n".join(map("\t".join, rows)) + "\n").encode())
        self.rows, self.counts, self.pos, self.ref, self.alt = [], [], [], [], []

    def _several(self, j: int, c: int, cols: list[list[str]]) -> str | None:
        """The INFO text of a record with no allele (None) or ``c`` alleles from the ``j``-th (values joined by
        commas per column)."""
        if not c:
            return None
        return ";".join(f"{k[0]}={','.join(vals[j:j + c])}" for k, vals in zip(self.columns, cols, strict=True))


def _rows_by_group(seen: Seen, n_groups: int) -> list[list[int] | None]:
    """Per group the rows of ``seen`` that are of it; None when every row is of it (one group asked for)."""
    if all(g == 0 for g in seen.group) and n_groups == 1:
        return [None]
    by: list[list[int] | None] = [[] for _ in range(n_groups)]
    for r, g in enumerate(seen.group):
        if g >= 0:
            by[g].append(r)  # type: ignore[union-attr]
    return by


def _merge(info: str, add: str, strip: set[str]) -> str:
    """``add`` after the INFO ``info`` without the keys of ``strip`` (fields of ours the input already has)."""
    if info == "." or not info:
        return add
    info = ";".join(i for i in info.split(";") if i.split("=", 1)[0] not in strip) or "."
    return add if info == "." else f"{info};{add}"


def _unseen(an: int | None) -> Values:
    if an is None:
        return (None, None, None, None, None, None)
    return (0, an, 0, 0, 0.0 if an else None, None)


def af(ac: int | None, an: int | None) -> float | None:
    return ac / an if ac is not None and an else None


def value(f: str, v: Values) -> str:
    """One field of one group's values as INFO text."""
    ac, an, nhomalt, nhemi, faf95, grpmax = v
    if f == "ac":
        return fmt_value(ac)
    if f == "an":
        return fmt_value(an)
    if f == "af":
        return fmt_value(af(ac, an))
    if f == "nhomalt":
        return fmt_value(nhomalt)
    if f == "nhemi":
        return fmt_value(nhemi)
    if f == "faf95":
        return fmt_value(faf95)
    return fmt_value(grpmax)


def column(f: str, seen: Seen, rows: list[int] | None = None) -> list[str]:
    """``value(f, v)`` of the values ``v`` of each row of ``seen`` (or of ``rows`` of it), without a call per
    row where the values are of the types the look-up gives (ints, floats, None); any other goes to
    :func:`value`."""
    names = ("ac", "an", "nhomalt", "nhemi", "faf95", "grpmax")
    cols = [getattr(seen, name) for name in names]
    if rows is not None:
        cols = [[c[r] for r in rows] for c in cols]
    if f in ("ac", "an", "nhomalt", "nhemi"):
        xs = cols[names.index(f)]
        if all(x.__class__ is int or x is None for x in xs):
            return ["." if x is None else str(x) for x in xs]
    elif f == "af":
        fs = [ac / an if ac is not None and an else None for ac, an in zip(cols[0], cols[1], strict=True)]
        if all(x.__class__ is float or x is None for x in fs):
            return ["." if x is None or x != x else f"{x:.6g}" for x in fs]
    elif f == "faf95" and all(x.__class__ is float or x is None for x in cols[4]):
        return ["." if x is None or x != x else f"{x:.6g}" for x in cols[4]]
    return [value(f, v) for v in zip(*cols, strict=True)]
