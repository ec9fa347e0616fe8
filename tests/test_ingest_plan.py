"""Region planning of one indexed file for parallel readers (genolake.ingest.plan): the groups cover every
position exactly once, and their number keeps the readers busy to the end (no last group read alone)."""

from __future__ import annotations

import pytest

from genolake.ingest.plan import balanced_chunks, busy_fraction, region_chunks

# the full-tier benchmark file: 20 Mb of chr20 and 2 Mb of chrX
EXTENTS = [("chr20", 60322, 20062382), ("chrX", 60135, 2068919)]


def _covered(groups: list[list[tuple[str, int, int]]], contig: str, lo: int, hi: int) -> list[int]:
    """How many groups hold each of a sample of positions of ``contig`` between ``lo`` and ``hi``."""
    step = max(1, (hi - lo) // 997)
    return [sum(1 for g in groups for c, s, e in g if c == contig and s <= p <= e) for p in range(lo, hi + 1, step)]


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_groups_cover_every_position_once(workers: int) -> None:
    groups = balanced_chunks(EXTENTS, workers)
    for contig, _lo, hi in EXTENTS:
        assert set(_covered(groups, contig, 1, hi)) == {1}  # records start at or before hi


def test_nine_equal_groups_on_two_readers_leave_one_alone() -> None:
    # chr20 in 8 pieces of 2.5 Mb and chrX (2.07 Mb) as the ninth: the ninth runs alone on one of 2 readers
    nine = region_chunks(EXTENTS, 8)
    assert len(nine) == 9
    assert busy_fraction(nine, EXTENTS, 2) == pytest.approx(0.916, abs=0.001)


def test_two_readers_get_a_count_that_ends_together() -> None:
    groups = balanced_chunks(EXTENTS, 2)
    assert len(groups) % 2 == 0
    assert busy_fraction(groups, EXTENTS, 2) >= 0.98
    assert 6 <= len(groups) <= 10  # about four per reader: few files per contig


def test_busy_fraction_by_hand() -> None:
    ext = [("1", 1, 100)]
    assert busy_fraction([[("1", 1, 50)], [("1", 51, 100)]], ext, 2) == 1.0
    # 3 groups of 1/3 on 2 workers: 2/3 of the time both, then one alone -> (1/3 + 1/3 + 1/3) / (2 * 2/3)
    thirds = [[("1", 1, 33)], [("1", 34, 66)], [("1", 67, 99)]]
    assert busy_fraction(thirds, ext, 2) == pytest.approx(0.75)
    # a region past the contig's last record holds no work
    assert busy_fraction([[("1", 1, 100)], [("1", 101, 2**31 - 2)]], ext, 2) == pytest.approx(0.5)
