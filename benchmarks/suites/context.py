"""The state one run shares between suites: settings, results, the main cohort and its lake (built once)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.suites.cohort import Cohort, build_lake, get_cohort
from benchmarks.suites.common import Config, Results

log = logging.getLogger("benchmarks")


@dataclass
class Context:
    config: Config
    results: Results = field(default_factory=Results)
    genes: list[str] = field(default_factory=list)  # gene symbols annotated into the lake (annotate suite)
    _cohort: Cohort | None = None
    _lake: Path | None = None

    @property
    def work(self) -> Path:
        return self.config.work

    def cohort(self) -> Cohort:
        """The main cohort: ``institutions`` x ``samples`` x ``mb`` (simulated on first use)."""
        if self._cohort is None:
            c = self.config
            self._cohort = get_cohort(c.work, samples=c.samples, institutions=c.institutions, mb=c.mb, seed=c.seed)
            self.results.extra["cohort"] = {
                "institutions": self._cohort.institutions, "samples_per_institution": c.samples, "mb": c.mb,
                "seed": c.seed, "vcf_gz_bytes": self._cohort.vcf_bytes, "simulate_seconds": self._cohort.seconds,
                "sites": self._cohort.meta.get("sites") or self._cohort.meta.get("n_sites"),
            }
        return self._cohort

    def lake(self) -> Path:
        """The main cohort's lake: every institution ingested (in process), phenotypes loaded.

        Worker counts give identical lakes; in process avoids starting a Dask cluster per institution
        (the ingest suite measures the workers).
        """
        if self._lake is None:
            cohort = self.cohort()
            path = self.work / "lakes" / cohort.root.name
            if path.exists():
                shutil.rmtree(path)
            log.info("building the lake of the main cohort ...")
            t = time.perf_counter()
            timings = build_lake(cohort, path, workers=0)
            log.info("  built in %.1f s", time.perf_counter() - t)
            self.results.extra["lake_build_seconds"] = timings
            self._lake = path
        return self._lake
