"""Per-phenotype counts at one site, in numpy over an in-memory index of the lake's samples.

A point query's carrier breakdown needs, for every sample, whether it counts at the site (its file lists the
site, or counts absent sites), its genotype there (stored call or implied 0/0) and its phenotype values. The
samples, their files, ploidies and categorical phenotypes are small, so they are indexed once per engine
refresh (one row per sample and file); a query then reads only the site's calls and adds them up with
``numpy.bincount``, which is far cheaper than joining the tables in SQL for every query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from genolake import genotypes as gtc

if TYPE_CHECKING:
    from genolake.query.engine import Engine


@dataclass
class SampleIndex:
    """One entry per (file, sample) row of `samples`."""

    index: dict[tuple[str, str], int]  # (file_id, sample_id) -> row
    file_codes: np.ndarray  # row -> position in file_ids
    file_ids: list[str]
    groups: list[tuple[str, list[str], np.ndarray]]  # (phenotype, values, row -> value code or -1)
    ploidy: dict[str, np.ndarray] = field(default_factory=dict)  # contig -> row -> ploidy (0: no row)
    _fpos: dict[str, int] | None = None
    _tallies: dict[Any, Any] = field(default_factory=dict)  # per-file tallies, made on first use
    by_column: dict[str, np.ndarray] = field(default_factory=dict)  # file_id -> column index -> row (-1: nobody)

    @classmethod
    def build(cls, eng: Engine, names: list[str]) -> SampleIndex:
        from genolake.query.engine import quote_ident

        cols = "".join(f", p.{quote_ident(n)}" for n in names)
        # the `phenotypes` view's columns, pivoted here for these names only (the wide view is not made)
        rows = eng.rows(f"SELECT s.file_id, s.sample_id{cols}, s.column_index FROM samples s LEFT JOIN "
                        f"{eng.phenotype_source(names)} p ON p.institution = s.institution AND p.sample_id = s.sample_id")
        file_ids = sorted({r[0] for r in rows})
        fpos = {f: i for i, f in enumerate(file_ids)}
        index = {(r[0], r[1]): i for i, r in enumerate(rows)}
        groups = []
        for k, name in enumerate(names, start=2):
            values = sorted({r[k] for r in rows if r[k] is not None})
            vpos = {v: j for j, v in enumerate(values)}
            codes = np.fromiter((vpos.get(r[k], -1) for r in rows), np.int32, len(rows))
            groups.append((name, values, codes))
        widths: dict[str, int] = {}
        for r in rows:
            widths[r[0]] = max(widths.get(r[0], 0), int(r[-1]) + 1)
        by_column = {f: np.full(n, -1, np.int64) for f, n in widths.items()}
        for i, r in enumerate(rows):
            by_column[r[0]][int(r[-1])] = i
        return cls(index, np.fromiter((fpos[r[0]] for r in rows), np.int32, len(rows)), file_ids, groups,
                   by_column=by_column)

    def rows_at(self, file_ids: list[str], row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """The index row of each stored call given as (row of ``file_ids``, column index), -1 where no sample
        holds that column (a withdrawn person)."""
        out = np.full(len(row), -1, np.int64)
        for fid, at in zip(file_ids, _file_runs(row, len(file_ids)), strict=True):
            cols = self.by_column.get(fid)
            c = col[at]
            if cols is None or not len(c):
                continue
            if int(c.max()) < len(cols):
                out[at] = cols[c]
                continue
            ok = c < len(cols)
            out[np.arange(len(row))[at][ok]] = cols[c[ok]]
        return out

    def file_positions(self) -> dict[str, int]:
        """file_id -> its position in ``file_ids`` (the values of ``file_codes``)."""
        if self._fpos is None:
            self._fpos = {f: i for i, f in enumerate(self.file_ids)}
        return self._fpos

    def value_counts(self, g: int) -> np.ndarray:
        """(files, values) matrix: samples of each file with each value of group ``g``."""
        got = self._tallies.get(("n", g))
        if got is None:
            _name, values, codes = self.groups[g]
            got = self._tally(codes, np.ones(len(codes), np.int64), len(values))
            self._tallies[("n", g)] = got
        return got

    def fill_counts(self, eng: Engine, contig: str, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(files, values) matrices for absent-site counting on ``contig``: samples with a ploidy there, and the
        sum of their ploidies."""
        key = ("fill", g, contig)
        got = self._tallies.get(key)
        if got is None:
            _name, values, codes = self.groups[g]
            pl = self.ploidy_of(eng, contig).astype(np.int64)
            got = (self._tally(codes, (pl > 0).astype(np.int64), len(values)), self._tally(codes, pl, len(values)))
            self._tallies[key] = got
        return got

    def value_ids(self) -> tuple[np.ndarray, int]:
        """(rows, phenotypes) matrix of each sample's value as an index into the values of every phenotype one
        after the other (``width`` of them; ``width`` where the sample has no value), and ``width``."""
        got = self._tallies.get("ids")
        if got is None:
            width = sum(len(values) for _n, values, _c in self.groups)
            ids = np.full((len(self.file_codes), len(self.groups)), width, np.int64)
            at = 0
            for j, (_name, values, codes) in enumerate(self.groups):
                has = codes >= 0
                ids[has, j] = codes[has] + at
                at += len(values)
            got = self._tallies["ids"] = (ids, width)
        return got  # type: ignore[no-any-return]

    def combinations(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Each sample's combination of values of every phenotype, numbered densely: (row -> combination, and a
        (combinations, width + 1) matrix of how many of each value (see :meth:`value_ids`) a combination holds);
        None when there are more than MAX_COMBINATIONS combinations (then calls are summed per phenotype)."""
        if "combinations" not in self._tallies:
            ids, width = self.value_ids()
            got: tuple[np.ndarray, np.ndarray] | None = None
            if ids.shape[0] and (width + 1) ** ids.shape[1] < 2**62:
                mixed = np.zeros(ids.shape[0], np.int64)
                for j in range(ids.shape[1]):  # a mixed-radix number of the value ids
                    mixed = mixed * (width + 1) + ids[:, j]
                uniq, dense = np.unique(mixed, return_inverse=True)
                if len(uniq) <= MAX_COMBINATIONS:
                    first = np.zeros(len(uniq), np.int64)
                    first[dense[::-1]] = np.arange(len(dense))[::-1]  # a row holding each combination
                    member = np.zeros((len(uniq), width + 1), np.int64)
                    for j in range(ids.shape[1]):
                        np.add.at(member, (np.arange(len(uniq)), ids[first, j]), 1)
                    got = (dense.astype(np.int64), member)
            self._tallies["combinations"] = got
        return self._tallies["combinations"]  # type: ignore[no-any-return]

    def combination_by_column(self, file_id: str) -> np.ndarray | None:
        """A file's column index -> the combination (:meth:`combinations`) of the sample in that column, -1 where
        nobody is (int32: a point query looks up its stored calls' columns in this one small array); None when
        the file is unknown or values are not counted by combination."""
        key = ("combo_col", file_id)
        if key not in self._tallies:
            combos = self.combinations()
            cols = self.by_column.get(file_id)
            got = None
            if combos is not None and cols is not None:
                got = np.where(cols >= 0, combos[0][np.maximum(cols, 0)], -1).astype(np.int32)
            self._tallies[key] = got
        return self._tallies[key]  # type: ignore[no-any-return]

    def combination_pairs(self, file_id: str, nbytes: int) -> np.ndarray | None:
        """A file's packed ``gt`` byte -> the combination (:meth:`combinations`) of the sample in its high nibble
        (even column) and in its low nibble (odd column), times ``_KINDS``: for rows of ``nbytes`` bytes, (nbytes,)
        int64 holding the two as int32 (high, low); where nobody is (a withdrawn person, the padding of an odd
        sample count, columns past the file's samples) the extra combination ``len(member)``, which holds no
        value. None as for :meth:`combination_by_column`."""
        key = ("combo_pairs", file_id, nbytes)
        if key not in self._tallies:
            cols = self.combination_by_column(file_id)
            got = None
            if cols is not None:
                combos = self.combinations()
                assert combos is not None
                nobody = len(combos[1])
                full = np.full(2 * nbytes, nobody, np.int64)
                n = min(len(cols), 2 * nbytes)
                full[:n] = np.where(cols[:n] >= 0, cols[:n], nobody)
                full *= _KINDS  # pre-multiplied: a call's bincount slot is this plus its kind
                # each byte's two int32 as one int64: one 1-D gather a byte (a 2-D row gather costs ~5x more)
                got = full.astype(np.int32).view(np.int64)
            self._tallies[key] = got
        return self._tallies[key]  # type: ignore[no-any-return]

    def value_tallies(self) -> tuple[np.ndarray, int]:
        """:meth:`value_counts` of every phenotype side by side: a (files, width) matrix (see :meth:`value_ids`)."""
        got = self._tallies.get("n_all")
        if got is None:
            parts = [self.value_counts(g) for g in range(len(self.groups))]
            mat = np.concatenate(parts, axis=1) if parts else np.zeros((len(self.file_ids), 0), np.int64)
            got = self._tallies["n_all"] = (mat, mat.shape[1])
        return got  # type: ignore[no-any-return]

    def fill_tallies(self, eng: Engine, contig: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`fill_counts` of every phenotype side by side (files, width)."""
        key = ("fill_all", contig)
        got = self._tallies.get(key)
        if got is None:
            parts = [self.fill_counts(eng, contig, g) for g in range(len(self.groups))]
            empty = np.zeros((len(self.file_ids), 0), np.int64)
            got = self._tallies[key] = (np.concatenate([p[0] for p in parts], axis=1) if parts else empty,
                                        np.concatenate([p[1] for p in parts], axis=1) if parts else empty)
        return got  # type: ignore[no-any-return]

    def _tally(self, codes: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        n_files = len(self.file_ids)
        m = codes >= 0
        if not k or not n_files:
            return np.zeros((n_files, k), np.int64)
        flat = self.file_codes[m].astype(np.int64) * k + codes[m]
        return np.bincount(flat, weights=weights[m], minlength=n_files * k).astype(np.int64).reshape(n_files, k)

    def ploidy_of(self, eng: Engine, contig: str) -> np.ndarray:
        if contig not in self.ploidy:
            arr = np.zeros(len(self.index), np.int32)
            for fid, sid, pl in eng.rows("SELECT file_id, sample_id, ploidy FROM ploidy WHERE contig = $c",
                                         {"c": contig}):
                i = self.index.get((fid, sid))
                if i is not None:
                    arr[i] = pl
            self.ploidy[contig] = arr
        return self.ploidy[contig]


def count_site(eng: Engine, idx: SampleIndex, contig: str, present: list[str], fill: list[str],
               file_ids: list[str], row: np.ndarray, col: np.ndarray, ploidy: np.ndarray, called: np.ndarray,
               alt_count: np.ndarray) -> list[dict[str, Any]]:
    """:func:`count_breakdown` of a site's stored calls given as (row of ``file_ids``, column index), row by row
    (the codec's order): the calls are mapped to sample index rows (:meth:`SampleIndex.rows_at`). The way for
    the sites :func:`count_site_packed` declines (a file with two rows at the site, a call of another ploidy,
    values not counted by combination)."""
    found = idx.rows_at(file_ids, row, col)
    return count_breakdown(eng, idx, contig, present, fill, found, ploidy, called, alt_count,
                           distinct=len(set(file_ids)) == len(file_ids))


def count_site_packed(eng: Engine, idx: SampleIndex, contig: str, present: list[str], fill: list[str],
                      file_ids: list[str], gt: list[tuple[np.ndarray, np.ndarray] | None],
                      gt_symbols: list[str | None]) -> list[dict[str, Any]] | None:
    """:func:`count_site` straight from the site's packed ``gt`` rows (one per file in ``file_ids``, each as its
    bytes (uint8) and the positions of its nonzero bytes, as :meth:`Engine.point_rows` gives a ``nonzero`` column;
    alphabets ``gt_symbols``), with no per-call arrays of codes, ploidies or columns: each nonzero byte's two samples are
    looked up in the file's (byte -> combination) arrays and in the alphabet's (byte -> kind) tables, and the
    (combination, kind) pairs are counted in one bincount, weighed by the counting rule as in
    :func:`count_site`. Zero bytes (two 0/0 samples) and 0/0 nibbles add nothing (a 0/0 call's weights are 0),
    so the cost is a few operations per stored call (the positions of the nonzero bytes come with the row; the
    point reader keeps them per cached row group). None (the caller decodes
    the calls and uses :func:`count_site`) unless each file has one row, every file lists the site, values are
    counted by combination and no call is of another ploidy (:data:`genotypes.OTHER`)."""
    combos = idx.combinations()
    if (combos is None or not gt or len(set(file_ids)) != len(file_ids) or not set(file_ids) <= set(present)
            or any(g is None for g in gt)):
        return None
    member = combos[1]
    n_combos = len(member) + 1  # with the combination of nobody
    parts: list[np.ndarray] = []
    for fid, packed, symbols in zip(file_ids, gt, gt_symbols, strict=True):
        assert packed is not None
        raw, at = packed
        pairs = idx.combination_pairs(fid, len(raw))
        if pairs is None:
            return None
        if not len(at):
            continue
        kinds, other = _byte_kinds(symbols)
        k = kinds[raw[at]].view(np.int32)  # the kinds of each byte's high and low nibble's call, in turn
        if other and bool((k < 0).any()):
            return None  # a call of another ploidy: its text decides
        parts.append(pairs[at].view(np.int32) + k)
    ids = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int32)  # 1: no copy
    per = np.bincount(ids, minlength=n_combos * _KINDS).reshape(n_combos, _KINDS)
    used = np.flatnonzero(per[:-1].any(axis=1))  # combinations with a call (not nobody)
    sums = member[used].T @ (per[used] @ _kind_weights())
    fpos = idx.file_positions()
    return _breakdown_rows(eng, idx, contig, [fpos[f] for f in present if f in fpos],
                           [fpos[f] for f in fill if f in fpos], sums)


@lru_cache(maxsize=256)
def _byte_kinds(symbols: str | None) -> tuple[np.ndarray, bool]:
    """For the alphabet ``symbols``: the kind (:func:`_kind_of`, implied AN 2: a file listing the site) of the
    call in each packed byte's high nibble and in its low nibble, as a (256,) int64 table holding the two as int32
    (high, low), and whether any entry is :data:`genotypes.OTHER` (negative there: its text decides)."""
    k = np.arange(gtc.OTHER + 1)
    kinds = _kind_of(gtc.PLOIDY[k], gtc.CALLED[k], gtc.ALT_COUNT[k], 2)
    kinds[gtc.OTHER] = -(1 << 30)
    table = np.stack([kinds[c] for c in gtc.byte_codes(symbols)], axis=1).astype(np.int32)
    return np.ascontiguousarray(table).view(np.int64).reshape(256), bool((table < 0).any())


def count_breakdown(eng: Engine, idx: SampleIndex, contig: str, present: list[str], fill: list[str],
                    found: np.ndarray, ploidy: np.ndarray, called: np.ndarray,
                    alt_count: np.ndarray, *, distinct: bool = False) -> list[dict[str, Any]]:
    """Rows {phenotype, value, samples, carriers, ac, an, af, nhomalt, nhemi} from the site's stored calls, given
    as index rows (``found``, -1: no sample; see :meth:`SampleIndex.rows_at`) with their ploidy, called alleles
    and alt count in the order of the calls, and the files listing (``present``) or counting (``fill``) the site.
    ``distinct``: the caller knows no sample has two calls (each file has one row at the site), so the check for
    a second call of a sample is skipped.

    The samples without a stored call are counted per file from tallies made once per lake version (samples
    per file and phenotype value; for absent-site files, those with a ploidy on the contig and their ploidy
    sum), so a query costs the number of files and stored calls, not the number of samples. The calls are
    counted by kind and by combination of phenotype values in one bincount, then weighed by the counting rule
    once per kind (not once per call)."""
    fpos = idx.file_positions()
    pres = [fpos[f] for f in present if f in fpos]
    fills = [fpos[f] for f in fill if f in fpos]
    pl = idx.ploidy_of(eng, contig) if fills else None
    gcodes, width = idx.value_ids()
    nv = width + 1  # every phenotype's values, then one slot for a sample without a value
    g = gcodes.shape[1]
    if not len(found) or not g:
        return _breakdown_rows(eng, idx, contig, pres, fills, np.zeros((nv, 5), np.int64))
    rows = found
    ploidy, called, alt_count = (np.asarray(x) for x in (ploidy, called, alt_count))
    if int(found.min()) < 0:  # calls of nobody (a withdrawn person's column)
        ok = found >= 0
        rows, ploidy, called, alt_count = rows[ok], ploidy[ok], called[ok], alt_count[ok]
    if not distinct:  # one call per sample (a second row of the same allele in a file: the last one counts)
        uniq, last = np.unique(rows[::-1], return_index=True)
        if len(uniq) != len(rows):
            keep = np.sort(len(rows) - 1 - last)
            rows, ploidy, called, alt_count = rows[keep], ploidy[keep], called[keep], alt_count[keep]
    # the implied 0/0 already in AN for every counted sample: 2 in a file listing the site, its ploidy in a file
    # counting the absent site
    base: np.ndarray | int = 2
    call_file = idx.file_codes[rows]
    is_pres = np.zeros(len(idx.file_ids), bool)
    is_pres[pres] = True
    counted = is_pres[call_file]
    if pl is not None:
        is_fill = np.zeros(len(idx.file_ids), bool)
        is_fill[fills] = True
        in_fill = is_fill[call_file] & (pl[rows] > 0)
        base = np.where(in_fill, pl[rows], np.where(counted, 2, 0))
        counted = counted | in_fill
    if not counted.all():
        rows, ploidy, called, alt_count = rows[counted], ploidy[counted], called[counted], alt_count[counted]
        if not isinstance(base, int):
            base = base[counted]
    if len(rows) and int(ploidy.max()) <= 2 and int(np.max(base)) <= 2:
        # calls of at most two alleles come in _KINDS kinds (ploidy, called, alt count, implied AN): count the
        # calls of each kind per value, then weigh the kinds once by their counts (the lake's counting rule,
        # _kind_weights); calls are counted per combination of values of every phenotype (one bincount over
        # the calls), or when there are many combinations, per (call, phenotype) pair
        kind = _kind_of(ploidy, called, alt_count, base)
        combos = idx.combinations()
        if combos is not None:
            combo, member = combos
            sums = _combination_sums(combo[rows], kind, member)
        else:
            slots = (gcodes[rows] * _KINDS + kind[:, None]).reshape(-1)
            sums = np.bincount(slots, minlength=nv * _KINDS).reshape(nv, _KINDS) @ _kind_weights()
    elif len(rows):  # other ploidies: every call weighed by its own counts
        ploidy, called, alt_count = (np.asarray(x, np.int64) for x in (ploidy, called, alt_count))
        per_call = gtc.call_counts(ploidy, called, alt_count)
        weights = np.stack([per_call[:, 0], per_call[:, 1] - base, gtc.carries(alt_count).astype(np.int64),
                            per_call[:, 3], per_call[:, 4]], axis=1)
        slots = (gcodes[rows][:, :, None] * 5 + np.arange(5)).reshape(-1)  # (call, phenotype, count) -> slot
        sums = np.bincount(slots, weights=np.broadcast_to(weights[:, None, :], (len(rows), g, 5)).reshape(-1),
                           minlength=nv * 5).astype(np.int64).reshape(nv, 5)
    else:
        sums = np.zeros((nv, 5), np.int64)
    return _breakdown_rows(eng, idx, contig, pres, fills, sums)


_KINDS = 81  # (ploidy, called alleles, alt count, implied AN) each 0-2
MAX_COMBINATIONS = 256  # of phenotype values, counted per combination (see SampleIndex.combinations)


def _file_runs(row: np.ndarray, n_files: int) -> list[slice | np.ndarray]:
    """Per file (row of the site, 0..``n_files`` - 1) the positions of its calls: one slice each when the calls
    come row by row (the codec's order; found by binary search), else index arrays."""
    if len(row) < 2 or bool(np.all(row[1:] >= row[:-1])):
        bounds = np.searchsorted(row, np.arange(n_files + 1)).tolist()
        return [slice(bounds[i], bounds[i + 1]) for i in range(n_files)]
    return [np.flatnonzero(row == i) for i in range(n_files)]


def _kind_of(ploidy: np.ndarray, called: np.ndarray, alt_count: np.ndarray, base: np.ndarray | int) -> np.ndarray:
    """Each call's kind (0.._KINDS - 1) from its ploidy, called alleles, alt count and implied AN, each 0-2."""
    return ((np.asarray(ploidy, np.int64) * 3 + called) * 3 + alt_count) * 3 + base


def _combination_sums(combo: np.ndarray, kind: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(values + 1, 5) sums per phenotype value (see :func:`_breakdown_rows`) of calls given by their combination
    of phenotype values (:meth:`SampleIndex.combinations`, whose ``member`` matrix this is) and kind: the calls
    are counted per (combination, kind) in one bincount and each kind weighed once by the counting rule."""
    per = np.bincount(combo.astype(np.int64) * _KINDS + kind, minlength=len(member) * _KINDS)
    return member.T @ (per.reshape(len(member), _KINDS) @ _kind_weights())  # type: ignore[no-any-return]


@cache
def _kind_weights() -> np.ndarray:
    """(_KINDS, 5): per kind of call (see :func:`count_breakdown`) what it adds to AC, to AN beyond the implied
    0/0 (called alleles minus the implied AN), to carriers, nhomalt and nhemi: :func:`genotypes.call_counts` and
    :func:`genotypes.carries`."""
    k = np.arange(_KINDS)
    base, alt, called, ploidy = k % 3, k // 3 % 3, k // 9 % 3, k // 27
    per = gtc.call_counts(ploidy, called, alt)
    return np.stack([per[:, 0], per[:, 1] - base, gtc.carries(alt).astype(np.int64), per[:, 3], per[:, 4]],
                    axis=1).astype(np.int64)


def _breakdown_rows(eng: Engine, idx: SampleIndex, contig: str, pres: list[int], fills: list[int],
                    sums: np.ndarray) -> list[dict[str, Any]]:
    """The rows of :func:`count_breakdown` from the stored calls' sums per value (``sums``: value, then AC, AN
    beyond the implied 0/0, carriers, nhomalt, nhemi) and the per-file tallies of the samples without a call."""
    width = sums.shape[0] - 1
    per_file, _ = idx.value_tallies()
    samples = per_file[pres].sum(axis=0)
    an = 2 * samples
    if fills:
        n_fill, pl_fill = idx.fill_tallies(eng, contig)
        samples = samples + n_fill[fills].sum(axis=0)
        an = an + pl_fill[fills].sum(axis=0)
    an = an + sums[:width, 1]
    ac, carriers, nhomalt, nhemi = sums[:width, 0], sums[:width, 2], sums[:width, 3], sums[:width, 4]
    out = []
    at = 0
    for name, values, _codes in idx.groups:
        for v, value in enumerate(values, start=at):
            if samples[v] == 0:
                continue
            a, n_an = int(ac[v]), int(an[v])
            out.append({"phenotype": name, "value": value, "samples": int(samples[v]),
                        "carriers": int(carriers[v]), "ac": a, "an": n_an, "af": a / n_an if n_an else None,
                        "nhomalt": int(nhomalt[v]), "nhemi": int(nhemi[v])})
        at += len(values)
    return out
