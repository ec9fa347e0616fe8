"""One unit of ingest work: read the records of a file (or of one region of an indexed file) with
cyvcf2, split and normalise them, and write the chunk's `calls` and `variants` Parquet files to staging.

This is what a Dask worker runs. It receives sample pseudonyms, never the pseudonymisation key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from genolake import genotypes as gtc
from genolake.contigs import bare, to_style
from genolake.errors import BadInputFileError, LakeWriteError, write_failure
from genolake.ingest.normalise import is_symbolic, left_align, trim
from genolake.ingest.reader import fatal_messages, htslib_capture, htslib_messages, open_vcf, scrub
from genolake.ingest.reader import message_text as _clean
from genolake.schema import GENOTYPES, VARIANTS
from genolake.store import partition_dir, write_parquet

log = logging.getLogger(__name__)
INT_MISSING = np.iinfo(np.int32).min  # htslib bcf_int32_missing; vector_end is min + 1
# bases, `*`, symbolic `<ID>`, breakends (`G]17:198982]`, `]13:123456]T`, telomeric `.[13:123457[`, `]1:0].`)
# and single breakends (`.A`, `G.`). gVCF placeholders `<*>`/`<NON_REF>` are refused separately.
_ALT_OK = re.compile(r"^([ACGTN]+|\*|<[^<>]+>|(?:\.|[ACGTN]*)[\[\]].*|\.[ACGTN]+|[ACGTN]+\.)$")
_GVCF_ALLELES = frozenset(("<*>", "<NON_REF>"))
_REF_OK = re.compile(r"^[ACGTN]+$")
_BASES = frozenset("ACGTN")  # one-base alleles: valid without the regular expressions



@dataclass(frozen=True)
class Task:
    path: str
    file_id: str
    institution: str
    chunk: int
    region: tuple[str, int, int] | None  # (source contig, start, end), 1-based inclusive; None = whole file
    pseudonyms: tuple[str, ...]
    lake_style: str
    staging: str
    reference: str | None = None
    fields: tuple[str, ...] = ()  # header fields present among FORMAT GQ, DP, AD and INFO CSQ, ANN
    regions: tuple[tuple[str, int, int], ...] = ()  # more regions for the same task (small contigs)
    contig_lengths: tuple[tuple[str, int], ...] = ()  # ##contig lengths of the header (source names)


@dataclass
class ChunkResult:
    chunk: int
    n_records: int = 0
    n_variants: int = 0
    n_skipped: int = 0
    n_calls: int = 0
    files: list[tuple[str, str]] = field(default_factory=list)  # (table, path relative to staging/table)
    ploidy: dict[str, np.ndarray] = field(default_factory=dict)  # contig -> (n_samples, 3) counts of 1, 2, other
    max_ploidy: dict[str, int] = field(default_factory=dict)
    contig_order: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # inputs accepted with a counted warning (issue 15.7): kind -> count, see ISSUES
    issues: dict[str, int] = field(default_factory=dict)


# What is accepted with a warning counted per file (the value is stored as missing, NULL); refused instead:
# POS beyond the header's contig length, two records at one position whose REFs contradict each other,
# more sample columns than the header names (checked on the first records, reader.check_sample_columns).
ISSUES = {
    "ad_length": "records whose FORMAT/AD does not have one value per allele (Number=R): AD not stored for them",
    "ad_short": "genotypes with fewer FORMAT/AD values than alleles: their AD stored as missing",
    "negative": "negative FORMAT/GQ, DP or AD values stored as missing",
}


def _count(result: ChunkResult, kind: str, n: int) -> None:
    if n:
        result.issues[kind] = result.issues.get(kind, 0) + int(n)


def _negatives(m: np.ndarray) -> np.ndarray:
    """Negative values that are not htslib's missing or vector-end markers."""
    return (m < 0) & (m > INT_MISSING + 1)


class _Columns:
    """Column buffers of one contig within a chunk."""

    def __init__(self) -> None:
        self.v: dict[str, list[Any]] = {k: [] for k in (
            "pos", "ref", "alt", "id", "qual", "filters", "ac", "an", "nhomalt", "nhemi", "n_called",
            "n_missing", "orig_pos", "orig_ref", "orig_alt", "alt_index", "n_alleles", "csq", "ann")}
        # genotype rows, in variant-row order: (rows, samples) code matrices, the FORMAT values of their
        # stored calls (row-major), stored calls per row, and the texts of `other` codes per row
        self.codes: list[np.ndarray] = []
        self.fmt: dict[str, list[np.ndarray]] = {k: [] for k in gtc.FORMAT_FIELDS}
        self.counts: list[np.ndarray] = []
        self.other: dict[int, list[str]] = {}
        self.code_counts = np.zeros(gtc.OTHER + 1, dtype=np.int64)  # histogram of the codes (genotypes.alphabet)
        self.n_variants = 0
        self.n_codes = 0

    def n_rows(self) -> int:
        return self.n_codes


def _int_field(rec: Any, name: str, n: int) -> np.ndarray | None:
    try:
        arr = rec.format(name)
    except KeyError:
        return None
    if arr is None or arr.dtype == np.int32:  # Type=Integer: cyvcf2 hands over int32 already
        return arr
    if arr.dtype.kind == "f":
        out = np.where(np.isnan(arr), INT_MISSING, np.nan_to_num(arr)).astype(np.int64)
        return out.astype(np.int32)
    return np.asarray(arr, dtype=np.int32)


def run_task(task: Task, progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Convert one task; raises BadInputFileError naming the file and the record at fault."""
    with htslib_messages() as messages:
        try:
            result = _run(task, progress)
        except BadInputFileError:
            raise
        except Exception as exc:  # cyvcf2 raises bare Exception on a record htslib cannot parse
            result = None
            error: Exception | None = exc
        else:
            error = None
    messages[:] = scrub(messages, task.path)  # sample names -> column numbers before anything is passed on
    if result is None and error is not None:
        got = write_failure(error)
        if got is not None and not got[0].startswith("no permission"):  # the staging disk, not the input
            raise LakeWriteError(f"{got[0]} ({task.staging}) while writing staged data; nothing was changed; "
                                 f"{got[1]} and rerun") from None
    if result is None:
        detail = fatal_messages(messages) or messages or scrub([str(error)], task.path)
        raise BadInputFileError(task.path, f"cannot parse record: {_clean(detail[0])}", record=_where(task, error))
    fatal = fatal_messages(messages)
    if fatal:
        raise BadInputFileError(task.path, _clean(fatal[0]), record=_region_text(task))
    result.warnings = [_clean(m) for m in messages][:20]
    return result


class _Stopped(Exception):
    """Raised in a reader thread (through its progress tick) once another thread failed or Ctrl-C came."""


def run_threaded(tasks: list[Task], whole: Task, *, threads: int,
                 progress: Callable[[int], None] | None = None) -> list[ChunkResult]:
    """Convert the region tasks of one indexed file on ``threads`` reader threads of this process.

    cyvcf2 parses a record without holding the GIL, so threads over separate regions parse on separate cores.
    htslib writes its messages to the one process-wide stderr, so a message cannot be told apart by thread:
    each thread reads the one capture with a reader of its own (so one thread never marks another's error as
    seen and every thread stops before touching a half-parsed record), and on any error or error message the
    file is converted again as the
    ``whole``-file task on this thread alone (:func:`run_task`), which names the record at fault exactly as
    ``--workers 0`` always did, or succeeds (then its result is used). Bad input is rare; this keeps the
    one error path. Returns the region tasks' results in task order.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor as Pool

    stop = threading.Event()
    lock = threading.Lock()

    def tick(n: int) -> None:
        if stop.is_set():
            raise _Stopped
        if progress is not None:
            with lock:
                progress(n)

    def one(task: Task) -> ChunkResult:
        try:
            return _run(task, tick)
        except BaseException:
            stop.set()  # the other threads stop at their next tick
            raise

    results: list[ChunkResult] = []
    failed = False
    with htslib_messages() as messages:
        pool = Pool(max_workers=threads, thread_name_prefix="genolake-read")
        try:
            futures = [pool.submit(one, t) for t in tasks]
            try:
                results = [f.result() for f in futures]
            except Exception:
                failed = True
        finally:  # after an error, or on Ctrl-C, the other readers stop at their next tick
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
    messages[:] = scrub(messages, whole.path)
    if failed or fatal_messages(messages):
        log.info("file %s: an error while reading on %d threads; reading it again on one", whole.file_id, threads)
        return [run_task(whole)]
    for res in results:
        res.warnings = []
    results[0].warnings = [_clean(m) for m in messages][:20]
    return results


def _region_text(task: Task) -> str | None:
    return None if task.region is None else "region {}:{}-{}".format(*task.region)


def _where(task: Task, error: Exception | None) -> str | None:
    if error is not None and getattr(error, "record_text", None):
        return str(error.record_text)  # type: ignore[attr-defined]
    return _region_text(task)


def _records(vcf: Any, task: Task) -> Any:
    if task.region is None:
        yield from vcf
        return
    for contig, start, end in (task.region, *task.regions):
        for rec in vcf(f"{contig}:{start}-{end}"):
            pos = rec.POS
            if pos < start:
                continue  # overlaps the region but starts in the previous chunk, which owns it
            if pos > end:
                break
            yield rec


class _Batch:
    """Biallelic records of one contig with the same genotype width, processed together with numpy."""

    def __init__(self) -> None:
        self.gts: list[np.ndarray] = []
        self.gq: list[np.ndarray | None] = []
        self.dp: list[np.ndarray | None] = []
        self.ad: list[np.ndarray | None] = []
        self.recs: list[tuple[int, str, int]] = []  # (record number, CHROM, POS) for error messages
        self.rows: list[tuple[Any, ...]] = []  # the variant columns of each record, in _ROW_COLUMNS order
        self.task: Task | None = None
        self.result: ChunkResult | None = None
        self.width = -1

    def __len__(self) -> int:
        return len(self.gts)


BATCH = 512
TICK = 2_000  # records between progress calls (a reader thread also learns there that it should stop)
DECOMPRESS_THREADS = 1  # htslib's BGZF decompression thread: inflating moves off the parsing thread
MAX_QUEUED = 4  # batches handed to the numpy thread and not done yet
# a batch row: the normalised allele, the record's meta (as _add_variant takes it) and the allele as read
_ROW_COLUMNS = ("pos", "ref", "alt", "id", "qual", "filters", "csq", "ann", "orig_pos", "orig_ref", "orig_alt")
_NO_LENGTH = 1 << 62  # a contig without a ##contig length in the header
PART_ROWS = 32_000_000  # genotypes (sites x samples) per part file: bounds memory; writing overlaps parsing


def _spill(task: Task, contig: str, cols: _Columns, result: ChunkResult, parts: dict[str, int],
           writer: ThreadPoolExecutor, pending: list[Future[None]]) -> _Columns:
    """Hand a contig's buffered rows to the background writer; return fresh buffers."""
    part = parts.get(contig, 0)
    parts[contig] = part + 1
    for fut in [f for f in pending if f.done()]:
        fut.result()  # surface write errors early
    pending.append(writer.submit(_write_contig, task, contig, cols, result, part))
    return _Columns()


def _run(task: Task, progress: Callable[[int], None] | None = None) -> ChunkResult:
    vcf = open_vcf(task.path, threads=DECOMPRESS_THREADS)
    n = len(vcf.samples)
    if n != len(task.pseudonyms):
        raise BadInputFileError(task.path, "sample count changed while reading (file modified during ingest?)")
    fasta: _Reference | None = None
    if task.reference:
        import pysam

        fasta = _Reference(pysam.FastaFile(task.reference))
    has_gq, has_dp, has_ad = ("GQ" in task.fields), ("DP" in task.fields), ("AD" in task.fields)
    has_csq, has_ann = ("CSQ" in task.fields), ("ANN" in task.fields)
    result = ChunkResult(chunk=task.chunk)
    by_contig: dict[str, _Columns] = {}
    records = _records(vcf, task)
    seen_contigs: set[str] = set()
    cur_src: str | None = None
    cur: _Columns | None = None
    cur_lake = ""
    last_pos = 0
    lengths = dict(task.contig_lengths)
    cur_len = _NO_LENGTH
    ref_pos = -1
    refs_here: list[str] = []  # REFs seen at the current position
    rec_no = 0
    ploidy_acc: dict[str, np.ndarray] = {}
    maxp: dict[str, int] = {}
    parts: dict[str, int] = {}
    writer = ThreadPoolExecutor(max_workers=1)  # Parquet writing releases the GIL: overlap it with parsing
    pending: list[Future[None]] = []
    # This thread does everything that touches htslib (cyvcf2 records and header: htslib may add to the header
    # while it parses a record, so one thread only). The numpy work on genotypes (_flush, _one_record) and the
    # spills run in order on a second thread, beside the parsing (bcf_read and most numpy loops release the GIL).
    flusher = ThreadPoolExecutor(max_workers=1)
    queued: list[Future[Any]] = []
    cur_rows = 0  # genotype rows (variant rows x samples) handed over for the current contig part: cur.n_rows()

    def submit(fn: Callable[..., Any], *args: Any) -> None:
        while queued and (queued[0].done() or len(queued) >= MAX_QUEUED):  # MAX_QUEUED bounds the memory
            queued[0].result()  # a failure surfaces in record order (and stays queued for the except below)
            queued.pop(0)
        queued.append(flusher.submit(fn, *args))

    def new_batch() -> _Batch:
        b = _Batch()
        b.task = task
        b.result = result
        return b

    batch = new_batch()

    def flush() -> None:
        nonlocal batch
        assert cur is not None
        submit(_flush, batch, cur, ploidy_acc[cur_lake], maxp, cur_lake)
        batch = new_batch()

    ref_ok = _REF_OK.match
    alt_ok = _ALT_OK.match
    capture = htslib_capture()
    if capture is not None:  # a reader of its own: run_threaded's threads each see every error line written
        capture = capture.fork()
    fstat = os.fstat
    err: str | None = None
    try:
        for rec in records:
            rec_no += 1
            if progress is not None and not rec_no % TICK:
                progress(TICK)
            # htslib's error text, if any, since the last record: one fstat when quiet (reader.htslib_error)
            if capture is not None and fstat(capture.fileno).st_size != capture.seen:
                err = capture.new_error()
            if err is not None:  # do not touch a record htslib failed to parse: its fields can crash the process
                raise BadInputFileError(task.path, f"cannot parse record: {_clean(scrub([err], task.path)[0])}",
                                        record=f"record {rec_no}"
                                        + (f" (after {cur_src}:{last_pos})" if cur_src else ""))
            pos = rec.POS
            chrom = rec.CHROM
            if not chrom:  # a blank or truncated line: htslib hands over an empty record whose fields crash on access
                raise BadInputFileError(task.path, "empty or malformed data line (no CHROM)", record=f"record {rec_no}"
                                        + (f" (after {cur_src}:{last_pos})" if cur_src else ""))
            if chrom != cur_src:
                if cur is not None:
                    if batch.gts:
                        flush()
                    # a contig never comes back (checked below): write it while the next one is parsed
                    submit(_spill, task, cur_lake, cur, result, parts, writer, pending)
                    by_contig[cur_lake] = _Columns()
                if chrom in seen_contigs:
                    raise BadInputFileError(task.path, f"records of contig {chrom} are not contiguous (file not sorted; "
                                            "sort it with `bcftools sort`)", record=f"record {rec_no} ({chrom}:{pos})")
                seen_contigs.add(chrom)
                cur_src = chrom
                cur_lake = to_style(chrom, task.lake_style)
                if cur_lake in by_contig:
                    raise BadInputFileError(task.path, f"contigs {chrom} and another name for {cur_lake} both occur",
                                            record=f"record {rec_no} ({chrom}:{pos})")
                cur = by_contig[cur_lake] = _Columns()
                cur_rows = 0
                cur_len = lengths.get(chrom, _NO_LENGTH)
                ref_pos = -1
                result.contig_order.append(cur_lake)
                ploidy_acc[cur_lake] = np.zeros((n, 3), dtype=np.int64)
                maxp[cur_lake] = 0
                last_pos = 0
            elif pos < last_pos:
                raise BadInputFileError(task.path, f"position {pos} comes after {last_pos} (file not sorted; sort it "
                                        "with `bcftools sort`)", record=f"record {rec_no} ({chrom}:{pos})")
            last_pos = pos
            assert cur is not None
            if pos < 1:
                raise BadInputFileError(task.path, f"invalid POS {pos}", record=_at(task, rec_no, chrom, pos))
            if pos > cur_len:
                raise BadInputFileError(task.path, f"POS {pos} is beyond the length of contig {chrom} in the header "
                                        f"({cur_len:,}): wrong reference build, or a corrupt file",
                                        record=_at(task, rec_no, chrom, pos))
            raw_ref = rec.REF
            ref = raw_ref if raw_ref.isupper() else raw_ref.upper()
            if ref not in _BASES and not ref_ok(ref):
                raise BadInputFileError(task.path, f"invalid REF {raw_ref!r} (only A, C, G, T, N allowed)",
                                        record=_at(task, rec_no, chrom, pos))
            if pos == ref_pos:  # records at one position must agree on the reference bases they share
                for other in refs_here:
                    k = min(len(other), len(ref))
                    if other[:k] != ref[:k]:
                        raise BadInputFileError(
                            task.path, f"REF {ref} contradicts REF {other} of an earlier record at the same position "
                            "(the file mixes references or is corrupt)", record=_at(task, rec_no, chrom, pos))
                if ref not in refs_here:
                    refs_here.append(ref)
            else:
                ref_pos, refs_here = pos, [ref]
            raw_alts = rec.ALT
            result.n_records += 1
            if not raw_alts:
                result.n_skipped += 1
                continue
            alts = [a if a.isupper() else a.upper() for a in raw_alts]
            for a in alts:
                if a == ref or (a not in _BASES and (not alt_ok(a) or a in _GVCF_ALLELES)):
                    _bad_alt(task, a, ref, rec_no, chrom, pos)
            if len(alts) > 1 and len(set(alts)) != len(alts):
                raise BadInputFileError(task.path, "ALT lists the same allele twice (VCF 4.4 copy-number notation such "
                                        "as <DUP>,<DUP> is not supported: alleles would share one key)",
                                        record=_at(task, rec_no, chrom, pos))
            try:
                gt = rec.genotype
                arr = gt.array() if gt is not None else None
            except Exception:  # cyvcf2 raises a bare Exception when the record has no usable GT
                arr = None
            if arr is None:
                raise BadInputFileError(task.path, "record has no GT (genotype) values; genolake stores genotypes",
                                        record=_at(task, rec_no, chrom, pos))
            gq = _int_field(rec, "GQ", n) if has_gq else None
            dp = _int_field(rec, "DP", n) if has_dp else None
            ad = _int_field(rec, "AD", n) if has_ad else None
            if ad is not None and ad.shape[1] != len(alts) + 1:
                ad = None  # neither truncated nor padded: not stored, and counted
                _count(result, "ad_length", 1)
            qual = rec.QUAL
            filts = rec.FILTERS
            meta = (
                rec.ID,
                None if qual is None or qual != qual else qual,
                ";".join(filts) if filts else None,
                rec.INFO.get("CSQ") if has_csq else None,
                rec.INFO.get("ANN") if has_ann else None,
            )
            width = arr.shape[1] - 1
            if len(alts) == 1 and width <= 2:
                gts = batch.gts
                if gts and batch.width != width:
                    flush()
                    gts = batch.gts
                if not gts:
                    batch.width = width
                # allele indexes above 1 are looked for once per batch, in _flush
                gts.append(arr)
                batch.recs.append((rec_no, chrom, pos))
                batch.gq.append(gq)
                batch.dp.append(dp)
                batch.ad.append(ad)
                alt = alts[0]
                if fasta is None and len(ref) == 1 and len(alt) == 1:
                    vpos, vref, valt = pos, ref, alt  # what _normalised returns for them
                else:
                    vpos, vref, valt = _normalised(task, fasta, chrom, pos, ref, alt, rec_no)
                batch.rows.append((vpos, vref, valt, *meta, pos, raw_ref, raw_alts[0]))
                cur_rows += n
                if len(gts) >= BATCH:
                    flush()
                    if cur_rows >= PART_ROWS:
                        submit(_spill, task, cur_lake, cur, result, parts, writer, pending)
                        cur = by_contig[cur_lake] = _Columns()
                        cur_rows = 0
                continue
            if batch.gts:
                flush()
            alleles = arr[:, :width]
            high = int(alleles.max()) if alleles.size else 0
            if high > len(alts):
                raise BadInputFileError(task.path, f"genotype allele index {high} but only {len(alts)} ALT alleles",
                                        record=_at(task, rec_no, chrom, pos))
            norm = [_normalised(task, fasta, chrom, pos, ref, alt, rec_no) for alt in alts]
            submit(_one_record, cur, arr, gq, dp, ad, pos, raw_ref, raw_alts, alts, norm, meta,
                   ploidy_acc[cur_lake], maxp, cur_lake, result)
            cur_rows += n * len(alts)
        if cur is not None and batch.gts:
            flush()
        for fut in queued:
            fut.result()
    except Exception as exc:
        # stop queued work; wait only for what is running (one batch, one file), so nothing is written to the
        # staging folder once the error has left this function
        flusher.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)
        for fut in queued:  # a batch handed over earlier holds earlier records: its error comes first
            if fut.cancelled():
                break
            earlier = fut.exception()
            if earlier is not None:
                raise earlier from None
        if isinstance(exc, BadInputFileError):
            _check_alleles(batch)  # an earlier record of the pending batch may be at fault: name the first one
        raise
    flusher.shutdown(wait=True)
    vcf.close()
    for contig, cols in by_contig.items():
        _spill(task, contig, cols, result, parts, writer, pending)
    writer.shutdown(wait=True)
    for fut in pending:
        fut.result()
    for contig in by_contig:
        result.ploidy[contig] = ploidy_acc[contig]
        result.max_ploidy[contig] = maxp[contig]
    return result


def _at(task: Task, rec_no: int, chrom: str, pos: int) -> str:
    return f"record {rec_no} ({chrom}:{pos})" if task.region is None else f"{chrom}:{pos}"


def _bad_alt(task: Task, a: str, ref: str, rec_no: int, chrom: str, pos: int) -> None:
    where = _at(task, rec_no, chrom, pos)
    if a in ("<NON_REF>", "<*>"):
        raise BadInputFileError(task.path, f"gVCF reference-block allele {a}: genolake ingests joint-called "
                                "VCFs; joint-genotype gVCFs first (GATK GenotypeGVCFs, GLnexus)", record=where)
    if a == ref:
        raise BadInputFileError(task.path, f"ALT allele {a} equals REF", record=where)
    raise BadInputFileError(task.path, f"invalid ALT allele {a!r}", record=where)


class _Reference:
    """The --reference FASTA, found under either contig naming (`chr20` in the VCF, `20` in the FASTA, or back)."""

    def __init__(self, fasta: Any) -> None:
        self.fasta = fasta
        self.names = set(fasta.references)
        self.by_bare = {bare(n): n for n in fasta.references}

    def name_of(self, chrom: str) -> str | None:
        return chrom if chrom in self.names else self.by_bare.get(bare(chrom))

    def fetch(self, name: str, start: int, end: int) -> str:
        return str(self.fasta.fetch(name, start, end))


def _normalised(task: Task, fasta: Any, chrom: str, pos: int, ref: str, alt: str, rec_no: int) -> tuple[int, str, str]:
    if is_symbolic(alt):
        return pos, ref, alt
    if fasta is None:
        if len(ref) == 1 and len(alt) == 1:
            return pos, ref, alt
        return trim(pos, ref, alt)
    name = fasta.name_of(chrom)
    if name is None:
        return trim(pos, ref, alt)
    got = fasta.fetch(name, pos - 1, pos - 1 + len(ref)).upper()
    if got != ref:
        raise BadInputFileError(task.path, f"REF {ref} does not match the reference FASTA ({got})",
                                record=_at(task, rec_no, chrom, pos))
    return left_align(pos, ref, alt, lambda s, e: fasta.fetch(name, s, e))


def _add_variant(cur: _Columns, norm: tuple[int, str, str], pos: int, raw_ref: str, raw_alt: str, alt_index: int,
                 n_alleles: int, meta: tuple[Any, ...]) -> int:
    vpos, vref, valt = norm
    v = cur.v
    v["pos"].append(vpos)
    v["ref"].append(vref)
    v["alt"].append(valt)
    v["id"].append(meta[0])
    v["qual"].append(meta[1])
    v["filters"].append(meta[2])
    v["csq"].append(meta[3])
    v["ann"].append(meta[4])
    v["orig_pos"].append(pos)
    v["orig_ref"].append(raw_ref)
    v["orig_alt"].append(raw_alt)
    v["alt_index"].append(alt_index)
    v["n_alleles"].append(n_alleles)
    for k in ("ac", "an", "nhomalt", "nhemi", "n_called", "n_missing"):
        v[k].append(0)
    vrow = cur.n_variants
    cur.n_variants += 1
    return vrow


def _clean_format(vals: np.ndarray, result: ChunkResult, name: str) -> None:
    """Negative FORMAT values -> missing, counted; an AD with fewer values than alleles (htslib's vector-end
    marker where a value should be) counted. One vectorised pass over a batch's stored calls."""
    if not vals.size or vals.min() >= 0:
        return
    bad = _negatives(vals)
    if bad.any():
        _count(result, "negative", int(bad.sum()))
        vals[bad] = INT_MISSING
    if name == "ad_alt":
        _count(result, "ad_short", int((vals == INT_MISSING + 1).sum()))


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.stack`` of arrays of one shape, as one concatenation (no per-array reshaping: a batch holds hundreds
    of them); ValueError if their shapes differ."""
    first = arrays[0]
    out = np.concatenate(arrays)
    if out.shape != (len(arrays) * first.shape[0], *first.shape[1:]):
        raise ValueError("arrays of different shapes")
    return out.reshape(len(arrays), *first.shape)


def _fmt_values(items: list[np.ndarray | None], n: int, flat: np.ndarray, ncols: int) -> list[np.ndarray] | None:
    """The FORMAT values (columns ``0 .. ncols - 1``) of a batch's stored calls, at ``flat`` = record * ``n`` +
    sample; None if no record of the batch has the field. A record without it gives missing values. The batch's
    arrays are stacked once per field, and each column is one ``take`` of the flat values."""
    present = [x for x in items if x is not None]
    if not present:
        return None
    m = None
    if len(present) == len(items):
        try:
            m = _stack(present)  # (records, samples, values): every record has the field, with one width
        except ValueError:
            m = None
    if m is not None and m.ndim == 3 and m.dtype == np.int32 and m.shape[2] >= ncols:
        width = m.shape[2]
        values = m.reshape(-1)
        at = flat * width if width > 1 else flat
        return [values.take(at + col if col else at) for col in range(ncols)]
    out = []
    for col in range(ncols):
        full = np.full((len(items), n), INT_MISSING, dtype=np.int32)
        for k, x in enumerate(items):
            if x is not None:
                full[k] = x[:, col]
        out.append(full.reshape(-1).take(flat))
    return out


def _check_alleles(batch: _Batch, a: np.ndarray | None = None) -> None:
    """Refuse the batch's first record with a genotype allele index above 1 (its records have one ALT)."""
    if not len(batch):
        return
    if a is None:
        a = _stack(batch.gts)[:, :, :batch.width]
    if not a.size or a.max() <= 1:  # one reduction over the batch; the record is looked for only on a fault
        return
    high = a.max(axis=(1, 2))
    bad = np.flatnonzero(high > 1)
    if bad.size:
        k = int(bad[0])
        rec_no, chrom, pos = batch.recs[k]
        assert batch.task is not None
        raise BadInputFileError(batch.task.path, f"genotype allele index {int(high[k])} but only 1 ALT allele",
                                record=_at(batch.task, rec_no, chrom, pos))


def _call_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Everything _flush needs about one biallelic call, looked up by its index
    ``(a0 + 2) * 8 + (a1 + 2) * 2 + phased`` (alleles -2 absent, -1 missing, 0, 1; 32 entries): its code
    (from :func:`genolake.genotypes.diploid_codes`, the one encoder), the per-record sums (ac, an, nhomalt, nhemi,
    missing, other) and the per-sample ploidy counts (1, 2, more) as two int64 matrices, and its ploidy."""
    a0, a1, ph = (x.ravel() for x in np.meshgrid(np.arange(-2, 2), np.arange(-2, 2), np.arange(2), indexing="ij"))
    code = gtc.diploid_codes(a0, a1, ph.astype(bool))
    ploidy = (a0 != -2).astype(np.int64) + (a1 != -2)
    called = (a0 >= 0).astype(np.int64) + (a1 >= 0)
    altc = (a0 == 1).astype(np.int64) + (a1 == 1)
    counts = gtc.call_counts(ploidy, called, altc)  # the lake's one counting rule: ac, an, missing, nhomalt, nhemi
    per_record = np.concatenate([counts[:, [0, 1, 3, 4, 2]], (code == gtc.OTHER)[:, None]], axis=1).astype(np.int64)
    per_sample = np.stack([ploidy == 1, ploidy == 2, ploidy > 2], axis=1).astype(np.int64)
    per_record.setflags(write=False)
    per_sample.setflags(write=False)
    code.setflags(write=False)
    return code, per_record, per_sample, ploidy


_CODE, _PER_RECORD, _PER_SAMPLE, _PLOIDY = _call_tables()


def _zero_index() -> int:
    """The call index that stands for every call of code 0 (hom-ref, not stored) when _flush counts only the
    stored calls and adds the rest to one column: 0/0 and 0|0 count alike (the same rows of every table), so
    the counts come out the same as counting every call."""
    zero = np.flatnonzero(_CODE == 0)
    if not zero.size or not all(np.array_equal(t[zero[0]], t[z]) for t in (_PER_RECORD, _PER_SAMPLE, _PLOIDY)
                                for z in zero):
        raise AssertionError("the hom-ref call indices must count alike (genolake.genotypes.call_counts)")
    return int(zero[0])


_ZERO = _zero_index()
# the count tables as float64: numpy multiplies integer matrices without BLAS (5x slower here); every product is
# a sum of at most 32 x (records or samples) small integers, exact in float64 (_matmul_counts)
_PER_RECORD_F = _PER_RECORD.astype(np.float64)
_PER_SAMPLE_F = _PER_SAMPLE.astype(np.float64)


def _matmul_counts(hist: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``hist @ table`` of a call histogram (int64) and a 0/1 count table, as int64: computed in float64, exact
    while the sums stay below 2**53 (a batch holds at most BATCH records x samples calls)."""
    return np.rint(hist.astype(np.float64) @ table).astype(np.int64)


_CODE_ONEHOT = np.eye(gtc.OTHER + 1, dtype=np.int64)[_CODE]  # call index -> its code, as a (32, codes) matrix


def _flush(batch: _Batch, cur: _Columns, acc: np.ndarray, maxp: dict[str, int], contig: str) -> None:
    """Counts and stored calls for a batch of biallelic records (vectorised over records and samples): each
    call becomes one small index, and codes and counts are table look-ups and histograms of it."""
    g = _stack(batch.gts)  # (B, n, width + 1) int16
    w = batch.width
    b, n = g.shape[0], g.shape[1]
    a = g[:, :, :w]
    # two reductions over the contiguous batch (alleles and phase, 0 or 1) clear the common case; the strided
    # allele columns are looked at only when a value is out of [-2, 1]
    if g.size and (g.max() > 1 or g.min() < -2):
        _check_alleles(batch, a)  # no allele index above 1
        if a.min() < -2:  # not an allele, a missing one or an absent slot: read as missing
            a = np.where(a < -2, -1, a)
    idx = (a[:, :, 0] + 2).astype(np.uint8) << 3
    if w == 2:  # with one allele column the second allele is absent: (-2 + 2) << 1 = 0
        idx |= (a[:, :, 1] + 2).astype(np.uint8) << 1
    idx |= (g[:, :, w] != 0).view(np.uint8)
    k = _CODE[idx]
    # the stored calls (code > 0), row-major, as flat indexes record * n + sample: one pass over a boolean matrix
    # (numpy's nonzero is several times faster on booleans than on the uint8 codes, and 1-D than 2-D)
    flat = np.flatnonzero(k != 0)
    rows = flat // n
    samples = flat - rows * n
    # histograms of the stored calls only; the hom-ref calls are the rest of each row and sample
    sidx = idx.reshape(-1).take(flat)
    by_record = np.bincount(rows * 32 + sidx, minlength=b * 32).reshape(b, 32)
    by_sample = np.bincount(samples * 32 + sidx, minlength=n * 32).reshape(n, 32)
    stored = by_record.sum(axis=1)  # stored calls per record (no stored call has the hom-ref index _ZERO)
    by_record[:, _ZERO] += n - stored
    by_sample[:, _ZERO] += b - by_sample.sum(axis=1)
    ac, an, nhomalt, nhemi, nmiss, n_other = _matmul_counts(by_record, _PER_RECORD_F).T
    v = cur.v
    r0 = cur.n_variants
    for key, values in zip(_ROW_COLUMNS, zip(*batch.rows, strict=True), strict=True):
        v[key].extend(values)
    v["alt_index"].extend([1] * b)
    v["n_alleles"].extend([2] * b)
    v["ac"].extend(ac.tolist())
    v["an"].extend(an.tolist())
    v["nhomalt"].extend(nhomalt.tolist())
    v["nhemi"].extend(nhemi.tolist())
    v["n_missing"].extend(nmiss.tolist())
    v["n_called"].extend((n - nmiss).tolist())
    cur.n_variants += b
    acc += _matmul_counts(by_sample, _PER_SAMPLE_F)
    present = by_record.any(axis=0)
    pm = int(_PLOIDY[present].max()) if present.any() else 0
    if pm > maxp[contig]:
        maxp[contig] = pm
    res = batch.result
    fmt = {}
    for names, items in ((("gq",), batch.gq), (("dp",), batch.dp), (("ad_ref", "ad_alt"), batch.ad)):
        got = _fmt_values(items, n, flat, len(names))
        for j, name in enumerate(names):
            vals = got[j] if got is not None else np.full(rows.size, INT_MISSING, np.int32)
            if got is not None and res is not None:
                _clean_format(vals, res, name)
            fmt[name] = vals
    _add_codes(cur, k, fmt, {r0 + int(r): [""] * int(n_other[r]) for r in np.flatnonzero(n_other)},
               by_record.sum(axis=0) @ _CODE_ONEHOT, stored)
    batch.gts, batch.gq, batch.dp, batch.ad, batch.recs, batch.rows = [], [], [], [], [], []
    batch.width = -1


def _one_record(cur: _Columns, arr: np.ndarray, gq: np.ndarray | None, dp: np.ndarray | None,
                ad: np.ndarray | None, pos: int, raw_ref: str, raw_alts: list[str], alts: list[str],
                norm: list[tuple[int, str, str]], meta: tuple[Any, ...], acc: np.ndarray, maxp: dict[str, int],
                contig: str, result: ChunkResult | None = None) -> None:
    """A multi-allelic or polyploid record: split per alt allele, genotypes recoded (other alts -> ref).

    ``norm`` holds each alt's normalised (POS, REF, ALT); the caller has checked the allele indexes."""
    n = arr.shape[0]
    width = arr.shape[1] - 1
    a = arr[:, :width]
    phased = arr[:, width].astype(bool)
    ploidy = (a != -2).sum(axis=1)
    called = (a >= 0).sum(axis=1)
    acc[:, 0] += ploidy == 1
    acc[:, 1] += ploidy == 2
    acc[:, 2] += ploidy > 2
    pm = int(ploidy.max()) if n else 0
    if pm > maxp[contig]:
        maxp[contig] = pm
    diploid = ploidy == 2
    # rows in the order the writer sorts by (pos, ref, alt): a part whose rows are in order already is written
    # without reordering every column (alternate alleles are listed in any order in a VCF)
    for i in sorted(range(1, len(alts) + 1), key=lambda j: norm[j - 1]):
        alt_count = (a == i).sum(axis=1)
        vrow = _add_variant(cur, norm[i - 1], pos, raw_ref, raw_alts[i - 1], i, len(alts) + 1, meta)
        v = cur.v
        ac_i, an_i, n_missing, nhomalt_i, nhemi_i = gtc.call_counts(ploidy, called, alt_count).sum(axis=0).tolist()
        v["ac"][vrow] = ac_i
        v["an"][vrow] = an_i
        v["nhomalt"][vrow] = nhomalt_i
        v["nhemi"][vrow] = nhemi_i
        v["n_called"][vrow] = n - n_missing
        v["n_missing"][vrow] = n_missing
        rec_alleles = np.where(a == i, 1, np.where(a >= 0, 0, a))  # -1 missing, -2 absent slot
        other_texts: list[str] = []
        if width <= 2:
            a1 = rec_alleles[:, 1] if width == 2 else np.full(n, -2)
            k = gtc.diploid_codes(rec_alleles[:, 0], a1, phased)
            other_texts = [""] * int((k == gtc.OTHER).sum())  # a call without any allele
        else:
            k = np.zeros(n, dtype=np.uint8)
            for j in np.flatnonzero(~(diploid & (called == 2) & (alt_count == 0))).tolist():
                text = ("|" if phased[j] else "/").join("." if x == -1 else str(x) for x in rec_alleles[j] if x != -2)
                k[j] = gtc.code_text(text)
                if k[j] == gtc.OTHER:
                    other_texts.append(text)
        idx = np.flatnonzero(k)
        fmt = {}
        for name, m in (("gq", gq), ("dp", dp)):
            vals = m[idx, 0] if m is not None else np.full(idx.size, INT_MISSING, np.int32)
            if m is not None and result is not None:
                _clean_format(vals, result, name)
            fmt[name] = vals
        if ad is not None:
            ad_ref, ad_alt = ad[idx, 0].copy(), ad[idx, i].copy()
            if result is not None:
                _clean_format(ad_ref, result, "ad_ref")
                _clean_format(ad_alt, result, "ad_alt")
            fmt["ad_ref"], fmt["ad_alt"] = ad_ref, ad_alt
        else:
            fmt["ad_ref"] = fmt["ad_alt"] = np.full(idx.size, INT_MISSING, np.int32)
        _add_codes(cur, k[None, :], fmt, {vrow: other_texts} if other_texts else {})


def _add_codes(cur: _Columns, k: np.ndarray, fmt: dict[str, np.ndarray], other: dict[int, list[str]],
               code_counts: np.ndarray | None = None, stored: np.ndarray | None = None) -> None:
    """Append genotype rows (codes of each sample) of the next variant rows, with their stored calls' FORMAT;
    ``code_counts``: the histogram of ``k``, ``stored``: its nonzero codes per row, if the caller has them."""
    cur.code_counts += np.bincount(k.ravel(), minlength=gtc.OTHER + 1) if code_counts is None else code_counts
    cur.codes.append(k)
    cur.counts.append(np.count_nonzero(k, axis=1) if stored is None else stored)
    for name in gtc.FORMAT_FIELDS:
        cur.fmt[name].append(fmt[name])
    cur.other.update(other)
    cur.n_codes += k.size


def _dict_take(values: np.ndarray, idx: np.ndarray) -> pa.Array:
    """values[idx] as a dictionary array over the distinct values (small Parquet dictionary pages)."""
    enc = pa.array(values, pa.string()).dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    return pa.DictionaryArray.from_arrays(pa.array(codes[idx].astype(np.int32)), enc.dictionary)


def _const(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), pa.array([value], pa.string()))


def _nullable_int(arrays: list[np.ndarray], order: np.ndarray | None) -> pa.Array:
    data = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    if order is not None:
        data = data[order]
    mask = data <= INT_MISSING + 1
    return pa.array(data.astype(np.int32), type=pa.int32(), mask=mask)


def _write_contig(task: Task, contig: str, cols: _Columns, result: ChunkResult, part: int = 0) -> None:
    v = cols.v
    nv = cols.n_variants
    if nv == 0:
        return
    pos = np.asarray(v["pos"], dtype=np.int64)
    refs = np.asarray(v["ref"], dtype=object)
    alts = np.asarray(v["alt"], dtype=object)
    # variant order: position, then ref, then alt (left-alignment can move an allele before earlier records)
    vorder = np.lexsort((alts, refs, pos))
    sorted_already = bool(np.all(vorder == np.arange(nv)))
    rank = np.empty(nv, dtype=np.int64)
    rank[vorder] = np.arange(nv)
    vt = pa.table({
        "institution": pa.array([task.institution] * nv, pa.string()),
        "contig": pa.array([contig] * nv, pa.string()),
        **{k: pa.array(val) for k, val in v.items() if k not in ("qual",)},
        "qual": pa.array(v["qual"], pa.float32()),
        "n_samples": pa.array([len(task.pseudonyms)] * nv, pa.int32()),
        "file_id": pa.array([task.file_id] * nv, pa.string()),
    })
    if not sorted_already:
        vt = vt.take(pa.array(vorder))
    base = partition_dir(VARIANTS, {"institution": task.institution, "contig": contig})
    name = f"{task.file_id}-{task.chunk:05d}-{part:04d}.parquet"
    write_parquet(VARIANTS, vt, Path(task.staging) / "variants" / base / name)
    result.files.append(("variants", f"{base}/{name}"))
    result.n_variants += nv
    if not cols.codes:
        return
    codes = np.concatenate(cols.codes) if len(cols.codes) > 1 else cols.codes[0]
    counts = np.concatenate(cols.counts)
    have = {"gq": "GQ" in task.fields, "dp": "DP" in task.fields, "ad_ref": "AD" in task.fields,
            "ad_alt": "AD" in task.fields}
    # a FORMAT field the file does not have is a null list (one bit per row), not a list of nulls per call
    lists = {name: gtc.list_column(counts, np.concatenate(cols.fmt[name]), INT_MISSING + 1) if have[name]
             else pa.nulls(nv, pa.list_(pa.int32())) for name in gtc.FORMAT_FIELDS}
    gt, symbols, other = gtc.encode(codes, cols.other, counts=cols.code_counts)
    if not sorted_already:
        order = pa.array(vorder)
        gt = gt.take(order)
        other = other.take(order)
        lists = {name: arr.take(order) for name, arr in lists.items()}
    gtab = pa.table({
        "institution": _const(task.institution, nv),
        "contig": _const(contig, nv),
        "pos": vt.column("pos"),
        "ref": vt.column("ref"),
        "alt": vt.column("alt"),
        "gt": gt,
        "gt_symbols": _const(symbols, nv),
        "other_gt": other,
        **lists,
        "file_id": _const(task.file_id, nv),
    })
    base = partition_dir(GENOTYPES, {"institution": task.institution, "contig": contig})
    write_parquet(GENOTYPES, gtab, Path(task.staging) / "genotypes" / base / name)
    result.files.append(("genotypes", f"{base}/{name}"))
    result.n_calls += int(counts.sum())
