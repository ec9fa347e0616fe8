"""The lake on disk: Delta Lake tables, a lock, staging folders and an atomic multi-table commit.

Layout of a lake folder::

    genolake.json                 lake id, build, contig style, key fingerprint (no secrets)
    calls/  variants/  ...        one Delta Lake table per schema table (``_delta_log/`` + Parquet files
                                  under hive-style folders such as ``institution=north/contig=chr20/``)
    _staging/<txn>/               work in progress of one running job (invisible, removed when it ends)
    _txn/<txn>.json               redo record of a commit in flight (rolled forward by the next writer)
    _lock                         flock() target that serialises commits

Why Delta Lake (docs/STORAGE.md has the measurements and reasoning): its commits are atomic and
concurrency-checked, its data files are plain Parquet that DuckDB reads with ``read_parquet``, and polars,
pandas (via ``deltalake``) and Spark read the tables directly. Delta commits one table at a time, so a
genolake commit that touches several tables writes a redo record first and commits each table with a Delta
application transaction id; a crash between tables is rolled forward by the next writer, and readers only
see rows whose ``file_id`` is listed in ``files`` (the table committed last).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from genolake.errors import GenolakeError, LakeNotFoundError, LakeStateError, LakeWriteError, write_failure
from genolake.schema import FILE_TABLES, FILES, FORMAT_VERSION, TABLES, Table
from genolake.version import __version__

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from genolake import pseudonym
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")
    pq = LazyModule("pyarrow.parquet")

log = logging.getLogger(__name__)

CONFIG = "genolake.json"
# Parquet settings chosen by measurement (docs/STORAGE.md).
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 16384,
    "store_schema": False,
}
# Tables of one row per variant (or per variant and stratum) are read a row group at a time by point queries
# and are small next to `calls`: smaller groups make a point read 2-3x cheaper for a few percent of size.
SMALL_ROW_GROUPS = 4096
DELTA_COLUMNS = ("pos", "orig_pos")
# zstd levels of `genotypes` (docs/STORAGE.md, "Writer options, 2026-11-30"). The codes of a file without FORMAT
# values (GT only), where they are ~80% of the lake: level 14, 14% smaller than level 6 for ~45 ns more CPU per
# genotype at write (zstd's optimal parsing; a page of <= 256 KB gets its small-input parameters); reading is
# no slower. With GQ/DP/AD the codes are ~10% of the lake: the same CPU would buy 1.4%, so a fast level is kept:
# level 1, which there is as small as level 6 (0.4% smaller on the full-tier cohort's codes) for 3x less zstd
# CPU on `gt` (docs/INGEST_PERFORMANCE.md).
# The FORMAT lists are dictionary-encoded, where the level matters little.
GT_ZSTD_LEVEL = 14
GT_ZSTD_LEVEL_WITH_FORMAT = 1
FORMAT_LISTS = ("gq", "dp", "ad_ref", "ad_alt")
FORMAT_ZSTD_LEVEL = 3
# `genotypes` columns with min/max statistics: the keys readers select files and row groups by (point reads
# need `pos`); statistics of ref/alt, the symbols and the lists pruned nothing and took 6% of the footers.
GENOTYPES_STATISTICS = ("institution", "contig", "pos", "file_id")
# `genotypes` rows hold one code per sample: their row groups are sized in genotypes (codes), so a point read
# decodes about GENOTYPE_GROUP_CODES codes whatever the cohort size (1,000 samples: 512 rows; 50,000: 16).
# A file with FORMAT values gets an eighth of that (1,000 samples: 64 rows): a carriers query decodes its row
# group's GQ/DP/AD lists up to the row it needs, 3.8 ms for 512 rows, 1.0 ms for 128, 0.57 ms for 64, for 3.9%
# and 7.1% more bytes than 512 (64 rows: the full-tier GT:GQ:DP:AD lake 0.28x -> 0.29x the .vcf.gz; docs/STORAGE.md).
GENOTYPE_GROUP_CODES = 1 << 19
GENOTYPE_GROUP_CODES_WITH_FORMAT = 1 << 16


def genotype_group_rows(n_samples: int, *, with_format: bool = False) -> int:
    """Rows per row group of a `genotypes` file of ``n_samples`` samples: a power of two in [16, 4096]."""
    codes = GENOTYPE_GROUP_CODES_WITH_FORMAT if with_format else GENOTYPE_GROUP_CODES
    rows = 16
    while rows < 4096 and rows * 2 * max(1, n_samples) <= codes:
        rows *= 2
    return rows
COMMIT_ORDER = (*FILE_TABLES, "files")


# ---------------------------------------------------------------------------------------------- path facts
# Every fact about where a table's rows live on disk is answered here: folder names (hive style, `key=value`
# with `~XX` escapes), the ingested file a data file belongs to (its name starts with the file_id), and which
# files a table's current Delta version holds (:func:`delta_adds`, :meth:`LakeStore.data_files`).

_FILE_ID = re.compile(r"^(f[0-9a-f]{24})(?:[-.]|$)")


def hive_quote(value: str) -> str:
    """A hive folder value: keep it readable, escape what a path cannot hold (``~XX`` per UTF-8 byte)."""
    out = []
    for ch in value:
        if ch.isalnum() or ch in "._-":
            out.append(ch)
        else:
            out.append("".join(f"~{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out)


def hive_unquote(value: str) -> str:
    """The value of a hive folder name written by :func:`hive_quote`."""
    return unquote(value.replace("~", "%"))


def partition_dir(table: Table, row: dict[str, str]) -> str:
    """The folders (``institution=x/contig=y``) of ``table``'s layout for the values in ``row``."""
    return "/".join(f"{k}={hive_quote(row[k])}" for k in table.layout)


def partition_values(relpath: str) -> dict[str, str]:
    """The hive folder values of a data file's path (relative to its table, or absolute under the lake)."""
    out: dict[str, str] = {}
    for part in relpath.split("/")[:-1]:
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = hive_unquote(value)
    return out


def contig_of(relpath: str) -> str | None:
    """The contig of a data file's ``contig=`` folder, or None (a table not laid out by contig)."""
    return partition_values(relpath).get("contig")


def file_id_of(relpath: str) -> str | None:
    """The ``file_id`` a data file of a per-file table belongs to (its name starts with it), or None."""
    m = _FILE_ID.match(relpath.rsplit("/", 1)[-1])
    return m.group(1) if m else None


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a table's current Delta version, with what its path and the log say of it."""

    path: str  # absolute
    relpath: str  # relative to the table folder, as in the Delta log
    contig: str | None  # from its `contig=` folder
    institution: str | None  # from its `institution=` folder
    file_id: str | None  # the ingested file it belongs to (per-file tables), from its name
    pos_range: tuple[int, int] | None  # (min, max) of `pos` from the Delta log's statistics, when recorded
    rows: int | None = None  # rows of the file from the Delta log's statistics, when recorded


@dataclass(frozen=True)
class AddStats:
    """What a Delta add action's statistics say of a data file (None where they do not say)."""

    pos_range: tuple[int, int] | None = None
    rows: int | None = None


class DeltaLogUnsupported(Exception):
    """The Delta log uses a feature :func:`delta_adds` does not read: ask the deltalake package instead."""


def delta_adds(table_dir: Path) -> list[tuple[str, AddStats]]:
    """Active data files of a Delta table (relative paths, sorted) with their statistics (row count, ``pos``
    range) where the add action has them; read straight from ``_delta_log`` (the last classic checkpoint, then the JSON
    commits after it), which takes well under a millisecond where opening the table with deltalake takes
    several. Anything unusual (multi-part or v2 checkpoints, deletion vectors, URI-escaped paths) raises
    :class:`DeltaLogUnsupported`; :meth:`LakeStore.data_files` then asks deltalake."""
    log_dir = table_dir / "_delta_log"
    names = os.listdir(log_dir)
    start = -1
    active: dict[str, AddStats] = {}
    if "_last_checkpoint" in names:
        with open(log_dir / "_last_checkpoint") as fh:
            last = json.load(fh)
        if set(last) - {"version", "size", "sizeInBytes", "numOfAddFiles", "checksum", "tags"}:
            raise DeltaLogUnsupported("checkpoint kind")
        start = int(last["version"])
        cp = log_dir / f"{start:020d}.checkpoint.parquet"
        if not cp.exists():
            raise DeltaLogUnsupported("checkpoint file")
        adds = pq.read_table(cp, columns=["add"]).column("add").to_pylist()
        for a in adds:
            if a is not None:
                _take_add(a, active)
    versions = sorted(int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit())
    if versions and versions[0] > start + 1:
        raise DeltaLogUnsupported("log gap")
    for v in versions:
        if v <= start:
            continue
        with open(log_dir / f"{v:020d}.json") as fh:
            for line in fh:
                if not line.strip():
                    continue
                action = json.loads(line)
                if "add" in action:
                    _take_add(action["add"], active)
                elif "remove" in action:
                    active.pop(action["remove"]["path"], None)
    return sorted(active.items())


def _take_add(a: dict[str, Any], active: dict[str, AddStats]) -> None:
    path = a["path"]
    if "%" in path or a.get("deletionVector"):
        raise DeltaLogUnsupported("escaped path or deletion vector")
    rng: tuple[int, int] | None = None
    rows: int | None = None
    stats = a.get("stats")
    if stats:
        try:
            s = json.loads(stats)
        except ValueError:
            s = None
        if isinstance(s, dict):
            lo, hi = (s.get("minValues") or {}).get("pos"), (s.get("maxValues") or {}).get("pos")
            if isinstance(lo, int) and isinstance(hi, int):
                rng = (lo, hi)
            if isinstance(s.get("numRecords"), int):
                rows = s["numRecords"]
    active[path] = AddStats(rng, rows)


def delta_version(table_dir: Path | str) -> int | None:
    """The current version of a Delta table (the last commit number in its log), None if it has none; a
    directory listing, well under a millisecond."""
    try:
        names = os.listdir(os.path.join(table_dir, "_delta_log"))
    except OSError:
        return None
    versions = [int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit()]
    return max(versions) if versions else None


def lake_stamp(root: Path | str) -> tuple[tuple[str, int], ...]:
    """(table, newest Delta commit) of every table folder of the lake (-1 for a log without a commit), by name:
    it changes with every commit, so it keys caches of answers."""
    out = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return ()
    for name in names:
        if not os.path.isdir(os.path.join(root, name, "_delta_log")):
            continue
        v = delta_version(os.path.join(root, name))
        out.append((name, -1 if v is None else v))
    return tuple(out)


def committed_after(root: Path, table: str, other: str) -> bool:
    """True if ``table``'s Delta log changed after ``other``'s (both logs exist): e.g. `allele_frequencies`
    computed after the last change to `files` still covers the lake."""
    try:
        return os.stat(root / table / "_delta_log").st_mtime_ns >= os.stat(root / other / "_delta_log").st_mtime_ns
    except OSError:
        return False


def write_parquet(table: Table, data: pa.Table, path: Path, *, row_group_size: int | None = None) -> None:
    """Write one data file of ``table`` with the lake's Parquet settings and exact schema."""
    assert not table.view, f"{table.name} is a view"
    data = data.select(table.names)
    # Dictionary-encoded string columns are written as they are (Parquet dictionary pages, no re-hashing);
    # without the Arrow schema in the file metadata every reader sees them as plain strings.
    target = pa.schema([
        f.with_type(data.schema.field(f.name).type)
        if pa.types.is_dictionary(data.schema.field(f.name).type) and pa.types.is_string(f.type)
        else f
        for f in table.arrow_schema
    ])
    data = data.cast(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n_samples = 1
    if table.name == "genotypes" and data.num_rows:
        n_samples = 2 * len(data.column("gt")[0].as_py())  # two samples per byte of `gt`
    null = frozenset(c for c in data.column_names if data.num_rows and data.column(c).null_count == data.num_rows)
    opts = parquet_options(table, data.schema, row_group_size=row_group_size, n_samples=n_samples, null_columns=null)
    pq.write_table(data, tmp, **opts)
    os.replace(tmp, path)


def _leaves(field: pa.Field) -> list[str]:
    """Parquet column paths of an Arrow field: its name, or ``name.list.element`` for a list (pyarrow's
    compliant nested names); writer options such as ``use_dictionary`` and ``column_encoding`` take these
    paths, and a nested column listed by its top-level name only gets no option at all."""
    if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
        return [f"{field.name}.list.{leaf}" for leaf in _leaves(field.type.value_field.with_name("element"))]
    if pa.types.is_struct(field.type):
        return [f"{field.name}.{leaf}" for child in field.type for leaf in _leaves(child)]
    return [field.name]


def parquet_options(table: Table, schema: pa.Schema, *, row_group_size: int | None = None,
                    n_samples: int = 1, null_columns: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The ``pyarrow.parquet.write_table`` options of one data file of ``table`` (docs/STORAGE.md).

    ``n_samples``: samples of a `genotypes` file (its row groups are sized in genotypes); ``null_columns``:
    columns with no value in the file (no dictionary: an empty dictionary page per row group is pure
    overhead; a `genotypes` file whose FORMAT lists are all null gets the GT-only zstd level for its codes).
    """
    opts: dict[str, Any] = {**PARQUET_OPTIONS, "row_group_size": row_group_size or SMALL_ROW_GROUPS}
    leaves = {f.name: _leaves(f) for f in schema}
    # sorted positions are delta-encoded (a dictionary of distinct positions costs 4x more: docs/STORAGE.md)
    delta = [c for c in DELTA_COLUMNS if c in leaves]
    if delta or null_columns:
        opts["use_dictionary"] = [p for c, paths in leaves.items() if c not in delta and c != "gt"
                                  and c not in null_columns for p in paths]
    if delta:
        opts["column_encoding"] = {c: "DELTA_BINARY_PACKED" for c in delta}
    if table.name == "genotypes":
        # the codes: no dictionary, no length prefix between rows, no min/max statistics (a row is hundreds of
        # bytes); zstd does the work. The FORMAT lists: dictionary-encoded values (a few hundred distinct
        # depths and qualities), no statistics (no reader prunes on them).
        opts["column_encoding"]["gt"] = "DELTA_LENGTH_BYTE_ARRAY"
        opts["write_statistics"] = [p for c, paths in leaves.items() if c in GENOTYPES_STATISTICS for p in paths]
        format_values = any(c in leaves and c not in null_columns for c in FORMAT_LISTS)
        gt_level = GT_ZSTD_LEVEL_WITH_FORMAT if format_values else GT_ZSTD_LEVEL
        opts["compression_level"] = {p: gt_level if c == "gt" else FORMAT_ZSTD_LEVEL if c in FORMAT_LISTS
                                     else PARQUET_OPTIONS["compression_level"] for c, paths in leaves.items()
                                     for p in paths}
        if row_group_size is None:
            opts["row_group_size"] = genotype_group_rows(n_samples, with_format=format_values)
    return opts


@dataclass
class Commit:
    """Files to add (paths relative to the staging folder) and files to remove, per table."""

    txn: str
    adds: dict[str, list[str]] = field(default_factory=dict)
    removes: dict[str, list[str]] = field(default_factory=dict)
    file_ids: list[str] = field(default_factory=list)

    def add(self, table: str, relpath: str) -> None:
        self.adds.setdefault(table, []).append(relpath)

    def remove(self, table: str, relpath: str) -> None:
        self.removes.setdefault(table, []).append(relpath)


class LakeStore:
    """Low-level access to a lake folder. Higher layers (ingest, query) build on it."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.config = config

    # ------------------------------------------------------------------ open / create
    @classmethod
    def open(cls, root: Path | str, *, allow_old: bool = False) -> LakeStore:
        """Open a lake; ``allow_old`` lets `genolake migrate` open a lake of an older format version."""
        root = Path(root).resolve()
        cfg = root / CONFIG
        if not cfg.exists():
            _refuse_orphan_tables(root)
            raise LakeNotFoundError(f"{root} is not a genolake lake (no {CONFIG}); create one with `genolake ingest`")
        try:
            config = json.loads(cfg.read_text())
        except (OSError, ValueError) as exc:
            raise LakeStateError(f"{cfg} cannot be read ({exc}); restore it from a backup of the lake") from None
        version = int(config.get("format_version", 1))
        if version < FORMAT_VERSION and not allow_old:
            raise LakeStateError(
                f"{root} is a lake of format version {version}, written by an older genolake; this genolake reads "
                f"version {FORMAT_VERSION}: upgrade it (in place, atomically) with `genolake migrate {root}`")
        if version > FORMAT_VERSION:
            raise LakeStateError(
                f"{root} is a lake of format version {version}, written by a newer genolake than this one (which "
                f"reads version {FORMAT_VERSION}): upgrade genolake")
        return cls(root, config)

    @classmethod
    def open_or_create(cls, root: Path | str, *, build: str, contig_style: str) -> LakeStore:
        """Open a lake, creating it (and its key, outside the lake) if the folder has none."""
        root = Path(root).resolve()
        if (root / CONFIG).exists():
            return cls.open(root)
        if root.exists() and not root.is_dir():
            raise LakeNotFoundError(f"{root} is a file, not a lake folder; give --lake a folder (new or existing lake)")
        for parent in root.parents:
            if (parent / CONFIG).exists():
                raise LakeNotFoundError(f"{root} is inside the lake {parent}; use --lake {parent}")
        if (root / "_delta_log").exists():
            raise LakeNotFoundError(f"{root} is a Delta table folder, not a genolake lake; use its lake folder")
        _refuse_orphan_tables(root)
        root.mkdir(parents=True, exist_ok=True)
        with _flock(root / "_lock"):
            if (root / CONFIG).exists():
                return cls.open(root)
            _refuse_orphan_tables(root)
            import uuid

            from genolake import pseudonym

            lake_id = uuid.uuid4().hex
            key_path = pseudonym.default_key_path(lake_id)
            key = pseudonym.read_key(key_path) if key_path.exists() else pseudonym.create_key(key_path)
            config = {
                "format": "genolake",
                "format_version": FORMAT_VERSION,
                "lake_id": lake_id,
                "build": build,
                "contig_style": contig_style,
                "key_fingerprint": pseudonym.fingerprint(key),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "created_by": f"genolake {__version__}",
            }
            store = cls(root, config)
            # only the ingest tables: a later stage's table is made by its first commit, so what a new lake
            # holds does not depend on which of genolake's modules the process happened to import
            for name in (*FILE_TABLES, FILES.name):
                store.ensure_table(TABLES[name])
            atomic_write(root / CONFIG, json.dumps(config, indent=2) + "\n")
            log.info("created lake %s (build %s, key %s)", root, build, key_path)
            return store

    @property
    def build(self) -> str:
        return str(self.config["build"])

    @property
    def contig_style(self) -> str:
        return str(self.config["contig_style"])

    def key_path(self) -> Path:
        from genolake import pseudonym  # (hashing modules: not needed to read a lake)

        return pseudonym.default_key_path(self.config["lake_id"])

    def pseudonymiser(self) -> pseudonym.Pseudonymiser:
        from genolake import pseudonym

        key = pseudonym.load_key(self.key_path(), self.config["key_fingerprint"])
        return pseudonym.Pseudonymiser(key)

    # ------------------------------------------------------------------ tables
    def table_path(self, name: str) -> Path:
        return self.root / name

    def ensure_table(self, table: Table) -> None:
        path = self.table_path(table.name)
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(str(path)):
            DeltaTable.create(str(path), schema=table.arrow_schema, mode="ignore", name=table.name,
                              description=table.doc[:200])

    def table_names(self) -> list[str]:
        """The Delta tables in the lake folder (every sub-folder with a ``_delta_log``), by name."""
        try:
            entries = sorted(os.listdir(self.root))
        except OSError:
            return []
        return [n for n in entries if os.path.isdir(os.path.join(self.root, n, "_delta_log"))]

    def has_table(self, name: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(str(self.table_path(name)))

    def delta(self, name: str) -> DeltaTable:
        from deltalake import DeltaTable

        return DeltaTable(str(self.table_path(name)))

    def active_files(self, name: str) -> list[str]:
        """Absolute paths of the Parquet files in the table's current Delta version."""
        if not self.has_table(name):
            return []
        base = self.table_path(name)
        return [str(base / p) for p in self.relpaths(name)]

    def relpaths(self, name: str) -> list[str]:
        """Paths (relative to the table folder) of the data files in the table's current Delta version, as
        deltalake reads the log: what commits remove and add against."""
        actions = self.delta(name).get_add_actions(flatten=True)
        return [str(p) for p in actions.column("path").to_pylist()]

    def data_files(self, name: str, *, contig: str | None = None, institution: str | None = None) -> list[DataFile]:
        """The data files of table ``name``'s current Delta version (none if the table does not exist), each
        with its contig and institution folder, file_id and ``pos`` range when the log records one; only those
        of one ``contig`` / ``institution`` when given (a file not laid out by that key is kept: filter its rows).

        The log is read directly (:func:`delta_adds`), or by deltalake when it uses a feature that reader does
        not handle. Sorted by path.
        """
        base = self.table_path(name)
        if not (base / "_delta_log").is_dir():
            return []
        try:
            adds = delta_adds(base)
        except (DeltaLogUnsupported, OSError, ValueError, KeyError) as exc:
            log.info("table %s: reading its Delta log with deltalake (%s)", name, exc)
            adds = sorted((rel, AddStats()) for rel in self.relpaths(name))
        out = []
        for rel, stats in adds:
            keys = partition_values(rel)
            c, inst = keys.get("contig"), keys.get("institution")
            if contig is not None and c is not None and c != contig:
                continue
            if institution is not None and inst is not None and inst != institution:
                continue
            out.append(DataFile(str(base / rel), rel, c, inst, file_id_of(rel), stats.pos_range, stats.rows))
        return out

    def read_table(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """Read a whole (small) table's committed rows."""
        files = self.active_files(name)
        schema = TABLES[name].arrow_schema if name in TABLES else None
        if not files:
            assert schema is not None
            return schema.empty_table() if columns is None else schema.empty_table().select(columns)
        t = pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="permissive")
        if name in FILE_TABLES:
            committed = set(self.committed_file_ids())
            if "file_id" in t.column_names:
                import pyarrow.compute as pc

                t = t.filter(pc.is_in(t["file_id"], pa.array(sorted(committed), pa.string())))
        return t

    def committed_file_ids(self) -> list[str]:
        files = self.active_files("files")
        if not files:
            return []
        return sorted({fid for f in files for fid in pq.read_table(f, columns=["file_id"])["file_id"].to_pylist()})

    # ------------------------------------------------------------------ locking and staging
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lake lock held while checking and committing (never while parsing)."""
        try:
            ctx = _flock(self.root / "_lock")
            ctx.__enter__()
        except OSError as exc:
            self._raise_write_error(exc, "taking the lake lock", done=False)
            raise
        try:
            try:
                self._recover()
            except Exception as exc:
                self._raise_write_error(exc, "completing an interrupted commit", done=None)
                raise
            yield
        finally:
            ctx.__exit__(None, None, None)

    def recover_pending(self) -> None:
        """Complete commits interrupted after their redo record (a crash, a full disk) before a job decides
        what is already in the lake: the rerun of an interrupted ingest then finds its files committed."""
        txn_dir = self.root / "_txn"
        if txn_dir.is_dir() and any(txn_dir.glob("*.json")):
            with self.lock():
                pass

    def _raise_write_error(self, exc: BaseException, what: str, *, done: bool | None) -> None:
        """Turn the disk refusing a write into one line that says what to do (else return)."""
        got = write_failure(exc)
        if got is None:
            return
        reason, fix = got
        if done is False:
            then = f"nothing was changed; {fix} and rerun"
        elif done is True:
            then = f"the commit is recorded: {fix} and rerun the same command, which completes it"
        else:
            then = f"{fix} and rerun the same command, which completes the commit"
        raise LakeWriteError(f"{reason} ({self.root}) while {what}; {then}") from None

    @contextlib.contextmanager
    def staging(self) -> Iterator[tuple[str, Path]]:
        """A private work folder under ``_staging``; removed on exit, and by the next writer after a kill."""
        import uuid  # (platform: not needed to read a lake)

        txn = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:12]
        path = self.root / "_staging" / txn
        try:
            path.mkdir(parents=True)
            holder = open(path / ".owner", "w")  # noqa: SIM115 - held for the staging folder's life
        except OSError as exc:
            self._raise_write_error(exc, "preparing a staging folder", done=False)
            raise
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            try:
                yield txn, path
            except Exception as exc:  # staged writes (Parquet files of this job) on a full disk
                if not isinstance(exc, GenolakeError):
                    self._raise_write_error(exc, "writing staged data", done=False)
                raise
        finally:
            shutil.rmtree(path, ignore_errors=True)
            holder.close()

    def _clean_stale_staging(self) -> None:
        base = self.root / "_staging"
        if not base.exists():
            return
        for d in base.iterdir():
            owner = d / ".owner"
            try:
                with open(owner, "a") as fh:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except FileNotFoundError:
                pass
            except BlockingIOError:
                continue  # a live job owns it
            log.info("removing staging folder of an interrupted job: %s", d.name)
            shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ commit
    def commit(self, commit: Commit, staged: Path, *, order: tuple[str, ...] = COMMIT_ORDER) -> None:
        """Atomically publish staged files and removals across tables. Call while holding :meth:`lock`.

        A disk that refuses a write (full, read-only) gives a :class:`LakeWriteError`: before the redo record
        is written nothing is visible; after it, the next writer (the same command rerun) completes the commit.
        """
        recorded = [False]
        try:
            self._commit(commit, staged, order, recorded)
        except Exception as exc:
            self._raise_write_error(exc, "committing", done=recorded[0])
            raise

    def _commit(self, commit: Commit, staged: Path, order: tuple[str, ...], recorded: list[bool]) -> None:
        # 1. move staged files into their tables (still invisible: no Delta log entry yet)
        moved: dict[str, list[str]] = {}
        for table, rels in commit.adds.items():
            for rel in rels:
                src = staged / table / rel
                dst = self.table_path(table) / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                moved.setdefault(table, []).append(rel)
        # 2. the redo record: after this point the commit will happen, now or at the next writer's recovery
        record = {
            "txn": commit.txn,
            "adds": moved,
            "removes": commit.removes,
            "order": [t for t in order if t in moved or t in commit.removes]
            + [t for t in list(moved) + list(commit.removes) if t not in order],
        }
        txn_dir = self.root / "_txn"
        txn_dir.mkdir(exist_ok=True)
        atomic_write(txn_dir / f"{commit.txn}.json", json.dumps(record))
        recorded[0] = True
        # 3. commit each table with an application transaction id (idempotent on replay)
        self._apply(record)
        (txn_dir / f"{commit.txn}.json").unlink()

    def _apply(self, record: dict[str, Any]) -> None:
        txn = record["txn"]
        seen: list[str] = []
        for table in record["order"]:
            if table in seen:
                continue
            seen.append(table)
            if table in TABLES:
                self.ensure_table(TABLES[table])
            dt = self.delta(table)
            if dt.transaction_version(txn) is not None:
                continue  # already committed before a crash
            now = int(time.time() * 1000)
            from deltalake import CommitProperties, Transaction
            from deltalake.transaction import AddAction, RemoveAction

            actions: list[AddAction | RemoveAction] = []
            for rel in record["adds"].get(table, []):
                full = self.table_path(table) / rel
                stats = _file_stats(pq.ParquetFile(full).metadata)
                actions.append(AddAction(rel, full.stat().st_size, {}, now, True, json.dumps(stats)))
            existing = set(self.relpaths(table)) if record["removes"].get(table) else set()
            for rel in record["removes"].get(table, []):
                if rel in existing:
                    actions.append(RemoveAction(rel, True, now, None, {}))
            schema = TABLES[table].arrow_schema
            dt.create_write_transaction(
                actions,
                mode="append",
                schema=schema,
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(txn, 1)],
                    custom_metadata={"genolake_txn": txn, "genolake_version": __version__},
                ),
            )
            dt = self.delta(table)
            if dt.version() % 20 == 0:
                dt.create_checkpoint()

    def _recover(self) -> None:
        """Roll forward commits interrupted after their redo record; drop staging of dead jobs."""
        txn_dir = self.root / "_txn"
        if txn_dir.exists():
            for rec_path in sorted(txn_dir.glob("*.json")):
                try:
                    record = json.loads(rec_path.read_text())
                except json.JSONDecodeError:  # torn write cannot happen (atomic rename), but be safe
                    rec_path.unlink()
                    continue
                log.warning("completing an interrupted commit %s", record["txn"])
                self._apply(record)
                rec_path.unlink()
        self._clean_stale_staging()

    def refuse_if_busy(self) -> None:  # pragma: no cover - reserved
        raise LakeStateError("lake is busy")


def _file_stats(md: pq.FileMetaData) -> dict[str, Any]:
    """The Delta statistics of a data file: its row count and, for tables with a ``pos`` column, the position
    range from the row groups' statistics, so :meth:`LakeStore.data_files` answers which positions a file holds
    without opening it."""
    stats: dict[str, Any] = {"numRecords": md.num_rows}
    names = [md.schema.column(i).name for i in range(md.num_columns)]
    if "pos" not in names or md.num_row_groups == 0:
        return stats
    idx = names.index("pos")
    lo: int | None = None
    hi: int | None = None
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(idx).statistics
        if st is None or not st.has_min_max:
            return stats  # a row group without statistics: the range is unknown
        lo = int(st.min) if lo is None else min(lo, int(st.min))
        hi = int(st.max) if hi is None else max(hi, int(st.max))
    stats["minValues"] = {"pos": lo}
    stats["maxValues"] = {"pos": hi}
    return stats


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another genolake job to finish its commit ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _refuse_orphan_tables(root: Path) -> None:
    """A folder that holds lake data but no lake record (``genolake.json``: the lake id, which names the key,
    and the key's fingerprint) must not become a new lake: a new key would give the same people new pseudonyms
    next to the old ones. Tables with no data file (a creation interrupted before the record was written) are
    not data."""
    tables = sorted(d for d in root.iterdir() if (d / "_delta_log").is_dir()) if root.is_dir() else []
    for table_dir in tables:  # every Delta table of the folder, whichever stage wrote it
        if any("_delta_log" not in p.parts for p in table_dir.rglob("*.parquet")):
            raise LakeStateError(
                f"{root} holds lake tables ({table_dir.name}/ and others) but no {CONFIG}, the lake record that names its "
                f"key: restore {CONFIG} from a backup (or from the copy this folder came from) and rerun; "
                "nothing was changed (a new key would give the same people new pseudonyms)"
            )


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically and durably (temporary file, fsync, rename, fsync of the folder)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
