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
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["PointReadUnavailable", "PointReader"]


class PointReadUnavailable(Exception):
    """The point reader cannot serve this read (the caller uses DuckDB instead)."""


@dataclass(frozen=True)
class _FileIndex:
    metadata: pq.FileMetaData
    lo: np.ndarray  # per row group: min and max of `pos`
    hi: np.ndarray
    columns: frozenset[str]
    strings: tuple[str, ...]  # byte-array columns, read dictionary-encoded (no string is built until filtered)


class PointReader:
    """Reads the rows at one position from a list of sorted Parquet files (footers cached per process)."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, int], _FileIndex] = {}
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                                thread_name_prefix="genolake-point")
        return self._executor

    def _file(self, path: str) -> _FileIndex:
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
            strings = tuple(p for i, p in enumerate(leaves)
                            if "." not in p and md.schema.column(i).physical_type == "BYTE_ARRAY")
            got = _FileIndex(md, lo, hi, frozenset(names), strings)
            self._index[key] = got
        return got

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
        work = []
        for path in paths:
            idx = self._file(path)
            missing = [c for c in need if c not in idx.columns]
            if missing:
                raise PointReadUnavailable(f"{path}: no column {missing[0]}")
            groups = np.flatnonzero((idx.lo <= pos) & (idx.hi >= pos))
            if len(groups):
                work.append((path, idx, groups.tolist()))

        def one(item: tuple[str, _FileIndex, list[int]]) -> pa.Table:
            path, idx, groups = item
            const = {k: v for k, v in constants.get(path, {}).items() if k in need and k != "pos"}
            pf = pq.ParquetFile(path, metadata=idx.metadata, read_dictionary=idx.strings)
            t = pf.read_row_groups(groups, columns=[c for c in need if c not in const], use_threads=False)
            t = t.filter(pc.equal(t.column("pos"), pos))
            t = t.cast(pa.schema([pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
                                  for f in t.schema]))
            for name, value in const.items():
                t = t.append_column(name, pa.array([value] * t.num_rows, pa.string()))
            if equal and t.num_rows:
                mask = None
                for name, value in equal.items():
                    m = pc.equal(t.column(name), value)
                    mask = m if mask is None else pc.and_(mask, m)
                t = t.filter(mask)
            return t

        # pyarrow decodes without the GIL: the files of the institutions are read side by side
        parts = list(self._pool().map(one, work)) if len(work) > 1 else [one(w) for w in work]
        if not parts:
            if schema is not None and all(c in schema.names for c in columns):
                return pa.table({c: pa.array([], schema.field(c).type) for c in columns})
            return pa.table({c: pa.array([]) for c in columns})
        t = pa.concat_tables([x.select(need) for x in parts])
        if file_ids is not None:
            t = t.filter(pc.is_in(t.column("file_id"), pa.array(sorted(file_ids), pa.string())))
        return t.select(list(columns))


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """The table as Python tuples (as DuckDB's ``fetchall`` gives them)."""
    cols = [c.to_pylist() for c in table.columns]
    return list(zip(*cols, strict=True)) if cols else []
