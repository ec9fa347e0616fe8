"""Seeded cohorts (from benchmarks.simulate) and the lakes built from them, cached in the work folder."""

from __future__ import annotations

import importlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks")


@dataclass
class Cohort:
    root: Path
    institutions: list[str]
    vcfs: list[Path]
    phenotypes: list[Path | None]
    samples: int  # per institution
    mb: float
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)  # cohort.json
    seconds: float = 0.0  # time to simulate (0 when reused)
    gt_only: bool = False  # FORMAT GT alone (else GT:GQ:DP:AD)

    @property
    def vcf_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.vcfs)


def cohort_dir(work: Path, *, samples: int, institutions: int, mb: float, seed: int, chrx_mb: float,
               gt_only: bool = False) -> Path:
    name = f"{institutions}x{samples}-{mb:g}mb-x{chrx_mb:g}-seed{seed}"
    return work / "cohorts" / (f"{name}-gt" if gt_only else name)


def get_cohort(work: Path, *, samples: int, institutions: int, mb: float, seed: int,
               chrx_mb: float = 2.0, gt_only: bool = False) -> Cohort:
    """Simulate the cohort (or reuse the one already in ``work`` with the same parameters).

    ``gt_only``: FORMAT GT alone; the same seed gives the same sites and genotypes as the GT:GQ:DP:AD cohort.
    """
    out = cohort_dir(work, samples=samples, institutions=institutions, mb=mb, seed=seed, chrx_mb=chrx_mb,
                     gt_only=gt_only)
    seconds = 0.0
    if not _complete(out, institutions):
        try:
            sim = importlib.import_module("benchmarks.simulate")
        except ImportError as exc:
            raise RuntimeError(f"benchmarks/simulate.py is needed to generate the cohort ({exc})") from exc
        log.info("simulating %d institution(s) x %d samples x %g Mb (seed %d%s) ...", institutions, samples, mb, seed,
                 ", GT only" if gt_only else "")
        t = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        sim.simulate_cohort(out, samples=samples, institutions=institutions, mb=mb, seed=seed, chrx_mb=chrx_mb,
                            gt_only=gt_only)
        seconds = time.perf_counter() - t
        (out / ".complete").write_text("ok\n")
        log.info("  simulated in %.1f s", seconds)
    cohort = _load(out, institutions, samples=samples, mb=mb, seed=seed, seconds=seconds)
    cohort.gt_only = gt_only
    return cohort


def _complete(out: Path, institutions: int) -> bool:
    return (out / ".complete").exists() and len(sorted(out.glob("inst*.vcf.gz"))) >= institutions


def _load(out: Path, institutions: int, *, samples: int, mb: float, seed: int, seconds: float) -> Cohort:
    meta: dict[str, Any] = {}
    if (out / "cohort.json").exists():
        meta = json.loads((out / "cohort.json").read_text())
    vcfs = sorted(out.glob("inst*.vcf.gz"), key=lambda p: p.name)[:institutions]
    names = [p.name.removesuffix(".vcf.gz") for p in vcfs]
    phenos: list[Path | None] = []
    for name in names:
        p = out / f"{name}.phenotypes.tsv"
        phenos.append(p if p.exists() else None)
    return Cohort(out, names, vcfs, phenos, samples, mb, seed, meta, seconds)


def build_lake(cohort: Cohort, lake: Path, *, workers: int = 2) -> dict[str, float]:
    """Ingest every institution (and its phenotypes when genolake.phenotypes exists); return timings."""
    from genolake.ingest.pipeline import ingest

    timings: dict[str, float] = {}
    t = time.perf_counter()
    for inst, vcf in zip(cohort.institutions, cohort.vcfs, strict=True):
        ingest(lake, inst, [vcf], workers=workers)
    timings["ingest"] = time.perf_counter() - t
    load = phenotype_loader()
    if load is not None:
        t = time.perf_counter()
        for inst, pheno in zip(cohort.institutions, cohort.phenotypes, strict=True):
            if pheno is not None:
                load(lake, inst, pheno)
        timings["phenotypes"] = time.perf_counter() - t
    return timings


def phenotype_loader() -> Any:
    try:
        mod = importlib.import_module("genolake.phenotypes")
    except ImportError:
        return None
    return getattr(mod, "load_phenotypes", None)


def read_phenotypes(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A TSV phenotype table: (columns, rows as dicts)."""
    lines = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]
    head, body = lines[0], lines[1:]
    return head, [dict(zip(head, row, strict=False)) for row in body]


def group_column(cohort: Cohort) -> str | None:
    """The categorical phenotype used for the `--by` stratum: population when present, else sex."""
    pheno = next((p for p in cohort.phenotypes if p is not None), None)
    if pheno is None:
        return None
    head, _ = read_phenotypes(pheno)
    for col in ("population", "super_population", "pop", "sex"):
        if col in head:
            return col
    return None
