"""The numpy counter of `genolake aggregate` (genolake/counting.py) and its codec readers, against brute
force: random genotype code matrices written as `genotypes` / `variants` Parquet files, counted by
:func:`count_range` and by a per-call loop over the codes (the rule of docs/SCHEMA.md, written out by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genolake import genotypes as gtc
from genolake.compute.frequencies import derive
from genolake.compute.runner import run_tasks
from genolake.counting import count_range

_OTHER_TEXTS = ("0/0/1", "1/1/1", ".", "./1/1", "1")  # other ploidies (and one that did not fit the symbols)


def _random_codes(rng: np.random.Generator, rows: int, samples: int, *, other: bool) -> np.ndarray:
    codes = rng.choice([0, 0, 0, 6, 9, 1, 8, 15, 19, 20, 21], size=(rows, samples)).astype(np.uint8)
    if other:
        codes[rng.random((rows, samples)) < 0.05] = gtc.OTHER
    return codes


def _rows(codes: np.ndarray, texts: dict[int, list[str]]) -> tuple[pa.Array, list[str], pa.Array]:
    gt, symbols, other = gtc.encode(codes.copy(), texts)
    return gt, [symbols] * codes.shape[0], other


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), rows=st.integers(1, 9), samples=st.integers(1, 37), other=st.booleans())
def test_fast_readers_equal_stored_calls(seed: int, rows: int, samples: int, other: bool) -> None:
    """`stored_calls_fixed` gives exactly `stored_calls`; `nonzero_pairs` holds the same calls by sample pair."""
    rng = np.random.default_rng(seed)
    codes = _random_codes(rng, rows, samples, other=other)
    texts = {r: [_OTHER_TEXTS[i % len(_OTHER_TEXTS)] for i in range(int((codes[r] == gtc.OTHER).sum()))]
             for r in range(rows)}
    gt, symbols, other_gt = _rows(codes, texts)
    t = pa.table({"gt": gt, "gt_symbols": symbols, "other_gt": other_gt})
    want = gtc.stored_calls(t)
    got = gtc.stored_calls_fixed(t)
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)
    pairs = gtc.nonzero_pairs(t)
    assert pairs is not None
    calls = set()
    row = np.repeat(np.arange(rows), np.diff(pairs.starts))
    for r, p, hi, lo in zip(row, pairs.pair, pairs.high, pairs.low, strict=True):
        for half, sym in ((0, hi), (1, lo)):
            if sym:
                calls.add((int(r), 2 * int(p) + half, int(pairs.lut[sym])))
    assert calls == set(zip(*(x.tolist() for x in want), strict=True))


def test_nonzero_pairs_declines_several_alphabets() -> None:
    a = _rows(np.array([[6, 0, 9]], dtype=np.uint8), {})
    b = _rows(np.array([[1, 1, 6]], dtype=np.uint8), {})
    t = pa.table({"gt": pa.concat_arrays([a[0], b[0]]), "gt_symbols": a[1] + b[1]})
    assert a[1] != b[1] and gtc.nonzero_pairs(t) is None
    assert all(np.array_equal(x, y) for x, y in zip(gtc.stored_calls(t), gtc.stored_calls_fixed(t), strict=True))


def _call(code: int, text: str | None) -> tuple[int, int, int]:
    """(ploidy, called, alt copies) of one call, from its text."""
    if code == 0:
        return 2, 2, 0
    txt = text if code == gtc.OTHER else gtc.TEXT[code]
    alleles = [a for a in (txt or "").replace("|", "/").split("/") if a != ""]
    return len(alleles), sum(a != "." for a in alleles), sum(a == "1" for a in alleles)


def _lake(tmp: Path, rng: np.random.Generator, *, other: bool) -> tuple[list[str], list[str], pa.Table, dict]:
    """Three files of two institutions over overlapping sites (one site listed twice by one file), written as
    Parquet; returns (genotype paths, variant paths, groups, brute-force counts)."""
    files = [("fa", "north", 7), ("fb", "north", 5), ("fc", "south", 9)]
    all_sites = [(100 + 10 * i, "A", alt) for i in range(12) for alt in ("C", "G") if rng.random() < 0.7]
    gpaths, vpaths = [], []
    people: list[dict] = []
    truth: dict[tuple, np.ndarray] = {}
    strata_of: dict[tuple[str, int], list[str]] = {}
    for fid, inst, n in files:
        for c in range(n):
            if rng.random() < 0.1:
                continue  # withdrawn / dropped: in no group
            labels = ["all"] + ([f"pop={rng.choice(['x', 'y'])}"] if rng.random() < 0.8 else []) + \
                ([f"sex={rng.choice(['f', 'm'])}"] if rng.random() < 0.5 else [])
            strata_of[(fid, c)] = labels
            people += [{"file_id": fid, "sample_id": f"{fid}{c}", "institution": inst, "stratum": s,
                        "column_index": c} for s in labels]
        mine = [s for s in all_sites if rng.random() < 0.8]
        if mine:
            mine.append(mine[0])  # a file listing one site twice counts it twice
        mine.sort()
        codes = _random_codes(rng, len(mine), n, other=other)
        texts = {r: [_OTHER_TEXTS[int(rng.integers(len(_OTHER_TEXTS)))]
                     for _ in range(int((codes[r] == gtc.OTHER).sum()))] for r in range(len(mine))}
        gt, symbols, other_gt = _rows(codes, texts)
        base = {"contig": ["1"] * len(mine), "pos": pa.array([s[0] for s in mine], pa.int32()),
                "ref": [s[1] for s in mine], "alt": [s[2] for s in mine], "file_id": [fid] * len(mine)}
        g = tmp / f"g-{fid}.parquet"
        v = tmp / f"v-{fid}.parquet"
        pq.write_table(pa.table({**base, "gt": gt, "gt_symbols": symbols, "other_gt": other_gt}), g,
                       row_group_size=3)
        pq.write_table(pa.table(base), v, row_group_size=4)
        gpaths.append(str(g))
        vpaths.append(str(v))
        for r, site in enumerate(mine):
            it = iter(texts.get(r, []))
            for c in range(n):
                k = int(codes[r, c])
                ploidy, called, altc = _call(k, next(it) if k == gtc.OTHER else None)
                for label in strata_of.get((fid, c), []):
                    for scope in ("joint", inst):
                        cell = truth.setdefault((*site, scope, label), np.zeros(6, dtype=np.int64))
                        cell += [1, altc, called, int(ploidy == 2 and altc == 2), int(ploidy == 1 and altc == 1),
                                 int(called == ploidy)]
    return gpaths, vpaths, pa.Table.from_pylist(people), truth


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), other=st.booleans())
def test_count_range_equals_brute_force(tmp_path_factory: pytest.TempPathFactory, seed: int, other: bool) -> None:
    """Every (site, scope, stratum) cell: n, AC, AN, nhomalt, nhemi, n_called as a per-call loop counts them, with
    overlapping strata, people in no group, a site listed twice, other ploidies and several row groups."""
    tmp = tmp_path_factory.mktemp("count")
    rng = np.random.default_rng(seed)
    gpaths, vpaths, groups, truth = _lake(tmp, rng, other=other)
    empty_fill = pa.table({"file_id": pa.array([], pa.string()), "institution": pa.array([], pa.string()),
                           "mode": pa.array([], pa.string()), "stratum": pa.array([], pa.string()),
                           "psum": pa.array([], pa.int64()), "n": pa.array([], pa.int64())})
    empty_cb = pa.table({"file_id": pa.array([], pa.string()), "start": pa.array([], pa.int32()),
                         "end": pa.array([], pa.int32())})
    got = count_range(contig="1", start=1, end=10_000, calls=gpaths, variants=vpaths,
                      institutions=["north", "south"], fill=empty_fill, callable_=empty_cb, adj=False,
                      groups=groups)
    rows = got.to_pylist()
    keys = [(r["pos"], r["ref"], r["alt"], r["scope"], r["stratum"]) for r in rows]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1].encode(), k[2].encode(), k[3].encode(), k[4].encode()))
    seen = {}
    for r, k in zip(rows, keys, strict=True):
        seen[k] = [r["ac"], r["an"], r["nhomalt"], r["nhemi"], r["n_called"]]
    for k, (_n, ac, an, hom, hemi, ncalled) in truth.items():
        assert seen.pop(k) == [ac, an, hom, hemi, ncalled], k
    # what is left: `all` rows of scopes with nobody at the site, all zero
    assert all(k[4] == "all" and v == [0] * 5 for k, v in seen.items()), seen
    # derive takes the counter's dictionary columns and plain strings alike, sorted or not
    plain = got.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_dictionary(f.type) else f
                                for f in got.schema]))
    perm = pa.array(rng.permutation(got.num_rows))
    a = derive(got, faf_groups=())
    b = derive(plain.take(perm), faf_groups=())
    assert b.cast(a.cast(b.schema).schema).equals(a.cast(b.schema).take(perm))


def _boom(i: int) -> int:
    if i in (2, 4):
        raise ValueError(f"task {i}")
    return i * i


def test_threads_keep_order_and_raise_the_first_failure_in_task_order() -> None:
    seen: list[tuple[int, int, int]] = []
    assert run_tasks(abs, [-3, 1, -2, 5], workers=0, threads=2, progress=lambda *a: seen.append(a),
                     count=lambda r: r) == [3, 1, 2, 5]
    assert seen[0] == (0, 0, 4) and seen[-1] == (11, 4, 4)
    with pytest.raises(ValueError, match=r"^task 2$"):
        run_tasks(_boom, list(range(6)), workers=0, threads=3)
