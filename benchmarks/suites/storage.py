"""Storage: bytes of the lake (every table, Delta logs included) vs the institutions' .vcf.gz files.

Measured on the lake as ingest leaves it (before aggregate and annotate add their tables); the per-table
breakdown, and the size after the other suites, go to the JSON.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.suites.common import Measure, dir_bytes
from benchmarks.suites.context import Context

SCRATCH = ("_staging", "_txn")


def table_bytes(lake: Path) -> dict[str, int]:
    return {p.name: dir_bytes(p) for p in sorted(lake.iterdir()) if p.is_dir() and p.name not in SCRATCH}


def run(ctx: Context) -> None:
    res = ctx.results
    cohort = ctx.cohort()
    lake = ctx.lake()
    total = dir_bytes(lake, skip=SCRATCH)
    res.add(Measure("storage.lake", "genolake", "lake bytes after ingest (all tables + Delta logs)", "bytes", total))
    res.add(Measure("storage.vcf_gz", "bgzip", "the institutions' .vcf.gz bytes (indexes not counted)", "bytes",
                    cohort.vcf_bytes))
    res.compare("storage.lake_vs_vcf_gz", "storage.lake", "storage.vcf_gz", "size", "lake size vs .vcf.gz")
    res.extra["storage_tables_after_ingest"] = table_bytes(lake)


def after_all(ctx: Context) -> None:
    """Sizes once every suite has run (aggregate and annotate add tables)."""
    if ctx._lake is not None and ctx._lake.exists():
        ctx.results.extra["storage_tables_final"] = table_bytes(ctx._lake)
