"""`genolake ingest`: plan, convert in parallel into staging, check, and commit atomically.

Stages (as bio2zarr's explode init / partition / finalise):

1. **inspect** every input (checksum, format, header, samples, build); files already in the lake are skipped;
2. **convert** tasks (whole files, or index regions of one file) on Dask or in process, each writing Parquet
   to a private staging folder;
3. **finalise** under the lake lock: re-check for duplicates against what is committed *now* (another ingest
   may have landed meanwhile), then publish everything in one multi-table commit.

Nothing is visible until step 3 completes; a crash at any point leaves the lake as it was.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genolake import __version__
from genolake.compute.runner import pool_size
from genolake.contigs import canonical_build, to_style
from genolake.errors import BadInputFileError, BuildMismatchError, LakeStateError, UserInputError
from genolake.ingest.convert import ISSUES, ChunkResult, Task, run_task, run_threaded
from genolake.ingest.plan import balanced_chunks, contig_extents
from genolake.ingest.reader import Source, check_unchanged, htslib_messages, inspect_source, scrub
from genolake.schema import CALLABLE, FILE_TABLES, FILES, PLOIDY, SAMPLES
from genolake.store import Commit, LakeStore, partition_dir, write_parquet

log = logging.getLogger(__name__)

IN_PROCESS_BYTES = 24 * 2**20
"""With the default ``workers=None``, inputs smaller than this (compressed bytes, all files of the command) are
converted in this process: starting worker processes (~1 s) would cost more than they save. Measured on 2 cores
with a 29 MB, 1,000-sample file (docs/INGEST_PERFORMANCE.md): 2 worker processes 2.49 s, 2 reader threads in
process 2.79 s, one thread 3.11 s (best of 5, same run)."""
THREAD_BYTES = 16 * 2**20
"""In process, an indexed file at least this big (compressed bytes) is read by one thread per core
(:func:`reader_threads`) over index regions: cyvcf2 parses without holding the GIL, so the threads parse on
separate cores (:func:`genolake.ingest.convert.run_threaded`). Smaller files are read on one thread."""


def reader_threads() -> int:
    """Reader threads of an in-process ingest: one per core, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))
_INSTITUTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ProgressFn = Callable[[int, int, int], None]  # (records done, tasks done, tasks in all)


@dataclass
class FileReport:
    name: str
    file_id: str
    status: str  # ingested | skipped | replaced
    n_records: int = 0
    n_variants: int = 0
    n_calls: int = 0
    n_samples: int = 0
    n_skipped: int = 0
    message: str = ""
    position: int = 0  # 1-based place of the file on the command line (messages name it so, not by its name)
    warnings: list[str] = field(default_factory=list)  # htslib's non-fatal messages, each once (see summary)

    def label(self, n_inputs: int) -> str:
        """How messages name the file: its place on the command line and short checksum, never its name (file
        names often carry sample IDs). ``file_id`` is ``f`` + the first 24 hex digits of the SHA-256."""
        return f"file {self.position} of {n_inputs} (sha256 {self.file_id[1:13]})"


def warnings_summary(warnings: list[str]) -> str:
    """One line for a file's htslib warnings: how many, of which kinds, the first one's text (``--verbose``
    logs them all): ``2 htslib warnings: bcf_hdr_check_sanity x2 (AC should be declared as Number=A)``."""
    import re

    kinds: dict[str, int] = {}
    for w in warnings:
        m = re.match(r"^\[[A-Z]::([^\]]+)\]", w)
        kinds[m.group(1) if m else "htslib"] = kinds.get(m.group(1) if m else "htslib", 0) + 1
    first = re.sub(r"^\[[A-Z]::[^\]]*\]\s*", "", warnings[0]).strip() if warnings else ""
    first = first if len(first) <= 80 else first[:77] + "..."
    return (f"{len(warnings)} htslib warning{'s' if len(warnings) != 1 else ''}: "
            + ", ".join(f"{k} x{n}" for k, n in kinds.items()) + (f" (first: {first})" if first else ""))


@dataclass
class IngestReport:
    lake: str
    institution: str
    n_inputs: int = 0  # files given
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    runner: str = ""  # "in process", "local Dask cluster of N workers" or "Dask scheduler ADDRESS"

    @property
    def genotypes(self) -> int:
        return sum(f.n_records * f.n_samples for f in self.files if f.status != "skipped")


# Names an institution cannot take: `joint` is the scope of the whole cohort in every frequency answer (two
# `joint` rows per site otherwise), `all` the stratum of every sample; the rest are device names that cannot be
# folders on Windows (a lake copied there would lose the institution's folder). Compared case-insensitively.
RESERVED_INSTITUTIONS = frozenset(
    {"joint", "all", "con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(10)}
)


def validate_institution(name: str) -> str:
    """``name`` if it can be an institution: a safe folder name and SQL value, and not a reserved scope name."""
    if not _INSTITUTION.match(name) or name.endswith("."):
        raise UserInputError(
            f"invalid institution name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, no spaces, "
            "starting with a letter or digit, not ending with '.')"
        )
    if name.lower() in RESERVED_INSTITUTIONS or name.split(".")[0].lower() in RESERVED_INSTITUTIONS - {"joint", "all"}:
        raise UserInputError(
            f"institution name {name!r} is reserved ('joint' and 'all' name the whole cohort in frequency answers; "
            "CON, PRN, AUX, NUL, COM0-9 and LPT0-9 cannot be folders on Windows): choose another name"
        )
    return name


def read_bed(path: Path, style: str) -> list[tuple[str, int, int]]:
    """BED (0-based, half-open) -> 1-based inclusive (contig, start, end), harmonised."""
    import gzip

    opener: Any = gzip.open if str(path).endswith(".gz") else open
    out: list[tuple[str, int, int]] = []
    try:
        fh = opener(path, "rt")
    except OSError as exc:
        raise BadInputFileError(str(path), f"cannot read BED: {exc.strerror or exc}") from None
    with fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                raise BadInputFileError(str(path), "BED line needs chrom, start, end (tab-separated)", record=f"line {n}")
            try:
                s, e = int(parts[1]), int(parts[2])
            except ValueError:
                raise BadInputFileError(str(path), "BED start/end must be integers", record=f"line {n}") from None
            if s < 0 or e <= s:
                raise BadInputFileError(str(path), "BED interval must have 0 <= start < end", record=f"line {n}")
            out.append((to_style(parts[0], style), s + 1, e))
    return out


def ingest(
    lake: Path | str,
    institution: str,
    paths: list[Path | str],
    *,
    build: str | None = None,
    reference: Path | str | None = None,
    absent_as_ref: bool = False,
    callable_regions: Path | str | None = None,
    replace: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest VCF/BCF files of one institution into the lake at ``lake`` (created if missing).

    Parameters
    ----------
    workers
        0 converts in this process (an indexed file of :data:`THREAD_BYTES` or more on one reader thread per
        core); N > 0 starts a local pool of N worker processes; None converts inputs smaller than
        :data:`IN_PROCESS_BYTES` (24 MiB, all files together), or that make one task, in this process and
        larger ones on a pool of one process per core (``report.runner`` says which). Ignored when
        ``scheduler`` (an existing Dask cluster's address) is given.

    Examples
    --------
    >>> report = ingest("lake", "north", ["data/sample_vcfs/north.vcf.gz"], workers=0)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    validate_institution(institution)
    if absent_as_ref and callable_regions:
        raise UserInputError("use either --absent-as-ref or --callable-regions, not both")
    if not paths:
        raise UserInputError("no input files given")
    want_build = canonical_build(build) if build else None
    sources = [inspect_source(p) for p in paths]
    _check_builds(sources, want_build)
    file_build = want_build or sources[0].build
    assert file_build is not None
    store = LakeStore.open_or_create(lake, build=file_build, contig_style=sources[0].contig_style)
    if store.build != file_build:
        raise BuildMismatchError(
            f"{sources[0].path}: reference build {file_build} but the lake at {store.root} holds {store.build} data; "
            "lift the file over or use another lake"
        )
    report = IngestReport(lake=str(store.root), institution=institution, n_inputs=len(sources))
    position: dict[str, int] = {}
    for k, src in enumerate(sources, start=1):
        position.setdefault(src.file_id, k)
    pseudo = store.pseudonymiser()
    # skip files already in the lake (same bytes), or repeated on the command line; a commit interrupted by a
    # crash or a full disk is completed first, so rerunning the same command finds its files committed
    store.recover_pending()
    committed = _committed_files(store)
    todo: list[Source] = []
    seen_ids: set[str] = set()
    for src in sources:
        if src.file_id in committed:
            inst = committed[src.file_id]
            if inst != institution:
                raise LakeStateError(
                    f"{src.path}: the same file (sha256 {src.sha256[:12]}...) is already in the lake as institution {inst!r}"
                )
            report.files.append(FileReport(src.name, src.file_id, "skipped",
                                           message="already ingested (same checksum); nothing to do",
                                           position=position[src.file_id]))
            continue
        if src.file_id in seen_ids:
            continue
        seen_ids.add(src.file_id)
        todo.append(src)
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    bed = read_bed(Path(callable_regions), store.contig_style) if callable_regions else None
    ref_path = str(reference) if reference else None
    if ref_path and not os.path.exists(ref_path + ".fai"):
        try:
            import pysam

            pysam.faidx(ref_path)
        except Exception as exc:
            raise BadInputFileError(ref_path, f"cannot index the reference FASTA: {exc}") from None
    if workers is None and scheduler is None and sum(src.size for src in todo) < IN_PROCESS_BYTES:
        workers = 0  # a small input: starting worker processes would cost more than they save
    with store.staging() as (txn, staged):
        plan = functools.partial(_plan, todo, institution, pseudo, store.contig_style, str(staged), ref_path)
        if workers == 0 and scheduler is None:
            tasks = plan(n_workers=reader_threads(), min_split_bytes=THREAD_BYTES)
        else:
            tasks = plan(n_workers=_effective_workers(workers, scheduler))
            if workers is None and scheduler is None and len(tasks) < 2:
                # one task (one file without an index): a worker process would only add its start-up time
                workers = 0
                tasks = plan(n_workers=reader_threads(), min_split_bytes=THREAD_BYTES)
        threaded = workers == 0 and scheduler is None and len(tasks) > len(todo)
        report.runner = (f"Dask scheduler {scheduler}" if scheduler
                         else f"in process, {reader_threads()} reader threads" if threaded
                         else "in process" if workers == 0
                         else f"local pool of {min(pool_size(workers), len(tasks))} worker processes")
        log.info("ingest: %d task(s), %s", len(tasks), report.runner)
        per_file = _execute(tasks, workers=workers, scheduler=scheduler, progress=progress)
        commit = Commit(txn=txn)
        file_contigs: dict[str, set[str]] = {}
        file_pseudonyms: dict[str, list[str]] = {}
        for src in todo:
            chunks = sorted(per_file.get(src.file_id, []), key=lambda r: r.chunk)
            _check_duplicates(src, staged, chunks)
            pseudonyms = pseudo.many(institution, src.samples)
            file_pseudonyms[src.file_id] = pseudonyms
            contigs = _stage_file_tables(
                src, chunks, staged, commit, institution=institution, pseudonyms=pseudonyms,
                absent_mode="ref" if absent_as_ref else ("callable" if bed else "no_call"),
                bed=bed, build=file_build, reference=ref_path,
            )
            file_contigs[src.file_id] = contigs
            fr = FileReport(src.name, src.file_id, "ingested",
                            n_records=sum(c.n_records for c in chunks), n_variants=sum(c.n_variants for c in chunks),
                            n_calls=sum(c.n_calls for c in chunks), n_samples=len(src.samples),
                            n_skipped=sum(c.n_skipped for c in chunks), position=position[src.file_id])
            fr.warnings = list(dict.fromkeys([*src.warnings, *(w for c in chunks for w in c.warnings)]))
            report.files.append(fr)
            label = fr.label(report.n_inputs)
            issues: dict[str, int] = {}
            for c in chunks:
                for kind, k in c.issues.items():
                    issues[kind] = issues.get(kind, 0) + k
            for kind, k in sorted(issues.items()):
                report.warnings.append(f"{label}: {k:,} {ISSUES[kind]}")
        _check_batch_overlap(todo, file_pseudonyms, file_contigs)
        with store.lock():
            # re-check against the lake as it is now: another ingest may have committed meanwhile
            committed = _committed_files(store)
            for src in todo:
                if src.file_id in committed:
                    raise LakeStateError(f"{src.path}: another job ingested this file meanwhile; nothing was changed")
                check_unchanged(src)  # the checksum must describe the bytes that were read
            replaced = _overlapping_files(store, institution, file_pseudonyms, file_contigs, todo, replace)
            for fid in replaced:
                _remove_file(store, commit, fid)
                for fr in report.files:
                    if fr.status == "ingested":
                        fr.message = (fr.message + " " if fr.message else "") + f"replaced {fid}"
            commit.file_ids = [s.file_id for s in todo]
            store.commit(commit, staged)
    report.seconds = time.perf_counter() - t0
    return report


def _effective_workers(workers: int | None, scheduler: str | None) -> int:
    if scheduler:
        return 4
    return pool_size(workers) if workers != 0 else 0


def _check_builds(sources: list[Source], want: str | None) -> None:
    for src in sources:
        if src.build is None and want is None:
            raise BadInputFileError(
                src.path, "cannot tell the reference build from the header (no ##contig lengths or ##reference); "
                "pass --build GRCh37 or --build GRCh38")
        if want and src.build and src.build != want:
            raise BuildMismatchError(f"{src.path}: header says {src.build} but --build {want} was given")
    builds = {want or s.build for s in sources}
    if len(builds) > 1:
        raise BuildMismatchError("the input files are of different reference builds: " + ", ".join(sorted(map(str, builds))))


def _committed_files(store: LakeStore) -> dict[str, str]:
    if not store.active_files("files"):
        return {}  # a new lake (and no empty_table(): pyarrow imports pandas for it, 0.35-0.5 s)
    t = store.read_table("files", columns=["file_id", "institution"])
    return dict(zip(t["file_id"].to_pylist(), t["institution"].to_pylist(), strict=True))


def _plan(
    sources: list[Source], institution: str, pseudo: Any, style: str, staged: str, reference: str | None,
    *, n_workers: int, min_split_bytes: int = 0,
) -> list[Task]:
    tasks: list[Task] = []
    for src in sources:
        fields = tuple(f for f in ("GQ", "DP", "AD") if f in src.has_fields)
        info = tuple(k for k in ("CSQ", "ANN") if any(line.startswith(f"##INFO=<ID={k},") for line in src.header_lines))
        common: dict[str, Any] = {
            "path": src.path, "file_id": src.file_id, "institution": institution,
            "pseudonyms": tuple(pseudo.many(institution, src.samples)), "lake_style": style,
            "staging": staged, "reference": reference, "fields": fields + info,
            "contig_lengths": tuple((c, n) for c, n in src.header_contigs.items() if n),
        }
        groups: list[list[tuple[str, int, int]]] = []
        if src.index and n_workers > 1 and src.size >= min_split_bytes:
            try:
                with htslib_messages() as messages:  # htslib warns once per process: maybe here, via pysam
                    groups = balanced_chunks(contig_extents(src.path), n_workers)
                src.warnings.extend(scrub(messages, src.path))
            except (OSError, ValueError) as exc:
                log.info("file %s: index not usable (%s); reading sequentially", src.file_id, exc)
                groups = []
        if len(groups) <= 1:
            tasks.append(Task(chunk=0, region=None, **common))
        else:
            for k, group in enumerate(groups):
                tasks.append(Task(chunk=k, region=group[0], regions=tuple(group[1:]), **common))
    return tasks


def _execute(tasks: list[Task], *, workers: int | None, scheduler: str | None,
             progress: ProgressFn | None) -> dict[str, list[ChunkResult]]:
    """Run the conversion tasks; their results by file. In process, a file cut into region tasks is read on
    :func:`reader_threads` threads (:func:`convert.run_threaded`), every other task in turn."""
    from genolake.compute.runner import in_process, run_tasks

    per_file: dict[str, list[ChunkResult]] = {}
    by_file: dict[str, list[Task]] = {}
    for task in tasks:
        by_file.setdefault(task.file_id, []).append(task)
    if in_process(workers, scheduler) and any(len(ts) > 1 for ts in by_file.values()):
        n = len(tasks)
        records = 0
        finished = 0
        if progress:
            progress(0, 0, n)

        def tick(k: int) -> None:
            nonlocal records
            records += k
            if progress:
                progress(records, finished, n)

        for fid, ts in by_file.items():
            before = records
            if len(ts) > 1:
                whole = dataclasses.replace(ts[0], chunk=0, region=None, regions=())
                per_file[fid] = run_threaded(ts, whole, threads=reader_threads(), progress=tick)
            else:
                per_file[fid] = [run_task(ts[0], tick)]
            finished += len(ts)
            records = before + sum(r.n_records for r in per_file[fid])
            if progress:
                progress(records, finished, n)
        return per_file
    # local workers: a process pool (about 1 s to start) rather than a local Dask cluster (5-10 s), which was
    # longer than a whole small ingest; an existing cluster (scheduler) is used as given
    results = run_tasks(run_task, tasks, workers=workers, scheduler=scheduler, progress=progress,
                        count=lambda res: res.n_records, live=True, local="processes", preload=("pandas",))
    for task, res in zip(tasks, results, strict=True):
        per_file.setdefault(task.file_id, []).append(res)
    return per_file


def _check_duplicates(src: Source, staged: Path, chunks: list[ChunkResult]) -> None:
    """Two records that normalise to the same variant would be counted twice: refuse the file."""
    paths = [staged / "variants" / rel for c in chunks for t, rel in c.files if t == "variants"]
    if not paths:
        return
    keys = pa.concat_tables([pq.read_table(p, columns=["contig", "pos", "ref", "alt", "orig_pos"]) for p in paths])
    counts = keys.group_by(["contig", "pos", "ref", "alt"]).aggregate([("orig_pos", "count"), ("orig_pos", "min")])
    dup = counts.filter(pc.greater(counts["orig_pos_count"], 1))
    if dup.num_rows:
        row = dup.slice(0, 1).to_pylist()[0]
        raise BadInputFileError(
            src.path,
            f"variant {row['contig']}-{row['pos']}-{row['ref']}-{row['alt']} occurs {row['orig_pos_count']} times "
            "after splitting and normalisation (duplicate records); remove duplicates first, e.g. "
            "`bcftools norm -m- -d exact`",
            record=f"record at {row['contig']}:{row['orig_pos_min']}",
        )


def _stage_file_tables(
    src: Source, chunks: list[ChunkResult], staged: Path, commit: Commit, *, institution: str,
    pseudonyms: list[str], absent_mode: str, bed: list[tuple[str, int, int]] | None, build: str,
    reference: str | None,
) -> set[str]:
    for c in chunks:
        for table, rel in c.files:
            commit.add(table, rel)
    n = len(pseudonyms)
    fid = src.file_id
    samples = pa.table({
        "institution": [institution] * n, "sample_id": pseudonyms,
        "column_index": pa.array(range(n), pa.int32()), "file_id": [fid] * n,
    })
    _stage(commit, staged, SAMPLES, samples, institution, fid)
    # ploidy per sample and contig, summed over the chunks
    acc: dict[str, np.ndarray] = {}
    maxp: dict[str, int] = {}
    order: list[str] = []
    for c in chunks:
        for contig, counts in c.ploidy.items():
            if contig not in acc:
                acc[contig] = np.zeros_like(counts)
                order.append(contig)
            acc[contig] += counts
            maxp[contig] = max(maxp.get(contig, 0), c.max_ploidy.get(contig, 0))
    rows: dict[str, list[Any]] = {"institution": [], "sample_id": [], "contig": [], "ploidy": [], "file_id": []}
    for contig in order:
        counts = acc[contig]
        mode = np.argmax(counts, axis=1)
        pl = np.where(mode == 0, 1, np.where(mode == 1, 2, max(3, maxp[contig])))
        pl = np.where(counts.sum(axis=1) == 0, 2, pl)
        rows["institution"] += [institution] * n
        rows["sample_id"] += pseudonyms
        rows["contig"] += [contig] * n
        rows["ploidy"] += pl.tolist()
        rows["file_id"] += [fid] * n
    _stage(commit, staged, PLOIDY, pa.table(rows), institution, fid)
    if bed is not None:
        cb = pa.table({
            "institution": [institution] * len(bed), "contig": [b[0] for b in bed],
            "start": pa.array([b[1] for b in bed], pa.int32()), "end": pa.array([b[2] for b in bed], pa.int32()),
            "file_id": [fid] * len(bed),
        })
        _stage(commit, staged, CALLABLE, cb, institution, fid)
    ref_md5 = None
    if reference:
        import hashlib

        ref_md5 = hashlib.md5(Path(reference + ".fai").read_bytes()).hexdigest()
    files = pa.table({
        "file_id": [fid], "institution": [institution], "sha256": [src.sha256], "size_bytes": [src.size],
        "format": [src.format], "build": [build], "source_contig_style": [src.contig_style],
        "contigs": [order], "n_records": [sum(c.n_records for c in chunks)],
        "n_variants": [sum(c.n_variants for c in chunks)], "n_skipped": [sum(c.n_skipped for c in chunks)],
        "n_samples": pa.array([n], pa.int32()), "n_calls": [sum(c.n_calls for c in chunks)],
        "absent_mode": [absent_mode], "left_aligned": [reference is not None], "reference_md5": [ref_md5],
        "ingested_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
        "genolake_version": [__version__],
    })
    _stage(commit, staged, FILES, files, institution, fid)
    return set(order)


def _stage(commit: Commit, staged: Path, table: Any, data: pa.Table, institution: str, fid: str) -> None:
    rel = f"{partition_dir(table, {'institution': institution})}/{fid}.parquet"
    write_parquet(table, data, staged / table.name / rel)
    commit.add(table.name, rel)


def _check_batch_overlap(todo: list[Source], pseud: dict[str, list[str]], contigs: dict[str, set[str]]) -> None:
    for i, a in enumerate(todo):
        for b in todo[i + 1:]:
            if set(pseud[a.file_id]) & set(pseud[b.file_id]) and contigs[a.file_id] & contigs[b.file_id]:
                raise LakeStateError(
                    f"{b.path}: shares samples and contigs with {a.path} given in the same command; "
                    "the same genotypes would be counted twice"
                )


def _overlapping_files(
    store: LakeStore, institution: str, pseud: dict[str, list[str]], contigs: dict[str, set[str]],
    todo: list[Source], replace: bool,
) -> list[str]:
    """Committed files of the institution that share samples and contigs with a new file."""
    if not store.active_files("samples"):
        return []
    samples = store.read_table("samples", columns=["institution", "sample_id", "file_id"])
    samples = samples.filter(pc.equal(samples["institution"], institution))
    if samples.num_rows == 0:
        return []
    files = store.read_table("files", columns=["file_id", "contigs"])
    file_contigs = {fid: set(cs) for fid, cs in zip(files["file_id"].to_pylist(), files["contigs"].to_pylist(), strict=True)}
    by_file: dict[str, set[str]] = {}
    for sid, fid in zip(samples["sample_id"].to_pylist(), samples["file_id"].to_pylist(), strict=True):
        by_file.setdefault(fid, set()).add(sid)
    hits: list[str] = []
    for src in todo:
        new = set(pseud[src.file_id])
        for fid, old in by_file.items():
            shared = len(new & old)
            if shared and contigs[src.file_id] & file_contigs.get(fid, set()):
                if not replace:
                    raise LakeStateError(
                        f"{src.path}: {shared} of its samples are already in the lake for institution "
                        f"{institution!r} on the same contigs (file {fid}); pass --replace to replace that file"
                    )
                if fid not in hits:
                    hits.append(fid)
    return hits


def _remove_file(store: LakeStore, commit: Commit, fid: str) -> None:
    for table in (*FILE_TABLES, "files"):
        if not store.has_table(table):
            continue
        for rel in store.relpaths(table):
            if Path(rel).name.startswith(fid):
                commit.remove(table, rel)
