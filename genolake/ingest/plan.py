"""Split the work of ingesting files into tasks: whole files, or genomic regions read through the
tabix/CSI index so that one large file is converted by several workers at once."""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

MIN_CHUNK_BP = 1_000_000


def contig_extents(path: str) -> list[tuple[str, int, int]]:
    """(contig, first POS, last POS) for each indexed contig that has records.

    The last position is found by bisecting with index queries (a few seeks per contig, no full read).
    """
    import pysam

    out: list[tuple[str, int, int]] = []
    with pysam.VariantFile(path) as vf:
        index = vf.index
        if index is None:
            return []
        lengths = {name: (vf.header.contigs[name].length or 0) for name in vf.header.contigs}
        for key in list(index.keys()):
            contig = str(key)
            it = vf.fetch(contig)
            first = next(it, None)
            if first is None:
                continue
            lo = first.pos  # 1-based POS of the first record
            hi = max(lengths.get(contig, 0), lo) or 2**29
            # largest p with a record starting at or after p (resolution 10 kb is plenty for planning)
            if _has_record_from(vf, contig, hi):
                hi = 2**29
            left, right = lo, hi
            while right - left > 10_000:
                mid = (left + right) // 2
                if _has_record_from(vf, contig, mid):
                    left = mid
                else:
                    right = mid
            out.append((contig, lo, right))
    return out


def _has_record_from(vf: object, contig: str, start1: int) -> bool:
    return any(rec.pos >= start1 for rec in vf.fetch(contig, start1 - 1, 2**29))  # type: ignore[attr-defined]


def region_chunks(extents: list[tuple[str, int, int]], n_chunks: int) -> list[list[tuple[str, int, int]]]:
    """Cut contig extents into about ``n_chunks`` groups of regions (1-based, inclusive, covering everything)."""
    total = sum(e - s + 1 for _, s, e in extents)
    if total == 0:
        return []
    size = max(MIN_CHUNK_BP, math.ceil(total / max(1, n_chunks)))
    groups: list[list[tuple[str, int, int]]] = []
    small: list[tuple[str, int, int]] = []
    small_bp = 0
    for contig, s, e in extents:
        span = e - s + 1
        if span < size:
            small.append((contig, 1, e))
            small_bp += span
            if small_bp >= size:
                groups.append(small)
                small, small_bp = [], 0
            continue
        pieces = math.ceil(span / size)
        step = math.ceil(span / pieces)
        for k in range(pieces):
            a = s + k * step
            b = min(e, a + step - 1)
            # first piece starts at 1 so records overlapping the contig start are owned; last piece to the end
            groups.append([(contig, 1 if k == 0 else a, 2**31 - 2 if k == pieces - 1 else b)])
    if small:
        groups.append(small)
    return groups


def _group_bp(group: list[tuple[str, int, int]], extents: dict[str, tuple[int, int]]) -> int:
    """Base pairs of a group of regions that hold records (each region clipped to its contig's extent)."""
    total = 0
    for contig, start, end in group:
        lo, hi = extents.get(contig, (start, end))
        total += max(0, min(end, hi) - max(start, lo) + 1)
    return total


def busy_fraction(groups: list[list[tuple[str, int, int]]], extents: list[tuple[str, int, int]], workers: int) -> float:
    """How busy ``workers`` are, on average, until the last of ``groups`` is done, when each takes the next
    group in order as soon as it is free (thread and process pools hand out tasks so) and a group's work is
    its base pairs: 1.0 when all finish together; lower when the last groups run alone."""
    spans = {c: (s, e) for c, s, e in extents}
    free = [0] * max(1, workers)
    for group in groups:
        k = free.index(min(free))
        free[k] += _group_bp(group, spans)
    end = max(free)
    return sum(free) / (len(free) * end) if end else 1.0


def balanced_chunks(extents: list[tuple[str, int, int]], workers: int, *, per_worker: int = 4
                    ) -> list[list[tuple[str, int, int]]]:
    """:func:`region_chunks` cut for ``workers`` parallel readers: about ``per_worker`` groups each, the count
    (between ``per_worker - 1`` and ``per_worker + 1`` per worker) that keeps the workers busiest until the end
    (:func:`busy_fraction`; on a tie, fewer groups: fewer files). With 9 equal groups on 2 readers the last one
    runs alone, ~6% of the wall time of an ingest (docs/INGEST_PERFORMANCE.md, round 3)."""
    best: list[list[tuple[str, int, int]]] = []
    best_busy = -1.0
    for n in range(max(1, (per_worker - 1) * workers), (per_worker + 1) * workers + 1):
        groups = region_chunks(extents, n)
        busy = round(busy_fraction(groups, extents, workers), 2)
        if busy > best_busy or (busy == best_busy and len(groups) < len(best)):
            best, best_busy = groups, busy
    return best
