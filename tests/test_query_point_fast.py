"""The point path's fast parts give the same answers as the plain ones: the codec's sparse call reader
(``call_values_of``, the point query's reader of the few rows it reads) against ``call_values``, the point reader's background read-ahead and reused file readers
against a synchronous reader, and `lake.carriers` (genotype and FORMAT values) against what pysam reads from the
institutions' VCFs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake

from genolake import genotypes as gtc
from genolake.query import point
from genolake.query.point import PointReader


def _rows(seed: int) -> pa.Table:
    """`genotypes` rows of several widths and alphabets (odd sample counts, other-ploidy calls, empty rows)."""
    rng = np.random.default_rng(seed)
    gts, syms, others = [], [], []
    for _ in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 400))
        codes = np.zeros(n, dtype=np.uint8)
        hit = rng.random(n) < rng.choice([0.0, 0.01, 0.2, 0.9])
        codes[hit] = rng.integers(1, 22, int(hit.sum()))
        for i in np.flatnonzero(hit)[:3]:
            if rng.random() < 0.3:
                codes[i] = gtc.OTHER
        texts = ["0/1/1"] * int((codes == gtc.OTHER).sum())  # the row's other-ploidy calls, in sample order
        gt, symbols, other_gt = gtc.encode(codes.reshape(1, n), {0: texts} if texts else {})
        gts.append(gt[0].as_py())
        syms.append(symbols)
        others.append(other_gt[0].as_py())
    return pa.table({"gt": pa.array(gts, pa.binary()), "gt_symbols": pa.array(syms, pa.string()),
                     "other_gt": pa.array(others, pa.list_(pa.string()))})


@pytest.mark.parametrize("seed", range(40))
def test_sparse_call_values_equal_call_values(seed: int) -> None:
    rows = _rows(seed)
    want = gtc.call_values(rows)
    got = gtc.call_values_of(rows["gt"].to_pylist(), rows["gt_symbols"].to_pylist(), rows["other_gt"].to_pylist())
    for name in ("row", "col", "k", "ploidy", "called", "alt_count", "other_idx"):
        a, b = getattr(want, name), getattr(got, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert want.other_text == got.other_text


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    pos = np.sort(rng.integers(100, 100 + n // 3, n)).astype(np.int32)
    return pa.table({"pos": pa.array(pos), "ref": pa.array(rng.choice(["A", "C"], n)),
                     "sample_id": pa.array([f"s{i % 17}" for i in range(n)]),
                     "dp": pa.array(rng.integers(0, 50, n).astype(np.int32))})


def test_background_read_ahead_and_reused_readers_give_a_filter(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads while the whole files are decoded on the read-ahead thread, and after, equal a filter and a reader
    without read-ahead; idle file readers stay within their bound and a closed reader reads again."""
    monkeypatch.setattr(point, "MAX_OPEN_READERS", 3)
    paths, tables = [], []
    for i in range(5):
        t = _table(400, 10 + i)
        p = tmp_path / f"f{i}.parquet"
        pq.write_table(t, p, row_group_size=9 if i < 2 else 90)  # 90: transient columns read in head batches
        paths.append(str(p))
        tables.append(t)
    ahead, sync = PointReader(), PointReader(background=False)
    rng = random.Random(3)
    for _round in range(3):
        for _ in range(60):
            i = rng.randrange(5)
            pos = rng.choice(tables[i].column("pos").to_pylist())
            cols = rng.choice([["sample_id"], ["dp", "sample_id"]]) if _round else ["sample_id"]
            want = [tuple(r[c] for c in cols) for r in tables[i].to_pylist() if r["pos"] == pos and r["ref"] == "A"]
            for reader in (ahead, sync):
                got = reader.read([paths[i]], pos, cols, equal={"ref": "A"}, transient=("dp",) if _round else ())
                assert list(zip(*(got.column(c).to_pylist() for c in cols), strict=True)) == want
            assert ahead._idle <= 3
        ahead.wait()
        assert {k[0] for k in ahead._cache._groups if k[2] == -1} <= set(paths)
        assert all(k[2] == -1 for k in ahead._cache._groups)  # row groups read meanwhile were not cached
    ahead.close()
    got = ahead.read([paths[0]], int(tables[0].column("pos")[0].as_py()), ["sample_id"])
    assert got.num_rows >= 1
    ahead.close()
    sync.close()


def test_carriers_equal_pysam(sample_lake: SampleLake) -> None:
    """`lake.carriers`: each carrier's genotype, GQ, DP and AD are what pysam reads from its institution's VCF,
    and no carrier is missing (biallelic sites of every institution)."""
    pysam = pytest.importorskip("pysam")
    import genolake
    from genolake.samples.lookup import pseudonym_map
    from genolake.store import LakeStore

    store = LakeStore.open(sample_lake.path)
    raw = {inst: pseudonym_map(store, inst, vcf) for inst, vcf in sample_lake.vcfs.items()}
    files = {inst: pysam.VariantFile(str(vcf)) for inst, vcf in sample_lake.vcfs.items()}
    lake = genolake.open(sample_lake.path)
    recs = [r for r in pysam.VariantFile(str(sample_lake.vcfs["north"])).fetch() if len(r.alts or ()) == 1]
    random.seed(11)
    checked = 0
    for rec in random.sample(recs, 50):
        vid = f"{rec.chrom}-{rec.pos}-{rec.ref}-{rec.alts[0]}"
        want = set()
        for inst, vf in files.items():
            for r in vf.fetch(rec.chrom, rec.pos - 1, rec.pos):
                if r.pos != rec.pos or r.ref != rec.ref or tuple(r.alts or ()) != tuple(rec.alts):
                    continue
                for name, s in r.samples.items():
                    alleles = s["GT"]
                    if not any(a is not None and a > 0 for a in alleles):
                        continue
                    sep = "|" if s.phased else "/"
                    gt = sep.join("." if a is None else str(a) for a in alleles)
                    ad = s.get("AD")
                    want.add((inst, name, gt, s.get("GQ"), s.get("DP"),
                              None if ad is None else ad[0], None if ad is None or len(ad) < 2 else ad[1]))
        got = {(r["institution"], raw[r["institution"]][r["sample_id"]], r["gt"], r["gq"], r["dp"], r["ad_ref"],
                r["ad_alt"]) for r in lake.carriers(vid).to_pylist()}
        assert got == want, vid
        checked += len(want)
    assert checked > 100
    lake.close()


def test_region_in_arrow_equals_the_sql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lake.region` without ``where`` on a contig without absent-site fill is summed in Arrow from the point
    reader's `variants` rows: the same table as the SQL (two institutions listing different sites, multiallelic
    splits, min_ac / max_af / institution filters, empty windows, the first query while read-ahead runs)."""
    from query_fixtures import two_institution_lake

    import genolake
    from genolake.query.lake import Lake

    lake_path = two_institution_lake(tmp_path)
    from genolake.query import region

    used: list[int] = []
    arrow = region._joint_arrow
    monkeypatch.setattr(region, "_joint_arrow", lambda *a, **k: used.append(1) or arrow(*a, **k))
    fast, slow = genolake.open(lake_path), Lake(lake_path, point_reads=False)
    lo, hi = fast.sql("SELECT min(pos), max(pos) FROM variants").to_pylist()[0].values()
    rng = random.Random(2)
    windows = [(lo, hi), (1, 10), (lo, lo)] + [(s, s + rng.choice([1, 5_000, 200_000, 2_000_000]))
                                                for s in (rng.randint(lo, hi) for _ in range(12))]
    options: list[dict[str, object]] = [{}, {"min_ac": 3}, {"max_af": 0.05}, {"institution": "two"},
                                        {"institution": "one", "min_ac": 1, "max_af": 0.5}]
    for s, e in windows:
        for opts in options:
            want = slow.region(f"20:{s}-{e}", **opts)  # type: ignore[arg-type]
            got = fast.region(f"20:{s}-{e}", **opts)  # type: ignore[arg-type]
            assert got.schema == want.schema and got.equals(want), (s, e, opts)
    assert fast.region(f"20:{lo}-{hi}").num_rows > 300
    assert len(used) == 1 + len(windows) * len(options)  # every fast query took the Arrow path
    fast.close()
    slow.close()



def test_threads_share_one_point_reader(tmp_path: Path) -> None:
    """Threads reading through one PointReader at once (a server's threads) while its read-ahead runs, with
    transient columns read in head batches: every read equals a filter (file readers go to one thread at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    paths, tables = [], []
    for i in range(3):
        t = _table(3000, 30 + i)
        p = tmp_path / f"f{i}.parquet"
        pq.write_table(t, p, row_group_size=128)
        paths.append(str(p))
        tables.append(t)
    reader = PointReader()
    rng = random.Random(4)
    asks = [(i, rng.choice(tables[i].column("pos").to_pylist()), i == 0 or rng.random() < 0.5)  # f0: dp never cached
            for i in (rng.randrange(3) for _ in range(600))]

    def ask(a: tuple[int, int, bool]) -> bool:
        i, pos, once = a
        got = reader.read([paths[i]], pos, ["sample_id", "dp"], transient=("dp",) if once else ())
        want = [(r["sample_id"], r["dp"]) for r in tables[i].to_pylist() if r["pos"] == pos]
        return list(zip(got.column("sample_id").to_pylist(), got.column("dp").to_pylist(), strict=True)) == want

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(ask, asks))
        reader.wait()
        assert all(pool.map(ask, asks))
    reader.close()


@pytest.mark.parametrize("cache_mb", [256.0, 0.02, 0.0])
def test_nonzero_rows_equal_a_scan_of_the_bytes(tmp_path: Path, cache_mb: float) -> None:
    """`read(..., nonzero=("gt",))` gives each row's bytes and the positions of its nonzero bytes, the same as a
    scan of the row: from the index of a cached whole file (256 MB), of cached row groups (a budget too small for
    the whole file) and, with no cache, from a scan of each row; also for rows that are all zero, rows after a
    read-ahead and positions with two rows."""
    rng = np.random.default_rng(5)
    n = 300
    pos = np.sort(rng.integers(100, 250, n)).astype(np.int32)
    rows = []
    for _ in range(n):
        width = 37
        raw = np.zeros(width, np.uint8)
        hit = rng.random(width) < rng.choice([0.0, 0.05, 0.5])
        raw[hit] = rng.integers(1, 256, int(hit.sum()))
        rows.append(raw.tobytes())
    t = pa.table({"pos": pa.array(pos), "ref": pa.array(rng.choice(["A", "C"], n)),
                  "gt": pa.array(rows, pa.binary())})
    path = tmp_path / "g.parquet"
    pq.write_table(t, path, row_group_size=16)
    reader = PointReader(cache_bytes=int(cache_mb * (1 << 20)))
    for _round in range(2):
        for p in sorted(set(pos.tolist())):
            want = [r["gt"] for r in t.to_pylist() if r["pos"] == p and r["ref"] == "A"]
            got = reader.read([str(path)], p, ["gt"], equal={"ref": "A"}, as_rows=True, nonzero=("gt",))
            assert len(got) == len(want)
            for (view, at), raw_bytes in zip([g[0] for g in got], want, strict=True):
                assert view.tobytes() == raw_bytes
                assert np.array_equal(at, np.flatnonzero(np.frombuffer(raw_bytes, np.uint8)))
        reader.wait()
    reader.close()


def test_no_nonzero_index_for_dense_codes() -> None:
    """A column with more than one nonzero byte in MAX_NONZERO_SHARE (2) gets no index (it would outweigh the codes):
    its rows are scanned, with the same answers."""
    dense = pa.array([bytes([1, 0, 2, 3]) * 10] * 5, pa.binary())
    sparse = pa.array([bytes(39) + b"\x05"] * 5, pa.binary())
    assert point._nonzero_index(dense) is None
    # cohorts' codes are this dense (msprime: 19-28% nonzero bytes): they get an index
    cohort_like = pa.array([bytes([0, 7, 0, 0]) * 10] * 5, pa.binary())
    assert point._nonzero_index(cohort_like) is not None
    assert point._nonzero_index(cohort_like, max_bytes=4 * 49) is None  # 50 positions of 4 bytes: no room
    got = point._nonzero_index(sparse)
    assert got is not None and got[2].tolist() == [40 * i + 39 for i in range(5)]
    grp = point._Group(np.arange(5, dtype=np.int32), pa.table({"gt": dense}), frozenset({"gt"}), True,
                       owner=(point._GroupCache(1 << 20), ("g",)))
    rows = point._nonzero_rows(grp, "gt", [0, 4])
    assert [r[1].tolist() for r in rows] == [np.flatnonzero(np.frombuffer(bytes([1, 0, 2, 3]) * 10, np.uint8)).tolist()] * 2


def test_nonzero_index_is_counted_in_the_cache_budget(tmp_path: Path) -> None:
    """The cache counts a group's nonzero index from when it is made: ``used`` is the groups' bytes, indexes
    included. With a budget that holds the decoded group but not its index too, no index is made (the cache would
    let the group go at once): the group stays cached and its rows are scanned, with the same answers."""
    n = 64
    raw = np.zeros((n, 400), np.uint8)
    raw[:, ::40] = 7  # one nonzero byte in 40
    t = pa.table({"pos": pa.array(np.arange(100, 100 + n, dtype=np.int32)),
                  "gt": pa.array([r.tobytes() for r in raw], pa.binary())})
    path = tmp_path / "g.parquet"
    pq.write_table(t, path, row_group_size=n)
    reader = PointReader(cache_bytes=1 << 20, background=False)
    reader.read([str(path)], 110, ["gt"], as_rows=True)  # decoded and cached, no index yet
    cache = reader._cache
    (grp,) = cache._groups.values()
    before = cache.used
    assert grp.index_bytes() == 0 and before == grp.nbytes
    got = reader.read([str(path)], 111, ["gt"], as_rows=True, nonzero=("gt",))
    assert np.array_equal(got[0][0][1], np.flatnonzero(raw[11]))
    assert grp.index_bytes() == n * 10 * 4  # int32 positions of the 640 nonzero bytes
    assert cache.used == before + grp.index_bytes() == grp.nbytes
    reader.close()
    # a budget the decoded group fits in, but not with its index: no index, the group stays
    tight = PointReader(cache_bytes=before + 8, background=False)
    tight.read([str(path)], 110, ["gt"], as_rows=True)
    assert tight._cache.used == before
    for p in (111, 112):
        got = tight.read([str(path)], p, ["gt"], as_rows=True, nonzero=("gt",))
        assert np.array_equal(got[0][0][1], np.flatnonzero(raw[p - 100]))
    (kept,) = tight._cache._groups.values()
    assert kept.index_bytes() == 0 and tight._cache.used == before == kept.nbytes
    tight.close()


def test_an_index_never_pushes_out_a_group(tmp_path: Path) -> None:
    """Two files whose groups fit the budget together, but not with their indexes: both groups stay cached (none
    is decoded again by a later query), an index is made only in free room, and ``used`` is always the sum of
    what the cache holds."""
    n = 64
    raw = np.zeros((n, 400), np.uint8)
    raw[:, ::8] = 7  # one nonzero byte in 8: an index is half the codes
    paths = []
    for f in range(2):
        t = pa.table({"pos": pa.array(np.arange(100, 100 + n, dtype=np.int32)),
                      "gt": pa.array([r.tobytes() for r in raw], pa.binary())})
        paths.append(str(tmp_path / f"f{f}.parquet"))
        pq.write_table(t, paths[-1], row_group_size=n)
    probe = PointReader(cache_bytes=1 << 20, background=False)
    probe.read(paths[:1], 110, ["gt"], as_rows=True)
    one = probe._cache.used
    probe.close()
    reader = PointReader(cache_bytes=2 * one + 100, background=False)
    cache = reader._cache
    first = None
    for q in range(6):
        got = reader.read(paths, 110 + q, ["gt"], as_rows=True, nonzero=("gt",))
        assert [np.array_equal(g[0][1], np.flatnonzero(raw[10 + q])) for g in got] == [True, True]
        groups = dict(cache._groups)
        assert len(groups) == 2
        assert cache.used == sum(cache._sizes.values()) == sum(g.nbytes for g in groups.values()) <= cache.budget
        if first is None:
            first = groups
        assert all(groups[k] is first[k] for k in first)  # the same decoded groups: nothing decoded again
    reader.close()


def test_charge_counts_only_what_the_cache_holds() -> None:
    """A charge for a group the cache let go or replaced counts nothing; two threads indexing one group charge
    it once."""
    import threading

    from genolake.query.point import _GroupCache

    def group(cache: _GroupCache, key: tuple[int, ...]) -> point._Group:
        codes = pa.array([bytes(39) + b"\x05"] * 2000, pa.binary())
        return point._Group(np.arange(2000, dtype=np.int32), pa.table({"gt": codes}), frozenset({"gt"}), True,
                            owner=(cache, key))

    cache = _GroupCache(1 << 20)
    old, new = group(cache, (1,)), group(cache, (1,))
    cache.put((1,), old)
    cache.put((1,), new)  # replaced
    before = cache.used
    assert old.nonzero("gt") is not None  # made, but charged to nothing: the cache holds `new`
    assert cache.used == before == sum(cache._sizes.values())
    gone = group(cache, (2,))  # never put (or let go): no charge
    assert gone.nonzero("gt") is not None and cache.used == before
    barrier = threading.Barrier(4)

    def index() -> None:
        barrier.wait()
        new.nonzero("gt")

    threads = [threading.Thread(target=index) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.used == before + new.index_bytes() == sum(cache._sizes.values())
    assert new.index_bytes() == 2000 * 4
