"""Scaling: point-query and carriers medians, and aggregate time, as the cohort grows (one institution each).

Each size is its own seeded cohort of ``scaling_mb`` Mb (sites kept small so 50,000 samples fit the time
budget), ingested in process. Point queries should not slow down with more samples (sorted calls, row
groups and statistics prune to one variant's rows); pysam must parse every sample of the record, so it does.
The plot (latency vs cohort size) is drawn by report.py from ``extra["scaling"]``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from typing import Any

from benchmarks.suites.aggregate import aggregate_available, run_genolake_aggregate
from benchmarks.suites.cohort import build_lake, get_cohort, group_column
from benchmarks.suites.common import Measure, have_tool, run_shell_timed
from benchmarks.suites.context import Context
from benchmarks.suites.queries import measure_lake

log = logging.getLogger("benchmarks")


def run(ctx: Context) -> None:
    import genolake

    res, cfg = ctx.results, ctx.config
    series: list[dict[str, Any]] = []
    how = aggregate_available()
    for n in cfg.scaling:
        cohort = get_cohort(cfg.work, samples=n, institutions=1, mb=cfg.scaling_mb, seed=cfg.seed, chrx_mb=0.0)
        lake_path = cfg.work / "lakes" / cohort.root.name
        shutil.rmtree(lake_path, ignore_errors=True)
        log.info("scaling: %d samples: ingest ...", n)
        t = time.perf_counter()
        build_lake(cohort, lake_path, workers=0)
        point: dict[str, Any] = {"samples": n, "ingest_seconds": time.perf_counter() - t,
                                 "simulate_seconds": cohort.seconds, "vcf_gz_bytes": cohort.vcf_bytes}
        point["records"] = int(subprocess.run(["bcftools", "index", "-n", str(cohort.vcfs[0])], capture_output=True,
                                              text=True, check=False).stdout.strip() or 0)
        with genolake.open(lake_path) as lake:
            medians = measure_lake(ctx, lake, cohort.vcfs, prefix=f"scaling_{n}", n=cfg.queries,
                                   regions=False, assoc=False, label=f" ({n:,} samples, 1 institution)")
        point.update({k.split(".", 1)[1]: v for k, v in medians.items()})
        by = group_column(cohort)
        if how is not None:
            try:
                point["aggregate_genolake_s"] = run_genolake_aggregate(lake_path, by=[by] if by else [], workers=2,
                                                                       how=how)
                res.add(Measure(f"scaling_{n}.aggregate", "genolake", f"aggregate, {n:,} samples", "s",
                                point["aggregate_genolake_s"]))
            except Exception as exc:
                res.fail(f"scaling_{n}.aggregate", f"{type(exc).__name__}: {exc}")
        if have_tool("bcftools"):
            out = cfg.work / "scaling-fill.bcf"
            point["aggregate_bcftools_s"] = run_shell_timed(
                f"bcftools +fill-tags -Ob -o {out} {cohort.vcfs[0]} -- -t AN,AC,AF,AC_Hom,AC_Hemi")
            res.add(Measure(f"scaling_{n}.aggregate_bcftools", "bcftools", f"+fill-tags joint only, {n:,} samples",
                            "s", point["aggregate_bcftools_s"]))
            out.unlink(missing_ok=True)
        series.append(point)
        shutil.rmtree(lake_path, ignore_errors=True)
        log.info("scaling: %d samples: %s", n, {k: round(v, 3) for k, v in point.items() if isinstance(v, float)})
    res.extra["scaling"] = series
    growth(ctx, series)


def growth(ctx: Context, series: list[dict[str, Any]]) -> None:
    """Point-query growth when the samples grow 10x (issue 3: < 1.5x) and 50x (issue 10: 1,000 -> 50,000, <= 1.3x).

    Each factor uses the first pair of sizes that far apart (the full tier: 1,000 -> 10,000 and 1,000 -> 50,000);
    a tier without such a pair does not report it.
    """
    res = ctx.results
    by_n = {p["samples"]: p for p in series}
    for factor in (10, 50):
        n = next((n for n in sorted(by_n) if factor * n in by_n), None)
        if n is None:
            res.skip(f"scaling.point_growth_{factor}x", f"no two scaling cohorts {factor}x apart "
                     f"({', '.join(f'{k:,}' for k in sorted(by_n)) or 'none'} samples)")
            continue
        a, b = by_n[n], by_n[factor * n]
        for metric, label in (("point", "lake.variant"), ("carriers", "lake.carriers"), ("point_pysam", "pysam fetch"),
                              ("point_alone", "lake.variant in a pass of its own"),
                              ("carriers_alone", "lake.carriers in a pass of its own")):
            if metric in a and metric in b:
                tool = "pysam" if metric.endswith("pysam") else "genolake"
                res.add(Measure(f"scaling.{metric}_growth_{factor}x", tool,
                                f"{label} median at {factor * n:,} / at {n:,} samples", "x", b[metric] / a[metric]))
