"""Per-phenotype counts at one site, in numpy over an in-memory index of the lake's samples.

A point query's carrier breakdown needs, for every sample, whether it counts at the site (its file lists the
site, or counts absent sites), its genotype there (stored call or implied 0/0) and its phenotype values. The
samples, their files, ploidies and categorical phenotypes are small, so they are indexed once per engine
refresh (one row per sample and file); a query then reads only the site's calls and adds them up with
``numpy.bincount``, which is far cheaper than joining the tables in SQL for every query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from genolake.query.engine import Engine


@dataclass
class SampleIndex:
    """One entry per (file, sample) row of `samples`."""

    index: dict[tuple[str, str], int]  # (file_id, sample_id) -> row
    file_codes: np.ndarray  # row -> position in file_ids
    file_ids: list[str]
    groups: list[tuple[str, list[str], np.ndarray]]  # (phenotype, values, row -> value code or -1)
    ploidy: dict[str, np.ndarray] = field(default_factory=dict)  # contig -> row -> ploidy (0: no row)
    _by_file: dict[str, dict[str, int]] | None = None  # file_id -> sample_id -> row, made on first use

    @classmethod
    def build(cls, eng: Engine, names: list[str]) -> SampleIndex:
        from genolake.query.engine import quote_ident

        cols = "".join(f", p.{quote_ident(n)}" for n in names)
        rows = eng.rows(f"SELECT s.file_id, s.sample_id{cols} FROM samples s LEFT JOIN phenotypes p "
                        "ON p.institution = s.institution AND p.sample_id = s.sample_id")
        file_ids = sorted({r[0] for r in rows})
        fpos = {f: i for i, f in enumerate(file_ids)}
        index = {(r[0], r[1]): i for i, r in enumerate(rows)}
        groups = []
        for k, name in enumerate(names, start=2):
            values = sorted({r[k] for r in rows if r[k] is not None})
            vpos = {v: j for j, v in enumerate(values)}
            codes = np.fromiter((vpos.get(r[k], -1) for r in rows), np.int32, len(rows))
            groups.append((name, values, codes))
        return cls(index, np.fromiter((fpos[r[0]] for r in rows), np.int32, len(rows)), file_ids, groups)

    def rows_of(self, file_ids: list[str], sample_ids: list[str]) -> np.ndarray:
        """The row of each (file_id, sample_id) pair, -1 for a sample not in the index. Calls come file by file
        (a run per file): each run is looked up in its file's own dictionary."""
        n = len(file_ids)
        if self._by_file is None:
            by_file: dict[str, dict[str, int]] = {}
            for (fid, sid), i in self.index.items():
                by_file.setdefault(fid, {})[sid] = i
            self._by_file = by_file
        out = np.full(n, -1, np.int64)
        start = 0
        for fid in dict.fromkeys(file_ids):
            count = file_ids.count(fid)
            if file_ids[start:start + count].count(fid) != count:  # not one run per file: pair by pair
                get = self.index.get
                return np.fromiter((get(k, -1) for k in zip(file_ids, sample_ids, strict=True)), np.int64, n)
            lookup = self._by_file.get(fid)
            if lookup is not None:
                out[start:start + count] = np.fromiter(map(lookup.get, sample_ids[start:start + count],
                                                            repeat(-1)), np.int64, count)
            start += count
        return out

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

    def file_mask(self, files: list[str]) -> np.ndarray:
        want = np.zeros(len(self.file_ids) + 1, bool)
        pos = {f: i for i, f in enumerate(self.file_ids)}
        for f in files:
            if f in pos:
                want[pos[f]] = True
        return want[self.file_codes] if len(self.file_codes) else np.zeros(0, bool)


def breakdown(eng: Engine, idx: SampleIndex, contig: str, present: list[str], fill: list[str],
              calls: pa.Table) -> list[dict[str, Any]]:
    """Rows {phenotype, value, samples, carriers, ac, an, af, nhomalt, nhemi} from the site's stored calls
    (columns file_id, sample_id, ploidy, called, alt_count) and the files listing (``present``) or counting
    (``fill``) the site."""
    n = len(idx.index)
    base = np.zeros(n, np.int64)
    counted = np.zeros(n, bool)
    if present:
        m = idx.file_mask(present)
        base[m] = 2
        counted |= m
    if fill:
        pl = idx.ploidy_of(eng, contig)
        m = idx.file_mask(fill) & (pl > 0)
        base[m] = pl[m]
        counted |= m
    ac = np.zeros(n, np.int64)
    carrier = np.zeros(n, bool)
    hom = np.zeros(n, bool)
    hemi = np.zeros(n, bool)
    if calls.num_rows:
        from genolake.query.arrays import numpy_values

        found = idx.rows_of(calls.column("file_id").to_pylist(), calls.column("sample_id").to_pylist())
        ok = found >= 0
        i = found[ok]
        ploidy, called, alt_count = (numpy_values(calls.column(c))[ok] for c in ("ploidy", "called", "alt_count"))
        base[i] = called
        ac[i] = alt_count
        carrier[i] = alt_count > 0
        hom[i] = (ploidy == 2) & (alt_count == 2)
        hemi[i] = (ploidy == 1) & (alt_count == 1)
    out = []
    for name, values, codes in idx.groups:
        sel = counted & (codes >= 0)
        c = codes[sel]
        k = len(values)
        samples = np.bincount(c, minlength=k)
        sums = {
            "carriers": np.bincount(c, weights=carrier[sel], minlength=k),
            "ac": np.bincount(c, weights=ac[sel], minlength=k),
            "an": np.bincount(c, weights=base[sel], minlength=k),
            "nhomalt": np.bincount(c, weights=hom[sel], minlength=k),
            "nhemi": np.bincount(c, weights=hemi[sel], minlength=k),
        }
        for v, value in enumerate(values):
            if samples[v] == 0:
                continue
            a, an = int(sums["ac"][v]), int(sums["an"][v])
            out.append({"phenotype": name, "value": value, "samples": int(samples[v]),
                        "carriers": int(sums["carriers"][v]), "ac": a, "an": an, "af": a / an if an else None,
                        "nhomalt": int(sums["nhomalt"][v]), "nhemi": int(sums["nhemi"][v])})
    return out
