"""What every suite shares: the results collector, timers, subprocess timing and the run context.

Conventions:

- a *measure* is one figure (a median time, a rate, a size) of one tool; its key is ``suite.name``;
- a *comparison* names a genolake measure and its peer measured in the same run; its ratio is always
  "how many times faster (or smaller) genolake is": peer time / genolake time, genolake rate / peer rate,
  peer bytes / genolake bytes. Above 1 genolake wins; thresholds.toml holds the lowest ratio CI accepts.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks")


@dataclass
class Measure:
    key: str  # "suite.name"
    tool: str  # genolake | pysam | cyvcf2 | bcftools | hail | python
    what: str  # one line for the table
    unit: str  # s | ms | genotypes/s | variants/s | bytes | x
    value: float  # the headline figure: a median time, a best rate, a size
    p95: float | None = None
    n: int = 1  # number of timed runs or queries behind ``value``
    note: str = ""

    @property
    def suite(self) -> str:
        return self.key.split(".", 1)[0]


@dataclass
class Comparison:
    key: str  # "suite.name", the id thresholds.toml refers to
    genolake: str  # measure key
    peer: str  # measure key
    kind: str  # "time" (lower is better), "rate" (higher is better), "size" (lower is better)
    what: str
    ratio: float | None = None  # genolake's advantage: > 1 means genolake is faster / smaller
    threshold: float | None = None
    ok: bool | None = None


@dataclass
class Skip:
    key: str
    reason: str


@dataclass
class Results:
    """Everything a run measured; serialised to the JSON results file."""

    measures: dict[str, Measure] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    errors: list[Skip] = field(default_factory=list)  # genolake failed: the run exits non-zero
    extra: dict[str, Any] = field(default_factory=dict)  # per-suite details: scaling series, breakdowns
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per suite

    def add(self, m: Measure) -> Measure:
        self.measures[m.key] = m
        log.info("  %-34s %-9s %s", m.key, m.tool, fmt_value(m.value, m.unit))
        return m

    def compare(self, key: str, genolake: str, peer: str, kind: str, what: str) -> None:
        """Record a comparison; it is evaluated once every suite has run (see report.evaluate)."""
        self.comparisons.append(Comparison(key, genolake, peer, kind, what))

    def skip(self, key: str, reason: str) -> None:
        log.info("  %-34s not available: %s", key, reason)
        self.skipped.append(Skip(key, reason))

    def fail(self, key: str, reason: str) -> None:
        log.error("  %-34s FAILED: %s", key, reason)
        self.errors.append(Skip(key, reason))

    def to_json(self) -> dict[str, Any]:
        return {
            "measures": [asdict(m) for m in self.measures.values()],
            "comparisons": [asdict(c) for c in self.comparisons],
            "skipped": [asdict(s) for s in self.skipped],
            "errors": [asdict(s) for s in self.errors],
            "extra": self.extra,
            "suite_seconds": self.seconds,
        }


@dataclass
class Config:
    """One run's settings (the tier sets the defaults; flags override)."""

    tier: str  # quick | full
    samples: int  # per institution
    institutions: int
    mb: float
    seed: int
    work: Path  # cohorts, lakes and peer outputs (deleted at the end unless --keep)
    queries: int  # random queries per query type
    assoc_queries: int  # random association queries (each tests every variant of a window)
    cli_runs: int  # whole-process runs per CLI measure
    ingest_repeats: int  # timed runs per ingest tool (the best is kept)
    ingest_input: tuple[int, float] | None  # (samples, Mb) of a dedicated one-institution input; None = main's first
    scaling: tuple[int, ...]  # samples of the single-institution scaling cohorts
    scaling_mb: float
    hail: bool  # run the Hail peer (when hail imports)
    peer_budget_s: float  # cap on the time spent on one slow peer's query series
    vcf2zarr: str = "all"  # storage cohorts vcf2zarr converts when bio2zarr imports: all | gt | none


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation (numpy's default)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(times: Sequence[float]) -> tuple[float, float]:
    """(median, p95) of a list of durations."""
    return statistics.median(times), percentile(times, 95)


def time_calls(fn: Callable[[Any], object], args: Sequence[Any], *, budget_s: float | None = None,
               min_n: int = 5) -> list[float]:
    """Time ``fn(a)`` for each ``a`` in order; stop early once ``budget_s`` is spent (after ``min_n`` calls)."""
    times: list[float] = []
    start = time.perf_counter()
    for a in args:
        t = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - t)
        if budget_s is not None and len(times) >= min_n and time.perf_counter() - start > budget_s:
            break
    return times


def run_timed(cmd: Sequence[str | os.PathLike[str]], *, env: dict[str, str] | None = None,
              stdout: Any = subprocess.DEVNULL, cwd: Path | None = None) -> float:
    """Run a whole process; return its wall time. A failure raises with the tail of its stderr."""
    t = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd,
                          check=False)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: " + " | ".join(tail))
    return dt


def run_shell_timed(script: str, *, env: dict[str, str] | None = None) -> float:
    """Run a shell pipeline (``set -o pipefail``); return its wall time."""
    return run_timed(["bash", "-c", "set -euo pipefail; " + script], env=env)


def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


def dir_bytes(path: Path, *, skip: tuple[str, ...] = ()) -> int:
    total = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in skip]
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


def fmt_value(value: float | None, unit: str) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if unit == "s":
        return f"{value:.2f} s" if value >= 1 else f"{value * 1e3:.0f} ms"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"
    if unit == "bytes":
        return f"{value / 1e6:.1f} MB" if value >= 1e6 else f"{value / 1e3:.1f} kB"
    if unit.endswith("/s"):
        return f"{value / 1e6:.2f} M {unit}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "bits":
        return f"{value:.2f} bits"
    return f"{value:g} {unit}"


def main_contig(lake: Any) -> tuple[str, int, int]:
    """(contig, first pos, last pos) of the contig with the most variants (the simulated autosome)."""
    t = lake.sql("SELECT contig, min(pos) AS lo, max(pos) AS hi, count(*) AS n FROM variants "
                 "GROUP BY contig ORDER BY n DESC LIMIT 1")
    r = t.to_pylist()[0]
    return str(r["contig"]), int(r["lo"]), int(r["hi"])
