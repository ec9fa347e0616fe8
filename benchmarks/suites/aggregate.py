"""Aggregate: joint + per-institution + one `--by` stratum of AC/AN/AF, genolake vs peers.

genolake is timed as a user runs it, with the default `--workers` (in this process, one task per core on
threads: `aggregate.genolake`, the figure the ratios use: the median of three runs, the first included, on the
shared machine), and again on a local Dask cluster of 2 worker processes (`--workers 2`,
`aggregate.genolake_dask2`: the distributed path, including the cluster's start).

Peers, each doing the same job from the institutions' VCFs:

- bcftools: rename contigs of files that name them differently (`annotate --rename-chrs` + index: genolake
  harmonises at ingest, a bcftools user must do it before merging), `merge` (absent sites stay missing, as
  genolake's default), then `+fill-tags -S groups.txt` with one group per institution and per stratum value;
- Hail (when ``import hail`` works): `import_vcf` of every file, `split_multi_hts`, `union_cols` and
  `call_stats` for the joint cohort, per institution and per group (benchmarks/suites/hail_job.py); the JVM
  start (`hl.init`) is reported separately and not counted.

genolake aggregates the lake built from the same VCFs (ingest is the ingest suite's business).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.suites.cohort import Cohort, group_column, read_phenotypes
from benchmarks.suites.common import Measure, have_tool, run_shell_timed, run_timed
from benchmarks.suites.context import Context

log = logging.getLogger("benchmarks")
AGGREGATE_RUNS = 3  # timed runs of genolake's default aggregate (the median counts)


def aggregate_available() -> str | None:
    """'library', 'cli' or None: how genolake's aggregate can be run here."""
    try:
        mod = importlib.import_module("genolake.compute.aggregate")
        if callable(getattr(mod, "aggregate", None)):
            return "library"
    except ImportError:
        pass
    genolake = shutil.which("genolake")
    if genolake and subprocess.run([genolake, "aggregate", "--help"], capture_output=True, check=False).returncode == 0:
        return "cli"
    return None


def run_genolake_aggregate(lake: Path, *, by: list[str], workers: int | None, how: str) -> float:
    """Run genolake's aggregate; return seconds (the library call, or the whole command). ``workers`` None: the
    default."""
    if how == "cli":
        cmd: list[str | Path] = ["genolake", "aggregate", "--lake", lake]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        for b in by:
            cmd += ["--by", b]
        return run_timed(cmd)
    fn: Any = importlib.import_module("genolake.compute.aggregate").aggregate
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    if "by" in params:
        kwargs["by"] = by
    if "workers" in params and workers is not None:
        kwargs["workers"] = workers
    t = time.perf_counter()
    out = fn(lake, **kwargs)
    if hasattr(out, "compute"):  # a lazy result: the caller decides when to compute
        out.compute()
    return time.perf_counter() - t


def contig_names(vcf: Path) -> list[str]:
    import pysam

    with pysam.VariantFile(str(vcf)) as f:
        return [str(c) for c in f.header.contigs]


def uses_chr(vcf: Path) -> bool:
    return any(c.startswith("chr") for c in contig_names(vcf))


def sample_names(vcf: Path) -> list[str]:
    import pysam

    with pysam.VariantFile(str(vcf)) as f:
        return list(f.header.samples)


def merged_names(cohort: Cohort) -> list[list[str]]:
    """Each file's sample names as `bcftools merge --force-samples` renames them ('2:S1' for a repeat)."""
    seen: set[str] = set()
    out: list[list[str]] = []
    for i, vcf in enumerate(cohort.vcfs):
        names = []
        for s in sample_names(vcf):
            names.append(f"{i + 1}:{s}" if s in seen else s)
        seen.update(sample_names(vcf))
        out.append(names)
    return out


def write_groups(cohort: Cohort, by: str | None, path: Path) -> int:
    """bcftools +fill-tags -S file: sample, then its comma-separated groups (institution and stratum)."""
    lines = []
    for inst, vcf, names, pheno in zip(cohort.institutions, cohort.vcfs, merged_names(cohort), cohort.phenotypes,
                                       strict=True):
        strata: dict[str, str] = {}
        if pheno is not None and by:
            _, rows = read_phenotypes(pheno)
            strata = {r.get("sample_id", ""): r.get(by, "") for r in rows}
        for raw, merged in zip(sample_names(vcf), names, strict=True):
            groups = [inst]
            if strata.get(raw):
                groups.append(f"{by}_{strata[raw]}")
            lines.append(f"{merged}\t{','.join(groups)}")
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def bcftools_job(cohort: Cohort, by: str | None, scratch: Path) -> dict[str, float]:
    """Harmonise contig names, merge and fill tags; returns the seconds of each step."""
    target_chr = uses_chr(cohort.vcfs[0])
    inputs: list[Path] = []
    steps: dict[str, float] = {"rename_contigs": 0.0}
    for i, vcf in enumerate(cohort.vcfs):
        if uses_chr(vcf) == target_chr:
            inputs.append(vcf)
            continue
        mapping = scratch / f"chrmap{i}.txt"
        names = contig_names(vcf)
        mapping.write_text("".join(f"{c}\t{'chr' + c if target_chr else c.removeprefix('chr')}\n" for c in names))
        out = scratch / f"renamed{i}.bcf"
        steps["rename_contigs"] += run_timed(["bcftools", "annotate", "--rename-chrs", mapping, "-Ob", "-o", out, vcf])
        steps["rename_contigs"] += run_timed(["bcftools", "index", "-f", out])
        inputs.append(out)
    groups = scratch / "groups.txt"
    write_groups(cohort, by, groups)
    force = len({s for v in cohort.vcfs for s in sample_names(v)}) < sum(len(sample_names(v)) for v in cohort.vcfs)
    merge = "bcftools merge " + ("--force-samples " if force else "") + "-Ou " + " ".join(map(str, inputs))
    fill = f"bcftools +fill-tags -Ob -o {scratch / 'merged.bcf'} -- -S {groups} -t AN,AC,AF,AC_Hom,AC_Hemi"
    steps["merge_fill_tags"] = run_shell_timed(f"{merge} | {fill}")
    return steps


def hail_job(cohort: Cohort, by: str | None, scratch: Path) -> dict[str, Any]:
    target_chr = uses_chr(cohort.vcfs[0])
    recode: list[dict[str, str]] = []
    for vcf in cohort.vcfs:
        if uses_chr(vcf) == target_chr:
            recode.append({})
        else:
            recode.append({c: ("chr" + c if target_chr else c.removeprefix("chr")) for c in contig_names(vcf)})
    spec = {
        "vcfs": [str(v) for v in cohort.vcfs], "institutions": cohort.institutions, "recode": recode,
        "phenotypes": [str(p) if p else None for p in cohort.phenotypes], "by": by,
        "out": str(scratch / "hail_stats.ht"), "tmp": str(scratch / "hail_tmp"), "log": str(scratch / "hail.log"),
    }
    (scratch / "hail_spec.json").write_text(json.dumps(spec))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.suites.hail_job", str(scratch / "hail_spec.json")],
                          capture_output=True, text=True, check=False)
    total = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError("hail job failed: " + " | ".join(proc.stderr.strip().splitlines()[-5:]))
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = total
    return out


def run(ctx: Context) -> None:
    res, cfg = ctx.results, ctx.config
    cohort = ctx.cohort()
    by = group_column(cohort)
    scratch = ctx.work / "aggregate-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    what = f"joint + per institution + by {by}" if by else "joint + per institution"
    detail: dict[str, Any] = {"by": by}
    how = aggregate_available()
    if how is None:
        res.skip("aggregate.genolake", "genolake aggregate is not implemented yet (genolake.compute.aggregate)")
    else:
        lake = ctx.lake()
        via = "library call" if how == "library" else "whole `genolake aggregate` command"
        # a few seconds a run on a shared machine: the median of AGGREGATE_RUNS runs (the first one included,
        # with its first imports of the counting's modules); every run is in the note and the JSON
        runs = []
        for _ in range(AGGREGATE_RUNS):
            runs.append(run_genolake_aggregate(lake, by=[by] if by else [], workers=None, how=how))
        seconds = statistics.median(runs)
        detail["genolake_via"] = how
        detail["genolake_runs"] = runs
        res.add(Measure("aggregate.genolake", "genolake",
                        f"genolake aggregate, default (in process, a thread per core): {what}", "s", seconds,
                        n=len(runs), note=f"{via}; {os.cpu_count()} cores; median of {len(runs)} runs ("
                        + ", ".join(f"{r:.2f}" for r in runs) + f" s); load average {os.getloadavg()[0]:.1f}"))
        dask2 = run_genolake_aggregate(lake, by=[by] if by else [], workers=2, how=how)
        res.add(Measure("aggregate.genolake_dask2", "genolake", f"genolake aggregate --workers 2 (local Dask "
                        f"cluster of 2 processes, its start included): {what}", "s", dask2, note=via))
    if have_tool("bcftools"):
        steps = bcftools_job(cohort, by, scratch)
        detail["bcftools_steps"] = steps
        res.add(Measure("aggregate.bcftools", "bcftools", f"bcftools merge | +fill-tags -S: {what}", "s",
                        sum(steps.values()), note=", ".join(f"{k} {v:.1f} s" for k, v in steps.items())))
        res.compare("aggregate.vs_bcftools", "aggregate.genolake", "aggregate.bcftools", "time",
                    "aggregate vs bcftools merge + fill-tags")
        if how is not None:
            res.compare("aggregate.dask2_vs_bcftools", "aggregate.genolake_dask2", "aggregate.bcftools", "time",
                        "aggregate --workers 2 vs bcftools merge + fill-tags")
    else:
        res.skip("aggregate.bcftools", "bcftools is not on the PATH")
    if not cfg.hail:
        res.skip("aggregate.hail", "not run in this tier (pass --hail)")
    elif importlib.util.find_spec("hail") is None:
        res.skip("aggregate.hail", "hail is not installed (pip install -e '.[hail]' --group dev; needs Java)")
    elif shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        res.skip("aggregate.hail", "hail is installed but no Java runtime is (apt-get install openjdk-17-jre-headless)")
    else:
        try:
            h = hail_job(cohort, by, scratch)
        except RuntimeError as exc:  # hail and Java are there: a crash must not drop the Hail figure silently
            res.fail("aggregate.hail", str(exc))
        else:
            detail["hail"] = h
            res.add(Measure("aggregate.hail", "hail", f"Hail import_vcf + union_cols + call_stats: {what}", "s",
                            h["job_seconds"], note=f"JVM start (hl.init) {h['init_seconds']:.1f} s not counted"))
            res.compare("aggregate.vs_hail", "aggregate.genolake", "aggregate.hail", "time",
                        "aggregate vs Hail call_stats")
            if how is not None:
                res.compare("aggregate.dask2_vs_hail", "aggregate.genolake_dask2", "aggregate.hail", "time",
                            "aggregate --workers 2 vs Hail call_stats")
    res.extra["aggregate"] = detail
    shutil.rmtree(scratch, ignore_errors=True)
