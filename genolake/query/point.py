"""Point reads: the rows of one position, read with pyarrow straight from the row groups that can hold it.

A point query (`lake.variant`, `lake.carriers`) needs the few rows of one position from a table sorted by
position. DuckDB's Parquet scan pays a fixed cost per row group of every file it opens, even the ones its
statistics skip, so its point-query time grows with the number of row groups, that is with the cohort size.
Here each file's footer is read once per process (data files are immutable: a Delta version only adds and
removes whole files), the row groups whose ``pos`` range holds the position are found with numpy, and only
those row groups' needed columns are decoded. The cost is one or two row groups per file whatever the size
of the lake.

Anything unexpected (a file without statistics, a column missing from an old file) raises
:class:`PointReadUnavailable` and the caller falls back to DuckDB, which reads anything.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genolake.query.arrays import numpy_values

__all__ = ["PointReadUnavailable", "PointReader"]

log = logging.getLogger(__name__)


class PointReadUnavailable(Exception):
    """The point reader cannot serve this read (the caller uses DuckDB instead)."""


# Decoded row groups kept per process (bytes of Arrow buffers; GENOLAKE_POINT_CACHE_MB, 0 turns it off).
DEFAULT_CACHE_MB = 256
# A file is decoded whole (read-ahead) when its needed columns fit in 1/READ_AHEAD_SHARE of the budget.
READ_AHEAD_SHARE = 4
# Open Parquet readers kept for reuse (one per file and thread at a time). Opening one costs ~0.15-0.2 ms (path
# resolution, a file handle, the reader's schema), as much as decoding a row group of a small column: the FORMAT
# lists of a carriers query are read with no cache in front of them, so this is paid on every such read.
MAX_OPEN_READERS = 64
# Files decoded whole on the read-ahead thread: those the first queries after opening touch (a notebook's one
# question: the per-site tables and the codes of its position). Later files are decoded whole by the query that
# first touches them, as before: a long read-ahead queue competed with every query of a series for the cores
# (the benchmark's lake.variant median rose from 2.0-2.3 to 2.6-3.1 ms when every file went to the thread).
BACKGROUND_FILES = 16


def _cache_budget() -> int:
    raw = os.environ.get("GENOLAKE_POINT_CACHE_MB", "")
    try:
        mb = float(raw) if raw.strip() else DEFAULT_CACHE_MB
    except ValueError:
        mb = DEFAULT_CACHE_MB
    return max(0, int(mb * (1 << 20)))


@dataclass(frozen=True)
class _FileIndex:
    metadata: pq.FileMetaData
    lo: np.ndarray  # per row group: min and max of `pos`
    hi: np.ndarray
    columns: frozenset[str]
    starts: np.ndarray  # per row group: its first row in the file
    sizes: dict[str, int] = field(default_factory=dict)  # column -> uncompressed bytes (filled on first use)


@dataclass(frozen=True)
class _Job:
    """One decode: a row group (``key[2]`` >= 0) or a whole file (-1); ``cols`` to decode and cache,
    ``passing`` (transient) columns to decode for this read only, ``have`` what is cached (or, with ``cache``
    False, a slice of the cached whole file that the passing columns are added to)."""

    path: str
    key: tuple[Any, ...]
    idx: _FileIndex
    cols: list[str]
    passing: list[str]
    have: _Group | None
    cache: bool = True
    head: int | None = None  # only the group's first rows are needed (transient columns of a cached group)


@dataclass(frozen=True)
class _Group:
    """The decoded columns of one row group read so far: ``pos`` as numpy, the others as Arrow."""

    pos: np.ndarray
    table: pa.Table
    names: frozenset[str] = frozenset()
    ordered: bool = False  # pos ascending (binary search)
    # column -> its array (the one chunk when there is one): looked up once per group, not once per read
    arrays: dict[str, pa.Array | pa.ChunkedArray] = field(default_factory=dict, compare=False, repr=False)
    _nonzero: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # the cache and key that hold this group (None: a group of one read): a :meth:`nonzero` index is made only for
    # a cached group (later reads reuse it) and charged to the cache's budget
    owner: tuple[_GroupCache, tuple[Any, ...]] | None = field(default=None, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes held: the decoded columns and the :meth:`nonzero` indexes made so far (the cache's budget)."""
        return int(self.pos.nbytes) + int(self.table.nbytes) + self.index_bytes()

    def index_bytes(self) -> int:
        """Bytes of the :meth:`nonzero` indexes (their positions; the values and offsets are the column's own)."""
        return sum(int(got[2].nbytes) for got in list(self._nonzero.values()) if got)

    def nonzero(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """For the binary column ``name`` of a cached group: its values buffer as uint8, each row's offsets into it
        (rows + 1) and the sorted positions of the buffer's nonzero bytes, made on first use (one pass over the
        group's bytes; 4 bytes per nonzero byte, counted in the cache's budget: see :func:`_nonzero_index`). A
        point query's packed genotype row is then read without scanning it: its nonzero bytes are a slice of the
        positions. None for a group that is not cached (the scan would not be reused), a column that is not one
        binary chunk, codes too dense, or an index that does not fit in the cache's free room (making room by
        letting other groups go would have them decoded again by the next query that needs them: with two files
        whose groups fit but not with both indexes, every query decoded one group again)."""
        if self.owner is None:
            return None
        got = self._nonzero.get(name)
        if got is None:
            cache, key = self.owner
            made = _nonzero_index(self.array(name), max_bytes=cache.free()) or ()
            got = self._nonzero.setdefault(name, made)  # two threads may make it: the first one is kept
            if got is made and made:
                cache.charge(key, self, int(made[2].nbytes))
        return got or None

    def array(self, name: str) -> pa.Array | pa.ChunkedArray:
        """Column ``name`` (its one chunk when it has one: slicing an Array costs less than a ChunkedArray)."""
        got = self.arrays.get(name)
        if got is None:
            col = self.table.column(name)
            got = self.arrays[name] = col.chunk(0) if col.num_chunks == 1 else col
        return got


_SCAN_BYTES = 8 << 20  # a nonzero index is made this many bytes at a time (bounds the temporary mask)
# No index for a column with more than one nonzero byte in MAX_NONZERO_SHARE: its positions (4 bytes each) would
# outweigh twice the codes. Simulated cohorts have 19-28% nonzero bytes (msprime, 50,000 and 1,000 samples).
MAX_NONZERO_SHARE = 2


def _nonzero_index(arr: pa.Array | pa.ChunkedArray, *, max_bytes: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:meth:`_Group.nonzero` of one array. None unless it is one binary chunk without nulls with at most one byte
    in MAX_NONZERO_SHARE nonzero, and the positions fit in ``max_bytes`` (the room left in the cache's budget:
    an index the cache would let go at once, group and all, would make every query decode the group again)."""
    if isinstance(arr, pa.ChunkedArray) or not pa.types.is_binary(arr.type) or arr.null_count:
        return None
    from genolake.genotypes import string_buffers

    offsets, data = string_buffers(arr)
    lo, hi = int(offsets[0]), int(offsets[-1])
    nnz = int(np.count_nonzero(data[lo:hi]))
    if nnz * MAX_NONZERO_SHARE > hi - lo or (max_bytes is not None and nnz * (4 if hi < 2**31 else 8) > max_bytes):
        return None
    parts = [np.flatnonzero(data[a:min(a + _SCAN_BYTES, hi)] != 0) + a for a in range(lo, hi, _SCAN_BYTES)]
    nz = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if hi < 2**31:
        nz = nz.astype(np.int32)
    return data, offsets, nz


def _nonzero_rows(grp: _Group, name: str, rows: list[int]) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Rows ``rows`` of the binary column ``name`` as (their bytes as uint8, the positions of their nonzero bytes):
    from the group's :meth:`_Group.nonzero` index when it has one, else by scanning each row
    (:func:`genotypes.nonzero_bytes`; None for a null value)."""
    got = grp.nonzero(name)
    if got is None:
        from genolake.genotypes import nonzero_bytes

        arr = grp.array(name)
        return [nonzero_bytes(arr[r].as_py()) for r in rows]
    data, offsets, nz = got
    key = nz.dtype.type  # search keys of the array's type (a Python int makes numpy convert the whole array)
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for r in rows:
        start, stop = int(offsets[r]), int(offsets[r + 1])
        a, b = nz.searchsorted(key(start)), nz.searchsorted(key(stop))
        out.append((data[start:stop], nz[a:b] - key(start)))
    return out


class _GroupCache:
    """Decoded row groups, least recently used first out, within a byte budget.

    Data files are immutable (a Delta version adds and removes whole files; the key holds the file size), so
    a cached row group is valid for as long as the file exists. A point query whose row groups are cached
    decodes nothing: it slices the rows of its position. The per-site tables (`variants`, `annotations`,
    `allele_frequencies`) are small next to the genotypes, so a few hundred megabytes hold the row groups a
    session of point queries (a gene panel, a Beacon server) keeps coming back to."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._groups: OrderedDict[tuple[Any, ...], _Group] = OrderedDict()
        self._sizes: dict[tuple[Any, ...], int] = {}  # key -> the bytes counted in ``used`` for it
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> _Group | None:
        with self._lock:
            got = self._groups.get(key)
            if got is not None:
                self._groups.move_to_end(key)
            return got

    def accepts(self, nbytes: int) -> bool:
        """Whether a group of ``nbytes`` would be kept (:meth:`put` drops what exceeds the whole budget)."""
        return 0 < nbytes <= self.budget

    def put(self, key: tuple[Any, ...], group: _Group) -> None:
        if self.budget <= 0 or group.nbytes > self.budget:
            return
        with self._lock:
            if self._groups.pop(key, None) is not None:
                self.used -= self._sizes.pop(key)
            self._groups[key] = group
            self._sizes[key] = size = group.nbytes
            self.used += size
            self._evict()

    def free(self) -> int:
        """Bytes of the budget not held by any group."""
        with self._lock:
            return self.budget - self.used

    def charge(self, key: tuple[Any, ...], group: _Group, nbytes: int) -> None:
        """Count ``nbytes`` more for ``group`` (an index made after it was put, within :meth:`free`), if the cache
        still holds it; it becomes the most recently used, so if threads indexing at once pass the budget, other
        groups go first."""
        with self._lock:
            if self._groups.get(key) is not group:
                return  # let go already (or replaced): nothing of it is counted
            self._groups.move_to_end(key)
            self._sizes[key] += nbytes
            self.used += nbytes
            self._evict()

    def _evict(self) -> None:
        while self.used > self.budget and self._groups:
            gone, _grp = self._groups.popitem(last=False)
            self.used -= self._sizes.pop(gone)


class PointReader:
    """Reads the rows at one position from a list of sorted Parquet files (footers and decoded row groups
    cached per process)."""

    def __init__(self, *, cache_bytes: int | None = None, background: bool = True) -> None:
        self._index: dict[tuple[str, int], _FileIndex] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._cache = _GroupCache(_cache_budget() if cache_bytes is None else cache_bytes)
        # (path, size) -> idle readers of that file, least recently returned first out
        self._readers: OrderedDict[tuple[str, int], list[pq.ParquetFile]] = OrderedDict()
        self._idle = 0
        self._readers_lock = threading.Lock()
        self.background = background
        self._ahead_left = BACKGROUND_FILES
        self._ahead_pool: ThreadPoolExecutor | None = None
        self._pending: dict[tuple[Any, ...], Future[_Group]] = {}
        self._ahead_failed: set[tuple[Any, ...]] = set()
        self._ahead_lock = threading.Lock()

    def _take_ahead(self) -> bool:
        """True (and one fewer left) while the reader may still send a file to the read-ahead thread."""
        with self._ahead_lock:
            if self._ahead_left <= 0:
                return False
            self._ahead_left -= 1
            return True

    def _ahead_ok(self, key: tuple[Any, ...]) -> bool:
        """False once a read-ahead of ``key`` failed (its reads then decode row groups, cached as such)."""
        return key not in self._ahead_failed

    def _read_ahead(self, job: _Job, decode: Callable[[_Job], _Group]) -> None:
        """Decode a whole file on the read-ahead thread (once: not while the same decode is pending)."""
        with self._ahead_lock:
            if job.key in self._pending or job.key in self._ahead_failed:
                return
            if self._ahead_pool is None:
                self._ahead_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genolake-readahead")
            fut = self._ahead_pool.submit(decode, job)
            self._pending[job.key] = fut

        def done(f: Future[_Group]) -> None:
            with self._ahead_lock:
                self._pending.pop(job.key, None)
                if not f.cancelled() and f.exception() is not None:
                    self._ahead_failed.add(job.key)
                    log.info("read-ahead of %s failed (%s); its row groups are read one by one", job.path,
                             f.exception())

        fut.add_done_callback(done)

    def _await(self, key: tuple[Any, ...]) -> bool:
        """Wait for a pending read-ahead of ``key``; True if there was one. Only the read that started a file's
        read-ahead decodes row groups beside it: a later read of the file waits for the whole file (as it would
        have decoded it itself), so a series of queries is not kept on uncached reads while the read-ahead
        thread competes with it for the cores."""
        with self._ahead_lock:
            fut = self._pending.get(key)
        if fut is None:
            return False
        futures_wait([fut])
        return True

    def wait(self) -> None:
        """Wait for the read-ahead started so far (tests; a server warming its cache)."""
        while True:
            with self._ahead_lock:
                pending = list(self._pending.values())
            if not pending:
                return
            futures_wait(pending)

    def _checkout(self, path: str, size: int, idx: _FileIndex) -> pq.ParquetFile:
        """An open reader of the file, taken out of the idle set (a reader is used by one thread at a time)."""
        with self._readers_lock:
            free = self._readers.get((path, size))
            if free:
                self._idle -= 1
                return free.pop()
        return pq.ParquetFile(path, metadata=idx.metadata)

    def _checkin(self, path: str, size: int, pf: pq.ParquetFile) -> None:
        """Return a reader to the idle set; the least recently used ones are closed beyond MAX_OPEN_READERS."""
        gone: list[pq.ParquetFile] = []
        with self._readers_lock:
            key = (path, size)
            self._readers.setdefault(key, []).append(pf)
            self._readers.move_to_end(key)
            self._idle += 1
            while self._idle > MAX_OPEN_READERS and self._readers:
                _k, old = self._readers.popitem(last=False)
                self._idle -= len(old)
                gone.extend(old)
        for r in gone:
            r.close()

    def close(self) -> None:
        """Close the idle readers and stop the decode threads (the reader stays usable: it reopens files)."""
        with self._readers_lock:
            gone = [r for rs in self._readers.values() for r in rs]
            self._readers.clear()
            self._idle = 0
        for r in gone:
            r.close()
        with self._ahead_lock:
            pool, self._ahead_pool = self._ahead_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _decode_all(self, todo: Sequence[_Job], decode: Callable[[_Job], _Group]) -> list[_Group]:
        """``decode`` of every job, in order. Row groups decoded whole run side by side on the pool (pyarrow
        decodes without the GIL); the heads of transient columns (a carriers query's FORMAT lists, 0.2-0.4 ms a
        file) run in turn on the calling thread: their handoff to the pool cost more than it saved (measured on
        the full-tier lake at load 3 on 2 cores: carriers median 4.02 ms in turn, 4.41 ms on the pool, 4.26 ms
        with the first file on the calling thread and the others on the pool)."""
        whole = sum(1 for w in todo if (w.have is None or w.cols or w.passing) and w.head is None)
        if whole > 1:
            return list(self._pool().map(decode, todo))
        return [decode(w) for w in todo]

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                thread_name_prefix="genolake-point")
        return self._executor

    def _file(self, path: str, size: int | None = None) -> tuple[_FileIndex, int]:
        if size is None:
            try:
                size = os.stat(path).st_size
            except OSError as exc:
                raise PointReadUnavailable(f"{path}: {exc}") from None
        key = (path, size)
        got = self._index.get(key)
        if got is None:
            md = pq.read_metadata(path)
            leaves = [md.schema.column(i).path for i in range(md.num_columns)]  # nested: "genes.list.element"
            if "pos" not in leaves:
                raise PointReadUnavailable(f"{path}: no pos column")
            j = leaves.index("pos")
            names = md.schema.to_arrow_schema().names  # top-level columns (what is read by name)
            lo = np.empty(md.num_row_groups, dtype=np.int64)
            hi = np.empty(md.num_row_groups, dtype=np.int64)
            for g in range(md.num_row_groups):
                st = md.row_group(g).column(j).statistics
                if st is None or not st.has_min_max:
                    raise PointReadUnavailable(f"{path}: row group {g} has no pos statistics")
                lo[g], hi[g] = int(st.min), int(st.max)
            starts = np.zeros(md.num_row_groups, dtype=np.int64)
            if md.num_row_groups > 1:
                np.cumsum([md.row_group(g).num_rows for g in range(md.num_row_groups - 1)], out=starts[1:])
            got = _FileIndex(md, lo, hi, frozenset(names), starts)
            self._index[key] = got
        return got, size

    def _read_head(self, path: str, size: int, idx: _FileIndex, group: int, names: list[str], rows: int) -> pa.Table:
        """``names`` of the first ``rows`` rows of row group ``group``, decoded as one batch of that many rows.

        Decoding a nested list column stops at the batch's last row: the cost is ~0.15 ms plus a part per row
        (measured on a FORMAT list group: 4 rows 0.22 ms, 32 rows 0.37 ms, all 128 rows 0.82 ms, against 0.89 ms
        for ``read_row_group``), so one batch of exactly the rows needed beats fixed batches and the whole group."""
        pf = self._checkout(path, size, idx)
        batches: list[pa.RecordBatch] = []
        got = 0
        try:
            it = pf.iter_batches(batch_size=max(1, rows), row_groups=[group], columns=names, use_threads=False)
            for b in it:
                batches.append(b)
                got += b.num_rows
                if got >= rows:
                    break
            it.close()  # the batch reader is let go before another thread may take this file reader
            del it
        except BaseException:
            pf.close()
            raise
        self._checkin(path, size, pf)
        if not batches:
            return pf.schema_arrow.empty_table().select(names)
        return pa.Table.from_batches(batches)

    def _whole_fits(self, idx: _FileIndex, columns: Sequence[str]) -> bool:
        """True if the decoded ``columns`` of the whole file are estimated to fit in a quarter of the cache
        budget (uncompressed bytes plus 8 bytes per row and column: offsets, validity, dictionary indices)."""
        limit = self._cache.budget // READ_AHEAD_SHARE
        if limit <= 0:
            return False
        md = idx.metadata
        want = frozenset(columns)
        sizes = idx.sizes
        if not sizes:  # per top-level column: uncompressed bytes over the row groups (once per file)
            sizes = {}  # built here, then published at once: a serve thread never sees it half filled
            for i in range(md.num_columns):
                name = md.schema.column(i).path.split(".")[0]
                sizes[name] = sizes.get(name, 0) + sum(md.row_group(g).column(i).total_uncompressed_size
                                                       for g in range(md.num_row_groups))
            idx.sizes.update(sizes)  # one call: whole or nothing for a reader on another thread
        est = md.num_rows * 8 * max(1, len(want)) + sum(sizes.get(c, 0) for c in want)
        return est <= limit

    def read(self, paths: Sequence[str], pos: int, columns: Sequence[str], *,
             equal: dict[str, Any] | None = None, file_ids: Iterable[str] | None = None,
             schema: pa.Schema | None = None, constants: dict[str, dict[str, str]] | None = None,
             transient: Iterable[str] = (), fixed: dict[str, Any] | None = None,
             end: int | None = None, as_rows: bool = False, sizes: dict[str, int] | None = None,
             nonzero: Iterable[str] = ()) -> Any:
        """Rows with ``pos`` equal to ``pos`` (with ``end``: ``pos`` <= pos <= ``end``, in file order; and every ``equal`` and ``fixed`` column equal to its value) from
        ``paths``, only ``columns`` (in that order). With ``file_ids``, only rows whose ``file_id`` is one of
        them (rows of an uncommitted write are never returned). ``schema`` types the empty result when no row
        matches. ``constants`` gives, per path, string columns whose value is known for the whole file (such as
        its file_id and institution): those are not read. ``transient`` columns are decoded for this read only
        and never cached (the FORMAT lists of `genotypes`: megabytes per row group, read by one carriers query,
        would push out the codes and the per-site rows every point query comes back to). ``fixed`` conditions
        are the same for every query of a kind (`allele_frequencies` rows of stratum 'all'): they are applied
        when rows are decoded, so only the matching rows are cached.

        A file whose needed columns fit in a quarter of the cache budget is decoded whole (read-ahead: random
        point queries over a contig then find every row in memory); a larger file is decoded one row group at a
        time. With ``background`` (the default), for the first BACKGROUND_FILES files read ahead, the whole file
        is decoded on a read-ahead thread and the read that asked for it decodes only its row groups meanwhile, so
        the first query after opening is not kept waiting for the rest; a later read of the file waits for the
        read-ahead to finish. :meth:`wait`
        waits for the read-ahead started so far.

        With ``as_rows`` the rows come as Python tuples (as DuckDB's ``fetchall`` gives them), taken straight from
        the decoded groups: no Arrow table is built for the few rows of a point query (building one and converting
        it back cost more than the rest of a cached read). ``sizes`` gives the files' sizes when the caller knows
        them (the engine reads them once per lake version: data files are immutable), so no file is stat'ed.
        ``nonzero`` binary columns (with ``as_rows``) come as (bytes as uint8, positions of the nonzero bytes): the
        packed genotype codes of a point query, whose nonzero bytes are its stored calls (see :meth:`_Group.nonzero`)."""
        equal = equal or {}
        last = pos if end is None else end
        fixed = dict(fixed or {})
        fkey = tuple(sorted(fixed.items()))
        once = frozenset(transient)
        need = list(dict.fromkeys(["pos", *equal, *columns, *(["file_id"] if file_ids is not None else [])]))
        constants = constants or {}
        todo: list[_Job] = []
        ahead: list[_Job] = []
        for path in paths:
            idx, size = self._file(path, sizes.get(path) if sizes is not None else None)
            missing = [c for c in [*need, *fixed] if c not in idx.columns]
            if missing:
                raise PointReadUnavailable(f"{path}: no column {missing[0]}")
            const = constants.get(path, {})
            stored = [c for c in need if c != "pos" and c not in const]
            kept = [c for c in stored if c not in once]
            passing = [c for c in stored if c in once]
            whole_key = (path, size, -1, fkey)
            have = self._cache.get(whole_key)
            groups = np.flatnonzero((idx.lo <= last) & (idx.hi >= pos)).tolist()
            if not passing and (have is not None or self._whole_fits(idx, [*kept, *fixed, "pos"])):
                whole = _job(path, whole_key, idx, kept, [], have)
                if whole.cols and self._await(whole_key):  # a read-ahead of this file was pending: it is done now
                    have = self._cache.get(whole_key)
                    whole = _job(path, whole_key, idx, kept, [], have)
                if whole.cols and self.background and self._ahead_ok(whole_key) and self._take_ahead():
                    # decoding the whole file takes 40-120 ms: it is done on the read-ahead thread while this
                    # read decodes only its row groups (not cached: the whole file will hold them)
                    ahead.append(whole)
                    todo.extend(_Job(path, (path, size, g, fkey), idx, kept, [], None, cache=False) for g in groups)
                else:
                    todo.append(whole)
            elif passing and have is not None and not fixed and set(kept) <= have.names:
                for g in groups:  # the cached whole file's rows of the group, plus its transient columns
                    lo, n = int(idx.starts[g]), idx.metadata.row_group(g).num_rows
                    part = _Group(have.pos[lo:lo + n], have.table.slice(lo, n), have.names, have.ordered)
                    # the rows asked for end at `head`: the transient columns are decoded that far only
                    todo.append(_Job(path, (path, size, g, fkey), idx, [], passing, part, cache=False,
                                     head=_head(part, last)))
            else:
                for g in groups:
                    key = (path, size, g, fkey)
                    job = _job(path, key, idx, kept, passing, self._cache.get(key))
                    if passing and not fixed and job.have is not None and not job.cols:
                        job = _Job(path, key, idx, [], passing, job.have, cache=False, head=_head(job.have, last))
                    todo.append(job)

        def decode(job: _Job) -> _Group:
            path, key, idx, cols, have = job.path, job.key, job.idx, job.cols, job.have
            passing = [c for c in job.passing if have is None or c not in have.names]
            if have is not None and not cols and not passing:
                return have

            def read(names: list[str]) -> pa.Table:
                pf = self._checkout(path, key[1], idx)
                try:
                    if key[2] < 0:
                        t = pf.read(columns=names, use_threads=False)
                    else:
                        t = pf.read_row_group(key[2], columns=names, use_threads=False)
                except BaseException:
                    pf.close()  # a reader that failed half-way is not reused
                    raise
                self._checkin(path, key[1], pf)
                if fixed:
                    import pyarrow.compute as pc

                    mask = None
                    for name, value in fixed.items():
                        m = pc.equal(t.column(name), pa.scalar(value, t.schema.field(name).type))
                        mask = m if mask is None else pc.and_(mask, m)
                    t = t.filter(mask)
                return t

            if have is not None and job.head is not None and not cols and not fixed:
                # transient columns of a cached group: decoded up to the last row asked for (a FORMAT list
                # decode stops there: on average about half the work of the whole row group)
                t = self._read_head(path, key[1], idx, key[2], passing, job.head)
                m = t.num_rows
                have = _Group(have.pos[:m], have.table.slice(0, m), have.names, have.ordered)
                table = have.table
                for name in passing:
                    table = table.append_column(name, t.column(name))
                return _Group(have.pos, table, frozenset(table.column_names), have.ordered)
            if have is not None:  # the same rows as cached: decode only the columns it lacks
                t = read(list(dict.fromkeys([*cols, *passing, *fixed])))
                table = have.table
                for name in cols:
                    table = table.append_column(name, t.column(name).combine_chunks())
                keep = bool(cols and job.cache) and self._cache.accepts(int(have.pos.nbytes) + int(table.nbytes))
                grp = _Group(have.pos, table, frozenset(table.column_names), have.ordered,
                             owner=(self._cache, key) if keep else None)
                if cols and job.cache:
                    self._cache.put(key, grp)
            else:
                t = read(list(dict.fromkeys(["pos", *cols, *fixed, *passing])))
                p = numpy_values(t.column("pos"))
                ordered = bool(p.size < 2 or np.all(p[1:] >= p[:-1]))  # files are sorted by pos: binary search
                # one chunk per column: a slice of a whole file's table need not walk a chunk per row group
                table = t.select(cols).combine_chunks()
                keep = job.cache and self._cache.accepts(int(p.nbytes) + int(table.nbytes))
                grp = _Group(p, table, frozenset(cols), ordered, owner=(self._cache, key) if keep else None)
                if job.cache:
                    self._cache.put(key, grp)
            if not passing:
                return grp
            table = grp.table  # this read's view: the cached columns and the transient ones
            for name in passing:
                table = table.append_column(name, t.column(name))
            return _Group(grp.pos, table, frozenset(table.column_names), grp.ordered)

        for job in ahead:
            self._read_ahead(job, decode)
        # pyarrow decodes without the GIL: the files of the institutions are read side by side
        groups_read = self._decode_all(todo, decode)
        if as_rows:
            return _collect_rows(todo, groups_read, pos, last, columns, equal, constants, file_ids,
                                 frozenset(nonzero))
        return _collect(todo, groups_read, pos, last, need, columns, equal, constants, file_ids, schema)


def _collect(todo: Sequence[_Job], groups: Sequence[_Group], pos: int, last: int, need: list[str],
             columns: Sequence[str], equal: dict[str, Any], constants: dict[str, dict[str, str]],
             file_ids: Iterable[str] | None, schema: pa.Schema | None) -> pa.Table:
    """The rows at ``pos``..``last`` of the decoded groups that pass ``equal`` (and ``file_ids``), ``columns`` only:
    each column is built once from the groups' slices (zero-copy where every row of a slice is kept)."""
    out = list(columns)
    wanted = set(file_ids) if file_ids is not None else None
    chunks: dict[str, list[pa.Array]] = {c: [] for c in out}
    pos_type: pa.DataType | None = None
    for job, grp in zip(todo, groups, strict=True):
        path = job.path
        if grp.ordered:
            # a Python int key makes numpy convert the whole array (35 us): keys of the array's type
            lo = int(grp.pos.searchsorted(grp.pos.dtype.type(pos), "left"))
            n = int(grp.pos.searchsorted(grp.pos.dtype.type(last), "right")) - lo
            if n <= 0:
                continue
            rows = grp.table.slice(lo, n)
            at = grp.pos[lo:lo + n]
        else:
            hit = np.flatnonzero((grp.pos >= pos) & (grp.pos <= last))
            if not hit.size:
                continue
            lo, n = int(hit[0]), int(hit.size)
            # a run of rows; or rows spread over the group (a table not sorted by pos alone)
            rows = grp.table.slice(lo, n) if int(hit[-1]) - lo + 1 == n else grp.table.take(pa.array(hit))
            at = grp.pos[hit]
        const = constants.get(path, {})
        keep: list[int] | None = None
        if equal or wanted is not None:
            names = [*equal, *(["file_id"] if wanted is not None else [])]
            values = {k: [const[k]] * n if k in const else rows.column(k).to_pylist() for k in names}
            ok = [i for i in range(n) if all(values[k][i] == v for k, v in equal.items())
                  and (wanted is None or values["file_id"][i] in wanted)]
            if not ok:
                continue
            if len(ok) < n:
                keep = ok
        m = n if keep is None else len(keep)
        sel = rows if keep is None else rows.take(pa.array(keep, pa.int64()))
        pos_type = pa.from_numpy_dtype(grp.pos.dtype)
        for c in out:
            if c == "pos":
                chunks[c].append(pa.array(at if keep is None else at[keep]))
            elif c in const:
                chunks[c].append(_constant(const[c], m) if m <= 64 else pa.array([const[c]] * m, pa.string()))
            else:
                col = sel.column(c)
                chunks[c].extend(col.chunks)
    if not any(chunks[c] for c in out) or (out and not chunks[out[0]]):
        if schema is not None and all(c in schema.names for c in columns):
            return pa.table({c: pa.array([], schema.field(c).type) for c in columns})
        return pa.table({c: pa.array([]) for c in columns})
    arrays = []
    for c in out:
        parts = chunks[c]
        types = {a.type for a in parts}
        if len(types) > 1:  # a string column dictionary-encoded in one file and not in another
            target = schema.field(c).type if schema is not None and c in schema.names else \
                next(iter(t for t in types if not pa.types.is_dictionary(t)), pa.string())
            parts = [a.cast(target) for a in parts]
        arrays.append(pa.chunked_array(parts, type=parts[0].type if c != "pos" else pos_type))
    return pa.Table.from_arrays(arrays, names=out)


@lru_cache(maxsize=4096)
def _constant(value: str, n: int) -> pa.Array:
    """A string array of ``n`` times ``value`` (a file's constant column: its file_id, its institution), made
    once per value and length (Arrow arrays are immutable: ~20 us a column of a point read, saved); only for the
    few rows of a point read (n <= 64), so the cache stays small whatever regions are read."""
    return pa.array([value] * n, pa.string())


def _collect_rows(todo: Sequence[_Job], groups: Sequence[_Group], pos: int, last: int, columns: Sequence[str],
                  equal: dict[str, Any], constants: dict[str, dict[str, str]],
                  file_ids: Iterable[str] | None, nonzero: frozenset[str] = frozenset()) -> list[tuple[Any, ...]]:
    """:func:`_collect` as Python tuples (``columns`` in order), group by group in file order: each needed column
    of a group's matching rows is converted once (``to_pylist`` of a slice), the ``equal`` columns first, so a
    group whose rows all fail them converts nothing else."""
    out: list[tuple[Any, ...]] = []
    wanted = set(file_ids) if file_ids is not None else None
    for job, grp in zip(todo, groups, strict=True):
        p = grp.pos
        sel: np.ndarray | None = None
        if grp.ordered:
            lo = int(p.searchsorted(p.dtype.type(pos), "left"))  # a key of the array's type: no conversion
            n = int(p.searchsorted(p.dtype.type(last), "right")) - lo
            if n <= 0:
                continue
        else:
            hit = np.flatnonzero((p >= pos) & (p <= last))
            if not hit.size:
                continue
            lo, n = int(hit[0]), int(hit.size)
            if int(hit[-1]) - lo + 1 != n:
                sel = hit
        const = constants.get(job.path, {})
        arrays = grp.arrays

        def values(c: str, grp: _Group = grp, lo: int = lo, n: int = n, sel: np.ndarray | None = sel,
                   const: dict[str, str] = const, arrays: dict[str, Any] = arrays) -> list[Any]:
            if c in const:
                return [const[c]] * n
            if c == "pos":
                return (grp.pos[lo:lo + n] if sel is None else grp.pos[sel]).tolist()  # type: ignore[no-any-return]
            if c in nonzero:
                return _nonzero_rows(grp, c, list(range(lo, lo + n)) if sel is None else sel.tolist())
            arr = arrays.get(c)
            if arr is None:
                arr = grp.array(c)
            return (arr.slice(lo, n) if sel is None else arr.take(pa.array(sel))).to_pylist()  # type: ignore[no-any-return]

        keep: list[int] | None = None
        got: dict[str, list[Any]] = {}
        if equal or wanted is not None:
            got = {k: values(k) for k in [*equal, *(["file_id"] if wanted is not None else [])]}
            checks = [(got[k], v) for k, v in equal.items()]
            fids = got.get("file_id") if wanted is not None else None
            keep = [i for i in range(n) if all(vals[i] == v for vals, v in checks)
                    and (fids is None or fids[i] in wanted)]  # type: ignore[operator]
            if not keep:
                continue
            if len(keep) == n:
                keep = None
        cols = [got[c] if c in got else values(c) for c in columns]
        if keep is None:
            out.extend(zip(*cols, strict=True) if cols else [() for _ in range(n)])
        else:
            out.extend(tuple(col[i] for col in cols) for i in keep)
    return out


def _head(group: _Group, last: int) -> int | None:
    """How many of a cached group's first rows a read up to position ``last`` needs (None: the whole group, when
    its rows are not in position order)."""
    if not group.ordered:
        return None
    return max(1, int(group.pos.searchsorted(group.pos.dtype.type(last), "right")))


def _job(path: str, key: tuple[Any, ...], idx: _FileIndex, kept: list[str], passing: list[str],
         have: _Group | None) -> _Job:
    """A decode job: the cached columns still to decode (all of them when nothing is cached)."""
    cols = kept if have is None else [c for c in kept if c not in have.names]
    return _Job(path, key, idx, cols, passing, have)
