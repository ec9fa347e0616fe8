"""`genolake migrate`: upgrade a lake of an older format version to the current one, in place and atomically.

Format 1 (genolake 0.1.0 up to the genotype store) kept one row per stored call in a long ``calls`` Delta table;
format 2 keeps the dense ``genotypes`` table (:mod:`genolake.genotypes`) and serves ``calls`` as a view with the
same columns. The upgrade rewrites only the genotype store:

1. under the lake lock (which first completes any commit interrupted after its redo record), a ``genotypes``
   folder left by an interrupted migration is removed (the lake still says format 1, so nothing reads it);
2. every ``variants`` part of the current Delta version becomes one ``genotypes`` part of the same relative path
   (so `samples remove` pairs them as it pairs parts written by ingest): one row per ``variants`` row, its codes
   from the part's ``calls`` rows (a row without a stored call is all ``'0'``), the character position from
   ``samples.column_index`` and the FORMAT lists in sample order (a part larger than ingest writes is split,
   with its `variants` part, into pieces of the same rows: :data:`PART_CODES`);
3. the parts are committed with the store's multi-table commit, then ``genolake.json`` is rewritten with the
   new ``format_version`` (the one atomic switch: before it, the old release reads the lake as it was; after
   it, this one reads the new table), then the old ``calls`` folder is deleted.

A crash at any point leaves a lake that the same command completes: before step 3's version write the lake is
a format-1 lake (the rerun starts again), after it a format-2 lake (the rerun deletes a ``calls`` folder left
behind). ``samples``, ``files``, ``allele_frequencies``, annotations and phenotypes do not depend on the genotype
layout and are not touched; ``variants`` keeps its rows (only a part split as above is rewritten, row for row).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genolake import genotypes as gtc
from genolake import schema
from genolake.errors import LakeNotFoundError, LakeStateError
from genolake.schema import FORMAT_VERSION, GENOTYPES, VARIANTS
from genolake.store import CONFIG, Commit, LakeStore, atomic_write, write_parquet

log = logging.getLogger(__name__)

OLD_CALLS = "calls"  # the format-1 table
_SUFFIX = re.compile(r"-(w[0-9a-f]{12}|m[0-9]{4})$")  # rewritten parts: <stem>-w<txn> (samples remove), -m<k> (split)
# Codes (rows x samples) per `genotypes` part at most, as ingest (genolake.ingest.convert.PART_ROWS).
PART_CODES = 32_000_000
# The format-1 `calls` table: the columns of today's `calls` view, stored (to complete an interrupted commit of
# the old release that touched it).
_V1_CALLS = dataclasses.replace(schema.CALLS, view=False)


@dataclass
class InstitutionCounts:
    """What was migrated for one institution."""

    calls_files: int = 0
    genotypes_files: int = 0
    stored_calls: int = 0
    rows: int = 0


@dataclass
class MigrateReport:
    """What :func:`migrate` did (counts and sizes only, never IDs)."""

    lake: str
    from_version: int
    to_version: int
    already_current: bool = False
    recovered: bool = False  # an interrupted migration was found and redone
    calls_files: int = 0
    genotypes_files: int = 0
    stored_calls: int = 0
    calls_bytes: int = 0  # Parquet bytes of the `calls` table's current version
    genotypes_bytes: int = 0  # Parquet bytes of the `genotypes` parts written
    lake_bytes_before: int = 0
    lake_bytes_after: int = 0
    institutions: dict[str, InstitutionCounts] = field(default_factory=dict)


def _read_config(root: Path) -> dict[str, Any]:
    cfg = root / CONFIG
    if not root.is_dir() or not cfg.is_file():
        raise LakeNotFoundError(f"{root} is not a genolake lake (no {CONFIG}): nothing to migrate")
    try:
        config = json.loads(cfg.read_text())
    except (OSError, ValueError) as exc:
        raise LakeStateError(f"{cfg} cannot be read ({exc}); restore it from a backup of the lake") from None
    if not isinstance(config, dict) or config.get("format") != "genolake":
        raise LakeNotFoundError(f"{root} is not a genolake lake ({CONFIG} is not a genolake lake record): "
                                "nothing to migrate")
    return config


def _version(config: dict[str, Any]) -> int:
    return int(config.get("format_version", 1))


def _folder_bytes(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        if Path(dirpath) == path and "_staging" in dirnames:
            dirnames.remove("_staging")
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


@contextlib.contextmanager
def _old_tables() -> Iterator[None]:
    """Let the store complete a commit of the old release that touched `calls` (its redo record names the table,
    whose schema the store looks up) while the lock is taken."""
    had = OLD_CALLS in schema.TABLES
    if not had:
        schema.TABLES[OLD_CALLS] = _V1_CALLS
    try:
        yield
    finally:
        if not had:
            schema.TABLES.pop(OLD_CALLS, None)


def migrate(lake: Path | str) -> MigrateReport:
    """Upgrade ``lake`` to the current format version, in place and atomically (safe to rerun after a crash).

    Parameters
    ----------
    lake
        The lake folder.

    Returns
    -------
    MigrateReport
        Counts and sizes; ``already_current`` if the lake needed nothing.

    Raises
    ------
    LakeNotFoundError
        ``lake`` is not a genolake lake (exit code 2).
    LakeStateError
        The lake is newer than this genolake, or its format-1 tables disagree (nothing is changed).

    Examples
    --------
    >>> migrate("lake")  # doctest: +SKIP
    MigrateReport(lake='/data/lake', from_version=1, to_version=2, calls_files=7, stored_calls=20311, ...)
    """
    root = Path(lake).resolve()
    config = _read_config(root)
    version = _version(config)
    if version > FORMAT_VERSION:
        raise LakeStateError(f"{root} is a lake of format version {version}, written by a newer genolake than this "
                             f"one (which writes version {FORMAT_VERSION}): upgrade genolake")
    report = MigrateReport(lake=str(root), from_version=version, to_version=FORMAT_VERSION)
    store = LakeStore.open(root, allow_old=True)
    if version == FORMAT_VERSION:
        report.already_current = True
        if (root / OLD_CALLS).exists():  # the old table, left by a migration stopped just after its switch
            with store.lock():
                shutil.rmtree(root / OLD_CALLS, ignore_errors=True)
            log.info("removed the format-1 `calls` folder left by an interrupted migration")
        return report
    report.lake_bytes_before = _folder_bytes(root)
    with store.staging() as (txn, staged), _old_tables(), store.lock():
        config = _read_config(root)  # another migrate may have finished while this one waited for the lock
        if _version(config) == FORMAT_VERSION:
            report.already_current = True
            return report
        if (root / GENOTYPES.name).exists():
            log.warning("found the `genotypes` folder of an interrupted migration: removing it and starting again")
            shutil.rmtree(root / GENOTYPES.name)
            report.recovered = True
        commit = Commit(txn=txn)
        _build(store, staged, commit, report)
        store.ensure_table(GENOTYPES)
        if commit.adds:
            store.commit(commit, staged, order=(GENOTYPES.name, VARIANTS.name))
        _switch(root, {**config, "format_version": FORMAT_VERSION})
        shutil.rmtree(root / OLD_CALLS, ignore_errors=True)
    report.lake_bytes_after = _folder_bytes(root)
    for inst, c in sorted(report.institutions.items()):
        log.info("%s: %d calls file(s) -> %d genotypes file(s) of %d row(s), %d stored call(s)", inst,
                 c.calls_files, c.genotypes_files, c.rows, c.stored_calls)
    return report


def _switch(root: Path, config: dict[str, Any]) -> None:
    """Record the new format version: the one step that makes the migrated lake the lake."""
    atomic_write(root / CONFIG, json.dumps(config, indent=2) + "\n")


def _part_key(rel: str) -> str:
    """A part's relative path without the suffixes of rewrites: `samples remove` (``-w<txn>``) and a split
    by this module (``-m<k>``), so every piece of a `variants` part finds the `calls` part it came with."""
    p = Path(rel)
    stem = p.stem
    while True:
        short = _SUFFIX.sub("", stem)
        if short == stem:
            return str(p.with_name(stem))
        stem = short


def _samples_by_file(store: LakeStore) -> dict[str, pa.Table]:
    """file_id -> its ``samples`` rows (sample_id, column_index), from the table's current version."""
    import pyarrow.compute as pc

    files = store.active_files("samples")
    if not files:
        return {}
    t = pa.concat_tables([pq.read_table(f, columns=["sample_id", "column_index", "file_id"]) for f in files])
    return {fid: t.filter(pc.equal(t["file_id"], fid)).select(["sample_id", "column_index"])
            for fid in sorted(set(t["file_id"].to_pylist()))}


def _build(store: LakeStore, staged: Path, commit: Commit, report: MigrateReport) -> None:
    """Stage the `genotypes` parts of every `variants` part (see the module docstring)."""
    vparts: dict[str, list[str]] = {}
    for rel in store.relpaths("variants"):
        vparts.setdefault(_part_key(rel), []).append(rel)
    calls_parts: dict[str, str] = {}
    for rel in store.relpaths(OLD_CALLS) if store.has_table(OLD_CALLS) else []:
        key = _part_key(rel)
        if key in calls_parts:
            raise LakeStateError(f"{store.root}: two current `calls` parts ({calls_parts[key]}, {rel}) belong to one "
                                 "`variants` part; the lake is inconsistent, nothing was changed")
        calls_parts[key] = rel
    samples = _samples_by_file(store)
    for key in sorted(vparts):
        crel = calls_parts.pop(key, None)
        ct = pq.read_table(store.table_path(OLD_CALLS) / crel) if crel is not None else None
        used = 0
        for vrel in sorted(vparts[key]):
            used += _migrate_part(store, staged, commit, report, vrel, ct, samples)
        if ct is not None:
            if used != ct.num_rows:
                raise LakeStateError(f"{store.root}: the `calls` part {crel} has calls of alleles that its `variants` "
                                     "part does not list; the lake is inconsistent, nothing was changed")
            inst = str(ct["institution"][0].as_py()) if ct.num_rows else "?"
            report.institutions.setdefault(inst, InstitutionCounts()).calls_files += 1
            report.calls_files += 1
            report.calls_bytes += (store.table_path(OLD_CALLS) / str(crel)).stat().st_size
    if calls_parts:  # never written by ingest: a calls part must have its variants part
        rel = next(iter(calls_parts.values()))
        raise LakeStateError(f"{store.root}: the `calls` part {rel} has no `variants` part; the lake is inconsistent, "
                             "nothing was changed")


def _migrate_part(store: LakeStore, staged: Path, commit: Commit, report: MigrateReport, vrel: str,
                  ct: pa.Table | None, samples: dict[str, pa.Table]) -> int:
    """Stage the `genotypes` rows of the `variants` part ``vrel`` from the calls ``ct`` of its part (only the
    calls of alleles ``vrel`` lists are used); return how many calls were used.

    A part of more than :data:`PART_CODES` codes (rows x samples) is split, with its `variants` part, into
    pieces of the same rows (``<name>-m<k>``): format 1 bounded parts by stored calls, so a part of a large cohort
    with rare variants can be far larger as dense codes, and ingest bounds `genotypes` parts the same way."""
    where = f"variants/{vrel}"
    vt = pq.read_table(store.table_path("variants") / vrel)
    if vt.num_rows == 0:
        return 0
    fids = set(vt["file_id"].to_pylist())
    if len(fids) != 1:
        raise LakeStateError(f"{where} holds rows of {len(fids)} files; a part belongs to one file. Nothing was "
                             "changed")
    fid = fids.pop()
    srows = samples.get(fid)
    if srows is None:
        raise LakeStateError(f"{where}: its file {fid} has no `samples` rows; the lake is inconsistent, nothing was "
                             "changed")
    cidx = np.asarray(srows["column_index"].to_numpy(zero_copy_only=False), dtype=np.int64)
    n = len(cidx)
    if not np.array_equal(np.sort(cidx), np.arange(n)):
        raise LakeStateError(f"{where}: the `samples` column indices of file {fid} are not 0..{n - 1}; nothing was "
                             "changed")
    calls = _Calls.of(vt, ct, srows, where=where)
    step = max(1, PART_CODES // max(1, n))
    pieces = [(a, min(a + step, vt.num_rows)) for a in range(0, vt.num_rows, step)]
    if len(pieces) > 1:
        commit.remove("variants", vrel)
    inst = str(vt["institution"][0].as_py())
    counts = report.institutions.setdefault(inst, InstitutionCounts())
    for j, (a, b) in enumerate(pieces):
        rel = vrel if len(pieces) == 1 else str(Path(vrel).with_name(f"{Path(vrel).stem}-m{j:04d}.parquet"))
        if len(pieces) > 1:
            write_parquet(VARIANTS, vt.slice(a, b - a), staged / "variants" / rel)
            commit.add("variants", rel)
        gtab = calls.genotypes(vt.slice(a, b - a), a, n)
        path = staged / GENOTYPES.name / rel
        write_parquet(GENOTYPES, gtab, path)
        commit.add(GENOTYPES.name, rel)
        counts.genotypes_files += 1
        counts.rows += gtab.num_rows
        report.genotypes_files += 1
        report.genotypes_bytes += path.stat().st_size
    counts.stored_calls += calls.n
    report.stored_calls += calls.n
    return calls.n


@dataclass
class _Calls:
    """The calls of one `variants` part: row, column index, code, FORMAT values and texts, in (row, column) order."""

    row: np.ndarray
    col: np.ndarray
    k: np.ndarray
    fmt: dict[str, pa.Array]
    texts: pa.Array

    @property
    def n(self) -> int:
        return int(self.row.size)

    @classmethod
    def of(cls, vt: pa.Table, ct: pa.Table | None, srows: pa.Table, *, where: str) -> _Calls:
        if ct is None or ct.num_rows == 0:
            none = np.zeros(0, dtype=np.int64)
            return cls(none, none, np.zeros(0, np.uint8), {f: pa.array([], pa.int32()) for f in gtc.FORMAT_FIELDS},
                       pa.array([], pa.string()))
        import pyarrow.compute as pc

        i, row, col = _locate(vt, ct, srows, where=where)
        if i.size == 0:
            return cls.of(vt, None, srows, where=where)
        texts = _plain(ct["gt"]).take(pa.array(i))
        uniq = texts.unique()
        ucode = np.array([gtc.code_text(t) for t in uniq.to_pylist()], dtype=np.uint8)
        k = ucode[np.asarray(pc.index_in(texts, value_set=uniq).to_numpy(zero_copy_only=False), dtype=np.int64)]
        if (k == gtc.HOM_REF).any():
            raise LakeStateError(f"{where}: its `calls` part stores a diploid 0/0 call, which format 1 never stored; "
                                 "nothing was changed")
        order = np.lexsort((col, row))  # sample order within each row
        row, col, k = row[order], col[order], k[order]
        flat = row * (int(col.max()) + 1) + col
        if flat.size > 1 and bool((flat[1:] == flat[:-1]).any()):
            raise LakeStateError(f"{where}: its `calls` part holds two calls of one sample at one allele; nothing "
                                 "was changed")
        take = pa.array(i[order])
        fmt = {f: ct[f].combine_chunks().take(take).cast(pa.int32()) for f in gtc.FORMAT_FIELDS}
        return cls(row, col, k, fmt, texts.take(pa.array(order)))

    def genotypes(self, vt: pa.Table, first: int, n: int) -> pa.Table:
        """The `genotypes` rows of ``vt``, rows ``first``... of the part, files of ``n`` samples, written as ingest
        writes them: one symbol alphabet for the part (codes beyond its 15 symbols become other-texts), and a null
        FORMAT list where the file has no value of that field."""
        nrows = vt.num_rows
        lo, hi = (int(x) for x in np.searchsorted(self.row, [first, first + nrows]))
        row, col, k = self.row[lo:hi] - first, self.col[lo:hi], self.k[lo:hi]
        codes = np.zeros((nrows, n), dtype=np.uint8)
        codes[row, col] = k
        offsets = np.zeros(nrows + 1, dtype=np.int32)
        np.cumsum(np.bincount(row, minlength=nrows), out=offsets[1:])
        lists = {}
        for f in gtc.FORMAT_FIELDS:
            vals = self.fmt[f].slice(lo, hi - lo)
            absent = self.fmt[f].null_count == len(self.fmt[f])  # no value in the whole part: the file lacks it
            lists[f] = pa.nulls(nrows, pa.list_(pa.int32())) if absent else \
                pa.ListArray.from_arrays(pa.array(offsets), vals)
        other: dict[int, list[str]] = {}
        is_other = k == gtc.OTHER
        if is_other.any():
            texts = self.texts.slice(lo, hi - lo).filter(pa.array(is_other)).to_pylist()
            for r, t in zip(row[is_other].tolist(), texts, strict=True):
                other.setdefault(r, []).append(t)
        gt, symbols, other_gt = gtc.encode(codes, other)  # the ingest writer's encoder
        return pa.table({
            "institution": vt["institution"],
            "contig": vt["contig"],
            "pos": vt["pos"],
            "ref": vt["ref"],
            "alt": vt["alt"],
            "gt": gt,
            "gt_symbols": pa.array([symbols] * nrows, pa.string()),
            "other_gt": other_gt,
            **lists,
            "file_id": vt["file_id"],
        })


def _locate(vt: pa.Table, ct: pa.Table, srows: pa.Table, *,
            where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The calls of ``ct`` at alleles that ``vt`` lists: (index in ``ct``, row of ``vt``, column index).

    Alleles and samples are looked up once per run of equal keys (format 1 wrote a part's calls sorted by
    allele, so the runs are the part's alleles; any order gives the same answer, only slower)."""
    import pyarrow.compute as pc

    keys = {k: i for i, k in enumerate(zip(vt["pos"].to_pylist(), vt["ref"].to_pylist(), vt["alt"].to_pylist(),
                                           strict=True))}
    if len(keys) != vt.num_rows:
        raise LakeStateError(f"{where} lists one allele twice; nothing was changed")
    if set(ct["file_id"].unique().to_pylist()) != set(vt["file_id"].unique().to_pylist()):
        raise LakeStateError(f"{where}: its `calls` part holds calls of another file; nothing was changed")
    m = ct.num_rows
    pos = np.asarray(ct["pos"].to_numpy(), dtype=np.int64)
    ref, alt = _plain(ct["ref"]), _plain(ct["alt"])
    change = np.ones(m, dtype=bool)
    if m > 1:
        same = pc.and_(pc.equal(ref.slice(1), ref.slice(0, m - 1)), pc.equal(alt.slice(1), alt.slice(0, m - 1)))
        change[1:] = (pos[1:] != pos[:-1]) | ~np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)
    starts = np.flatnonzero(change)
    idx = pa.array(starts)
    run_row = np.array([keys.get(k, -1) for k in zip(pos[starts].tolist(), ref.take(idx).to_pylist(),
                                                      alt.take(idx).to_pylist(), strict=True)], dtype=np.int64)
    row = np.repeat(run_row, np.diff(np.append(starts, m)))
    enc = pc.dictionary_encode(_plain(ct["sample_id"]))
    cols = dict(zip(srows["sample_id"].to_pylist(), srows["column_index"].to_pylist(), strict=True))
    ucol = np.array([cols.get(s, -1) for s in enc.dictionary.to_pylist()], dtype=np.int64)
    col = ucol[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
    if (col < 0).any():
        raise LakeStateError(f"{where}: its `calls` part has calls of a sample that its file's `samples` rows do "
                             "not list; the lake is inconsistent, nothing was changed")
    i = np.flatnonzero(row >= 0)
    return i, row[i], col[i]


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return arr.cast(pa.string()) if pa.types.is_dictionary(arr.type) else arr
