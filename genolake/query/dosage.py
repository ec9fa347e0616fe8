"""Genotype dosage matrices (variants x people) of a region, with the lake's counting rule for implied calls.

A person's dosage at a split allele is:

- ``alt_count`` of its stored call when the call is complete (``called = ploidy``: ``0/1`` -> 1, ``1/1`` -> 2,
  haploid ``1`` -> 1, haploid ``0`` -> 0);
- 0 when it has no stored call and counts at the site by the rule of :mod:`genolake.query.counts` (its file
  lists the site, or the file was ingested ``--absent-as-ref`` / with ``--callable-regions`` covering the site and
  the person has a ploidy on the contig): an implied homozygous-reference call;
- missing (NaN) otherwise: partly or fully missing calls, files that do not cover the site.

So the non-missing entries of a row sum to the allele count AC, and ``sum(ploidy of non-missing)`` is AN, of
those people, as ``group_ctes`` counts them (a test checks this). The matrix is built in blocks of variants
(one DuckDB query per block over the block's position range), so memory stays bounded for long regions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from genolake.query.engine import Engine
    from genolake.query.ids import Region


@dataclass
class People:
    """The people of an analysis, in matrix column order: (institution, pseudonymised sample_id)."""

    institution: list[str]
    sample_id: list[str]

    def __len__(self) -> int:
        return len(self.sample_id)


@dataclass
class Block:
    """A block of variants: ``keys`` (contig, pos, ref, alt, id) and ``G`` (variants x people, NaN missing)."""

    keys: pa.Table
    G: np.ndarray
    blocks_total: int = 0  # blocks this iteration yields in all (for progress bars)


def _keys(eng: Engine, region: Region | None) -> pa.Table:
    src = eng.scan("variants", contig=region.contig if region else None, start=region.start if region else None,
                   end=region.end if region else None,
                   columns=["file_id", "contig", "pos", "ref", "alt", "id"])
    params: dict[str, Any] = {}
    where = "TRUE"
    if region is not None:
        params.update(contig=region.contig, start=region.start, end=region.end)
        where = "v.contig = $contig AND v.pos BETWEEN $start AND $end"
    return eng.query(f"""SELECT contig, pos, ref, alt, max(id) AS id, list(DISTINCT file_id) AS present
                         FROM {src} AS v WHERE {where} GROUP BY ALL ORDER BY contig, pos, ref, alt""", params)


def dosage_blocks(eng: Engine, region: Region | None, people: People, *, block: int = 2048,
                  select: Callable[[pa.Table], np.ndarray] | None = None) -> Iterator[Block]:
    """Yield the dosage matrix of every split allele in ``region`` (all contigs if None), ``block`` rows at a
    time, in (contig, pos, ref, alt) order; with ``select`` (keys table -> boolean mask) only the selected
    alleles (the others' dosages are never built)."""
    keys = _keys(eng, region)
    if select is not None and keys.num_rows:
        keys = keys.filter(pa.array(np.asarray(select(keys), dtype=bool)))
    if keys.num_rows == 0 or len(people) == 0:
        return
    pf = eng.query("""
        WITH ppl AS (SELECT unnest($inst) AS institution, unnest($sid) AS sample_id,
                            CAST(unnest(range(len($sid))) AS BIGINT) AS j)
        SELECT s.file_id, s.sample_id, ppl.j FROM ppl JOIN samples s USING (institution, sample_id)""",
                   {"inst": people.institution, "sid": people.sample_id})
    pf_file = np.asarray(pf["file_id"].to_pylist(), dtype=object)
    pf_sid = pf["sample_id"].to_pylist()
    pf_j = np.asarray(pf["j"].to_numpy(), dtype=np.int64)
    files = sorted(set(pf_file.tolist()))
    fidx = {f: i for i, f in enumerate(files)}
    modes = {f: (eng.catalog.files[f].absent_mode if f in eng.catalog.files else "no_call") for f in files}
    fill = [f for f in files if modes[f] in ("ref", "callable")]
    ploidy_rows: set[tuple[str, str, str]] = set()
    if fill:
        for fid, sid, contig in eng.rows(
                "SELECT file_id, sample_id, contig FROM ploidy WHERE list_contains($f, file_id)", {"f": fill}):
            ploidy_rows.add((fid, sid, contig))
    cregions = eng.callable_regions() if any(modes[f] == "callable" for f in fill) else {}
    contigs = keys["contig"].to_pylist()
    per_contig: dict[str, int] = {}
    for c in contigs:
        per_contig[c] = per_contig.get(c, 0) + 1
    blocks_total = sum(-(-m // block) for m in per_contig.values())
    present = keys["present"].to_pylist()
    pos_all = keys["pos"].to_numpy()
    n = len(people)
    start = 0
    while start < keys.num_rows:
        contig = contigs[start]
        stop = start
        # a block never spans two contigs
        limit = min(keys.num_rows, start + block)
        while stop < limit and contigs[stop] == contig:
            stop += 1
        kb = keys.slice(start, stop - start)
        pos = pos_all[start:stop]
        nb = stop - start
        listed = np.zeros((nb, len(files)), dtype=bool)
        for i, plist in enumerate(present[start:stop]):
            for f in plist:
                k = fidx.get(f)
                if k is not None:
                    listed[i, k] = True
        covered = np.zeros((nb, n), dtype=bool)
        for f in files:
            k = fidx[f]
            rows = np.flatnonzero(pf_file == f)
            col = listed[:, k:k + 1]
            if modes[f] in ("ref", "callable"):
                has_pl = np.array([(f, pf_sid[r], contig) in ploidy_rows for r in rows], dtype=bool)
                if modes[f] == "ref":
                    site_fill = np.ones((nb, 1), dtype=bool)
                else:
                    starts, ends = cregions.get((f, contig), ([], []))
                    idx = np.searchsorted(np.asarray(starts, dtype=np.int64), pos, side="right") - 1
                    ends_a = np.asarray(ends, dtype=np.int64)
                    site_fill = ((idx >= 0) & (ends_a[np.maximum(idx, 0)] >= pos) if len(ends_a)
                                 else np.zeros(nb, dtype=bool))[:, None]
                cov_rows = col | (site_fill & ~col & has_pl[None, :])
            else:
                cov_rows = np.broadcast_to(col, (nb, rows.size))
            covered[:, pf_j[rows]] |= cov_rows
        G = np.where(covered, 0.0, np.nan)
        _fill_calls(eng, contig, kb, pf_file, pf_sid, pf_j, G)
        yield Block(kb.select(["contig", "pos", "ref", "alt", "id"]), G, blocks_total)
        start = stop


def _fill_calls(eng: Engine, contig: str, kb: pa.Table, pf_file: np.ndarray, pf_sid: list[str],
                pf_j: np.ndarray, G: np.ndarray) -> None:
    """Stored calls of the block's people into ``G``. DuckDB joins the calls to the people (a small hash
    table); rows are matched to the block's variants by position in numpy (binary search over the sorted
    keys; ref/alt compared only at positions with several alleles), which is faster than a join on the
    (pos, ref, alt) strings."""
    import pyarrow.compute as pc

    lo, hi = int(kb["pos"][0].as_py()), int(kb["pos"][-1].as_py())
    calls = eng.scan("calls", contig=contig, start=lo, end=hi,
                     columns=["file_id", "sample_id", "contig", "pos", "ref", "alt", "ploidy", "called", "alt_count"])
    # a selection of variants spread over a long range (PCA's common ones): read only their positions' calls
    positions: dict[str, Any] = {}
    sparse = ""
    if kb.num_rows < (hi - lo + 1) // 4:
        positions = {"positions": sorted(set(kb["pos"].to_pylist()))}
        sparse = "AND c.pos IN (SELECT unnest($positions))"
    t = eng.query(f"""
        WITH pf AS (SELECT unnest($pf_file) AS file_id, unnest($pf_sid) AS sample_id, unnest($pf_j) AS j)
        SELECT c.pos, c.ref, c.alt, pf.j, CASE WHEN c.called = c.ploidy THEN c.alt_count ELSE -1 END AS g
        FROM {calls} AS c JOIN pf ON pf.file_id = c.file_id AND pf.sample_id = c.sample_id
        WHERE c.contig = $contig AND c.pos BETWEEN $lo AND $hi {sparse}""",
                  {"pf_file": pf_file.tolist(), "pf_sid": pf_sid, "pf_j": pf_j.tolist(), "contig": contig,
                   "lo": lo, "hi": hi, **positions})
    if not t.num_rows:
        return
    key_pos = kb["pos"].to_numpy().astype(np.int64)
    pos = t["pos"].to_numpy().astype(np.int64)
    first = np.searchsorted(key_pos, pos, side="left")
    last = np.searchsorted(key_pos, pos, side="right")
    i = first.copy()
    multi = np.flatnonzero(last - first > 1)
    keep = last > first
    if multi.size:  # several alleles at the position: match "pos:ref:alt" (vectorised in Arrow)
        def joined(tab: pa.Table) -> pa.Array:
            return pc.binary_join_element_wise(pc.cast(tab["pos"], pa.string()), tab["ref"], tab["alt"], ":")

        at = pc.index_in(joined(t.take(pa.array(multi))), value_set=joined(kb)).to_numpy(zero_copy_only=False)
        found = ~np.isnan(at.astype(np.float64))
        keep[multi[~found]] = False
        i[multi[found]] = at[found].astype(np.int64)
    j = t["j"].to_numpy()
    g = t["g"].to_numpy().astype(np.float64)
    g[g < 0] = np.nan
    G[i[keep], j[keep]] = g[keep]
