"""Storage: lake bytes vs the institutions' .vcf.gz files (and vcf2zarr when installed), on two cohorts.

- the main cohort (FORMAT GT:GQ:DP:AD), measured on the lake as ingest leaves it (before aggregate and
  annotate add their tables);
- a GT-only cohort: the same seed, samples and sites, FORMAT GT alone (issue 10's first size target),
  ingested in process into a lake of its own.

The breakdown does not assume a layout: it walks every Delta table folder of the lake (any folder holding a
``_delta_log``), takes the Parquet files the table's current version references, and sums the compressed
column-chunk sizes from their footers per column. Bits per stored genotype = 8 x bytes / (records x samples
of the VCFs). Delta logs, Parquet footers and files a table no longer references are reported apart.
The table goes to the results markdown (report.storage_lines) and the details to the JSON.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.suites.cohort import Cohort, build_lake, get_cohort
from benchmarks.suites.common import Measure, dir_bytes
from benchmarks.suites.context import Context

log = logging.getLogger("benchmarks")

SCRATCH = ("_staging", "_txn")
DELTA_LOG = "_delta_log"


def table_bytes(lake: Path) -> dict[str, int]:
    """Bytes on disk per top-level folder of the lake (the coarse view kept in the JSON)."""
    return {p.name: dir_bytes(p) for p in sorted(lake.iterdir()) if p.is_dir() and p.name not in SCRATCH}


# ---------------------------------------------------------------- Parquet footers, layout-agnostic
def delta_tables(lake: Path) -> list[Path]:
    """Every Delta table folder under ``lake`` (a folder with a ``_delta_log``), scratch folders skipped."""
    found: list[Path] = []
    for root, dirs, _files in os.walk(lake):
        if DELTA_LOG in dirs:
            found.append(Path(root))
            dirs[:] = []  # a table's own partition folders hold no further tables
            continue
        dirs[:] = sorted(d for d in dirs if d not in SCRATCH)
    return sorted(found)


def live_files(table: Path) -> set[Path] | None:
    """The data files the table's current Delta version references (None when deltalake cannot say)."""
    try:
        from deltalake import DeltaTable

        uris = DeltaTable(str(table)).file_uris()
    except Exception as exc:  # an unreadable log: count every Parquet file of the folder as live
        log.warning("  %s: Delta log not readable (%s); counting every Parquet file", table.name, exc)
        return None
    return {Path(u.removeprefix("file://")).resolve() for u in uris}


def parquet_columns(path: Path, encodings: dict[str, set[str]] | None = None) -> tuple[dict[str, int], int]:
    """(compressed bytes per column path summed over row groups, rows) from one Parquet file's footer.

    ``encodings``, when given, collects the Parquet encodings of each column path (a list column written
    PLAIN where a dictionary was meant shows here).
    """
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    cols: dict[str, int] = {}
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for i in range(rg.num_columns):
            c = rg.column(i)
            cols[c.path_in_schema] = cols.get(c.path_in_schema, 0) + int(c.total_compressed_size)
            if encodings is not None:
                encodings.setdefault(c.path_in_schema, set()).update(c.encodings)
    return cols, int(md.num_rows)


def breakdown(lake: Path) -> dict[str, Any]:
    """Bytes of every Delta table of ``lake``: per column (footers), footers, Delta log, unreferenced files."""
    tables: dict[str, dict[str, Any]] = {}
    in_tables = 0
    for table in delta_tables(lake):
        log_bytes = dir_bytes(table / DELTA_LOG)
        live = live_files(table)
        columns: dict[str, int] = {}
        encodings: dict[str, set[str]] = {}
        parquet = rows = files = unreferenced = 0
        for root, dirs, names in os.walk(table):
            dirs[:] = [d for d in dirs if d != DELTA_LOG]
            for name in names:
                f = Path(root) / name
                size = f.stat().st_size
                referenced = name.endswith(".parquet") if live is None else f.resolve() in live
                if not referenced:
                    unreferenced += size
                    continue
                cols, n = parquet_columns(f, encodings)
                for k, v in cols.items():
                    columns[k] = columns.get(k, 0) + v
                parquet += size
                rows += n
                files += 1
        tables[table.relative_to(lake).as_posix()] = {
            "files": files, "rows": rows, "parquet_bytes": parquet, "delta_log_bytes": log_bytes,
            "unreferenced_bytes": unreferenced, "footer_bytes": parquet - sum(columns.values()),
            "columns": dict(sorted(columns.items(), key=lambda kv: -kv[1])),
            "encodings": {k: sorted(encodings[k]) for k in sorted(encodings)},
        }
        in_tables += parquet + log_bytes + unreferenced
    total = dir_bytes(lake, skip=SCRATCH)
    return {"total_bytes": total, "other_bytes": total - in_tables, "tables": tables,
            "delta_log_bytes": sum(t["delta_log_bytes"] for t in tables.values())}


def vcf_genotypes(vcfs: list[Path]) -> int:
    """Stored genotypes of the input: records x samples of every VCF (records from the tabix index)."""
    total = 0
    for v in vcfs:
        records = subprocess.run(["bcftools", "index", "-n", str(v)], capture_output=True, text=True, check=True)
        samples = subprocess.run(["bcftools", "query", "-l", str(v)], capture_output=True, text=True, check=True)
        total += int(records.stdout.strip()) * len(samples.stdout.split())
    return total


# ---------------------------------------------------------------- vcf2zarr (optional peer)
def vcf2zarr_available() -> str | None:
    """None when bio2zarr imports, else why not."""
    try:
        import bio2zarr.vcf  # noqa: F401
    except ImportError as exc:
        return f"bio2zarr is not installed (pip install bio2zarr): {exc}"
    return None


def vcf2zarr_bytes(vcfs: list[Path], out: Path) -> tuple[int, float]:
    """(bytes, seconds): each institution's VCF converted by ``vcf2zarr convert`` with its defaults.

    One store per file, as the lake has one institution per file (vcf2zarr concatenates files along
    variants, for one set of samples). The intermediate ICF folder is not counted.
    """
    from bio2zarr import vcf as b2z

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    total = 0
    t = time.perf_counter()
    for v in vcfs:
        dest = out / v.name.replace(".vcf.gz", ".vcz")
        b2z.convert([str(v)], str(dest), icf_path=str(out / "icf"), worker_processes=2)
        shutil.rmtree(out / "icf", ignore_errors=True)
        total += dir_bytes(dest)
    seconds = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    return total, seconds


# ---------------------------------------------------------------- the suite
def measure_cohort(ctx: Context, cohort: Cohort, lake: Path, *, suffix: str, label: str) -> None:
    """Lake vs .vcf.gz (and vcf2zarr) of one cohort; the footer breakdown goes to extra['storage']."""
    res = ctx.results
    detail = breakdown(lake)
    genotypes = vcf_genotypes(cohort.vcfs)
    detail.update({"label": label, "genotypes": genotypes, "vcf_gz_bytes": cohort.vcf_bytes})
    res.add(Measure(f"storage.lake{suffix}", "genolake", f"lake bytes after ingest (all tables + Delta logs), {label}",
                    "bytes", detail["total_bytes"], note=f"{8 * detail['total_bytes'] / genotypes:.2f} bits per "
                    f"genotype ({genotypes:,} = records x samples of the VCFs)"))
    res.add(Measure(f"storage.delta_log{suffix}", "genolake", f"Delta log bytes of every table, {label}", "bytes",
                    detail["delta_log_bytes"]))
    res.add(Measure(f"storage.vcf_gz{suffix}", "bgzip", f"the institutions' .vcf.gz bytes (no indexes), {label}",
                    "bytes", cohort.vcf_bytes, note=f"{8 * cohort.vcf_bytes / genotypes:.2f} bits per genotype"))
    res.compare(f"storage.lake_vs_vcf_gz{suffix}", f"storage.lake{suffix}", f"storage.vcf_gz{suffix}", "size",
                f"lake size vs .vcf.gz, {label}")
    why = vcf2zarr_available()
    wanted = ctx.config.vcf2zarr == "all" or (ctx.config.vcf2zarr == "gt" and suffix == "_gt")
    if why is None and not wanted:
        why = ("not asked for (--vcf2zarr none)" if ctx.config.vcf2zarr == "none" else
               f"the {ctx.config.tier} tier converts only the GT-only cohort (vcf2zarr takes ~15 min on 2 cores for "
               "the full GT:GQ:DP:AD cohort); pass --vcf2zarr all")
    if why is not None:
        res.skip(f"storage.vcf_zarr{suffix}", why)
    else:
        zbytes, seconds = vcf2zarr_bytes(cohort.vcfs, ctx.work / f"vcf2zarr{suffix}")
        detail["vcf_zarr_bytes"] = zbytes
        res.add(Measure(f"storage.vcf_zarr{suffix}", "vcf2zarr", f"vcf2zarr convert (defaults), one store per "
                        f"institution, {label}", "bytes", zbytes,
                        note=f"{8 * zbytes / genotypes:.2f} bits per genotype; converted in {seconds:.1f} s"))
        res.compare(f"storage.lake_vs_vcf_zarr{suffix}", f"storage.lake{suffix}", f"storage.vcf_zarr{suffix}",
                    "size", f"lake size vs vcf2zarr, {label}")
    res.extra.setdefault("storage", {})[suffix.lstrip("_") or "main"] = detail


def run(ctx: Context) -> None:
    res, cfg = ctx.results, ctx.config
    cohort = ctx.cohort()
    lake = ctx.lake()
    res.extra["storage_tables_after_ingest"] = table_bytes(lake)
    measure_cohort(ctx, cohort, lake, suffix="", label="GT:GQ:DP:AD cohort")

    gt = get_cohort(cfg.work, samples=cfg.samples, institutions=cfg.institutions, mb=cfg.mb, seed=cfg.seed,
                    gt_only=True)
    gt_lake = cfg.work / "lakes" / gt.root.name
    shutil.rmtree(gt_lake, ignore_errors=True)
    log.info("building the lake of the GT-only cohort ...")
    t = time.perf_counter()
    build_lake(gt, gt_lake, workers=0)
    log.info("  built in %.1f s", time.perf_counter() - t)
    measure_cohort(ctx, gt, gt_lake, suffix="_gt", label="GT-only cohort")
    shutil.rmtree(gt_lake, ignore_errors=True)


def after_all(ctx: Context) -> None:
    """Sizes once every suite has run (aggregate and annotate add tables)."""
    if ctx._lake is not None and ctx._lake.exists():
        ctx.results.extra["storage_tables_final"] = table_bytes(ctx._lake)
