"""The Dask engine of `genolake aggregate`: exact allele frequencies of the joint cohort, each institution and
phenotype strata, planned and counted per contig range; and :func:`derive`, the derived columns both engines share.

:func:`genolake.compute.aggregate.aggregate` is the public entry: it chooses the engine (this one, or Hail in
:mod:`genolake.compute.hail_engine`, which uses the same plan and :func:`derive`) and where it runs, and commits.
The job:

1. **plan** (driver): committed files, samples and their strata (``--by`` phenotype columns), the files that count
   sites absent from them (``--absent-as-ref`` / ``--callable-regions``) with their samples' ploidy per contig, and
   position ranges of each contig sized from the Parquet row-group statistics of ``calls``;
2. **count** (one task per contig range, on a Dask worker or in process): DuckDB reads the ``variants`` and
   ``calls`` Parquet files of the contig (row groups outside the range are skipped by their ``pos`` statistics) and
   counts AC, AN, nhomalt, nhemi and n_called per site, institution and stratum with the lake's counting rule
   (:mod:`genolake.query.counts`); joint counts are the sums over institutions. A range holds whole sites, so its
   counts are complete, and the derived columns (AF, faf95, grpmax, het_p) are computed last from the integer
   counts, never by averaging frequencies. The task writes its Parquet part into the job's staging folder;
3. **commit** (driver, under the lake lock; :mod:`genolake.compute.aggregate`): one Delta commit that removes
   every previous ``allele_frequencies`` file and adds the new parts.

Counting (docs/SCHEMA.md): a sample whose file lists the site adds its stored call (``called`` alleles, ``alt_count``
copies) or, with no stored call, an implied diploid 0/0 (2 alleles); a sample whose file does not list the site adds
its ``ploidy`` on the contig as reference alleles only if the file is ``absent_mode = 'ref'``, or ``'callable'``
and the site is in one of the file's callable regions; otherwise it does not count. Sex enters only through the data
(haploid chrX calls of males add 1 allele and count in ``nhemi``), never through phenotypes.

``--adj`` adds a second set of rows whose ``stratum`` is prefixed ``adj:`` (``adj:all``, ``adj:sex=female``): the
same counts using only genotypes that pass gnomAD's ``adj`` filter (:data:`genolake.schema.ADJ_RULE`). A failing
stored genotype is treated as missing (it adds nothing to AN, AC or n_called). Implied 0/0 genotypes and absent-site
reference genotypes carry no GQ/DP in the lake (only non-0/0 calls are stored), so they always pass: gnomAD evaluates
reference genotypes with the GQ/DP of their gVCF reference blocks, which a VCF-based lake does not have, so
``adj:`` AN is an upper bound of gnomAD's adj AN (AC, nhomalt and nhemi are exact under the rule).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genolake.errors import UserInputError
from genolake.schema import ADJ_AB, ADJ_DP, ADJ_DP_HAPLOID, ADJ_GQ, ALLELE_FREQUENCIES
from genolake.schema import people as people_of

log = logging.getLogger(__name__)

MAX_LEVELS = 200
"""A ``--by`` column may have at most this many distinct values."""
FAF_CI = 0.95
_MAX_POS = 2**31 - 1
_TARGET_ROWS = 32_000_000  # genotypes (sites x samples of the `genotypes` rows) per task
ProgressFn = Callable[[int, int, int], None]  # (sites done, tasks done, tasks in all)

_I64 = pa.int64()
_F64 = pa.float64()
_STR = pa.string()

COUNT_COLUMNS = ("contig", "pos", "ref", "alt", "scope", "stratum", "ac", "an", "nhomalt", "nhemi", "n_called")

# ---------------------------------------------------------------------------------------------- statistics
def faf(ac: Any, an: Any, ci: float = FAF_CI) -> np.ndarray:
    """Filtering allele frequency: the AF for which ``P(X >= AC) = 1 - ci`` with ``X ~ Poisson(AN * AF)``.

    This is the definition of Whiffin et al. 2017 (Genet Med 19:1151, "Using high-resolution variant frequencies
    to empower clinical genome interpretation") used by gnomAD for ``faf95``: the highest true allele frequency
    whose one-sided 95% Poisson upper bound of the allele count is still below the observed AC. With
    ``P(X >= k) = P(k, lambda)`` (the regularised lower incomplete gamma function) the answer is exact:
    ``lambda = gammaincinv(AC, 1 - ci)``, ``faf = lambda / AN``. AC 0 gives 0 and AN 0 gives NaN.

    Hail's ``hl.experimental.filtering_allele_frequency`` (which gnomAD calls) returns 0 for AC <= 1 and finds the
    root of a discrete Poisson quantile, so for AC >= 2 it is within about 2% of this value.

    Examples
    --------
    >>> float(faf(1, 10_000)[()])  # -ln(0.95) / 10000
    5.129329438755058e-06
    >>> round(float(faf(2, 10_000)[()]) * 10_000, 6)  # 1 - e^-l (1 + l) = 0.05
    0.355362
    """
    from scipy.special import gammaincinv

    ac_a = np.asarray(ac, dtype=np.float64)
    an_a = np.asarray(an, dtype=np.float64)
    out = np.full(np.broadcast(ac_a, an_a).shape, np.nan)
    ac_b, an_b = np.broadcast_arrays(ac_a, an_a)
    pos = (ac_b > 0) & (an_b > 0)
    out[pos] = gammaincinv(ac_b[pos], 1.0 - ci) / an_b[pos]
    out[(ac_b == 0) & (an_b > 0)] = 0.0
    return out


def het_p_values(acs: np.ndarray, ans: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Pearson chi-square p-values of AF homogeneity, one per group of institution rows.

    Group ``g`` is ``acs[offsets[g]:offsets[g + 1]]`` (every ``an > 0``). The 2 x k table has the alt counts in one
    row and the ref counts (AN - AC) in the other; the statistic equals ``scipy.stats.chi2_contingency(table,
    correction=False)`` and is written ``sum_i (ac_i - an_i p)^2 / (an_i p (1 - p))`` with ``p = AC / AN``,
    ``k - 1`` degrees of freedom. NaN for k < 2; 1.0 when the alt or ref row is all zero (no variation to test).
    """
    from scipy.stats import chi2

    n = len(offsets) - 1
    out = np.full(n, np.nan)
    if n == 0 or acs.size == 0:
        return out
    acs = acs.astype(np.float64)
    ans = ans.astype(np.float64)
    k = np.diff(offsets)
    nonempty = k > 0
    starts = offsets[:-1][nonempty]
    ac_tot = np.zeros(n)
    an_tot = np.zeros(n)
    ac_tot[nonempty] = np.add.reduceat(acs, starts)
    an_tot[nonempty] = np.add.reduceat(ans, starts)
    p = np.divide(ac_tot, an_tot, out=np.zeros(n), where=an_tot > 0)
    group = np.repeat(np.arange(n), k)
    pi = p[group]
    dev = (acs - ans * pi) ** 2 / np.where(ans > 0, ans, 1.0)
    stat = np.zeros(n)
    stat[nonempty] = np.add.reduceat(dev, starts)
    degenerate = (ac_tot == 0) | (ac_tot == an_tot)
    ok = (k >= 2) & ~degenerate
    out[ok] = chi2.sf(stat[ok] / (p[ok] * (1.0 - p[ok])), k[ok] - 1)
    out[(k >= 2) & degenerate] = 1.0
    return out


# ---------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class PartTask:
    """One contig range: everything a worker needs (paths from the Delta log, small tables as Arrow)."""

    contig: str
    start: int
    end: int
    calls: tuple[str, ...]
    variants: tuple[str, ...]
    institutions: tuple[str, ...]
    fill: pa.Table  # file_id, institution, mode, stratum, psum, n: files counting absent sites on this contig
    callable: pa.Table  # file_id, start, end: callable regions of this contig
    adj: bool
    faf_groups: tuple[str, ...]
    staging: str
    relpath: str
    threads: int = 1


@dataclass
class PartResult:
    relpath: str
    rows: int
    sites: int
    seconds: float


@dataclass
class Plan:
    file_ids: list[str]
    institutions: list[str]
    strata: list[str]
    groups: pa.Table  # file_id, sample_id, institution, stratum (one row per sample and stratum it belongs to)
    tasks: list[PartTask] = field(default_factory=list)


def _value_label(v: Any) -> str:
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return str(v)


def _strata_of(store: Any, samples: pa.Table, by: Sequence[str]) -> tuple[list[str], pa.Table]:
    """Sample -> stratum labels for the ``--by`` columns, checked: the column exists, is not a list, <= 200 values."""
    if not by:
        return ["all"], pa.table({"institution": samples["institution"], "sample_id": samples["sample_id"],
                                  "stratum": pa.array(["all"] * samples.num_rows, _STR)})
    from genolake.query.engine import Engine, quote_ident

    eng = Engine(store, threads=2)
    try:
        kinds = dict(eng.catalog.phenotypes)
        for col in by:
            if col not in kinds:
                known = ", ".join(sorted(kinds)) or "none (load them with `genolake phenotypes load`)"
                raise UserInputError(f"--by {col}: no phenotype column {col!r}; the phenotype columns are: {known}")
            if kinds[col] == "list":
                raise UserInputError(f"--by {col}: {col!r} holds lists of codes (e.g. HPO terms) and cannot split "
                                     "samples into strata; use a categorical column")
        labels: dict[tuple[str, str], list[str]] = {}
        strata = ["all"]
        for col in by:
            q = quote_ident(col)
            rows = eng.rows(f"SELECT institution, sample_id, {q} FROM phenotypes WHERE {q} IS NOT NULL")
            values = sorted({r[2] for r in rows}, key=lambda v: (str(type(v)), v))
            if len(values) > MAX_LEVELS:
                raise UserInputError(
                    f"--by {col}: {len(values)} distinct values, more than {MAX_LEVELS}; stratify by a column with "
                    f"fewer levels (bin a numeric phenotype into a categorical one first)")
            strata += [f"{col}={_value_label(v)}" for v in values]
            for inst, sid, v in rows:
                labels.setdefault((inst, sid), []).append(f"{col}={_value_label(v)}")
    finally:
        eng.con.close()
    insts, sids, st = [], [], []
    for inst, sid in zip(samples["institution"].to_pylist(), samples["sample_id"].to_pylist(), strict=True):
        for label in ["all", *labels.get((inst, sid), [])]:
            insts.append(inst)
            sids.append(sid)
            st.append(label)
    return strata, pa.table({"institution": pa.array(insts, _STR), "sample_id": pa.array(sids, _STR),
                             "stratum": pa.array(st, _STR)})


def _row_groups(paths: list[str]) -> list[tuple[int, int, int]]:
    """(min pos, max pos, genotypes) of every row group, from the Parquet footers (genotypes: the bytes of its
    one-character-per-sample `gt` codes)."""
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
                out.append((1, _MAX_POS, n))
    return out


def _ranges(groups: list[tuple[int, int, int]], parts: int) -> list[tuple[int, int]]:
    """Split 1.._MAX_POS into ``parts`` ranges of about equal rows (each row group spread over its span)."""
    if parts <= 1 or not groups:
        return [(1, _MAX_POS)]
    total = sum(r for _a, _b, r in groups)
    # each row group's rows spread evenly over its span (16 points), so one large group can still be split
    mids = sorted((a + (b - a) * (2 * i + 1) // 32, r / 16) for a, b, r in groups if b < _MAX_POS for i in range(16))
    mids += [(a, float(r)) for a, b, r in groups if b >= _MAX_POS]
    mids.sort()
    cuts: list[int] = []
    acc = 0.0
    want = total / parts
    for mid, r in mids:
        acc += r
        if acc >= want * (len(cuts) + 1) and len(cuts) < parts - 1 and (not cuts or mid > cuts[-1]):
            cuts.append(mid)
    bounds = [1, *[c + 1 for c in cuts]]
    return [(bounds[i], (bounds[i + 1] - 1) if i + 1 < len(bounds) else _MAX_POS) for i in range(len(bounds))]


def plan(store: Any, *, by: Sequence[str] = (), faf_groups: Sequence[str] = (), adj: bool = False,
         n_workers: int = 1, staging: str = "", txn: str = "", target_rows: int | None = None,
         drop: frozenset[tuple[str, str]] = frozenset()) -> Plan:
    """Plan the job over the lake's committed files (a snapshot: files committed later are not seen).

    People in ``drop`` ((institution, pseudonym) pairs: duplicate copies, ``--dedupe``) are in no group, so they
    count nowhere (stored calls, implied 0/0 or absent-site fill), on either engine.
    """
    from genolake.duck import connect
    from genolake.store import partition_dir

    by = list(dict.fromkeys(by))
    bad = [g for g in faf_groups if g not in by]
    if bad:
        raise UserInputError(f"--faf-groups {', '.join(bad)}: each faf group column must also be given with --by")
    files = store.read_table("files")
    file_ids = sorted(files["file_id"].to_pylist())
    samples = store.read_table("samples", columns=["institution", "sample_id", "file_id", "column_index"])
    ploidy = store.read_table("ploidy", columns=["sample_id", "contig", "ploidy", "file_id"])
    callable_ = store.read_table("callable", columns=["contig", "start", "end", "file_id"])
    # a person (institution, pseudonym) is labelled once, however many files (one per contig, ...) hold them
    people = people_of(samples)
    if drop:
        kept = [(i, sid) not in drop for i, sid in zip(people["institution"].to_pylist(),
                                                         people["sample_id"].to_pylist(), strict=True)]
        people = people.filter(pa.array(kept, pa.bool_()))
    strata, labels = _strata_of(store, people, by)
    con = connect(2)
    try:
        con.register("files_t", files.select(["file_id", "institution", "absent_mode", "contigs"]))
        con.register("samples_t", samples)
        con.register("labels_t", labels)
        con.register("ploidy_t", ploidy)
        groups = _arrow(con.sql(
            "SELECT s.file_id, s.sample_id, s.institution, l.stratum, s.column_index FROM samples_t s "
            "JOIN labels_t l USING (institution, sample_id) ORDER BY ALL"))
        con.register("groups_t", groups)
        fill_all = _arrow(con.sql(
            """SELECT p.contig, f.file_id, f.institution, f.absent_mode AS mode, g.stratum,
                      CAST(sum(p.ploidy) AS BIGINT) AS psum, CAST(count(*) AS BIGINT) AS n
               FROM files_t f JOIN groups_t g USING (file_id)
                    JOIN ploidy_t p ON p.file_id = g.file_id AND p.sample_id = g.sample_id
               WHERE f.absent_mode IN ('ref', 'callable')
               GROUP BY ALL ORDER BY ALL"""))
        contigs = sorted({c for cs in files["contigs"].to_pylist() for c in (cs or [])})
    finally:
        con.close()
    institutions = sorted(set(files["institution"].to_pylist()))
    out = Plan(file_ids=file_ids, institutions=institutions, strata=strata, groups=groups)
    calls_by: dict[str, list[str]] = {}
    vars_by: dict[str, list[str]] = {}
    for name, dest in (("genotypes", calls_by), ("variants", vars_by)):
        for df in store.data_files(name):
            if df.contig is not None:
                dest.setdefault(df.contig, []).append(df.path)
    stats = {c: _row_groups(calls_by.get(c, [])) for c in contigs}
    total = sum(r for g in stats.values() for _a, _b, r in g)
    target_rows = target_rows or _TARGET_ROWS
    desired = max(math.ceil(total / target_rows), 2 * n_workers if total > 200_000 and n_workers > 1 else 1)
    import pyarrow.compute as pc

    k = 0
    for contig in contigs:
        if not vars_by.get(contig):
            continue
        rows = sum(r for _a, _b, r in stats[contig])
        parts = max(1, round(desired * rows / total)) if total else 1
        fill = fill_all.filter(pc.equal(fill_all["contig"], contig)).drop(["contig"])
        cb = callable_.filter(pc.equal(callable_["contig"], contig)).select(["file_id", "start", "end"])
        for start, end in _ranges(stats[contig], parts):
            rel = f"{partition_dir(ALLELE_FREQUENCIES, {'contig': contig})}/{txn}-{k:05d}.parquet"
            out.tasks.append(PartTask(
                contig=contig, start=start, end=end, calls=tuple(calls_by.get(contig, [])),
                variants=tuple(vars_by[contig]), institutions=tuple(institutions), fill=fill, callable=cb,
                adj=adj, faf_groups=tuple(faf_groups), staging=staging, relpath=rel,
            ))
            k += 1
    return out


def _arrow(rel: Any) -> pa.Table:
    fn = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    return fn()


# ---------------------------------------------------------------------------------------------- count
def _sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"



_CS_COLUMNS = ("ac", "an_d", "nc_d", "nhomalt", "nhemi")


def _call_metrics(ploidy: np.ndarray, called: np.ndarray, altc: np.ndarray) -> np.ndarray:
    """Per call, its departure from an implied diploid 0/0 under the counting rule: (ac, an - 2, missing allele,
    hom-alt diploid, hemizygous alt) as an (n, 5) int64 matrix."""
    return np.stack([altc, called - 2, called < ploidy, (ploidy == 2) & (altc == 2), (ploidy == 1) & (altc == 1)],
                    axis=1).astype(np.int64)


_FAILED = 23  # the class of a stored call failing adj
_CLASS_METRICS: Any = None
_N_CLASSES = 24


def _class_metrics() -> np.ndarray:
    """(class, metric) table: the :func:`_call_metrics` of each code's call (class 22, other ploidies: zero,
    counted per call), and of a call failing adj (class 23: no alleles called, as if missing)."""
    from genolake import genotypes as gtc

    k = np.arange(gtc.OTHER + 1)
    out = np.zeros((_N_CLASSES, 5), dtype=np.int64)
    out[:gtc.OTHER] = _call_metrics(gtc.PLOIDY[k].astype(np.int64), gtc.CALLED[k].astype(np.int64),
                                    gtc.ALT_COUNT[k].astype(np.int64))[:gtc.OTHER]
    out[_FAILED] = [0, -2, 1, 0, 0]
    return out


def _adj_pass(ploidy: np.ndarray, called: np.ndarray, altc: np.ndarray, gq: pa.Array, dp: pa.Array,
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


def _stored_counts(task: PartTask, groups: pa.Table) -> pa.Table:
    """Sums over the stored calls of the task's range per site, institution and stratum, read from the dense
    `genotypes` rows with numpy: (pos, ref, alt, institution, stratum) + :data:`_CS_COLUMNS` (and ``a_`` ones with
    adj). A person counts in each stratum ``groups`` lists them in (by file and column index)."""
    import pyarrow.compute as pc

    from genolake import genotypes as gtc

    cols = ["pos", "ref", "alt", "file_id", "gt", "gt_symbols", "other_gt",
            *(["gq", "dp", "ad_alt"] if task.adj else [])]
    names = ["pos", "ref", "alt", "institution", "stratum", *_CS_COLUMNS,
             *([f"a_{c}" for c in _CS_COLUMNS] if task.adj else [])]
    empty = pa.table({n: pa.array([], pa.int32() if n == "pos" else _STR if n in ("ref", "alt", "institution",
                                                                                   "stratum") else _I64)
                      for n in names})
    if not task.calls:
        return empty
    import pyarrow.dataset as ds

    dset = ds.dataset(list(task.calls), format="parquet")
    flt = (ds.field("pos") >= task.start) & (ds.field("pos") <= task.end) & (ds.field("contig") == task.contig)
    rows = dset.to_table(columns=cols, filter=flt)
    if not rows.num_rows:
        return empty
    labels: dict[tuple[str, str], int] = {}
    member: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # file_id -> (column_index, label id), one per stratum
    fids, insts, strata, idxs = (groups[c].to_pylist() for c in ("file_id", "institution", "stratum", "column_index"))
    tmp: dict[str, tuple[list[int], list[int]]] = {}
    for fid, inst, st, ci in zip(fids, insts, strata, idxs, strict=True):
        lid = labels.setdefault((inst, st), len(labels))
        a, b = tmp.setdefault(fid, ([], []))
        a.append(int(ci))
        b.append(lid)
    for fid, (a, b) in tmp.items():
        member[fid] = (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    label_list = list(labels)
    global _CLASS_METRICS
    if _CLASS_METRICS is None:
        _CLASS_METRICS = _class_metrics()
    width = 10 if task.adj else 5
    out_rows: list[np.ndarray] = []
    out_labels: list[np.ndarray] = []
    out_sums: list[np.ndarray] = []
    fid_col = rows.column("file_id")
    for fid in pc.unique(fid_col).to_pylist():
        if fid not in member:
            continue
        sel = np.flatnonzero(np.asarray(pc.equal(fid_col, fid).to_numpy(zero_copy_only=False)))
        part = rows.take(pa.array(sel))
        cv = gtc.call_values(part)
        row, col = cv.row, cv.col
        if not row.size:
            continue
        cls = cv.k.astype(np.int64)  # the call's code; other-ploidy calls (code 22) are added one by one below
        classes = [cls]
        if task.adj:
            counts = np.bincount(row, minlength=part.num_rows)
            flat = {c: gtc.flat_values(part.column(c), counts) for c in ("gq", "dp", "ad_alt")}
            ok = _adj_pass(cv.ploidy.astype(np.int64), cv.called.astype(np.int64), cv.alt_count.astype(np.int64),
                           flat["gq"], flat["dp"], flat["ad_alt"])
            classes.append(np.where(ok | (cls == gtc.OTHER), cls, _FAILED))
        # each person's strata in this file, as local label ids: (samples, layers), -1 padded
        mcol, mlab = member[fid]
        local, lab_of = np.unique(mlab, return_inverse=True)
        n_local = local.size
        n_samples = int(max(mcol.max(initial=-1), col.max(initial=-1))) + 1
        layers = int(np.bincount(mcol, minlength=n_samples).max(initial=0))
        by_sample = np.full((n_samples, max(1, layers)), -1, dtype=np.int64)
        order = np.argsort(mcol, kind="stable")
        sc, sl = mcol[order], lab_of[order]
        slot = np.arange(sc.size) - np.searchsorted(sc, sc, side="left")
        by_sample[sc, slot] = sl
        chunk = max(1, 4_000_000 // (n_local * _N_CLASSES))
        for r0 in range(0, part.num_rows, chunk):
            r1 = min(part.num_rows, r0 + chunk)
            c0, c1 = np.searchsorted(row, [r0, r1])
            if c0 == c1:
                continue
            rr, cc = row[c0:c1] - r0, col[c0:c1]
            bins = (r1 - r0) * n_local
            sums = np.zeros((bins, width), dtype=np.int64)
            stored = np.zeros(bins, dtype=np.int64)
            for j in range(by_sample.shape[1]):
                lab = by_sample[cc, j]
                valid = lab >= 0
                if not valid.any():
                    continue
                key = rr[valid] * n_local + lab[valid]
                stored += np.bincount(key, minlength=bins)
                for half, cl in enumerate(classes):
                    hist = np.bincount(key * _N_CLASSES + cl[c0:c1][valid], minlength=bins * _N_CLASSES)
                    sums[:, 5 * half:5 * half + 5] += hist.reshape(bins, _N_CLASSES) @ _CLASS_METRICS
                    oth = np.flatnonzero(cls[c0:c1][valid] == gtc.OTHER)
                    if oth.size:  # other ploidies: their own allele counts
                        ci = np.flatnonzero(valid)[oth] + c0
                        mo = _call_metrics(cv.ploidy[ci].astype(np.int64), cv.called[ci].astype(np.int64),
                                           cv.alt_count[ci].astype(np.int64))
                        if half == 1:
                            mo = np.where(ok[ci][:, None], mo, _CLASS_METRICS[_FAILED][None, :])
                        np.add.at(sums[:, 5 * half:5 * half + 5], key[oth], mo)
            hit = np.flatnonzero(stored)
            out_rows.append(sel[hit // n_local + r0])
            out_labels.append(local[hit % n_local])
            out_sums.append(sums[hit])
    if not out_rows:
        return empty
    r = np.concatenate(out_rows)
    lab = np.concatenate(out_labels)
    sums = np.concatenate(out_sums)
    take = pa.array(r)
    data: dict[str, pa.Array] = {
        "pos": rows.column("pos").take(take), "ref": rows.column("ref").take(take),
        "alt": rows.column("alt").take(take),
        "institution": pa.array([label_list[i][0] for i in lab.tolist()], _STR),
        "stratum": pa.array([label_list[i][1] for i in lab.tolist()], _STR),
    }
    for j, n in enumerate(names[5:]):
        data[n] = pa.array(sums[:, j], _I64)
    return pa.table(data)


def count_part(task: PartTask, groups: pa.Table, *, file_ids: Sequence[str] | None = None,
               con: Any = None) -> pa.Table:
    """Counts of one contig range: columns :data:`COUNT_COLUMNS`, one row per site, scope and stratum.

    ``groups`` (file_id, sample_id, institution, stratum) lists each committed sample once per stratum it is in;
    rows of files not in it are ignored, so uncommitted data never counts.
    """
    from genolake.duck import connect

    own = con is None
    if own:
        con = connect(task.threads)
    try:
        con.register("gm", groups)
        con.register("ff", task.fill)
        con.register("cb", task.callable)
        con.execute("CREATE OR REPLACE TEMP TABLE gfile AS SELECT file_id, institution, stratum, "
                    "CAST(count(*) AS BIGINT) AS n FROM gm GROUP BY ALL")
        con.execute("CREATE OR REPLACE TEMP TABLE fids AS SELECT DISTINCT file_id FROM gm")
        if file_ids is not None:
            con.register("fids_extra", pa.table({"file_id": pa.array(sorted(file_ids), _STR)}))
            con.execute("INSERT INTO fids SELECT file_id FROM fids_extra WHERE file_id NOT IN (SELECT file_id FROM fids)")
        params = {"contig": task.contig, "start": task.start, "end": task.end}
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE v AS
                SELECT pos, ref, alt, file_id FROM read_parquet({_sql_list(task.variants)}, hive_partitioning=false)
                WHERE contig = $contig AND pos BETWEEN $start AND $end AND file_id IN (SELECT file_id FROM fids)""",
            params)
        con.execute("CREATE OR REPLACE TEMP TABLE sites AS SELECT DISTINCT pos, ref, alt FROM v")
        con.execute("""CREATE OR REPLACE TEMP TABLE pres AS
                       SELECT v.pos, v.ref, v.alt, g.institution, g.stratum, CAST(sum(g.n) AS BIGINT) AS n
                       FROM v JOIN gfile g USING (file_id) GROUP BY ALL""")
        # stored calls' sums per site, institution and stratum: numpy over the dense genotype rows
        con.register("cs_raw", _stored_counts(task, groups))
        sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in _CS_COLUMNS)
        a_sums = "".join(f", CAST(sum(a_{c}) AS BIGINT) AS a_{c}" for c in _CS_COLUMNS) if task.adj else ""
        con.execute(f"CREATE OR REPLACE TEMP TABLE cs AS SELECT pos, ref, alt, institution, stratum, {sums}{a_sums} "
                    "FROM cs_raw GROUP BY ALL")
        con.execute(
            """CREATE OR REPLACE TEMP TABLE fillc AS
               WITH fff AS (SELECT DISTINCT file_id, mode FROM ff),
               cand AS (SELECT s.pos, s.ref, s.alt, f.file_id FROM sites s CROSS JOIN fff f
                        WHERE f.mode = 'ref' OR EXISTS (SELECT 1 FROM cb WHERE cb.file_id = f.file_id
                                                         AND s.pos BETWEEN cb.start AND cb."end")),
               absent AS (SELECT * FROM cand c WHERE NOT EXISTS (
                            SELECT 1 FROM v WHERE v.pos = c.pos AND v.ref = c.ref AND v.alt = c.alt
                                              AND v.file_id = c.file_id))
               SELECT a.pos, a.ref, a.alt, ff.institution, ff.stratum,
                      CAST(sum(ff.psum) AS BIGINT) AS psum, CAST(sum(ff.n) AS BIGINT) AS n
               FROM absent a JOIN ff USING (file_id) GROUP BY ALL""")
        adj_sel = ""
        if task.adj:
            adj_sel = """,
                   coalesce(cs.a_ac, 0) AS a_ac,
                   2 * coalesce(pres.n, 0) + coalesce(cs.a_an_d, 0) + coalesce(fillc.psum, 0) AS a_an,
                   coalesce(cs.a_nhomalt, 0) AS a_nhomalt, coalesce(cs.a_nhemi, 0) AS a_nhemi,
                   coalesce(pres.n, 0) + coalesce(fillc.n, 0) - coalesce(cs.a_nc_d, 0) AS a_n_called"""
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE inst AS
                WITH keys AS (SELECT pos, ref, alt, institution, stratum FROM pres
                              UNION SELECT pos, ref, alt, institution, stratum FROM fillc)
                SELECT k.pos, k.ref, k.alt, k.institution, k.stratum,
                       coalesce(pres.n, 0) + coalesce(fillc.n, 0) AS n_samples,
                       coalesce(cs.ac, 0) AS ac,
                       2 * coalesce(pres.n, 0) + coalesce(cs.an_d, 0) + coalesce(fillc.psum, 0) AS an,
                       coalesce(cs.nhomalt, 0) AS nhomalt, coalesce(cs.nhemi, 0) AS nhemi,
                       coalesce(pres.n, 0) + coalesce(fillc.n, 0) - coalesce(cs.nc_d, 0) AS n_called{adj_sel}
                FROM keys k LEFT JOIN pres USING (pos, ref, alt, institution, stratum)
                            LEFT JOIN fillc USING (pos, ref, alt, institution, stratum)
                            LEFT JOIN cs USING (pos, ref, alt, institution, stratum)""")
        union = ["SELECT pos, ref, alt, institution, stratum, n_samples, ac, an, nhomalt, nhemi, n_called FROM inst"]
        if task.adj:
            union.append("SELECT pos, ref, alt, institution, 'adj:' || stratum, n_samples, a_ac, a_an, a_nhomalt, "
                         "a_nhemi, a_n_called FROM inst")
        con.register("insts_t", pa.table({"institution": pa.array(list(task.institutions), _STR)}))
        alls = "['all', 'adj:all']" if task.adj else "['all']"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE cells AS
                WITH c AS ({' UNION ALL '.join(union)}),
                base AS (SELECT s.pos, s.ref, s.alt, i.institution, unnest({alls}) AS stratum
                         FROM sites s CROSS JOIN insts_t i),
                full_all AS (SELECT b.pos, b.ref, b.alt, b.institution, b.stratum,
                                    coalesce(c.n_samples, 0) AS n_samples, coalesce(c.ac, 0) AS ac,
                                    coalesce(c.an, 0) AS an, coalesce(c.nhomalt, 0) AS nhomalt,
                                    coalesce(c.nhemi, 0) AS nhemi, coalesce(c.n_called, 0) AS n_called
                             FROM base b LEFT JOIN c USING (pos, ref, alt, institution, stratum))
                SELECT * FROM full_all
                UNION ALL SELECT * FROM c WHERE stratum NOT IN ('all', 'adj:all') AND n_samples > 0""")
        counts = _arrow(con.sql(
            """WITH j AS (SELECT pos, ref, alt, 'joint' AS scope, stratum, sum(n_samples) AS n_samples,
                                 sum(ac) AS ac, sum(an) AS an, sum(nhomalt) AS nhomalt, sum(nhemi) AS nhemi,
                                 sum(n_called) AS n_called
                          FROM cells GROUP BY pos, ref, alt, stratum)
               SELECT $contig AS contig, pos, ref, alt, scope, stratum, CAST(ac AS BIGINT) AS ac,
                      CAST(an AS BIGINT) AS an, CAST(nhomalt AS BIGINT) AS nhomalt, CAST(nhemi AS BIGINT) AS nhemi,
                      CAST(n_called AS BIGINT) AS n_called
               FROM (SELECT * FROM j WHERE stratum IN ('all', 'adj:all') OR n_samples > 0
                     UNION ALL SELECT pos, ref, alt, institution AS scope, stratum, n_samples, ac, an, nhomalt,
                                      nhemi, n_called FROM cells)
               ORDER BY pos, ref, alt, scope, stratum""", params={"contig": task.contig}))
        return counts
    finally:
        if own:
            con.close()


# ---------------------------------------------------------------------------------------------- derive
def derive(counts: pa.Table, *, faf_groups: Sequence[str] = ()) -> pa.Table:
    """Add AF, faf95, grpmax, grpmax_af and het_p to counts (:data:`COUNT_COLUMNS`) of whole sites.

    Pure and deterministic: the same integer counts give bit-identical output whatever engine counted them.
    """
    from genolake.duck import connect

    n = counts.num_rows
    ac = counts["ac"].to_numpy(zero_copy_only=False).astype(np.int64)
    an = counts["an"].to_numpy(zero_copy_only=False).astype(np.int64)
    af = np.divide(ac, an, out=np.full(n, np.nan), where=an > 0)
    joint = np.asarray(counts["scope"].to_numpy(zero_copy_only=False) == "joint", dtype=bool)
    faf_own = np.full(n, np.nan)
    if joint.any():
        faf_own[joint] = faf(ac[joint], an[joint])
    t = counts.append_column("rid", pa.array(np.arange(n, dtype=np.int64))) \
              .append_column("af", pa.array(af, mask=np.isnan(af))) \
              .append_column("faf_own", pa.array(faf_own, mask=np.isnan(faf_own)))
    con = connect(1)
    try:
        con.register("t", t)
        # het_p: institution rows with AN > 0 of each joint row's site and stratum, in scope order
        het = _arrow(con.sql(
            """SELECT j.rid, list(i.ac ORDER BY i.scope) FILTER (WHERE i.an > 0) AS acs,
                      list(i.an ORDER BY i.scope) FILTER (WHERE i.an > 0) AS ans
               FROM t j LEFT JOIN t i ON i.pos = j.pos AND i.ref = j.ref AND i.alt = j.alt
                                     AND i.stratum = j.stratum AND i.scope <> 'joint'
               WHERE j.scope = 'joint' GROUP BY j.rid ORDER BY j.rid"""))
        het_p = np.full(n, np.nan)
        if het.num_rows:
            acs = het["acs"].combine_chunks()
            ans = het["ans"].combine_chunks()
            offsets = np.asarray(pc_fill_offsets(acs))
            hp = het_p_values(np.asarray(acs.flatten().to_numpy(zero_copy_only=False), dtype=np.int64),
                              np.asarray(ans.flatten().to_numpy(zero_copy_only=False), dtype=np.int64), offsets)
            het_p[het["rid"].to_numpy()] = hp
        faf95 = faf_own.copy()
        grpmax: list[str | None] = [None] * n
        grpmax_af = np.full(n, np.nan)
        if faf_groups:
            con.register("fg", pa.table({"col": pa.array(list(faf_groups), _STR)}))
            g = _arrow(con.sql(
                """WITH grp AS (
                     SELECT pos, ref, alt, starts_with(stratum, 'adj:') AS adjp,
                            CASE WHEN starts_with(stratum, 'adj:') THEN stratum[5:] ELSE stratum END AS label,
                            ac, af, faf_own
                     FROM t WHERE scope = 'joint'),
                   sel AS (SELECT * FROM grp WHERE split_part(label, '=', 1) IN (SELECT col FROM fg)
                                             AND label <> 'all'),
                   m AS (SELECT pos, ref, alt, adjp, max(faf_own) AS faf_max,
                                max(af) FILTER (WHERE ac > 0) AS af_max FROM sel GROUP BY ALL),
                   w AS (SELECT s.pos, s.ref, s.alt, s.adjp, min(s.label) AS grpmax
                         FROM sel s JOIN m USING (pos, ref, alt, adjp)
                         WHERE s.ac > 0 AND s.af = m.af_max GROUP BY ALL)
                   SELECT t.rid, m.faf_max, w.grpmax, m.af_max
                   FROM t JOIN m ON m.pos = t.pos AND m.ref = t.ref AND m.alt = t.alt
                                AND m.adjp = starts_with(t.stratum, 'adj:')
                          LEFT JOIN w ON w.pos = t.pos AND w.ref = t.ref AND w.alt = t.alt AND w.adjp = m.adjp
                   WHERE t.scope = 'joint' AND t.stratum IN ('all', 'adj:all')"""))
            rid = g["rid"].to_numpy()
            fm = g["faf_max"].to_numpy(zero_copy_only=False)
            faf95[rid] = np.asarray([np.nan if x is None else x for x in fm], dtype=np.float64) \
                if fm.dtype == object else fm
            for r, name, a in zip(rid, g["grpmax"].to_pylist(), g["af_max"].to_pylist(), strict=True):
                if name is not None:
                    grpmax[r] = name
                    grpmax_af[r] = a
    finally:
        con.close()
    cols = {c: counts[c] for c in COUNT_COLUMNS}
    out = pa.table({
        **{c: cols[c] for c in ("contig", "pos", "ref", "alt", "scope", "stratum", "ac", "an")},
        "af": pa.array(af, mask=np.isnan(af)),
        **{c: cols[c] for c in ("nhomalt", "nhemi", "n_called")},
        "faf95": pa.array(faf95, mask=np.isnan(faf95)),
        "grpmax": pa.array(grpmax, _STR),
        "grpmax_af": pa.array(grpmax_af, mask=np.isnan(grpmax_af)),
        "het_p": pa.array(het_p, mask=np.isnan(het_p)),
    })
    return out.cast(ALLELE_FREQUENCIES.arrow_schema)


def pc_fill_offsets(arr: pa.ListArray) -> np.ndarray:
    """Offsets of a list array whose null lists count as empty."""
    lengths = np.asarray(arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)])


def run_part(task: PartTask, groups: pa.Table) -> PartResult:
    """Count, derive and write one contig range into staging (what a Dask worker runs)."""
    from genolake.store import write_parquet

    t0 = time.perf_counter()
    counts = count_part(task, groups)
    table = derive(counts, faf_groups=task.faf_groups)
    sites = 0
    if table.num_rows:
        write_parquet(ALLELE_FREQUENCIES, table, Path(task.staging) / ALLELE_FREQUENCIES.name / task.relpath)
        keys = table.select(["pos", "ref", "alt"]).group_by(["pos", "ref", "alt"]).aggregate([])
        sites = keys.num_rows
    return PartResult(task.relpath if table.num_rows else "", table.num_rows, sites, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- run the tasks
def _execute(p: Plan, *, workers: int | None, scheduler: str | None,
             progress: ProgressFn | None) -> list[PartResult]:
    sites = 0
    if progress:
        progress(0, 0, len(p.tasks))  # the bar knows its length before the first part ends
    if scheduler is None and workers == 0:
        out = []
        for k, task in enumerate(p.tasks, start=1):
            task = PartTask(**{**task.__dict__, "threads": min(4, os.cpu_count() or 1)})
            res = run_part(task, p.groups)
            out.append(res)
            sites += res.sites
            if progress:
                progress(sites, k, len(p.tasks))
        return out
    from genolake.compute.cluster import dask_client

    with dask_client(workers=workers, scheduler=scheduler) as client:
        from distributed import as_completed

        groups = client.scatter(p.groups, broadcast=True)
        futures = [client.submit(run_part, t, groups, pure=False) for t in p.tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[PartResult | None] = [None] * len(futures)
        try:
            for k, fut in enumerate(as_completed(futures), start=1):
                res = fut.result()
                results[index[fut.key]] = res
                sites += res.sites
                if progress:
                    progress(sites, k, len(p.tasks))
        except BaseException:
            client.cancel(futures)
            raise
    return [r for r in results if r is not None]
