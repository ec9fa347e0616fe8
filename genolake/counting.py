"""Counting one contig range with numpy: AC, AN, nhomalt, nhemi and n_called per site, scope (the joint cohort,
each institution) and stratum (and carriers, for groups of people). Core: `genolake aggregate`
(:mod:`genolake.compute.frequencies`) and the query layer's group counts (:func:`genolake.query.counts.group_ctes`:
assoc, ``region --where``, regressions, ``annotate-vcf`` strata) both count with it; it imports nothing above
:mod:`genolake.schema` and :mod:`genolake.genotypes`.

Under the lake's counting rule (docs/SCHEMA.md; :mod:`genolake.compute.frequencies` explains it), a site's count
in a group of people is the sum of three parts:

- **presence**: every counted person of a file that lists the site starts as an implied diploid 0/0 (2 alleles,
  called). Per site and group this is ``n`` people, from the ``variants`` rows and the number of the file's people
  in the group;
- **fill**: a person of a ``--absent-as-ref`` file (or a ``--callable-regions`` file, inside its regions) whose
  file does not list the site adds their ploidy on the contig as reference alleles;
- **stored calls**: each non-0/0 call departs from the implied 0/0 by a fixed vector over (ac, an - 2, missing
  allele, hom-alt, hemizygous alt): the row of its genotype code in :data:`CLASS_METRICS` (the one definition of
  the rule for codes; calls of other ploidies, code 22, get the same vector from their own text, and a call
  failing ``--adj`` the row of a missing call). Per file and code present, the calls form a sparse
  (sites x samples) indicator matrix; multiplied by the file's (samples x groups) membership matrix it gives how
  many calls of that code each group has at each site (a person counts in every group they are in). The counts
  times the code's vector, summed over the codes, are the stored calls' share.

Everything is held densely per (site, institution, stratum): the output has a row for nearly every such cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genolake.schema import ADJ_AB, ADJ_DP, ADJ_DP_HAPLOID, ADJ_GQ

_I64 = pa.int64()
_STR = pa.string()
COUNT_COLUMNS = ("contig", "pos", "ref", "alt", "scope", "stratum", "ac", "an", "nhomalt", "nhemi", "n_called")
METRICS = ("ac", "an_d", "nc_d", "nhomalt", "nhemi")  # a call's departure from an implied diploid 0/0
# with ``carriers=True`` (the counts of `genolake.query.counts.group_counts`): also whether the call carries the alt
# (`genolake.genotypes.carries`), and whether it is not a non-carrier (carries the alt or misses an allele)
CARRIER_METRICS = (*METRICS, "carrier", "not_noncarrier")
_CHUNK_BYTES = 16 << 20  # `gt` bytes decoded at once
MAX_POS = 2**31 - 1  # the end of a contig range that has no end


def call_metrics(ploidy: np.ndarray, called: np.ndarray, altc: np.ndarray, *, carriers: bool = False) -> np.ndarray:
    """Per call, its departure from an implied diploid 0/0 under the counting rule
    (:func:`genolake.genotypes.call_counts` minus a 0/0's counts): (ac, an - 2, missing, hom-alt diploid,
    hemizygous alt), the columns :data:`METRICS`, as an (n, 5) int64 matrix; with ``carriers``, the columns
    :data:`CARRIER_METRICS` (n, 7): also carrier (:func:`genolake.genotypes.carries`) and not a non-carrier (carrier, or ``missing``)."""
    from genolake import genotypes as gtc

    out = gtc.call_counts(ploidy, called, altc) - np.asarray(gtc.HOM_REF_COUNTS, dtype=np.int64)[None, :]
    if not carriers:
        return out  # type: ignore[no-any-return]
    carrier = gtc.carries(altc).astype(np.int64)
    return np.concatenate([out, carrier[:, None], np.maximum(carrier, out[:, 2])[:, None]], axis=1)


FAILED = 23  # the class of a stored call failing adj
N_CLASSES = 24


def _class_metrics(carriers: bool = False) -> np.ndarray:
    """(class, metric) table: the :func:`call_metrics` of each code's call (class 22, other ploidies: zero, counted
    per call from its text), and of a call failing adj (class 23: no allele called, as if missing)."""
    from genolake import genotypes as gtc

    k = np.arange(gtc.OTHER + 1)
    width = len(CARRIER_METRICS if carriers else METRICS)
    out = np.zeros((N_CLASSES, width), dtype=np.int64)
    out[:gtc.OTHER] = call_metrics(gtc.PLOIDY[k].astype(np.int64), gtc.CALLED[k].astype(np.int64),
                                   gtc.ALT_COUNT[k].astype(np.int64), carriers=carriers)[:gtc.OTHER]
    # as a missing diploid ./.
    out[FAILED] = call_metrics(np.array([2]), np.array([0]), np.array([0]), carriers=carriers)[0]
    return out


CLASS_METRICS = _class_metrics()
CLASS_CARRIER_METRICS = _class_metrics(carriers=True)


def adj_pass(ploidy: np.ndarray, called: np.ndarray, altc: np.ndarray, gq: pa.Array, dp: pa.Array,
             ad_alt: pa.Array) -> np.ndarray:
    """gnomAD's adj rule per stored call (:data:`genolake.schema.ADJ_RULE`; the Hail engine applies the same)."""
    from genolake.genotypes import valid_mask

    def arr(a: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(a.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64), valid_mask(a)

    g, gv = arr(gq)
    d, dv = arr(dp)
    ad, av = arr(ad_alt)
    ok = ~gv | (g >= ADJ_GQ)
    ok &= ~dv | (d >= np.where(ploidy == 1, ADJ_DP_HAPLOID, ADJ_DP))
    het = (ploidy == 2) & (called == 2) & (altc == 1)
    ok &= ~het | ~av | ~dv | (d == 0) | (ad * round(1 / ADJ_AB) >= d)
    return ok


# ---------------------------------------------------------------------------------------------- layout
@dataclass
class _Layout:
    """The groups of one task: institution i and stratum t make group ``i * len(strata) + t``; per file, the
    groups its people are in and a (samples x those groups) membership matrix."""

    institutions: list[str]
    strata: list[str]
    files: dict[str, tuple[np.ndarray, np.ndarray]]  # file_id -> (group ids, membership (samples, groups) float64)

    @property
    def n_groups(self) -> int:
        return len(self.institutions) * len(self.strata)

    def group(self, institution: str, stratum: str) -> int:
        return self.institutions.index(institution) * len(self.strata) + self.strata.index(stratum)


def _layout(groups: pa.Table, institutions: Sequence[str]) -> _Layout:
    insts = list(institutions)
    for inst in sorted(set(groups["institution"].to_pylist()) - set(insts)):
        insts.append(inst)
    strata = sorted({"all", *groups["stratum"].to_pylist()})
    n_t = len(strata)
    inst_id = {s: i for i, s in enumerate(insts)}
    st_id = {s: i for i, s in enumerate(strata)}
    fids = groups["file_id"].to_pylist()
    gid = np.array([inst_id[i] * n_t + st_id[s] for i, s in zip(groups["institution"].to_pylist(),
                                                                 groups["stratum"].to_pylist(), strict=True)],
                   dtype=np.int64)
    cidx = np.asarray(groups["column_index"].to_numpy(zero_copy_only=False), dtype=np.int64)
    files: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    by_file: dict[str, list[int]] = {}
    for r, f in enumerate(fids):
        by_file.setdefault(f, []).append(r)
    for f, rs in by_file.items():
        idx = np.asarray(rs, dtype=np.int64)
        local, lab = np.unique(gid[idx], return_inverse=True)
        mem = np.zeros((int(cidx[idx].max()) + 1, local.size), dtype=np.float64)
        np.add.at(mem, (cidx[idx], lab), 1.0)
        files[f] = (local, mem)
    return _Layout(insts, strata, files)


# ---------------------------------------------------------------------------------------------- fill
FILL_SCHEMA = pa.schema([("contig", _STR), ("file_id", _STR), ("institution", _STR), ("mode", _STR),
                          ("stratum", _STR), ("psum", _I64), ("n", _I64)])


def fill_groups(files: pa.Table, groups: pa.Table, ploidy: pa.Table) -> pa.Table:
    """Per contig, file counting sites it does not list (``absent_mode`` ref or callable), and stratum: the sum of
    its people's ploidy (``psum``) and how many they are (``n``); sorted by every column. ``files`` (file_id,
    institution, absent_mode), ``groups`` (file_id, sample_id, stratum), ``ploidy`` (file_id, sample_id, contig,
    ploidy). Without ``contig``, the ``fill`` argument of :func:`count_range` for that contig."""
    f = files.select(["file_id", "institution", "absent_mode"])
    f = f.filter(pc.is_in(f["absent_mode"], value_set=pa.array(["ref", "callable"], _STR)))
    if not f.num_rows:
        return FILL_SCHEMA.empty_table()
    g = groups.select(["file_id", "sample_id", "stratum"]).join(f, keys="file_id", join_type="inner",
                                                                 use_threads=False)
    j = g.join(ploidy.select(["file_id", "sample_id", "contig", "ploidy"]), keys=["file_id", "sample_id"],
               join_type="inner", use_threads=False)
    keys = ["contig", "file_id", "institution", "absent_mode", "stratum"]
    agg = j.group_by(keys, use_threads=False).aggregate([("ploidy", "sum"), ("ploidy", "count", pc.CountOptions("all"))])
    out = pa.table({"contig": agg["contig"], "file_id": agg["file_id"], "institution": agg["institution"],
                    "mode": agg["absent_mode"], "stratum": agg["stratum"], "psum": agg["ploidy_sum"],
                    "n": agg["ploidy_count"]}).cast(FILL_SCHEMA)
    return out.sort_by([(c, "ascending") for c in FILL_SCHEMA.names])


# ---------------------------------------------------------------------------------------------- ranges
def row_group_loads(paths: list[str]) -> list[tuple[int, int, int]]:
    """(min pos, max pos, size) of every row group, from the Parquet footers (size: the bytes of the `gt` codes
    of a `genotypes` file, the rows of a file without `gt`)."""
    import pyarrow.parquet as pq

    out = []
    for p in paths:
        md = pq.ParquetFile(p).metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        idx = names.index("pos") if "pos" in names else None
        gt = names.index("gt") if "gt" in names else None
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            st = rg.column(idx).statistics if idx is not None else None
            n = rg.column(gt).total_uncompressed_size if gt is not None else rg.num_rows
            if st is not None and st.has_min_max:
                out.append((int(st.min), int(st.max), n))
            else:
                out.append((1, MAX_POS, n))
    return out


def split_ranges(groups: list[tuple[int, int, float]], parts: int) -> list[tuple[int, int]]:
    """Split 1..MAX_POS into ``parts`` ranges of about equal load (each row group's spread over its span)."""
    if parts <= 1 or not groups:
        return [(1, MAX_POS)]
    total = sum(r for _a, _b, r in groups)
    # each row group's rows spread evenly over its span (16 points), so one large group can still be split
    mids = sorted((a + (b - a) * (2 * i + 1) // 32, r / 16) for a, b, r in groups if b < MAX_POS for i in range(16))
    mids += [(a, float(r)) for a, b, r in groups if b >= MAX_POS]
    mids.sort()
    cuts: list[int] = []
    acc = 0.0
    want = total / parts
    for mid, r in mids:
        acc += r
        if acc >= want * (len(cuts) + 1) and len(cuts) < parts - 1 and (not cuts or mid > cuts[-1]):
            cuts.append(mid)
    bounds = [1, *[c + 1 for c in cuts]]
    return [(bounds[i], (bounds[i + 1] - 1) if i + 1 < len(bounds) else MAX_POS) for i in range(len(bounds))]


# ---------------------------------------------------------------------------------------------- sites
def _read(paths: Sequence[str], columns: list[str], contig: str, start: int, end: int,
          file_ids: Sequence[str]) -> pa.Table:
    """Rows of ``contig`` with ``start <= pos <= end`` of the files ``file_ids``, from the row groups whose ``pos``
    statistics overlap the range (rows wholly inside are not copied by a filter). ``columns`` must include ``pos``
    and ``file_id``. Where the row groups' statistics show one contig and one file (a data file holds one file
    part of one contig), those columns are not read: rows of another contig or an unwanted file are skipped by
    the statistics, and ``file_id`` is filled in."""
    import pyarrow.parquet as pq

    wanted_set = set(file_ids)
    wanted = pa.array(sorted(wanted_set), _STR)
    parts: list[pa.Table] = []
    for path in paths:
        f = pq.ParquetFile(path)
        md = f.metadata
        names = md.schema.names
        ipos = names.index("pos")
        groups = []
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(ipos).statistics
            if st is not None and st.has_min_max and (int(st.max) < start or int(st.min) > end):
                continue
            groups.append(g)
        if not groups:
            continue
        one_contig = _constant(md, groups, names, "contig")
        one_file = _constant(md, groups, names, "file_id")
        if one_contig is not None and one_file is not None:
            if one_contig != contig or one_file not in wanted_set:
                continue
            t = f.read_row_groups(groups, columns=[c for c in columns if c != "file_id"], use_threads=False)
            t = t.append_column("file_id", pa.array([one_file], _STR).take(np.zeros(t.num_rows, dtype=np.int32)))
            t = t.select(columns)
            pos = np.asarray(t["pos"].to_numpy(), dtype=np.int64)
            keep = (pos >= start) & (pos <= end)
        else:
            t = f.read_row_groups(groups, columns=[*columns, "contig"], use_threads=False)
            pos = np.asarray(t["pos"].to_numpy(), dtype=np.int64)
            keep = (pos >= start) & (pos <= end)
            keep &= np.asarray(pc.equal(t["contig"], contig).to_numpy(zero_copy_only=False), dtype=bool)
            keep &= np.asarray(pc.is_in(t["file_id"], value_set=wanted).to_numpy(zero_copy_only=False), dtype=bool)
            t = t.drop(["contig"])
        if keep.all():
            parts.append(t)
        elif keep.any():
            at = np.flatnonzero(keep)
            parts.append(t.slice(int(at[0]), at.size) if at[-1] - at[0] + 1 == at.size else t.filter(keep))
    if not parts:
        return pa.table({c: [] for c in columns})
    return pa.concat_tables(parts)


def _constant(md: Any, groups: list[int], names: list[str], column: str) -> str | None:
    """The one value of a string ``column`` in the row groups ``groups``, from their statistics (None when a group
    has none, or two values)."""
    if column not in names:
        return None
    i = names.index(column)
    value = None
    for g in groups:
        st = md.row_group(g).column(i).statistics
        if st is None or not st.has_min_max or st.null_count or st.min != st.max or value not in (None, st.min):
            return None
        value = st.min
    return value if isinstance(value, str) else None


def _key_order(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(order, new): ``t`` rows sorted by (pos, ref, alt) (bytewise), and True where a sorted row starts a site."""
    order = np.asarray(pc.sort_indices(t, sort_keys=[("pos", "ascending"), ("ref", "ascending"),
                                                     ("alt", "ascending")]))
    n = len(order)
    new = np.ones(n, dtype=bool)
    if n > 1:
        s = t.select(["pos", "ref", "alt"]).take(pa.array(order))
        pos = np.asarray(s["pos"].to_numpy())
        new[1:] = pos[1:] != pos[:-1]
        for c in ("ref", "alt"):
            col = s[c].combine_chunks()
            new[1:] |= np.asarray(pc.not_equal(col[1:], col[:-1]).to_numpy(zero_copy_only=False))
    return order, new


@dataclass
class _Sites:
    table: pa.Table  # pos, ref, alt: the distinct sites of the range, sorted
    of_row: np.ndarray  # site of each `variants` row
    file_codes: np.ndarray  # file of each `variants` row, as an index into files
    files: list[str]


def _sites(v: pa.Table) -> _Sites:
    order, new = _key_order(v)
    site_sorted = np.cumsum(new) - 1
    of_row = np.empty(len(order), dtype=np.int64)
    of_row[order] = site_sorted
    table = v.select(["pos", "ref", "alt"]).take(pa.array(order[new]))
    enc = v["file_id"].combine_chunks().dictionary_encode() if v.num_rows else pa.array([], _STR).dictionary_encode()
    return _Sites(table, of_row, np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
                  enc.dictionary.to_pylist())


def _site_of(rows: pa.Table, sites: pa.Table) -> np.ndarray:
    """The site index of each `genotypes` row (-1 for a row whose site is not listed)."""
    out = np.full(rows.num_rows, -1, dtype=np.int64)
    if not rows.num_rows or not sites.num_rows:
        return out
    left = rows.select(["pos", "ref", "alt"]).append_column("_r", pa.array(np.arange(rows.num_rows)))
    right = sites.append_column("_s", pa.array(np.arange(sites.num_rows)))
    j = left.join(right, keys=["pos", "ref", "alt"], join_type="inner", use_threads=False)
    out[np.asarray(j["_r"].to_numpy())] = np.asarray(j["_s"].to_numpy())
    return out


def _in_regions(pos: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """True where a (sorted) position lies in one of the inclusive regions."""
    diff = np.zeros(pos.size + 1, dtype=np.int64)
    np.add.at(diff, np.searchsorted(pos, starts, side="left"), 1)
    np.add.at(diff, np.searchsorted(pos, ends, side="right"), -1)
    return np.cumsum(diff[:-1]) > 0


# ---------------------------------------------------------------------------------------------- stored calls
def _csr(row: np.ndarray, col: np.ndarray, n_rows: int, n_cols: int, ones: np.ndarray) -> Any:
    """The (n_rows, n_cols) 0/1 matrix with a one at each (row, col); ``row`` sorted."""
    from scipy.sparse import csr_matrix

    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
    return csr_matrix((ones[:row.size], col, indptr), shape=(n_rows, n_cols))


def _stored(rows: pa.Table, lay: _Layout, fid: str, adj: bool, table: np.ndarray = CLASS_METRICS,
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Per row of ``rows`` (rows of file ``fid``, all one width), the stored calls' sums per group of the file
    (the columns of the class table ``table``: :data:`METRICS` or :data:`CARRIER_METRICS`): an (n_rows, groups,
    metrics) array, and the same for adj (or None)."""
    from scipy.sparse import csr_matrix

    from genolake import genotypes as gtc

    gids, mem = lay.files[fid]
    n_rows = rows.num_rows
    shape = (n_rows, gids.size, table.shape[1])
    pairs = None if adj else gtc.nonzero_pairs(rows)
    if pairs is not None and gtc.OTHER not in pairs.lut.tolist():
        # each byte holds two samples: count the high (even) and low (odd) samples against their own rows of the
        # membership matrix, one sparse product per symbol and half
        n_cols = 2 * pairs.width
        if n_cols > mem.shape[0]:  # samples nobody counts (withdrawn, dropped): no membership
            mem = np.concatenate([mem, np.zeros((n_cols - mem.shape[0], mem.shape[1]))])
        mem = mem[:n_cols]
        halves = ((pairs.high, mem[0::2]), (pairs.low, mem[1::2]))
        ones = np.ones(pairs.pair.size)
        acc = np.zeros(shape, dtype=np.int64)
        for s in range(1, 16):
            code = int(pairs.lut[s])
            if code == 0 or not table[code].any():
                continue
            per_group = np.zeros((n_rows, gids.size))
            for sym, half_mem in halves:
                at = np.flatnonzero(sym == s)
                if at.size:  # the entries of symbol s, still row-major: each row's run is found by bisection
                    x = csr_matrix((ones[:at.size], pairs.pair[at], np.searchsorted(at, pairs.starts)),
                                   shape=(n_rows, pairs.width))
                    per_group += x @ half_mem
            acc += np.rint(per_group).astype(np.int64)[:, :, None] * table[code][None, None, :]
        return acc, None
    return _stored_calls(rows, gids, mem, adj, table)


def _stored_calls(rows: pa.Table, gids: np.ndarray, mem: np.ndarray, adj: bool, table: np.ndarray = CLASS_METRICS,
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_stored` call by call: for rows with other-ploidy calls, several alphabets, or ``--adj`` (which needs
    each call's FORMAT values)."""
    from genolake import genotypes as gtc

    n_rows = rows.num_rows
    shape = (n_rows, gids.size, table.shape[1])
    carriers = table.shape[1] == len(CARRIER_METRICS)
    row, col, k = gtc.stored_calls_fixed(rows)
    if not row.size:
        return np.zeros(shape, dtype=np.int64), (np.zeros(shape, dtype=np.int64) if adj else None)
    width = int(col.max()) + 1
    if width > mem.shape[0]:
        mem = np.concatenate([mem, np.zeros((width - mem.shape[0], mem.shape[1]))])
    cls = k.astype(np.int64)
    oth = np.flatnonzero(cls == gtc.OTHER)
    ploidy, called, altc = (gtc.PLOIDY[cls].astype(np.int64), gtc.CALLED[cls].astype(np.int64),
                            gtc.ALT_COUNT[cls].astype(np.int64))
    other_metrics = None
    if oth.size:  # other ploidies: each call's own vector, from its text (the codec parses it)
        sub = np.unique(row[oth])
        cv = gtc.call_values(rows.take(pa.array(sub)))
        o = cv.other_idx
        if o.size != oth.size:
            raise AssertionError("other-ploidy calls read two ways disagree")
        ploidy[oth], called[oth], altc[oth] = cv.ploidy[o], cv.called[o], cv.alt_count[o]
        other_metrics = call_metrics(ploidy[oth], called[oth], altc[oth], carriers=carriers)
    layers: list[tuple[np.ndarray, np.ndarray | None]] = [(cls, other_metrics)]
    if adj:
        counts = np.bincount(row, minlength=n_rows)
        flat = {c: gtc.flat_values(rows.column(c), counts) for c in ("gq", "dp", "ad_alt")}
        ok = adj_pass(ploidy, called, altc, flat["gq"], flat["dp"], flat["ad_alt"])
        adj_cls = np.where(ok | (cls == gtc.OTHER), cls, FAILED)
        adj_other = None if other_metrics is None else \
            np.where(ok[oth][:, None], other_metrics, table[FAILED][None, :])
        layers.append((adj_cls, adj_other))
    ones = np.ones(row.size)
    out: list[np.ndarray] = []
    for classes, other in layers:
        acc = np.zeros(shape, dtype=np.int64)
        for c in np.flatnonzero(np.bincount(classes, minlength=N_CLASSES)).tolist():
            if c == gtc.OTHER or not table[c].any():
                continue
            at = np.flatnonzero(classes == c)
            per_group = np.rint(_csr(row[at], col[at], n_rows, mem.shape[0], ones) @ mem).astype(np.int64)
            acc += per_group[:, :, None] * table[c][None, None, :]
        if other is not None:
            np.add.at(acc, row[oth], np.rint(mem[col[oth]]).astype(np.int64)[:, :, None] * other[:, None, :])
        out.append(acc)
    return out[0], (out[1] if adj else None)


def _pieces(rows: pa.Table) -> list[tuple[str, pa.Table, np.ndarray]]:
    """``genotypes`` rows split into (file_id, rows of one file and one width of at most ~16 MB of codes, their
    indices in ``rows``)."""
    out: list[tuple[str, pa.Table, np.ndarray]] = []
    if not rows.num_rows:
        return out
    enc = rows.column("file_id").combine_chunks().dictionary_encode()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    lens = np.asarray(pc.binary_length(rows.column("gt")).to_numpy(), dtype=np.int64)
    for code, fid in enumerate(enc.dictionary.to_pylist()):
        for w in np.unique(lens[codes == code]).tolist():
            idx = np.flatnonzero((codes == code) & (lens == w))
            step = max(1, _CHUNK_BYTES // max(1, int(w)))
            for r0 in range(0, idx.size, step):
                part = idx[r0:r0 + step]
                if part[-1] - part[0] + 1 == part.size:
                    t = rows.slice(int(part[0]), part.size)
                else:
                    t = rows.take(pa.array(part))
                out.append((fid, t, part))
    return out


# ---------------------------------------------------------------------------------------------- count
def count_range(*, contig: str, start: int, end: int, calls: Sequence[str], variants: Sequence[str],
                institutions: Sequence[str], fill: pa.Table, callable_: pa.Table, adj: bool, groups: pa.Table,
                file_ids: Sequence[str] | None = None, carriers: bool = False) -> pa.Table:
    """Counts of one contig range: columns :data:`COUNT_COLUMNS`, one row per site, scope and stratum, sorted by
    (pos, ref, alt, scope, stratum); ``contig``, ``scope`` and ``stratum`` dictionary-encoded.

    ``groups`` (file_id, sample_id, institution, stratum, column_index) lists each counted person once per stratum
    they are in; rows of files not in it are ignored, so uncommitted data never counts (``file_ids`` adds files
    whose sites are listed even though none of their people count). ``fill`` (file_id, institution, mode, stratum,
    psum, n) lists the files that count sites they do not list, ``callable_`` (file_id, start, end) the callable
    regions of the contig. Rows: stratum ``all`` (and ``adj:all``) for every site and scope; other strata where at
    least one person of the scope and stratum counts.

    With ``carriers`` (not with ``adj``) the rows also have ``samples`` (people counted), ``carriers`` (people
    whose call carries the alt) and ``noncarriers`` (people fully called without it), the columns
    :func:`genolake.query.counts.group_ctes` gives.
    """
    if carriers and adj:
        raise ValueError("carriers and adj counts are not made together")
    table = CLASS_CARRIER_METRICS if carriers else CLASS_METRICS
    lay = _layout(groups, institutions)
    fids = sorted(set(lay.files) | set(file_ids or ()))
    v = _read(variants, ["pos", "ref", "alt", "file_id"], contig, start, end, fids)
    if not v.num_rows:
        return _empty()
    st = _sites(v)
    n_sites = st.table.num_rows
    n_g = lay.n_groups
    site_pos = np.asarray(st.table["pos"].to_numpy(), dtype=np.int64)

    # presence: per file, how many rows list each site, times the file's people per group
    pres = np.zeros((n_sites, n_g), dtype=np.int64)
    listed: dict[str, np.ndarray] = {}
    for code, f in enumerate(st.files):
        rows_per_site = np.bincount(st.of_row[st.file_codes == code], minlength=n_sites)
        listed[f] = rows_per_site > 0
        if f in lay.files:
            gids, mem = lay.files[f]
            pres[:, gids] += rows_per_site[:, None] * np.rint(mem.sum(axis=0)).astype(np.int64)[None, :]

    # fill: people of --absent-as-ref / --callable-regions files whose file does not list the site
    fill_n = np.zeros((n_sites, n_g), dtype=np.int64)
    fill_p = np.zeros((n_sites, n_g), dtype=np.int64)
    if fill.num_rows:
        cb_f = callable_["file_id"].to_pylist()
        cb_s = np.asarray(callable_["start"].to_numpy(zero_copy_only=False), dtype=np.int64)
        cb_e = np.asarray(callable_["end"].to_numpy(zero_copy_only=False), dtype=np.int64)
        absent: dict[str, np.ndarray] = {}
        for f, inst, mode, stratum, psum, n in zip(*(fill[c].to_pylist() for c in (
                "file_id", "institution", "mode", "stratum", "psum", "n")), strict=True):
            if f not in absent:
                if mode == "ref":
                    cand = np.ones(n_sites, dtype=bool)
                else:
                    mine = np.asarray([x == f for x in cb_f], dtype=bool)
                    cand = _in_regions(site_pos, cb_s[mine], cb_e[mine])
                absent[f] = cand & ~listed.get(f, np.zeros(n_sites, dtype=bool))
            g = lay.group(inst, stratum)
            fill_n[:, g] += absent[f] * int(n)
            fill_p[:, g] += absent[f] * int(psum)

    # stored calls
    cs = np.zeros((n_sites, n_g, table.shape[1]), dtype=np.int64)
    cs_adj = np.zeros_like(cs) if adj else None
    live = [f for f in fids if f in lay.files]
    if calls and live:
        cols = ["pos", "ref", "alt", "file_id", "gt", "gt_symbols", *(["gq", "dp", "ad_alt"] if adj else [])]
        rows = _read(calls, cols, contig, start, end, live)
        if _any_other(rows):  # calls of other ploidies: their text too (rare; ~10% of the reading otherwise)
            rows = _read(calls, [*cols, "other_gt"], contig, start, end, live)
        site = _site_of(rows, st.table)
        for f, piece, idx in _pieces(rows):
            got, got_adj = _stored(piece, lay, f, adj, table)
            _add(cs, site[idx], lay.files[f][0], got)
            if cs_adj is not None and got_adj is not None:
                _add(cs_adj, site[idx], lay.files[f][0], got_adj)
    return _assemble(contig, st.table, lay, pres, fill_n, fill_p, cs, cs_adj, carriers=carriers)


def _any_other(rows: pa.Table) -> bool:
    """True when a row's alphabet has the code of other ploidies (whose text is in ``other_gt``)."""
    from genolake import genotypes as gtc

    if not rows.num_rows:
        return False
    hit = pc.any(pc.match_substring(rows.column("gt_symbols"), chr(gtc.BASE + gtc.OTHER))).as_py()
    return bool(hit)


def _add(dest: np.ndarray, site: np.ndarray, gids: np.ndarray, part: np.ndarray) -> None:
    """dest[site, gids] += part, for rows with a site (a site may have several rows)."""
    keep = site >= 0
    site, part = site[keep], part[keep]
    if site.size == np.unique(site).size:
        dest[site[:, None], gids[None, :]] += part
    else:
        np.add.at(dest, (site[:, None], gids[None, :]), part)


def _assemble(contig: str, sites: pa.Table, lay: _Layout, pres: np.ndarray, fill_n: np.ndarray,
              fill_p: np.ndarray, cs: np.ndarray, cs_adj: np.ndarray | None, *, carriers: bool = False) -> pa.Table:
    """The output rows from the dense (site, group) arrays: joint sums, row selection, sort order."""
    n_sites, n_i, n_t = sites.num_rows, len(lay.institutions), len(lay.strata)
    shape = (n_sites, n_i, n_t)
    people = (pres + fill_n).reshape(shape)
    an0 = (2 * pres + fill_p).reshape(shape)
    layers = [cs] if cs_adj is None else [cs, cs_adj]
    metric = {m: np.concatenate([c[:, :, j].reshape(shape) for c in layers], axis=2)
              for j, m in enumerate(METRICS)}  # (the first columns of either class table)
    n_samples = np.concatenate([people] * len(layers), axis=2)
    vals = {
        "ac": metric["ac"],
        "an": np.concatenate([an0] * len(layers), axis=2) + metric["an_d"],
        "nhomalt": metric["nhomalt"],
        "nhemi": metric["nhemi"],
        "n_called": n_samples - metric["nc_d"],
    }
    names = ["ac", "an", "nhomalt", "nhemi", "n_called"]
    if carriers:
        extra = {m: cs[:, :, j].reshape(shape) for j, m in enumerate(CARRIER_METRICS) if m not in METRICS}
        vals.update(samples=n_samples, carriers=extra["carrier"], noncarriers=n_samples - extra["not_noncarrier"])
        names += ["samples", "carriers", "noncarriers"]
    strata = list(lay.strata) + ([f"adj:{s}" for s in lay.strata] if cs_adj is not None else [])
    scopes = ["joint", *lay.institutions]
    s_ord = np.argsort(np.array(scopes, dtype=object), kind="stable")
    t_ord = np.argsort(np.array(strata, dtype=object), kind="stable")

    def full(a: np.ndarray) -> np.ndarray:  # (sites, scopes, strata) in output order
        return np.concatenate([a.sum(axis=1, keepdims=True), a], axis=1)[:, s_ord][:, :, t_ord]

    ns = full(n_samples)
    always = np.array([strata[t] in ("all", "adj:all") for t in t_ord], dtype=bool)
    keep = (ns > 0) | always[None, None, :]
    hit = np.flatnonzero(keep.ravel())
    per_site = len(scopes) * len(strata)
    site = hit // per_site
    sc = (hit // len(strata)) % len(scopes)
    tt = hit % len(strata)
    take = pa.array(site)
    n = hit.size
    data: dict[str, pa.Array] = {
        "contig": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([contig], _STR)),
        "pos": sites["pos"].take(take).combine_chunks(),
        "ref": sites["ref"].take(take).combine_chunks(),
        "alt": sites["alt"].take(take).combine_chunks(),
        "scope": pa.DictionaryArray.from_arrays(pa.array(sc.astype(np.int32)),
                                                pa.array([scopes[i] for i in s_ord], _STR)),
        "stratum": pa.DictionaryArray.from_arrays(pa.array(tt.astype(np.int32)),
                                                  pa.array([strata[i] for i in t_ord], _STR)),
    }
    for name in names:
        data[name] = pa.array(full(vals[name]).ravel()[hit], _I64)
    return pa.table(data)


def _empty() -> pa.Table:
    types = {"pos": pa.int32(), "contig": _STR, "ref": _STR, "alt": _STR, "scope": _STR, "stratum": _STR}
    return pa.table({c: pa.array([], types.get(c, _I64)) for c in COUNT_COLUMNS})


def task_counts(task: Any, groups: pa.Table, *, file_ids: Sequence[str] | None = None) -> pa.Table:
    """:func:`count_range` of a :class:`genolake.compute.frequencies.PartTask`."""
    return count_range(contig=task.contig, start=task.start, end=task.end, calls=task.calls,
                       variants=task.variants, institutions=task.institutions, fill=task.fill,
                       callable_=task.callable, adj=task.adj, groups=groups, file_ids=file_ids)
