"""`genolake annotate`: join annotation sources to every variant of the lake, versioned and atomic.

Sources (each recorded in ``annotation_sources`` with its SHA-256, build, file date and time):

- genes: a GTF/GFF3 gene model or a gene list -> ``gene_symbols``, ``gene_ids``, ``biotypes``, ``region_class``
  (and the genes themselves in ``annotation_genes``, for gene-coordinate queries);
- clinvar: a ClinVar VCF (NCBI or MacArthur format) -> ``clinvar_*``;
- dbsnp: any sites VCF -> ``rsid``;
- frequencies: a sites VCF with AF/AC/AN (gnomAD, ...) under a prefix -> ``external_frequencies``;
- csq: the VEP ``CSQ`` / SnpEff ``ANN`` values already stored per ingested record -> ``consequence``, ...

Which variants: the distinct normalised keys of ``variant_files`` when the job starts. Every source is
normalised the way the ingest normalises records (split per ALT, trimmed; left-aligned with
``reference``), its contigs renamed to the lake's style, and refused if its build is not the lake's.

Work is split by contig and region (Dask; ``workers=0`` runs in this process). Indexed (bgzip + tabix)
sources are read per region through their index; plain-gzip or uncompressed ones are read once,
sequentially, by one task each. Results are assembled per key: columns of the sources given in this run
are replaced, the others kept from the current ``annotations``, and the whole table is committed at once
with the lake's multi-table commit (removes + adds under the lake lock). Genotype tables are never
touched. If anything fails -- a malformed source, an index that was promised but is missing -- nothing is
committed and the existing annotations stay as they were.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.schema import (
    _KEY,
    ANNOTATION_GENES,
    ANNOTATION_SOURCES,
    ANNOTATIONS,
    CLINVAR_COLUMNS,
    CSQ_COLUMNS,
    DBSNP_COLUMNS,
    EXTERNAL_FREQUENCIES,
    GENES_COLUMNS,
    Column,
)

log = logging.getLogger(__name__)

_S = pa.string()
_LS = pa.list_(pa.string())

GROUPS: dict[str, tuple[Column, ...]] = {
    "genes": GENES_COLUMNS, "clinvar": CLINVAR_COLUMNS, "dbsnp": DBSNP_COLUMNS, "csq": CSQ_COLUMNS,
}
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
TARGET_KEYS_PER_TASK = 250_000


# ------------------------------------------------------------------------------------------------ API
@dataclass
class SourceReport:
    kind: str
    name: str
    source_id: str
    read_mode: str
    n_records: int = 0
    n_annotated: int = 0
    prefix: str = ""
    note: str = ""


@dataclass
class AnnotateReport:
    lake: str
    n_variants: int = 0
    seconds: float = 0.0
    sources: list[SourceReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def variants_per_second(self) -> float:
        return self.n_variants / self.seconds if self.seconds else 0.0


ProgressFn = Callable[[int, int, int], None]  # (keys done, tasks done, tasks in all)


def annotate(
    lake: str | Path,
    *,
    genes: str | Path | None = None,
    clinvar: str | Path | None = None,
    dbsnp: str | Path | None = None,
    frequencies: list[tuple[str | Path, str]] | None = None,
    csq: bool = False,
    csq_headers: list[str | Path] | None = None,
    sources: list[tuple[str, str | Path]] | None = None,
    gene_coords: str = "auto",
    source_build: str | None = None,
    reference: str | Path | None = None,
    require_index: bool = False,
    freq_fields: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressFn | None = None,
) -> AnnotateReport:
    """Annotate every variant of the lake at ``lake`` with the given sources (atomic, versioned).

    Parameters
    ----------
    frequencies
        ``[(vcf, prefix), ...]``: external frequency VCFs, each under a lower-case prefix (``gnomad``).
    csq, csq_headers
        Parse the VEP CSQ / SnpEff ANN stored at ingest; ``csq_headers`` are VCFs whose header gives the
        field order (the original VCF of an ingested file applies to that file; see
        :mod:`genolake.annotation.csq`). Giving ``csq_headers`` implies ``csq``.
    sources
        The same sources as ``(type, path)`` pairs (``("clinvar", "clinvar.vcf.gz")``).
    gene_coords
        Coordinates of a gene list: ``auto``, ``1-based`` or ``bed`` (see :mod:`genolake.annotation.bedgenes`).
    source_build
        Build of sources whose header does not state it (a header that says otherwise is an error).
    reference
        FASTA to left-align source indels, as ``genolake ingest --reference`` does for lakes built with it.
    require_index
        Refuse a VCF source without a usable tabix/CSI index instead of reading it sequentially.
    workers, scheduler
        As for ingest: 0 runs in this process, N a local Dask cluster, ``scheduler`` an existing one.

    Examples
    --------
    >>> annotate("lake", clinvar="clinvar.vcf.gz", genes="gencode.gtf.gz", workers=0)  # doctest: +SKIP
    """
    from genolake.annotation.source import check_kind, inspect_vcf_source
    from genolake.errors import UserInputError
    from genolake.store import LakeStore

    t0 = time.perf_counter()
    store = LakeStore.open(lake)
    wanted: list[tuple[str, str, str]] = []  # (kind, path, prefix)
    for kind, path in sources or []:
        check_kind(kind)
        if kind == "frequencies":
            raise UserInputError("a frequency source needs a prefix: use --frequencies VCF --prefix NAME")
        wanted.append((kind, str(path), ""))
    for kind, given in (("genes", genes), ("clinvar", clinvar), ("dbsnp", dbsnp)):
        if given is not None:
            wanted.append((kind, str(given), ""))
    for path, prefix in frequencies or []:
        if not _PREFIX.match(prefix):
            raise UserInputError(f"--prefix {prefix!r}: use a lower-case name of letters, digits and _ (e.g. gnomad)")
        wanted.append(("frequencies", str(path), prefix))
    kinds = [k for k, _, _ in wanted if k != "frequencies"]
    for k in set(kinds):
        if kinds.count(k) > 1:
            raise UserInputError(f"give one {k} source per run")
    prefixes = [p for k, _, p in wanted if k == "frequencies"]
    if len(set(prefixes)) != len(prefixes):
        raise UserInputError("each --frequencies source needs its own --prefix")
    csq = csq or bool(csq_headers)
    if not wanted and not csq:
        raise UserInputError("no annotation source given: use --genes, --clinvar, --dbsnp, --frequencies or --csq")
    if reference is not None and not os.path.exists(str(reference)):
        from genolake.errors import BadInputFileError

        raise BadInputFileError(str(reference), "no such file")

    # 1. check every source before any work: type, checksum, build, index (errors leave the lake as it is)
    opts = (("freq_fields", freq_fields),) if freq_fields else ()
    vcf_sources = []
    gene_src = None
    for kind, path, prefix in wanted:
        if kind == "genes":
            gene_src = _inspect_genes(path, store, gene_coords=gene_coords, source_build=source_build)
        else:
            vcf_sources.append(inspect_vcf_source(
                kind, path, lake_build=store.build, given_build=source_build, require_index=require_index,
                prefix=prefix, options=opts if kind == "frequencies" else ()))
    report = AnnotateReport(lake=str(store.root))
    for src in vcf_sources:
        if src.index_note:
            report.warnings.append(f"{src.name}: {src.index_note}; read sequentially")
    model = _read_genes(gene_src, store.contig_style) if gene_src is not None else None
    # 2. the variants to annotate and the current annotation files (checked again at commit)
    from genolake.query.engine import Engine

    engine = Engine(store)
    keys = engine.query("SELECT DISTINCT contig, pos, ref, alt FROM variant_files ORDER BY contig, pos, ref, alt")
    keys = keys.cast(pa.schema([pa.field(c.name, c.type) for c in _KEY]))
    report.n_variants = keys.num_rows
    csq_plan = _plan_csq(engine, store, csq_headers or []) if csq else None
    engine.con.close()
    before = {t: sorted(store.active_files(t)) for t in ("annotations", "external_frequencies", "annotation_genes")}
    # 3. tasks: per region (genes, CSQ, indexed sources) and per sequential source
    tasks = _plan_tasks(store, keys, model, vcf_sources, csq_plan, reference, workers, scheduler)
    results = _execute(tasks, workers=workers, scheduler=scheduler, progress=progress)
    # 4. assemble and commit
    _assemble_and_commit(store, keys, before, results, model, gene_src, vcf_sources, csq_plan, report)
    report.seconds = time.perf_counter() - t0
    return report


# ------------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class GeneSource:
    path: str
    sha256: str
    size: int
    compression: str
    fmt: str  # gtf | gff3 | list
    build: str
    build_from: str
    file_date: str | None
    coords: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def source_id(self) -> str:
        return self.sha256[:16]


def _inspect_genes(path: str, store: Any, *, gene_coords: str, source_build: str | None) -> GeneSource:
    from itertools import islice

    from genolake.annotation.bedgenes import coords_for, sniff_genes
    from genolake.annotation.source import _exists, compression_of, file_date, open_text, resolve_build
    from genolake.ingest.reader import sha256_of

    _exists(path)
    comp = compression_of(path)
    fmt = sniff_genes(path, open_text(path, comp))
    head = [line for line in islice(open_text(path, comp), 200) if line.startswith("#")]
    build, how = resolve_build("genes", path, head, given=source_build, lake_build=store.build, vcf=False)
    coords = coords_for(path, gene_coords) if fmt == "list" else "1-based"
    digest, size = sha256_of(path)
    return GeneSource(os.path.abspath(path), digest, size, comp, fmt, build, how, file_date(head), coords)


def _read_genes(src: GeneSource, style: str) -> Any:
    from genolake.annotation.bedgenes import read_gene_list
    from genolake.annotation.gtf import read_gtf
    from genolake.annotation.source import open_text

    lines = open_text(src.path, src.compression)
    if src.fmt == "list":
        return read_gene_list(src.path, lines, style, coords=src.coords)
    return read_gtf(src.path, lines, style, gff3=src.fmt == "gff3")


@dataclass(frozen=True)
class CsqPlan:
    """Field lists per ingested file for CSQ and ANN (file_id -> fields); `*` is the default for other files."""

    csq: tuple[tuple[str, tuple[str, ...]], ...]
    ann: tuple[tuple[str, tuple[str, ...]], ...]
    headers: tuple[tuple[str, str], ...]  # (file name, sha256) of --csq-header files
    file_ids: tuple[str, ...]

    @property
    def source_id(self) -> str:
        import hashlib

        text = json.dumps({"csq": self.csq, "ann": self.ann}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plan_csq(engine: Any, store: Any, header_paths: list[str | Path]) -> CsqPlan:
    """Field lists for the stored CSQ/ANN values: from header VCFs (matched by checksum) or the defaults."""
    from genolake.annotation import csq as C
    from genolake.annotation.source import compression_of, read_vcf_header
    from genolake.errors import BadInputFileError, UserInputError
    from genolake.ingest.reader import sha256_of

    file_ids = set(store.committed_file_ids())
    per_file: dict[str, dict[str, tuple[str, ...]]] = {"CSQ": {}, "ANN": {}}
    headers = []
    for p in header_paths:
        p = str(p)
        if not os.path.exists(p):
            raise BadInputFileError(p, "no such file")
        digest, _ = sha256_of(p)
        hdr = read_vcf_header(p, compression_of(p))
        found = C.header_fields(hdr)
        if not found.get("CSQ") and not found.get("ANN"):
            raise BadInputFileError(p, "--csq-header: the header declares no INFO/CSQ or INFO/ANN with a field list")
        fid = "f" + digest[:24]
        target = fid if fid in file_ids else "*"
        for key in ("CSQ", "ANN"):
            if key in found:
                if target == "*" and "*" in per_file[key] and per_file[key]["*"] != found[key]:
                    raise UserInputError("--csq-header: two VCFs that are not in the lake give different field lists; "
                                         "give the original VCFs of the ingested files instead")
                per_file[key][target] = found[key]
        headers.append((os.path.basename(p), digest))
    per_file["ANN"].setdefault("*", C.ANN_FIELDS)
    if "*" not in per_file["CSQ"]:
        # the VEP default: check it fits the stored values of files without their own header
        sample = engine.query("SELECT file_id, csq FROM variant_files WHERE csq IS NOT NULL LIMIT 2000")
        rows = zip(sample["file_id"].to_pylist(), sample["csq"].to_pylist(), strict=True)
        samples: dict[str, list[str]] = {}
        for fid, value in rows:
            if fid not in per_file["CSQ"]:
                samples.setdefault(fid, []).append(value)
        layout = C.Layout.of("CSQ", C.VEP_DEFAULT_FIELDS)
        for fid, values in samples.items():
            if C.check_layout(values, layout) < 0.5:
                raise UserInputError(
                    f"the CSQ values of ingested file {fid} do not follow VEP's default field order; pass the "
                    "original VCF with --csq-header so its INFO/CSQ Format is used")
        per_file["CSQ"]["*"] = C.VEP_DEFAULT_FIELDS
    return CsqPlan(csq=tuple(sorted(per_file["CSQ"].items())), ann=tuple(sorted(per_file["ANN"].items())),
                   headers=tuple(headers), file_ids=tuple(sorted(file_ids)))


# ------------------------------------------------------------------------------------------------ tasks
@dataclass
class RegionTask:
    contig: str
    start: int
    end: int
    keys: pa.Table  # contig, pos, ref, alt of the region
    style: str
    genes: Any = None  # ContigGenes | None
    structured: bool = False
    run_genes: bool = False
    vcf_sources: tuple[Any, ...] = ()  # indexed SourceFile
    csq: CsqPlan | None = None
    variant_files: tuple[str, ...] = ()
    reference: str | None = None


@dataclass
class SequentialTask:
    source: Any  # SourceFile
    keys: pa.Table  # every lake key (the whole source is read once and joined to them)
    style: str
    reference: str | None = None


@dataclass
class TaskResult:
    tables: dict[str, pa.Table] = field(default_factory=dict)  # group key -> partial table
    n_records: dict[str, int] = field(default_factory=dict)  # group key -> records read
    n_keys: int = 0
    error: tuple[str, str, str | None, str] | None = None  # (class, path, record, message) of a GenolakeError


def _group_key(src: Any) -> str:
    return f"frequencies:{src.prefix}" if src.kind == "frequencies" else src.kind


def _plan_tasks(store: Any, keys: pa.Table, model: Any, vcf_sources: list[Any], csq_plan: CsqPlan | None,
                reference: str | Path | None, workers: int | None, scheduler: str | None) -> list[Any]:
    import numpy as np

    n_workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    if scheduler:
        n_workers = max(n_workers, 4)
    per_task = max(20_000, min(TARGET_KEYS_PER_TASK, -(-keys.num_rows // (n_workers * 4)) if keys.num_rows else 1))
    indexed = tuple(s for s in vcf_sources if s.index is not None)
    sequential = [s for s in vcf_sources if s.index is None]
    ref = str(reference) if reference else None
    vfiles = store.data_files("variants") if csq_plan else []
    tasks: list[Any] = []
    # keys are sorted by contig: runs of one contig from the dictionary indices (no per-row Python objects)
    enc = keys.column("contig").combine_chunks().dictionary_encode()
    names = enc.dictionary.to_pylist()
    codes = enc.indices.to_numpy()
    pos = keys.column("pos").to_numpy()
    bounds = np.flatnonzero(codes[1:] != codes[:-1]) + 1 if keys.num_rows else np.array([], dtype=np.int64)
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), keys.num_rows]
    need_regions = model is not None or indexed or csq_plan is not None
    for s0, e0 in zip(starts, ends, strict=True) if keys.num_rows and need_regions else []:
        contig = str(names[codes[s0]])
        files = tuple(f.path for f in vfiles if f.contig == contig)
        a = s0
        while a < e0:
            b = min(a + per_task, e0)
            while b < e0 and pos[b] == pos[b - 1]:  # never split one position over two tasks
                b += 1
            lo = 1 if a == s0 else int(pos[a])
            hi = 2**31 - 1 if b == e0 else int(pos[b - 1])
            tasks.append(RegionTask(
                contig=contig, start=lo, end=hi, keys=_copy(keys, a, b), style=store.contig_style,
                genes=model.contigs.get(contig) if model is not None else None,
                structured=bool(model.structured) if model is not None else False, run_genes=model is not None,
                vcf_sources=indexed, csq=csq_plan, variant_files=files, reference=ref))
            a = b
    if sequential and keys.num_rows:
        for src in sequential:
            tasks.append(SequentialTask(source=src, keys=keys, style=store.contig_style, reference=ref))
    return tasks


def _copy(keys: pa.Table, a: int, b: int) -> pa.Table:
    """Rows a..b-1 in buffers of their own (a slice would pickle the whole table's buffers for Dask)."""
    import numpy as np

    return keys.take(pa.array(np.arange(a, b, dtype=np.int64)))


def run_task(task: Any) -> TaskResult:
    """Run one task (on a Dask worker or in-process); user-caused errors are returned, not raised."""
    from genolake.errors import BadInputFileError, GenolakeError

    try:
        if isinstance(task, SequentialTask):
            return _run_sequential(task)
        return _run_region(task)
    except BadInputFileError as exc:
        prefix = f"{exc.path}: " + (f"{exc.record}: " if exc.record else "")
        msg = str(exc)
        return TaskResult(error=("BadInputFileError", exc.path, exc.record,
                                 msg[len(prefix):] if msg.startswith(prefix) else msg))
    except GenolakeError as exc:
        return TaskResult(error=(type(exc).__name__, "", None, str(exc)))


def _fetcher(reference: str | None) -> Callable[[str], Callable[[int, int], str] | None] | None:
    if reference is None:
        return None
    import pysam

    from genolake.annotation.source import lake_contig

    fasta = pysam.FastaFile(reference)
    cache: dict[str, Callable[[int, int], str] | None] = {}

    def for_contig(contig: str) -> Callable[[int, int], str] | None:
        if contig not in cache:
            names = [r for r in fasta.references if lake_contig(r, "chr") == lake_contig(contig, "chr")]
            cache[contig] = _fasta_fetch(fasta, names[0]) if names else None
        return cache[contig]

    return for_contig


def _fasta_fetch(fasta: Any, name: str) -> Callable[[int, int], str]:
    def fetch(start0: int, end0: int) -> str:
        return str(fasta.fetch(name, start0, end0)).upper()

    return fetch


def _extractor(src: Any) -> Any:
    from genolake.annotation.clinvar import ClinvarExtractor
    from genolake.annotation.sites import FrequencyExtractor, RsidExtractor, frequency_keys

    if src.kind == "clinvar":
        return ClinvarExtractor()
    if src.kind == "dbsnp":
        return RsidExtractor()
    spec = src.option("freq_fields")
    return FrequencyExtractor(frequency_keys(spec) if spec else None)


def _run_sequential(task: SequentialTask) -> TaskResult:
    from genolake.annotation.sites import read_vcf_source

    src = task.source
    table, n = read_vcf_source(src, _extractor(src), style=task.style, keys=task.keys,
                               fetch=_fetcher(task.reference))
    return TaskResult(tables={_group_key(src): table}, n_records={_group_key(src): n})


def _run_region(task: RegionTask) -> TaskResult:
    import numpy as np

    from genolake.annotation.sites import read_vcf_source
    from genolake.annotation.source import Region

    out = TaskResult(n_keys=task.keys.num_rows)
    keys = task.keys
    pos = keys.column("pos").to_numpy().astype(np.int64)
    if task.run_genes:
        import pyarrow.compute as pc

        from genolake.annotation.intervals import annotate_genes

        ref_len = np.asarray(pc.utf8_length(keys.column("ref")).to_numpy(), dtype=np.int64)
        symbolic = np.asarray(pc.starts_with(keys.column("alt"), "<").to_numpy(), dtype=bool)
        ref_len = np.where(symbolic, 1, ref_len)  # symbolic alleles: POS only
        sym, ids, bio, klass = annotate_genes(task.genes, pos, ref_len, structured=task.structured)
        out.tables["genes"] = keys.append_column("gene_symbols", sym).append_column("gene_ids", ids) \
            .append_column("biotypes", bio).append_column("region_class", klass)
    if task.vcf_sources:
        region = Region(task.contig, task.start, task.end)
        fetch = _fetcher(task.reference)
        for src in task.vcf_sources:
            table, n = read_vcf_source(src, _extractor(src), style=task.style, region=region, keys=keys, fetch=fetch)
            out.tables[_group_key(src)] = table
            out.n_records[_group_key(src)] = n
    if task.csq is not None:
        out.tables["csq"] = _region_csq(task)
    return out


CSQ_SCHEMA = pa.schema([
    pa.field("contig", _S), pa.field("pos", pa.int32()), pa.field("ref", _S), pa.field("alt", _S),
    pa.field("consequence", _S), pa.field("consequence_terms", _LS), pa.field("impact", _S),
    pa.field("csq_gene", _S), pa.field("csq_gene_id", _S), pa.field("csq_transcript", _S),
    pa.field("csq_biotype", _S), pa.field("hgvsc", _S), pa.field("hgvsp", _S), pa.field("csq_field", _S),
])
_MARGIN = 10_000  # bp: the other ALTs of a record normalise near its POS


def _region_csq(task: RegionTask) -> pa.Table:
    """Most severe consequence per key of the region, from the CSQ/ANN of every committed file that has it."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from genolake.annotation import csq as C

    plan = task.csq
    assert plan is not None
    if not task.variant_files:
        return CSQ_SCHEMA.empty_table()
    cols = ["pos", "ref", "alt", "file_id", "orig_pos", "orig_ref", "orig_alt", "alt_index", "csq", "ann"]
    lo, hi = max(1, task.start - _MARGIN), min(2**31 - 1, task.end + _MARGIN)
    filt = (pc.field("orig_pos") >= lo) & (pc.field("orig_pos") <= hi) & \
        (pc.field("csq").is_valid() | pc.field("ann").is_valid())
    parts = [pq.read_table(f, columns=cols, filters=filt) for f in task.variant_files]
    t = pa.concat_tables(parts) if parts else None
    if t is None or not t.num_rows:
        return CSQ_SCHEMA.empty_table()
    t = t.filter(pc.is_in(t["file_id"], pa.array(plan.file_ids, _S)))
    layouts = {key: {fid: C.Layout.of(key, tuple(fields)) for fid, fields in getattr(plan, key.lower())}
               for key in ("CSQ", "ANN")}
    rows = t.to_pylist()
    # all ALTs of each record: rows of one record share file, POS, REF and the raw CSQ/ANN text (two records
    # at one position are told apart by their annotation text, which names their alleles)
    def rec_key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["file_id"], r["orig_pos"], r["orig_ref"], r["csq"], r["ann"])

    records: dict[tuple[Any, ...], dict[int, str]] = {}
    for r in rows:
        records.setdefault(rec_key(r), {})[r["alt_index"]] = r["orig_alt"]
    best: dict[tuple[int, str, str], tuple[tuple[int, int], dict[str, Any], set[str]]] = {}
    cache: dict[tuple[str, str, int, str, str], dict[int, list[list[str]]]] = {}
    for r in rows:
        if not (task.start <= r["pos"] <= task.end):
            continue
        alts_map = records[rec_key(r)]
        n_alt = max(alts_map)
        alts = [alts_map.get(i, "") for i in range(1, n_alt + 1)]
        summary = None
        field_used = ""
        for key in ("CSQ", "ANN"):
            value = r[key.lower()]
            if not value:
                continue
            lay = layouts[key].get(r["file_id"]) or layouts[key]["*"]
            ck = (key, r["file_id"], r["orig_pos"], r["orig_ref"], value)
            by_allele = cache.get(ck)
            if by_allele is None:
                by_allele = cache[ck] = C.entries_by_allele(value, lay, r["orig_ref"], alts)
            summary = C.summarise(by_allele.get(r["alt_index"], []), lay)
            if summary is not None:
                field_used = key
                break
        if summary is None:
            continue
        k = (r["pos"], r["ref"], r["alt"])
        rank = (C.term_rank(summary["consequence"] or ""), 0 if field_used == "CSQ" else 1)
        cur = best.get(k)
        terms = set(summary["consequence_terms"])
        if cur is None or rank < cur[0]:
            summary["csq_field"] = field_used
            best[k] = (rank, summary, terms | (cur[2] if cur else set()))
        else:
            cur[2].update(terms)
    if not best:
        return CSQ_SCHEMA.empty_table()
    data: dict[str, list[Any]] = {f.name: [] for f in CSQ_SCHEMA}
    for (p, ref, alt), (_rank, s, terms) in sorted(best.items()):
        data["contig"].append(task.contig)
        data["pos"].append(p)
        data["ref"].append(ref)
        data["alt"].append(alt)
        for name in C.SUMMARY_FIELDS:
            data[name].append(s[name])
        data["consequence_terms"][-1] = sorted(terms, key=lambda x: (C.term_rank(x), x))
        data["csq_field"].append(s["csq_field"])
    return pa.table(data, schema=CSQ_SCHEMA)


def _execute(tasks: list[Any], *, workers: int | None, scheduler: str | None,
             progress: ProgressFn | None) -> list[TaskResult]:
    results: list[TaskResult] = []
    done_keys = 0
    if progress:
        progress(0, 0, len(tasks))  # the bar knows its length before the first task ends
    if scheduler is None and workers == 0:
        for k, task in enumerate(tasks, start=1):
            res = run_task(task)
            _raise_error(res)
            results.append(res)
            done_keys += res.n_keys
            if progress:
                progress(done_keys, k, len(tasks))
        return results
    import warnings

    from genolake.compute.cluster import dask_client

    ordered: list[TaskResult | None] = [None] * len(tasks)
    with dask_client(workers=workers, scheduler=scheduler) as client:
        from distributed import as_completed

        with warnings.catch_warnings():  # the tasks carry their keys: a "large graph" is expected
            warnings.filterwarnings("ignore", message="Sending large graph")
            futures = client.map(run_task, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for k, fut in enumerate(as_completed(futures), start=1):
                res = fut.result()
                _raise_error(res)
                ordered[index[fut.key]] = res
                done_keys += res.n_keys
                if progress:
                    progress(done_keys, k, len(tasks))
        except BaseException:
            client.cancel(futures)
            raise
    return [r for r in ordered if r is not None]  # in task order: region results follow the key order


def _raise_error(res: TaskResult) -> None:
    if res.error is None:
        return
    from genolake import errors

    cls, path, record, msg = res.error
    if cls == "BadInputFileError":
        raise errors.BadInputFileError(path, msg, record=record)
    raise getattr(errors, cls, errors.GenolakeError)(msg)


# ------------------------------------------------------------------------------------------------ assembly
def _empty_group(kind: str) -> pa.Table:
    cols = {"genes": GENES_COLUMNS, "clinvar": CLINVAR_COLUMNS, "dbsnp": DBSNP_COLUMNS}[kind]
    fields = [pa.field(c.name, c.type) for c in _KEY] + [pa.field(c.name, c.type) for c in cols
                                                           if not c.name.endswith("_source")]
    return pa.schema(fields).empty_table()


def _concat(parts: list[pa.Table]) -> pa.Table:
    parts = [p for p in parts if p is not None]
    return pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})


def _assemble_and_commit(store: Any, keys: pa.Table, before: dict[str, list[str]], results: list[TaskResult],
                         model: Any, gene_src: GeneSource | None, vcf_sources: list[Any], csq_plan: CsqPlan | None,
                         report: AnnotateReport) -> None:
    import pyarrow.compute as pc

    from genolake import __version__
    from genolake.errors import LakeStateError
    from genolake.store import Commit, partition_dir, partition_values, write_parquet

    partials: dict[str, list[pa.Table]] = {}
    n_records: dict[str, int] = {}
    for res in results:
        for k, t in res.tables.items():
            partials.setdefault(k, []).append(t)
        for k, n in res.n_records.items():
            n_records[k] = n_records.get(k, 0) + n
    run_ids: dict[str, str] = {}
    if gene_src is not None:
        run_ids["genes"] = gene_src.source_id
    for src in vcf_sources:
        if src.kind != "frequencies":
            run_ids[src.kind] = src.source_id
    if csq_plan is not None:
        run_ids["csq"] = csq_plan.source_id
    n = keys.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = {c.name: keys[c.name] for c in _KEY}
    # groups of this run: the partial results aligned to the keys; other groups: kept from the current table
    keep_groups = [k for k in GROUPS if k not in run_ids and _has_values(before["annotations"], f"{k}_source")]
    old = _align(keys, _read_files(before["annotations"], [*KEY_NAMES, *(c.name for k in keep_groups
                                                                          for c in GROUPS[k])]))
    for kind, cols in GROUPS.items():
        if kind in run_ids:
            part = _concat(partials.get(kind, []))
            aligned = _align(keys, part) if part.num_columns else None
            for c in cols:
                if c.name.endswith("_source"):
                    columns[c.name] = pa.array([run_ids[kind]] * n, pa.string()) if n else pa.array([], pa.string())
                elif aligned is None or c.name not in aligned.column_names:
                    columns[c.name] = pa.nulls(n, c.type)
                else:
                    columns[c.name] = aligned[c.name]
            if kind == "genes":
                for name in ("gene_symbols", "gene_ids", "biotypes"):
                    columns[name] = pc.fill_null(columns[name], pa.scalar([], _LS))
                columns["region_class"] = pc.fill_null(columns["region_class"], "intergenic")
        else:
            for c in cols:
                columns[c.name] = old[c.name] if c.name in old.column_names else pa.nulls(n, c.type)
    # external frequencies: new rows for the prefixes of this run, old rows of the other prefixes
    freq_new: dict[str, pa.Table] = {}
    for src in vcf_sources:
        if src.kind == "frequencies":
            t = _concat(partials.get(_group_key(src), []))
            if t.num_rows:
                t = _semijoin(keys, t)
            freq_new[src.prefix] = pa.table({
                **{k: t[k] for k in KEY_NAMES}, "source": pa.array([src.prefix] * t.num_rows, pa.string()),
                **{k: t[k] for k in ("af", "ac", "an", "nhomalt", "popmax", "popmax_af")},
                "source_id": pa.array([src.source_id] * t.num_rows, pa.string()),
            }).cast(EXTERNAL_FREQUENCIES.arrow_schema).sort_by([(k, "ascending") for k in KEY_NAMES]) \
                if t.num_rows else EXTERNAL_FREQUENCIES.arrow_schema.empty_table()
    kept_freq = _read_files(before["external_frequencies"], [*KEY_NAMES, "source", "af"])
    if kept_freq.num_rows and freq_new:
        kept_freq = kept_freq.filter(pc.invert(pc.is_in(kept_freq["source"], pa.array(list(freq_new), _S))))
    freq_all = _concat([t.select([*KEY_NAMES, "af"]) for t in (kept_freq, *freq_new.values()) if t.num_rows])
    if freq_all.num_rows:
        best = freq_all.group_by(KEY_NAMES).aggregate([("af", "max")]).rename_columns([*KEY_NAMES, "max_external_af"])
        columns["max_external_af"] = _align(keys, best)["max_external_af"]
    else:
        columns["max_external_af"] = pa.nulls(n, pa.float64())
    result = pa.table({c.name: columns[c.name] for c in ANNOTATIONS.columns}).cast(ANNOTATIONS.arrow_schema)
    # counts for the report and annotation_sources
    counts: dict[str, Any] = {
        "genes": lambda: pc.greater(pc.list_value_length(result["gene_symbols"]), 0),
        "clinvar": lambda: pc.or_(pc.is_valid(result["clinvar_significance"]),
                                  pc.is_valid(result["clinvar_variation_id"])),
        "dbsnp": lambda: pc.is_valid(result["rsid"]),
        "csq": lambda: pc.is_valid(result["consequence"]),
    }
    n_annot = {k: int(pc.sum(pc.cast(pc.fill_null(counts[k](), False), pa.int64())).as_py() or 0) for k in run_ids}

    with store.staging() as (txn, staged):
        commit = Commit(txn=txn)
        now = datetime.now(UTC)
        # annotations: one file per contig, replacing all current files
        contig_col = result.column("contig")
        for contig in pc.unique(contig_col).to_pylist():
            part = result.filter(pc.equal(contig_col, contig))
            rel = f"{partition_dir(ANNOTATIONS, {'contig': contig})}/annot-{txn}.parquet"
            write_parquet(ANNOTATIONS, part, staged / "annotations" / rel)
            commit.add("annotations", rel)
        for path in before["annotations"]:
            commit.remove("annotations", os.path.relpath(path, store.table_path("annotations")))
        for prefix, t in freq_new.items():
            for contig in pc.unique(t.column("contig")).to_pylist() if t.num_rows else []:
                rel = f"{partition_dir(EXTERNAL_FREQUENCIES, {'source': prefix, 'contig': contig})}/annot-{txn}.parquet"
                write_parquet(EXTERNAL_FREQUENCIES, t.filter(pc.equal(t["contig"], contig)),
                              staged / "external_frequencies" / rel)
                commit.add("external_frequencies", rel)
            for path in before["external_frequencies"]:
                rel = os.path.relpath(path, store.table_path("external_frequencies"))
                if partition_values(rel).get("source") == prefix:
                    commit.remove("external_frequencies", rel)
        if model is not None and gene_src is not None:
            rel = f"annot-{txn}.parquet"
            write_parquet(ANNOTATION_GENES, _genes_table(model, gene_src.source_id), staged / "annotation_genes" / rel)
            commit.add("annotation_genes", rel)
            for path in before["annotation_genes"]:
                commit.remove("annotation_genes", os.path.relpath(path, store.table_path("annotation_genes")))
        rows = []
        base = {"txn": txn, "annotated_at": now, "genolake_version": __version__}
        if gene_src is not None:
            rows.append({**base, "source_id": gene_src.source_id, "kind": "genes", "prefix": None,
                         "file_name": gene_src.name, "sha256": gene_src.sha256, "size_bytes": gene_src.size,
                         "build": gene_src.build, "build_from": gene_src.build_from, "file_date": gene_src.file_date,
                         "format": gene_src.fmt, "read_mode": "sequential", "n_records": model.n_genes,
                         "n_annotated": n_annot["genes"],
                         "options": json.dumps({"coordinates": model.coordinates, "structured": model.structured})})
            report.sources.append(SourceReport("genes", gene_src.name, gene_src.source_id, "sequential",
                                               model.n_genes, n_annot["genes"], note=f"{gene_src.fmt}, {model.coordinates}"))
        for src in vcf_sources:
            gk = _group_key(src)
            n_ann = n_annot.get(src.kind, 0) if src.kind != "frequencies" else freq_new[src.prefix].num_rows
            mode = "index" if src.index else "sequential"
            rows.append({**base, "source_id": src.source_id, "kind": src.kind, "prefix": src.prefix or None,
                         "file_name": src.name, "sha256": src.sha256, "size_bytes": src.size, "build": src.build,
                         "build_from": src.build_from, "file_date": src.file_date, "format": "vcf",
                         "read_mode": mode, "n_records": n_records.get(gk, 0), "n_annotated": n_ann,
                         "options": json.dumps(dict(src.options))})
            report.sources.append(SourceReport(src.kind, src.name, src.source_id, mode, n_records.get(gk, 0), n_ann,
                                               prefix=src.prefix, note=src.index_note or ""))
        if csq_plan is not None:
            rows.append({**base, "source_id": csq_plan.source_id, "kind": "csq", "prefix": None,
                         "file_name": "(INFO/CSQ and INFO/ANN stored at ingest)", "sha256": None, "size_bytes": None,
                         "build": store.build, "build_from": "header", "file_date": None, "format": "lake",
                         "read_mode": "index", "n_records": report.n_variants, "n_annotated": n_annot["csq"],
                         "options": json.dumps({"csq_fields": dict(csq_plan.csq), "ann_fields": dict(csq_plan.ann),
                                                "csq_headers": [list(h) for h in csq_plan.headers]})})
            report.sources.append(SourceReport("csq", "CSQ/ANN in the lake", csq_plan.source_id, "lake",
                                               report.n_variants, n_annot["csq"]))
        rel = f"annot-{txn}.parquet"
        write_parquet(ANNOTATION_SOURCES, pa.Table.from_pylist(rows, schema=ANNOTATION_SOURCES.arrow_schema),
                      staged / "annotation_sources" / rel)
        commit.add("annotation_sources", rel)
        with store.lock():
            for t, files in before.items():
                if sorted(store.active_files(t)) != files:
                    raise LakeStateError("another `genolake annotate` committed while this one ran; nothing was "
                                         "changed: run it again")
            store.commit(commit, staged, order=("annotation_genes", "external_frequencies", "annotation_sources",
                                                "annotations"))


KEY_NAMES = [c.name for c in _KEY]


def _read_files(files: list[str], columns: list[str]) -> pa.Table:
    """Columns of a table's current files (no dataset discovery: the paths come from the Delta log)."""
    import pyarrow.parquet as pq

    parts = [pq.ParquetFile(f).read(columns=columns) for f in files]
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="permissive")


def _has_values(files: list[str], column: str) -> bool:
    """True if any file has a non-null value in ``column`` (from the Parquet statistics, no data read)."""
    import pyarrow.parquet as pq

    for f in files:
        meta = pq.ParquetFile(f).metadata
        names = meta.schema.names
        if column not in names:
            continue
        i = names.index(column)
        for rg in range(meta.num_row_groups):
            col = meta.row_group(rg).column(i)
            stats = col.statistics
            if stats is None or not stats.has_null_count or stats.null_count < col.num_values:
                return True
    return False


def _align(keys: pa.Table, part: pa.Table) -> pa.Table:
    """``part``'s non-key columns in the order of ``keys`` (null rows where ``part`` lacks a key; unique keys).

    Positional when ``part`` has the same keys in the same order (gene results, last run's annotations);
    otherwise the row numbers are matched by a DuckDB join of the key columns and the columns taken by index.
    """
    import numpy as np

    from genolake.duck import connect

    n = keys.num_rows
    if not part.num_columns or not part.num_rows:
        return pa.table({c: pa.nulls(n, part.schema.field(c).type) for c in part.column_names if c not in KEY_NAMES})
    if part.num_rows == n and all(keys[c].equals(part[c]) for c in ("pos", "ref", "alt", "contig")):
        return part.drop_columns(KEY_NAMES)
    left = keys.select(KEY_NAMES).append_column("_rn", pa.array(np.arange(n, dtype=np.int64)))
    right = part.select(KEY_NAMES).append_column("_pi", pa.array(np.arange(part.num_rows, dtype=np.int64)))
    con = connect()
    try:
        con.register("l", left)
        con.register("r", right)
        pairs = con.sql("SELECT _rn, _pi FROM l JOIN r USING (contig, pos, ref, alt)").fetchnumpy()
    finally:
        con.close()
    where = np.full(n, -1, dtype=np.int64)
    where[np.asarray(pairs["_rn"], dtype=np.int64)] = np.asarray(pairs["_pi"], dtype=np.int64)
    return part.drop_columns(KEY_NAMES).take(pa.array(where, mask=where < 0))


def _semijoin(keys: pa.Table, part: pa.Table) -> pa.Table:
    """Rows of ``part`` whose key is in ``keys``."""
    right = keys.select(KEY_NAMES)
    return part.cast(part.schema).join(right, keys=KEY_NAMES, join_type="left semi")


def _genes_table(model: Any, source_id: str) -> pa.Table:
    data: dict[str, list[Any]] = {c.name: [] for c in ANNOTATION_GENES.columns}
    for contig in sorted(model.contigs):
        cg = model.contigs[contig]
        order = sorted(range(len(cg.start)), key=lambda i: (cg.start[i], cg.end[i]))
        for i in order:
            data["contig"].append(contig)
            data["start"].append(cg.start[i])
            data["end"].append(cg.end[i])
            data["gene_symbol"].append(cg.symbol[i])
            data["gene_id"].append(cg.gene_id[i])
            data["biotype"].append(cg.biotype[i])
            data["strand"].append(cg.strand[i])
            data["source_id"].append(source_id)
    return pa.table(data, schema=ANNOTATION_GENES.arrow_schema)
