"""One unit of ingest work: read the records of a file (or of one region of an indexed file) with
cyvcf2, split and normalise them, and write the chunk's `calls` and `variants` Parquet files to staging.

This is what a Dask worker runs. It receives sample pseudonyms, never the pseudonymisation key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from genolake.contigs import to_style
from genolake.errors import BadInputFileError
from genolake.ingest.normalise import is_symbolic, left_align, trim
from genolake.ingest.reader import fatal_messages, htslib_messages, open_vcf
from genolake.schema import CALLS, VARIANTS
from genolake.store import partition_dir, write_parquet

INT_MISSING = np.iinfo(np.int32).min  # htslib bcf_int32_missing; vector_end is min + 1
_ALT_OK = re.compile(r"^([ACGTN]+|\*|<[^<>]+>|[ACGTN]*[\[\]].*|\.[ACGTN]+|[ACGTN]+\.)$")
_REF_OK = re.compile(r"^[ACGTN]+$")

# genotype strings for (recoded allele 0, recoded allele 1, phased): allele codes -1 missing, 0, 1
_GT_DIPLOID = np.array(
    [f"{a}{sep}{b}" for sep in ("/", "|") for a in (".", "0", "1") for b in (".", "0", "1")]
    + [".", "0", "1"],
    dtype=object,
)


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


class _Columns:
    """Column buffers of one contig within a chunk."""

    def __init__(self) -> None:
        self.v: dict[str, list[Any]] = {k: [] for k in (
            "pos", "ref", "alt", "id", "qual", "filters", "ac", "an", "nhomalt", "nhemi", "n_called",
            "n_missing", "orig_pos", "orig_ref", "orig_alt", "alt_index", "n_alleles", "csq", "ann")}
        self.c: dict[str, list[np.ndarray]] = {k: [] for k in (
            "vidx", "sample", "gt", "ploidy", "called", "alt_count", "phased", "gq", "dp", "ad_ref", "ad_alt")}
        self.n_variants = 0


def _int_field(rec: Any, name: str, n: int) -> np.ndarray | None:
    try:
        arr = rec.format(name)
    except KeyError:
        return None
    if arr is None:
        return None
    if arr.dtype.kind == "f":
        out = np.where(np.isnan(arr), INT_MISSING, np.nan_to_num(arr)).astype(np.int64)
        return out.astype(np.int32)
    return np.asarray(arr, dtype=np.int32)


def run_task(task: Task) -> ChunkResult:
    """Convert one task; raises BadInputFileError naming the file and the record at fault."""
    with htslib_messages() as messages:
        try:
            result = _run(task)
        except BadInputFileError:
            raise
        except Exception as exc:  # cyvcf2 raises bare Exception on a record htslib cannot parse
            result = None
            error: Exception | None = exc
        else:
            error = None
    if result is None:
        detail = fatal_messages(messages) or messages or [str(error)]
        raise BadInputFileError(task.path, f"cannot parse record: {_clean(detail[0])}", record=_where(task, error))
    fatal = fatal_messages(messages)
    if fatal:
        raise BadInputFileError(task.path, _clean(fatal[0]), record=_region_text(task))
    result.warnings = [_clean(m) for m in messages][:20]
    return result


def _clean(msg: str) -> str:
    return re.sub(r"^\[[EW]::[^\]]*\]\s*", "", msg).strip()


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


def _run(task: Task) -> ChunkResult:
    vcf = open_vcf(task.path)
    n = len(vcf.samples)
    if n != len(task.pseudonyms):
        raise BadInputFileError(task.path, "sample count changed while reading (file modified during ingest?)")
    fasta = None
    if task.reference:
        import pysam

        fasta = pysam.FastaFile(task.reference)
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
    rec_no = 0
    ploidy_acc: dict[str, np.ndarray] = {}
    maxp: dict[str, int] = {}
    for rec in records:
        rec_no += 1
        pos = rec.POS
        chrom = rec.CHROM
        if chrom != cur_src:
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
            result.contig_order.append(cur_lake)
            ploidy_acc[cur_lake] = np.zeros((n, 3), dtype=np.int64)
            maxp[cur_lake] = 0
            last_pos = 0
        elif pos < last_pos:
            raise BadInputFileError(task.path, f"position {pos} comes after {last_pos} (file not sorted; sort it "
                                    "with `bcftools sort`)", record=f"record {rec_no} ({chrom}:{pos})")
        last_pos = pos
        assert cur is not None
        where = f"record {rec_no} ({chrom}:{pos})" if task.region is None else f"{chrom}:{pos}"
        if pos < 1:
            raise BadInputFileError(task.path, f"invalid POS {pos}", record=where)
        ref = rec.REF.upper()
        if not _REF_OK.match(ref):
            raise BadInputFileError(task.path, f"invalid REF {rec.REF!r} (only A, C, G, T, N allowed)", record=where)
        alts = [a.upper() for a in rec.ALT]
        result.n_records += 1
        if not alts:
            result.n_skipped += 1
            continue
        for a in alts:
            if a in ("<NON_REF>", "<*>"):
                raise BadInputFileError(task.path, f"gVCF reference-block allele {a}: genolake ingests joint-called "
                                        "VCFs; joint-genotype gVCFs first (GATK GenotypeGVCFs, GLnexus)", record=where)
            if not _ALT_OK.match(a):
                raise BadInputFileError(task.path, f"invalid ALT allele {a!r}", record=where)
        if len(set(alts)) != len(alts) or ref in alts:
            raise BadInputFileError(task.path, "ALT repeats an allele or equals REF", record=where)
        gt = rec.genotype
        if gt is None:
            raise BadInputFileError(task.path, "record has no GT values", record=where)
        arr = gt.array()
        width = arr.shape[1] - 1
        a = arr[:, :width]
        phased = arr[:, width].astype(bool)
        present = a != -2
        ploidy = present.sum(axis=1)
        called = (a >= 0).sum(axis=1)
        missing_any = (called < ploidy) | (ploidy == 0)
        n_missing = int(missing_any.sum())
        acc = ploidy_acc[cur_lake]
        acc[:, 0] += ploidy == 1
        acc[:, 1] += ploidy == 2
        acc[:, 2] += ploidy > 2
        pmax = int(ploidy.max()) if n else 0
        if pmax > maxp[cur_lake]:
            maxp[cur_lake] = pmax
        if a.size and int(a.max()) > len(alts):
            raise BadInputFileError(task.path, f"genotype allele index {int(a.max())} but only {len(alts)} ALT alleles",
                                    record=where)
        diploid = ploidy == 2
        haploid = ploidy == 1
        an = int(called.sum())
        gq = _int_field(rec, "GQ", n) if has_gq else None
        dp = _int_field(rec, "DP", n) if has_dp else None
        ad = _int_field(rec, "AD", n) if has_ad else None
        if ad is not None and ad.shape[1] < len(alts) + 1:
            ad = None
        rid = rec.ID
        qual = rec.QUAL
        filts = rec.FILTERS
        filters = ";".join(filts) if filts else None
        csq = rec.INFO.get("CSQ") if has_csq else None
        ann = rec.INFO.get("ANN") if has_ann else None
        for i, alt in enumerate(alts, start=1):
            isalt = a == i
            alt_count = isalt.sum(axis=1)
            homref = diploid & (called == 2) & (alt_count == 0)
            idx = np.flatnonzero(~homref)
            vpos, vref, valt = pos, ref, alt
            if not is_symbolic(alt):
                if fasta is not None:
                    got = fasta.fetch(chrom, pos - 1, pos - 1 + len(ref)).upper() if chrom in fasta.references else ""
                    if got and got != ref:
                        raise BadInputFileError(task.path, f"REF {ref} does not match the reference ({got})", record=where)
                    if chrom in fasta.references:
                        vpos, vref, valt = left_align(pos, ref, alt, lambda s, e, c=chrom: fasta.fetch(c, s, e))
                    else:
                        vpos, vref, valt = trim(pos, ref, alt)
                else:
                    vpos, vref, valt = trim(pos, ref, alt)
            v = cur.v
            v["pos"].append(vpos)
            v["ref"].append(vref)
            v["alt"].append(valt)
            v["id"].append(rid)
            v["qual"].append(None if qual is None or (isinstance(qual, float) and math.isnan(qual)) else qual)
            v["filters"].append(filters)
            v["ac"].append(int(alt_count.sum()))
            v["an"].append(an)
            v["nhomalt"].append(int((diploid & (alt_count == 2)).sum()))
            v["nhemi"].append(int((haploid & (alt_count == 1)).sum()))
            v["n_called"].append(n - n_missing)
            v["n_missing"].append(n_missing)
            v["orig_pos"].append(pos)
            v["orig_ref"].append(rec.REF)
            v["orig_alt"].append(rec.ALT[i - 1])
            v["alt_index"].append(i)
            v["n_alleles"].append(len(alts) + 1)
            v["csq"].append(csq)
            v["ann"].append(ann)
            vrow = cur.n_variants
            cur.n_variants += 1
            if idx.size == 0:
                continue
            sub = a[idx]
            rec_alleles = np.where(sub == i, 1, np.where(sub >= 0, 0, sub))  # -1 missing, -2 absent slot
            c = cur.c
            c["vidx"].append(np.full(idx.size, vrow, dtype=np.int64))
            c["sample"].append(idx)
            if width <= 2:
                a0 = rec_alleles[:, 0]
                a1 = rec_alleles[:, 1] if width == 2 else np.full(idx.size, -2)
                ph = phased[idx]
                code = np.where(a1 == -2, 18 + (a0 + 1), (a0 + 1) * 3 + (a1 + 1) + ph * 9)
                c["gt"].append(_GT_DIPLOID[code])
            else:
                sep_arr = np.where(phased[idx], "|", "/")
                c["gt"].append(np.array([
                    sep.join("." if x == -1 else str(x) for x in row if x != -2)
                    for row, sep in zip(rec_alleles.tolist(), sep_arr.tolist(), strict=True)
                ], dtype=object))
            c["ploidy"].append(ploidy[idx])
            c["called"].append(called[idx])
            c["alt_count"].append(alt_count[idx])
            c["phased"].append(phased[idx] & (ploidy[idx] > 1))
            c["gq"].append(gq[idx, 0] if gq is not None else np.full(idx.size, INT_MISSING, np.int32))
            c["dp"].append(dp[idx, 0] if dp is not None else np.full(idx.size, INT_MISSING, np.int32))
            if ad is not None:
                c["ad_ref"].append(ad[idx, 0])
                c["ad_alt"].append(ad[idx, i])
            else:
                miss = np.full(idx.size, INT_MISSING, np.int32)
                c["ad_ref"].append(miss)
                c["ad_alt"].append(miss)
    vcf.close()
    for contig, cols in by_contig.items():
        _write_contig(task, contig, cols, result)
        result.ploidy[contig] = ploidy_acc[contig]
        result.max_ploidy[contig] = maxp[contig]
    return result


def _nullable_int(arrays: list[np.ndarray], order: np.ndarray | None) -> pa.Array:
    data = np.concatenate(arrays).astype(np.int64) if arrays else np.zeros(0, np.int64)
    if order is not None:
        data = data[order]
    mask = data <= INT_MISSING + 1
    return pa.array(data.astype(np.int32), type=pa.int32(), mask=mask)


def _write_contig(task: Task, contig: str, cols: _Columns, result: ChunkResult) -> None:
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
    name = f"{task.file_id}-{task.chunk:05d}.parquet"
    write_parquet(VARIANTS, vt, Path(task.staging) / "variants" / base / name)
    result.files.append(("variants", f"{base}/{name}"))
    result.n_variants += nv
    c = cols.c
    if not c["vidx"]:
        return
    vidx = np.concatenate(c["vidx"])
    sample = np.concatenate(c["sample"])
    key = rank[vidx] * (len(task.pseudonyms) + 1) + sample
    order: np.ndarray | None = None
    if not bool(np.all(key[1:] >= key[:-1])):
        order = np.argsort(key, kind="stable")
        vidx, sample = vidx[order], sample[order]
    nc = vidx.size

    def cat(name: str, dtype: Any) -> np.ndarray:
        arr = np.concatenate(c[name])
        return (arr[order] if order is not None else arr).astype(dtype)

    pseud = pa.array(task.pseudonyms, pa.string())
    ct = pa.table({
        "institution": pa.array([task.institution] * nc, pa.string()),
        "contig": pa.array([contig] * nc, pa.string()),
        "pos": pa.array(pos[vidx].astype(np.int32)),
        "ref": pa.array(refs).take(pa.array(vidx)),
        "alt": pa.array(alts).take(pa.array(vidx)),
        "sample_id": pseud.take(pa.array(sample)),
        "gt": pa.array(cat("gt", object), pa.string()),
        "ploidy": pa.array(cat("ploidy", np.int8)),
        "called": pa.array(cat("called", np.int8)),
        "alt_count": pa.array(cat("alt_count", np.int8)),
        "phased": pa.array(cat("phased", bool)),
        "gq": _nullable_int(c["gq"], order),
        "dp": _nullable_int(c["dp"], order),
        "ad_ref": _nullable_int(c["ad_ref"], order),
        "ad_alt": _nullable_int(c["ad_alt"], order),
        "file_id": pa.array([task.file_id] * nc, pa.string()),
    })
    base = partition_dir(CALLS, {"institution": task.institution, "contig": contig})
    write_parquet(CALLS, ct, Path(task.staging) / "calls" / base / name)
    result.files.append(("calls", f"{base}/{name}"))
    result.n_calls += nc
