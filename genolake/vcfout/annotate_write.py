"""The chunk writer of `genolake annotate-vcf`: looks the alleles of a chunk up in the lake, formats every column of
their values at once, writes the chunk's records with the new INFO fields."""

from __future__ import annotations

from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from genolake.vcfout.common import fmt_value

if TYPE_CHECKING:
    from genolake.vcfout.annotate_lookup import Group, Key, Lookup, Seen, Values
    from genolake.vcfout.annotate_vcf import AnnotateReport


class ChunkWriter:
    """Buffers the records of one chunk, looks their alleles up, writes them with the new INFO fields.

    ``rows`` holds each record's text fields, ``keys`` the key of its one allele, or the list of its keys (none or
    several)."""

    def __init__(self, sink: Any, lookup: Lookup, columns: list[tuple[str, str, Group]], report: AnnotateReport,
                 ours: set[str]) -> None:
        self.sink = sink
        self.lookup = lookup
        self.columns = columns
        self.report = report
        self.ours = ours
        self.contig = ""
        self.rows: list[list[str]] = []
        self.keys: list[Key | list[Key]] = []
        self.groups = list(dict.fromkeys(c[2] for c in columns))

    def _absent(self, contig: str, pos: int) -> tuple[int | None, ...]:
        return tuple(self.lookup.absent_an(contig, pos, g) for g in self.groups)

    def strings(self, contig: str, keys: list[Key]) -> tuple[list[list[str]], list[bool], list[bool]]:
        """For distinct alleles ``keys``: the formatted values of every column (``.`` where missing), whether the
        lake has seen each allele, and whether an unseen one got an AN from the absent-site rules."""
        n = len(keys)
        seen = self.lookup.seen(contig, keys)
        gi = {g: i for i, g in enumerate(self.groups)}
        found = np.zeros(n, dtype=bool)
        found[seen.key] = True
        has_fill = bool(self.lookup.fill_files(contig))
        none = (None,) * len(self.groups)
        absent_of: dict[int, tuple[int | None, ...]] = {}

        def absent(j: int) -> tuple[int | None, ...]:
            pos = keys[j][0]
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
        known = [False] * n
        if has_fill:
            for j in unseen:
                known[j] = any(a is not None for a in absent(j))
        return out, found.tolist(), known

    def flush(self) -> None:
        rows, entries = self.rows, self.keys
        if not rows:
            return
        singles = [k for k in entries if isinstance(k, tuple)]
        several = [k for k in entries if not isinstance(k, tuple)]
        all_keys = singles + [k for ks in several for k in ks]
        keys = list(dict.fromkeys(all_keys))
        cols, found, known = self.strings(self.contig, keys)
        template = ";".join(f"{c[0]}={{}}" for c in self.columns)
        text = dict(zip(keys, map(template.format, *cols), strict=True))
        rep = self.report
        if any(found):
            got = set(compress(keys, found))
            rep.n_found += sum(map(got.__contains__, all_keys))
        if any(known):
            got = set(compress(keys, known))
            rep.n_absent += sum(map(got.__contains__, all_keys))
        at = {k: j for j, k in enumerate(keys)} if several else {}
        adds = [text[e] if isinstance(e, tuple) else self._several(e, at, cols) for e in entries]
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
        rep.n_alleles += len(all_keys)
        self.sink.write(("\n".join(map("\t".join, rows)) + "\n").encode())
        self.rows = []
        self.keys = []

    def _several(self, ks: list[Key], at: dict[Key, int], cols: list[list[str]]) -> str | None:
        """The INFO text of a record with no allele (None) or several (values joined by commas per column)."""
        if not ks:
            return None
        return ";".join(f"{c[0]}={','.join(vals[at[k]] for k in ks)}" for c, vals in zip(self.columns, cols, strict=True))


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
