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
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from genolake import __version__, pseudonym
from genolake.errors import GenolakeError, LakeNotFoundError, LakeStateError, LakeWriteError, write_failure
from genolake.schema import FILE_TABLES, FILES, FORMAT_VERSION, TABLES, Table

if TYPE_CHECKING:
    from deltalake import DeltaTable

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
GT_ZSTD_LEVEL = 6  # the codes only: 4% smaller than level 1 for about 0.03 s per million genotypes (docs/STORAGE.md)
# `genotypes` rows hold one code per sample: their row groups are sized in genotypes (codes), so a point read
# decodes about GENOTYPE_GROUP_CODES codes whatever the cohort size (1,000 samples: 512 rows; 50,000: 16).
GENOTYPE_GROUP_CODES = 1 << 19


def genotype_group_rows(n_samples: int) -> int:
    """Rows per row group of a `genotypes` file of ``n_samples`` samples: a power of two in [16, 4096]."""
    rows = 16
    while rows < 4096 and rows * 2 * max(1, n_samples) <= GENOTYPE_GROUP_CODES:
        rows *= 2
    return rows
COMMIT_ORDER = (*FILE_TABLES, "files")


def _quote(value: str) -> str:
    """Hive folder value: keep it readable, escape what a path cannot hold."""
    out = []
    for ch in value:
        if ch.isalnum() or ch in "._-":
            out.append(ch)
        else:
            out.append("".join(f"~{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out)


def partition_dir(table: Table, row: dict[str, str]) -> str:
    return "/".join(f"{k}={_quote(row[k])}" for k in table.layout)


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
    opts = {**PARQUET_OPTIONS, "row_group_size": row_group_size or SMALL_ROW_GROUPS}
    # sorted positions are delta-encoded (a dictionary of distinct positions costs 4x more: docs/STORAGE.md)
    delta = [c for c in DELTA_COLUMNS if c in table.names]
    if delta:
        opts["use_dictionary"] = [c for c in table.names if c not in delta and c != "gt"]
        opts["column_encoding"] = {c: "DELTA_BINARY_PACKED" for c in delta}
    if table.name == "genotypes":
        # the codes: no dictionary, no length prefix between rows, no min/max statistics (a row is hundreds of
        # bytes); zstd does the work
        opts["column_encoding"]["gt"] = "DELTA_LENGTH_BYTE_ARRAY"
        opts["write_statistics"] = [c for c in table.names if c != "gt"]
        opts["compression_level"] = {c: GT_ZSTD_LEVEL if c == "gt" else PARQUET_OPTIONS["compression_level"]
                                     for c in table.names}
        if row_group_size is None:
            n = 2 * len(data.column("gt")[0].as_py()) if data.num_rows else 1
            opts["row_group_size"] = genotype_group_rows(n)
    pq.write_table(data, tmp, **opts)
    os.replace(tmp, path)


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
            _atomic_write(root / CONFIG, json.dumps(config, indent=2) + "\n")
            log.info("created lake %s (build %s, key %s)", root, build, key_path)
            return store

    @property
    def build(self) -> str:
        return str(self.config["build"])

    @property
    def contig_style(self) -> str:
        return str(self.config["contig_style"])

    def key_path(self) -> Path:
        return pseudonym.default_key_path(self.config["lake_id"])

    def pseudonymiser(self) -> pseudonym.Pseudonymiser:
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
        return [str(base / p) for p in self._relpaths(name)]

    def _relpaths(self, name: str) -> list[str]:
        actions = self.delta(name).get_add_actions(flatten=True)
        return [str(p) for p in actions.column("path").to_pylist()]

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
        _atomic_write(txn_dir / f"{commit.txn}.json", json.dumps(record))
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
                n = pq.ParquetFile(full).metadata.num_rows
                actions.append(AddAction(rel, full.stat().st_size, {}, now, True, json.dumps({"numRecords": n})))
            existing = set(self._relpaths(table)) if record["removes"].get(table) else set()
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


def _atomic_write(path: Path, text: str) -> None:
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
