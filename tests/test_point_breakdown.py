"""The phenotype breakdown of a point query (strata.count_breakdown) against a brute-force counter.

count_breakdown counts calls by kind and by combination of phenotype values, or per (call, phenotype) pair when
there are many combinations, or call by call for other ploidies; each way must give what adding up every
sample one by one with the lake's counting rule (genotypes.call_counts) gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from genolake import genotypes as gtc
from genolake.query import strata
from genolake.query.strata import SampleIndex, count_breakdown


def _index(rng: np.random.Generator, n_files: int, per_file: int, groups: list[int],
           contig: str) -> SampleIndex:
    file_ids = [f"f{i}" for i in range(n_files)]
    n = n_files * per_file
    file_codes = np.repeat(np.arange(n_files, dtype=np.int32), per_file)
    index = {(file_ids[int(f)], f"s{i}"): i for i, f in enumerate(file_codes)}
    out = []
    for g, k in enumerate(groups):
        codes = rng.integers(-1, k, n).astype(np.int32)  # -1: no value
        out.append((f"p{g}", [f"v{j}" for j in range(k)], codes))
    by_column = {f: np.arange(i * per_file, (i + 1) * per_file, dtype=np.int64) for i, f in enumerate(file_ids)}
    idx = SampleIndex(index, file_codes, file_ids, out, by_column=by_column)
    idx.ploidy[contig] = rng.integers(0, 3, n).astype(np.int32)  # absent-site files: ploidy on the contig
    return idx


def _brute(idx: SampleIndex, contig: str, present: list[str], fill: list[str], found: np.ndarray,
           ploidy: np.ndarray, called: np.ndarray, alt_count: np.ndarray) -> list[dict[str, Any]]:
    """Sample by sample: the last call of each sample, else the implied 0/0 (2 alleles, or the ploidy in a file
    counting the absent site)."""
    pl = idx.ploidy[contig]
    call: dict[int, tuple[int, int, int]] = {}
    for r, p, c, a in zip(found.tolist(), ploidy.tolist(), called.tolist(), alt_count.tolist(), strict=True):
        if r >= 0:
            call[r] = (p, c, a)
    out = []
    for name, values, codes in idx.groups:
        for v, value in enumerate(values):
            tot = dict(samples=0, carriers=0, ac=0, an=0, nhomalt=0, nhemi=0)
            for row in range(len(idx.file_codes)):
                if codes[row] != v:
                    continue
                f = idx.file_ids[idx.file_codes[row]]
                if f in present:
                    implied = (0, 2, 0)
                elif f in fill and pl[row] > 0:
                    implied = (int(pl[row]), int(pl[row]), 0)
                else:
                    continue
                p, c, a = call.get(row, implied)
                counts = gtc.call_counts(np.array([p]), np.array([c]), np.array([a]))[0]
                tot["samples"] += 1
                tot["carriers"] += int(a > 0)
                tot["ac"] += int(counts[0])
                tot["an"] += int(counts[1])
                tot["nhomalt"] += int(counts[3])
                tot["nhemi"] += int(counts[4])
            if tot["samples"]:
                out.append({"phenotype": name, "value": value, "samples": tot["samples"], "carriers": tot["carriers"],
                            "ac": tot["ac"], "an": tot["an"], "af": tot["ac"] / tot["an"] if tot["an"] else None,
                            "nhomalt": tot["nhomalt"], "nhemi": tot["nhemi"]})
    return out


@pytest.mark.parametrize("max_combinations", [256, 0])
@pytest.mark.parametrize("max_ploidy", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_breakdown_equals_sample_by_sample_count(monkeypatch: pytest.MonkeyPatch, seed: int, max_ploidy: int,
                                                 max_combinations: int) -> None:
    monkeypatch.setattr(strata, "MAX_COMBINATIONS", max_combinations)
    rng = np.random.default_rng(seed)
    contig = "20"
    idx = _index(rng, n_files=4, per_file=25, groups=[2, 3, 1], contig=contig)
    present, fill = ["f0", "f2"], ["f1"]  # f3 neither lists nor counts the site
    n_calls = int(rng.integers(0, 80))
    found = rng.integers(-1, len(idx.file_codes), n_calls).astype(np.int64)  # -1: a withdrawn person's column
    ploidy = rng.integers(0, max_ploidy + 1, n_calls)
    called = np.array([rng.integers(0, p + 1) for p in ploidy.tolist()], dtype=np.int64)
    alt_count = np.array([rng.integers(0, c + 1) for c in called.tolist()], dtype=np.int64)
    got = count_breakdown(None, idx, contig, present, fill, found, ploidy.astype(np.int8), called.astype(np.int8),
                          alt_count.astype(np.int8))  # type: ignore[arg-type]
    assert got == _brute(idx, contig, present, fill, found, ploidy, called, alt_count)


def test_breakdown_without_calls() -> None:
    rng = np.random.default_rng(1)
    idx = _index(rng, n_files=2, per_file=10, groups=[2], contig="20")
    none = np.zeros(0, np.int64)
    got = count_breakdown(None, idx, "20", ["f0"], ["f1"], none, none, none, none)  # type: ignore[arg-type]
    assert got == _brute(idx, "20", ["f0"], ["f1"], none, none, none, none)


def _site_index(rng: np.random.Generator, contig: str, per_file: int, withdrawn: dict[str, int]) -> SampleIndex:
    """Four files of ``per_file`` samples, three phenotypes; ``withdrawn``: file -> a column whose person left."""
    idx = _index(rng, n_files=4, per_file=per_file, groups=[2, 3, 1], contig=contig)
    for f, c in withdrawn.items():
        idx.by_column[f][c] = -1
    return idx


@pytest.mark.parametrize("twice", [False, True])
@pytest.mark.parametrize("max_ploidy", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_site_counts_equal_sample_by_sample_count(seed: int, max_ploidy: int, twice: bool) -> None:
    """count_site (calls given by file and column, mapped to sample index rows) equals the brute count of
    the same calls mapped to samples; a withdrawn person's column and columns past the file's samples count for
    nobody; a file with two rows at the site goes the general way (the last call of a sample counts)."""
    rng = np.random.default_rng(100 + seed)
    contig, per_file = "20", 25
    idx = _site_index(rng, contig, per_file, withdrawn={"f0": 3, "f2": 7})
    site_files = ["f0", "f2", *(["f0"] if twice else [])]
    rows, cols = [], []
    for i in range(len(site_files)):
        c = np.sort(rng.choice(per_file + 3, size=int(rng.integers(0, 20)), replace=False))
        rows.append(np.full(len(c), i, np.int64))
        cols.append(c.astype(np.int64))
    row, col = np.concatenate(rows), np.concatenate(cols)
    n = len(row)
    ploidy = rng.integers(0, max_ploidy + 1, n)
    called = np.array([rng.integers(0, p + 1) for p in ploidy.tolist()], dtype=np.int64)
    alt_count = np.array([rng.integers(0, c + 1) for c in called.tolist()], dtype=np.int64)
    found = idx.rows_at(site_files, row, col)
    got = strata.count_site(None, idx, contig, ["f0", "f2"], ["f1"], site_files, row, col,  # type: ignore[arg-type]
                            ploidy.astype(np.int8), called.astype(np.int8), alt_count.astype(np.int8))
    assert got == _brute(idx, contig, ["f0", "f2"], ["f1"], found, ploidy, called, alt_count)


def _nonzero(row: bytes) -> tuple[np.ndarray, np.ndarray]:
    """A packed row as `Engine.point_rows` gives a ``nonzero`` column."""
    got = gtc.nonzero_bytes(row)
    assert got is not None
    return got


def _packed_row(rng: np.random.Generator, n_cols: int, codes_from: list[int]
                ) -> tuple[tuple[np.ndarray, np.ndarray], str, np.ndarray]:
    """One file's `gt` row of ``n_cols`` samples (codes drawn from ``codes_from``, mostly 0/0), packed by the
    ingest encoder: ((bytes, nonzero positions), gt_symbols, the codes)."""
    codes = np.where(rng.random(n_cols) < 0.6, 0, rng.choice(codes_from, n_cols)).astype(np.uint8)[None, :]
    gt, symbols, _other = gtc.encode(codes.copy(), {})
    return _nonzero(gt[0].as_py()), symbols, codes[0]


@pytest.mark.parametrize("seed", range(8))
def test_packed_site_counts_equal_sample_by_sample_count(seed: int) -> None:
    """count_site_packed (from the packed `gt` bytes, no per-call arrays) equals the brute count: diploid and
    haploid codes, missing calls, a withdrawn person's column, an odd sample count (the padding nibble) and
    columns past the file's samples count as the lake's rule says."""
    rng = np.random.default_rng(200 + seed)
    contig, per_file = "20", 25
    idx = _site_index(rng, contig, per_file, withdrawn={"f0": 3, "f2": 0})
    site_files = ["f2", "f0"]
    usual = [k for k in range(gtc.OTHER) if k != gtc.HOM_REF]  # every code but 0/0 and other ploidies
    gts, symbols, rows, cols, ks = [], [], [], [], []
    for i, _f in enumerate(site_files):
        g, s, codes = _packed_row(rng, per_file + int(rng.integers(-1, 4)), usual)
        gts.append(g)
        symbols.append(s)
        c = np.flatnonzero(codes)
        rows.append(np.full(len(c), i, np.int64))
        cols.append(c)
        ks.append(codes[c].astype(np.int64))
    row, col, k = np.concatenate(rows), np.concatenate(cols), np.concatenate(ks)
    found = idx.rows_at(site_files, row, col)
    want = _brute(idx, contig, ["f0", "f2"], ["f1"], found, gtc.PLOIDY[k].astype(np.int64),
                  gtc.CALLED[k].astype(np.int64), gtc.ALT_COUNT[k].astype(np.int64))
    got = strata.count_site_packed(None, idx, contig, ["f0", "f2"], ["f1"], site_files, gts,  # type: ignore[arg-type]
                                   symbols)
    assert got == want


def test_packed_site_counts_decline_what_they_cannot_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """None (the caller decodes the calls) for a call of another ploidy, a file with two rows at the site, a
    file not listing the site, and values not counted by combination."""
    rng = np.random.default_rng(7)
    idx = _index(rng, n_files=2, per_file=10, groups=[2], contig="20")
    g, s, _codes = _packed_row(rng, 10, [1, 2, 4])
    other = np.zeros((1, 10), np.uint8)
    other[0, 4] = gtc.OTHER
    og, osym, _ = gtc.encode(other, {0: ["1/1/1"]})

    def count(files: list[str], gts: list[Any], syms: list[str], present: list[str]) -> Any:
        return strata.count_site_packed(None, idx, "20", present, [], files, gts, syms)  # type: ignore[arg-type]

    assert count(["f0"], [g], [s], ["f0"]) is not None
    assert count(["f0"], [_nonzero(og[0].as_py())], [osym], ["f0"]) is None
    assert count(["f0", "f0"], [g, g], [s, s], ["f0"]) is None
    assert count(["f1"], [g], [s], ["f0"]) is None
    monkeypatch.setattr(strata, "MAX_COMBINATIONS", 0)
    idx._tallies.clear()
    assert count(["f0"], [g], [s], ["f0"]) is None
