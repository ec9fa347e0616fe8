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
