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

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genolake.query.arrays import numpy_values

__all__ = ["PointReadUnavailable", "PointReader"]


class PointReadUnavailable(Exception):
    """The point reader cannot serve this read (the caller uses DuckDB instead)."""


# Decoded row groups kept per process (bytes of Arrow buffers; GENOLAKE_POINT_CACHE_MB, 0 turns it off).
DEFAULT_CACHE_MB = 256


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


@dataclass(frozen=True)
class _Group:
    """The decoded columns of one row group read so far: ``pos`` as numpy, the others as Arrow."""

    pos: np.ndarray
    table: pa.Table
    names: frozenset[str] = frozenset()

    @property
    def nbytes(self) -> int:
        return int(self.pos.nbytes) + int(self.table.nbytes)


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
        self._groups: OrderedDict[tuple[str, int, int], _Group] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> _Group | None:
        with self._lock:
            got = self._groups.get(key)
            if got is not None:
                self._groups.move_to_end(key)
            return got

    def put(self, key: tuple[str, int, int], group: _Group) -> None:
        if self.budget <= 0 or group.nbytes > self.budget:
            return
        with self._lock:
            old = self._groups.pop(key, None)
            if old is not None:
                self.used -= old.nbytes
            self._groups[key] = group
            self.used += group.nbytes
            while self.used > self.budget and self._groups:
                _k, gone = self._groups.popitem(last=False)
                self.used -= gone.nbytes


class PointReader:
    """Reads the rows at one position from a list of sorted Parquet files (footers and decoded row groups
    cached per process)."""

    def __init__(self, *, cache_bytes: int | None = None) -> None:
        self._index: dict[tuple[str, int], _FileIndex] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._cache = _GroupCache(_cache_budget() if cache_bytes is None else cache_bytes)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                thread_name_prefix="genolake-point")
        return self._executor

    def _file(self, path: str) -> tuple[_FileIndex, int]:
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
            got = _FileIndex(md, lo, hi, frozenset(names))
            self._index[key] = got
        return got, size

    def read(self, paths: Sequence[str], pos: int, columns: Sequence[str], *,
             equal: dict[str, Any] | None = None, file_ids: Iterable[str] | None = None,
             schema: pa.Schema | None = None, constants: dict[str, dict[str, str]] | None = None) -> pa.Table:
        """Rows with ``pos`` equal to ``pos`` (and every ``equal`` column equal to its value) from ``paths``,
        only ``columns`` (in that order). With ``file_ids``, only rows whose ``file_id`` is one of them (rows of
        an uncommitted write are never returned). ``schema`` types the empty result when no row matches.
        ``constants`` gives, per path, string columns whose value is known for the whole file (such as its
        file_id and institution): those are not read."""
        equal = equal or {}
        need = list(dict.fromkeys(["pos", *equal, *columns, *(["file_id"] if file_ids is not None else [])]))
        constants = constants or {}
        # (path, cache key, file index, columns to read, row group as cached)
        todo: list[tuple[str, tuple[str, int, int], _FileIndex, list[str], _Group | None]] = []
        for path in paths:
            idx, size = self._file(path)
            missing = [c for c in need if c not in idx.columns]
            if missing:
                raise PointReadUnavailable(f"{path}: no column {missing[0]}")
            const = constants.get(path, {})
            stored = [c for c in need if c != "pos" and c not in const]
            for g in np.flatnonzero((idx.lo <= pos) & (idx.hi >= pos)).tolist():
                key = (path, size, g)
                have = self._cache.get(key)
                cols = stored if have is None else [c for c in stored if c not in have.names]
                todo.append((path, key, idx, cols, have))

        def decode(item: tuple[str, tuple[str, int, int], _FileIndex, list[str], _Group | None]) -> _Group:
            path, key, idx, cols, have = item
            if have is not None and not cols:
                return have
            pf = pq.ParquetFile(path, metadata=idx.metadata)
            t = pf.read_row_group(key[2], columns=cols + (["pos"] if have is None else []), use_threads=False)
            if have is None:  # `pos` is matched with numpy (no compute kernel per query)
                grp = _Group(numpy_values(t.column("pos")), t.select(cols), frozenset(cols))
            else:
                table = have.table
                for name in cols:
                    table = table.append_column(name, t.column(name))
                grp = _Group(have.pos, table, frozenset(table.column_names))
            self._cache.put(key, grp)
            return grp

        # pyarrow decodes without the GIL: the files of the institutions are read side by side
        reads = sum(1 for w in todo if w[4] is None or w[3])
        groups = list(self._pool().map(decode, todo)) if reads > 1 else [decode(w) for w in todo]
        parts = []
        for (path, *_rest), grp in zip(todo, groups, strict=True):
            hit = np.flatnonzero(grp.pos == pos)
            if not hit.size:
                continue
            lo, n = int(hit[0]), int(hit.size)
            # a run of rows; or rows spread over the group (a table not sorted by pos alone)
            rows = grp.table.slice(lo, n) if int(hit[-1]) - lo + 1 == n else grp.table.take(pa.array(hit))
            const = constants.get(path, {})
            part = pa.table({name: pa.array(grp.pos[hit]) if name == "pos"
                             else pa.array([const[name]] * n, pa.string()) if name in const
                             else rows.column(name) for name in need})
            if equal:
                values = {k: part.column(k).to_pylist() for k in equal}
                keep = [all(values[k][i] == v for k, v in equal.items()) for i in range(part.num_rows)]
                if not all(keep):
                    part = part.filter(pa.array(keep, pa.bool_()))
            if part.num_rows:
                parts.append(part)
        if not parts:
            if schema is not None and all(c in schema.names for c in columns):
                return pa.table({c: pa.array([], schema.field(c).type) for c in columns})
            return pa.table({c: pa.array([]) for c in columns})
        t = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        if file_ids is not None:
            wanted = set(file_ids)
            keep = [f in wanted for f in t.column("file_id").to_pylist()]
            if not all(keep):
                t = t.filter(pa.array(keep, pa.bool_()))
        return t.select(list(columns))


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """The table as Python tuples (as DuckDB's ``fetchall`` gives them)."""
    cols = [c.to_pylist() for c in table.columns]
    return list(zip(*cols, strict=True)) if cols else []
