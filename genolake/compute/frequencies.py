"""The Dask engine of `genolake aggregate`: exact allele frequencies of the joint cohort, each institution and
phenotype strata, planned and counted per contig range; and :func:`derive`, the derived columns both engines share.

:func:`genolake.compute.aggregate.aggregate` is the public entry: it chooses the engine (this one, or Hail in
:mod:`genolake.compute.hail_engine`, which uses the same plan and :func:`derive`) and where it runs, and commits.
The job:

1. **plan** (driver): committed files, samples and their strata (``--by`` phenotype columns), the files that count
   sites absent from them (``--absent-as-ref`` / ``--callable-regions``) with their samples' ploidy per contig, and
   position ranges of each contig sized from the Parquet row-group statistics of ``genotypes`` and ``variants``
   (genotypes per task, and (site, institution, stratum) cells per task, which bound a task's memory);
2. **count** (one task per contig range, on a thread of this process or on a Dask worker):
   :mod:`genolake.counting` reads the ``variants`` and ``genotypes`` rows of the range (row groups
   outside it are skipped by their ``pos`` statistics) and counts AC, AN, nhomalt, nhemi and n_called per site,
   institution and stratum in numpy with the lake's counting rule (the stored calls by sparse products with each
   file's membership matrix); joint counts are the sums over institutions. A range holds whole sites, so its
   counts are complete, and the derived columns (AF, faf95, grpmax, het_p) are computed last from the integer
   counts (:func:`derive`), never by averaging frequencies. The task writes its Parquet part into the job's
   staging folder;
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
import pyarrow.compute as pc

from genolake.counting import COUNT_COLUMNS, fill_groups, row_group_loads, split_ranges
from genolake.errors import UserInputError
from genolake.schema import ALLELE_FREQUENCIES
from genolake.schema import people as people_of

log = logging.getLogger(__name__)

MAX_LEVELS = 200
"""A ``--by`` column may have at most this many distinct values."""
FAF_CI = 0.95
_TARGET_ROWS = 32_000_000  # genotypes (sites x samples of the `genotypes` rows) per task
_TARGET_CELLS = 1_000_000
"""(site, institution, stratum) cells per task: a task holds its counts densely per cell (about 250 bytes per cell
at its peak, 400 with ``--adj``), so this bounds a task's memory whatever the number of strata; a 200-value ``--by``
on a lake of few samples gets many small tasks instead of one array of gigabytes."""
ProgressFn = Callable[[int, int, int], None]  # (sites done, tasks done, tasks in all)

_I64 = pa.int64()
_F64 = pa.float64()
_STR = pa.string()


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
    values, which = np.unique(ac_b[pos], return_inverse=True)  # lambda depends on AC alone: once per value
    out[pos] = gammaincinv(values, 1.0 - ci)[which] / an_b[pos]
    out[(ac_b == 0) & (an_b > 0)] = 0.0
    return out


def het_p_values(acs: np.ndarray, ans: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Pearson chi-square p-values of AF homogeneity, one per group of institution rows.

    Group ``g`` is ``acs[offsets[g]:offsets[g + 1]]`` (every ``an > 0``). The 2 x k table has the alt counts in one
    row and the ref counts (AN - AC) in the other; the statistic equals ``scipy.stats.chi2_contingency(table,
    correction=False)`` and is written ``sum_i (ac_i - an_i p)^2 / (an_i p (1 - p))`` with ``p = AC / AN``,
    ``k - 1`` degrees of freedom. NaN for k < 2; 1.0 when the alt or ref row is all zero (no variation to test).
    """
    from scipy.special import chdtrc  # scipy.stats.chi2.sf(x, df) is chdtrc(df, x); scipy.stats takes 1.5 s to import

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
    out[ok] = chdtrc(k[ok] - 1, stat[ok] / (p[ok] * (1.0 - p[ok])))
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


def _phenotype_rows(store: Any, by: Sequence[str]) -> tuple[dict[str, str], dict[str, list[Any]]] | None:
    """The kinds of the phenotype columns and, per ``--by`` column, its (institution, sample_id, value) rows with a
    value, read from the stored long table as the wide `phenotypes` view shows them (a column per valid name of
    one kind; a person's value is the maximum of their rows'). None when a ``--by`` name has rows of several
    kinds (older data, which the view shows as text): the caller asks the query engine's view instead."""
    from genolake.schema import PHENOTYPE_VALUE_COLUMN, phenotype_columns

    if not store.has_table("phenotypes"):
        return {}, {}
    t = store.read_table("phenotypes", columns=["institution", "sample_id", "name", "kind", "value_str", "value_num"])
    pairs = t.select(["name", "kind"]).group_by(["name", "kind"]).aggregate([])
    kinds, mixed = phenotype_columns(zip(pairs["name"].to_pylist(), pairs["kind"].to_pylist(), strict=True))
    if mixed & set(by):
        return None
    rows: dict[str, list[Any]] = {}
    for col in by:
        if kinds.get(col) not in ("categorical", "numeric"):
            continue  # unknown or a list column: the caller refuses it
        source = PHENOTYPE_VALUE_COLUMN[kinds[col]]
        sub = t.filter(pc.and_(pc.equal(t["name"], col), pc.is_valid(t[source])))
        agg = sub.group_by(["institution", "sample_id"], use_threads=False).aggregate([(source, "max")])
        rows[col] = list(zip(*(agg.column(c).to_pylist() for c in ("institution", "sample_id", f"{source}_max")),
                             strict=True))
    return kinds, rows


def _strata_of(store: Any, samples: pa.Table, by: Sequence[str]) -> tuple[list[str], pa.Table]:
    """Sample -> stratum labels for the ``--by`` columns, checked: the column exists, is not a list, <= 200 values.

    The values are those of the `phenotypes` view (:func:`_phenotype_rows` reads them from the stored table
    without opening the query engine, ~0.1 s and DuckDB's import; the engine's view serves the rare lake whose
    column has rows of several kinds)."""
    if not by:
        return ["all"], pa.table({"institution": samples["institution"], "sample_id": samples["sample_id"],
                                  "stratum": pa.array(["all"] * samples.num_rows, _STR)})
    read = _phenotype_rows(store, by)
    eng = None
    if read is None:
        from genolake.query.engine import Engine

        eng = Engine(store, threads=2)
    try:
        kinds = dict(eng.catalog.phenotypes) if eng is not None else read[0] if read is not None else {}
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
            if eng is not None:
                from genolake.query.engine import quote_ident

                q = quote_ident(col)
                rows = eng.rows(f"SELECT institution, sample_id, {q} FROM phenotypes WHERE {q} IS NOT NULL")
            else:
                assert read is not None
                rows = read[1][col]
            values = sorted({r[2] for r in rows}, key=lambda v: (str(type(v)), v))
            if len(values) > MAX_LEVELS:
                raise UserInputError(
                    f"--by {col}: {len(values)} distinct values, more than {MAX_LEVELS}; stratify by a column with "
                    f"fewer levels (bin a numeric phenotype into a categorical one first)")
            strata += [f"{col}={_value_label(v)}" for v in values]
            for inst, sid, v in rows:
                labels.setdefault((inst, sid), []).append(f"{col}={_value_label(v)}")
    finally:
        if eng is not None:
            eng.con.close()
    insts, sids, st = [], [], []
    for inst, sid in zip(samples["institution"].to_pylist(), samples["sample_id"].to_pylist(), strict=True):
        for label in ["all", *labels.get((inst, sid), [])]:
            insts.append(inst)
            sids.append(sid)
            st.append(label)
    return strata, pa.table({"institution": pa.array(insts, _STR), "sample_id": pa.array(sids, _STR),
                             "stratum": pa.array(st, _STR)})


def plan(store: Any, *, by: Sequence[str] = (), faf_groups: Sequence[str] = (), adj: bool = False,
         n_workers: int = 1, staging: str = "", txn: str = "", target_rows: int | None = None,
         target_cells: int | None = None, drop: frozenset[tuple[str, str]] = frozenset()) -> Plan:
    """Plan the job over the lake's committed files (a snapshot: files committed later are not seen).

    Contigs are split into position ranges that each hold about ``target_rows`` genotypes (default
    :data:`_TARGET_ROWS`) and at most about ``target_cells`` (site, institution, stratum) cells (default
    :data:`_TARGET_CELLS`; sites counted as `variants` rows, so a site listed by several files counts for each):
    whichever bounds more. Ranges split at row-group statistics, so a range is at least a sixteenth of a row group.

    People in ``drop`` ((institution, pseudonym) pairs: duplicate copies, ``--dedupe``) are in no group, so they
    count nowhere (stored calls, implied 0/0 or absent-site fill), on either engine.
    """
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
    # each counted person once per stratum they are in, per file that holds them (Arrow: no DuckDB connection)
    groups = samples.join(labels, keys=["institution", "sample_id"], join_type="inner", use_threads=False) \
        .select(["file_id", "sample_id", "institution", "stratum", "column_index"])
    groups = groups.sort_by([(c, "ascending") for c in groups.column_names])
    fill_all = fill_groups(files, groups, ploidy)
    contigs = sorted({c for cs in files["contigs"].to_pylist() for c in (cs or [])})
    institutions = sorted(set(files["institution"].to_pylist()))
    out = Plan(file_ids=file_ids, institutions=institutions, strata=strata, groups=groups)
    calls_by: dict[str, list[str]] = {}
    vars_by: dict[str, list[str]] = {}
    for name, dest in (("genotypes", calls_by), ("variants", vars_by)):
        for df in store.data_files(name):
            if df.contig is not None:
                dest.setdefault(df.contig, []).append(df.path)
    target_rows = target_rows or _TARGET_ROWS
    target_cells = target_cells or _TARGET_CELLS
    n_cells = len(institutions) * len(strata) * (2 if adj else 1)  # cells per site (a row per file listing it)
    # each row group's load: its share of a task's genotypes plus its share of a task's cells
    geno = {c: row_group_loads(calls_by.get(c, [])) for c in contigs}
    genotypes = sum(r for g in geno.values() for _a, _b, r in g)
    stats = {c: [(a, b, r / target_rows) for a, b, r in geno[c]]
             + [(a, b, r * n_cells / target_cells) for a, b, r in row_group_loads(vars_by.get(c, []))] for c in contigs}
    load = {c: sum(r for _a, _b, r in g) for c, g in stats.items()}
    total = sum(load.values())
    desired = max(math.ceil(total), 4 * n_workers if genotypes > 200_000 and n_workers > 1 else 1)

    k = 0
    for contig in contigs:
        if not vars_by.get(contig):
            continue
        parts = max(1, math.ceil(load[contig]), round(desired * load[contig] / total)) if total else 1
        fill = fill_all.filter(pc.equal(fill_all["contig"], contig)).drop(["contig"])
        cb = callable_.filter(pc.equal(callable_["contig"], contig)).select(["file_id", "start", "end"])
        for start, end in split_ranges(stats[contig], parts):
            rel = f"{partition_dir(ALLELE_FREQUENCIES, {'contig': contig})}/{txn}-{k:05d}.parquet"
            out.tasks.append(PartTask(
                contig=contig, start=start, end=end, calls=tuple(calls_by.get(contig, [])),
                variants=tuple(vars_by[contig]), institutions=tuple(institutions), fill=fill, callable=cb,
                adj=adj, faf_groups=tuple(faf_groups), staging=staging, relpath=rel,
            ))
            k += 1
    return out


def _arrow(rel: Any) -> pa.Table:
    """A DuckDB relation's result as an Arrow table (the Hail engine's SQL)."""
    fn = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table
    return fn()


# ---------------------------------------------------------------------------------------------- count
def count_part(task: PartTask, groups: pa.Table, *, file_ids: Sequence[str] | None = None) -> pa.Table:
    """Counts of one contig range: columns :data:`COUNT_COLUMNS`, one row per site, scope and stratum
    (:func:`genolake.counting.count_range`, numpy).

    ``groups`` (file_id, sample_id, institution, stratum, column_index) lists each committed sample once per
    stratum it is in; rows of files not in it are ignored, so uncommitted data never counts.
    """
    from genolake.counting import task_counts

    return task_counts(task, groups, file_ids=file_ids)


# ---------------------------------------------------------------------------------------------- derive
def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[str]]:
    """(int64 codes, names) of a string or dictionary column."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    return (np.asarray(arr.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
            [str(x) for x in arr.dictionary.to_pylist()])


def _ranks(names: list[str]) -> np.ndarray:
    """Each name's rank in bytewise (SQL) order."""
    order = sorted(range(len(names)), key=lambda i: names[i].encode())
    out = np.empty(len(names), dtype=np.int64)
    out[order] = np.arange(len(names))
    return out


def _site_ids(counts: pa.Table) -> tuple[pa.Table, np.ndarray | None]:
    """Rows grouped by site (contig, pos, ref, alt) and each row's site id. The engines' counts come sorted; other
    input is sorted first (then the permutation back to the input order is returned too)."""
    n = counts.num_rows
    if n == 0:
        return counts, None
    cc, _ = _codes(counts["contig"])
    pos = np.asarray(counts["pos"].to_numpy(), dtype=np.int64)
    ref = counts["ref"].combine_chunks()
    alt = counts["alt"].combine_chunks()

    def flags(a: Any) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(pc.less(a[1:], a[:-1]).to_numpy(zero_copy_only=False), dtype=bool),
                np.asarray(pc.equal(a[1:], a[:-1]).to_numpy(zero_copy_only=False), dtype=bool))

    lt_r, eq_r = flags(ref)
    lt_a, eq_a = flags(alt)
    lt_c, eq_c = cc[1:] < cc[:-1], cc[1:] == cc[:-1]
    lt_p, eq_p = pos[1:] < pos[:-1], pos[1:] == pos[:-1]
    down = lt_c | (eq_c & (lt_p | (eq_p & (lt_r | (eq_r & lt_a)))))
    if down.any():  # not grouped by site: sort, and hand back the way to the input order
        order = pc.sort_indices(counts, sort_keys=[(c, "ascending") for c in ("contig", "pos", "ref", "alt")])
        sorted_ = counts.take(order)
        grouped, _ = _site_ids(sorted_)
        return grouped, np.asarray(order)
    new = np.ones(n, dtype=bool)
    new[1:] = ~(eq_c & eq_p & eq_r & eq_a)
    return counts.append_column("_site", pa.array(np.cumsum(new) - 1)), None


def derive(counts: pa.Table, *, faf_groups: Sequence[str] = ()) -> pa.Table:
    """Add AF, faf95, grpmax, grpmax_af and het_p to counts (:data:`COUNT_COLUMNS`) of whole sites.

    Pure and deterministic: the same integer counts give bit-identical output whatever engine counted them
    (numpy over the rows grouped by site; string columns may be plain or dictionary-encoded).
    """
    n = counts.num_rows
    grouped, order = _site_ids(counts.select(list(COUNT_COLUMNS)))
    if order is not None:  # derive in site order, then put the rows back as they came
        out = derive(grouped.drop(["_site"]), faf_groups=faf_groups)
        back = np.empty(n, dtype=np.int64)
        back[order] = np.arange(n)
        return out.take(pa.array(back))
    site = np.asarray(grouped["_site"].to_numpy(), dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    n_sites = int(site[-1]) + 1 if n else 0
    ac = np.asarray(counts["ac"].to_numpy(zero_copy_only=False), dtype=np.int64)
    an = np.asarray(counts["an"].to_numpy(zero_copy_only=False), dtype=np.int64)
    af = np.divide(ac, an, out=np.full(n, np.nan), where=an > 0)
    scope, scope_names = _codes(counts["scope"])
    stratum, strata = _codes(counts["stratum"])
    joint = scope == scope_names.index("joint") if "joint" in scope_names else np.zeros(n, dtype=bool)
    faf_own = np.full(n, np.nan)
    if joint.any():
        faf_own[joint] = faf(ac[joint], an[joint])

    # het_p: per joint row, the institution rows of its site and stratum with AN > 0, in scope order
    n_t = max(1, len(strata))
    key = site * n_t + stratum
    jrows = np.flatnonzero(joint)
    het_p = np.full(n, np.nan)
    if jrows.size:
        jkeys = np.unique(key[jrows])
        has_joint = np.zeros(n_sites * n_t, dtype=bool)
        has_joint[jkeys] = True
        inst = np.flatnonzero(~joint & (an > 0) & has_joint[key])
        inst = inst[np.lexsort((_ranks(scope_names)[scope[inst]], key[inst]))]
        per_key = np.bincount(key[inst], minlength=n_sites * n_t)[jkeys]
        offsets = np.concatenate([[0], np.cumsum(per_key)])
        hp = het_p_values(ac[inst], an[inst], offsets)
        het_p[jrows] = hp[np.searchsorted(jkeys, key[jrows])]

    faf95 = faf_own.copy()
    grp_idx = np.full(n, -1, dtype=np.int64)  # index into `labels`
    grpmax_af = np.full(n, np.nan)
    labels: list[str] = []
    if faf_groups and jrows.size:
        adjp = np.array([s.startswith("adj:") for s in strata], dtype=bool)
        labels = sorted({s[4:] if s.startswith("adj:") else s for s in strata}, key=str.encode)
        label_of = np.array([labels.index(s[4:] if s.startswith("adj:") else s) for s in strata], dtype=np.int64)
        in_group = np.array([labels[label_of[t]].split("=", 1)[0] in set(faf_groups)
                             and labels[label_of[t]] != "all" for t in range(len(strata))], dtype=bool)
        k2 = site * 2 + adjp[stratum]
        sel = np.flatnonzero(joint & in_group[stratum])
        exists = np.zeros(2 * n_sites, dtype=bool)
        exists[k2[sel]] = True
        faf_max = np.full(2 * n_sites, np.nan)
        np.fmax.at(faf_max, k2[sel], faf_own[sel])
        carriers = sel[ac[sel] > 0]
        af_max = np.full(2 * n_sites, -np.inf)
        np.maximum.at(af_max, k2[carriers], af[carriers])
        win = carriers[af[carriers] == af_max[k2[carriers]]]
        best = np.full(2 * n_sites, len(labels), dtype=np.int64)
        np.minimum.at(best, k2[win], label_of[stratum[win]])
        target = np.flatnonzero(joint & np.isin(stratum, [t for t, s in enumerate(strata) if s in ("all", "adj:all")]))
        target = target[exists[k2[target]]]
        faf95[target] = faf_max[k2[target]]
        has = target[best[k2[target]] < len(labels)]
        grp_idx[has] = best[k2[has]]
        grpmax_af[has] = af_max[k2[has]]
    grpmax = pa.DictionaryArray.from_arrays(pa.array(grp_idx.astype(np.int32), mask=grp_idx < 0),
                                            pa.array(labels, _STR))
    out = pa.table({
        **{c: counts[c] for c in ("contig", "pos", "ref", "alt", "scope", "stratum", "ac", "an")},
        "af": pa.array(af, mask=np.isnan(af)),
        **{c: counts[c] for c in ("nhomalt", "nhemi", "n_called")},
        "faf95": pa.array(faf95, mask=np.isnan(faf95)),
        "grpmax": grpmax,
        "grpmax_af": pa.array(grpmax_af, mask=np.isnan(grpmax_af)),
        "het_p": pa.array(het_p, mask=np.isnan(het_p)),
    })
    return _cast_keeping_dictionaries(out, ALLELE_FREQUENCIES.arrow_schema)


def _cast_keeping_dictionaries(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """``t`` cast to ``schema``, except that dictionary-encoded string columns stay encoded (the Parquet writer
    writes them as they are; readers see plain strings)."""
    fields = []
    for f in schema:
        typ = t.schema.field(f.name).type
        fields.append(f.with_type(typ) if pa.types.is_dictionary(typ) and pa.types.is_string(f.type)
                      and pa.types.is_string(typ.value_type) else f)
    return t.select(schema.names).cast(pa.schema(fields))


def run_part(task: PartTask, groups: pa.Table) -> PartResult:
    """Count, derive and write one contig range into staging (what a Dask worker runs)."""
    from genolake.store import write_parquet

    t0 = time.perf_counter()
    counts = count_part(task, groups)
    table = derive(counts, faf_groups=task.faf_groups)
    sites = 0
    if table.num_rows:
        write_parquet(ALLELE_FREQUENCIES, table, Path(task.staging) / ALLELE_FREQUENCIES.name / task.relpath)
        sites = _sites_in(table)
    return PartResult(task.relpath if table.num_rows else "", table.num_rows, sites, time.perf_counter() - t0)


def _sites_in(table: pa.Table) -> int:
    """Sites of a derived part: each has one joint ``all`` row."""
    scope, scopes = _codes(table["scope"])
    stratum, strata = _codes(table["stratum"])
    if "joint" not in scopes or "all" not in strata:
        return 0
    return int(np.count_nonzero((scope == scopes.index("joint")) & (stratum == strata.index("all"))))


# ---------------------------------------------------------------------------------------------- run the tasks
def _execute(p: Plan, *, workers: int | None, scheduler: str | None,
             progress: ProgressFn | None) -> list[PartResult]:
    from genolake.compute.runner import in_process, run_tasks

    threads = (os.cpu_count() or 1) if in_process(workers, scheduler) else 1
    return run_tasks(run_part, p.tasks, workers=workers, scheduler=scheduler, broadcast=p.groups,
                     progress=progress, count=lambda res: res.sites, threads=threads)

