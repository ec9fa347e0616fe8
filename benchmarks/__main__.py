"""`python -m benchmarks [--quick]`: run the benchmark suites, write results, check the CI thresholds.

    python -m benchmarks                 # full tier: 3 x 1,000 samples x 20 Mb, scaling to 50,000 samples
    python -m benchmarks --quick         # CI tier: 3 x 200 samples x 2 Mb, a few minutes
    python -m benchmarks --samples 500 --institutions 2 --mb 5 --suites ingest,queries --work /tmp/b --keep

Writes ``<out>/<date>-<host>[-quick].json``, ``.md`` and ``.png`` and prints the table. Exits 1 when a
genolake figure falls behind its peer by more than benchmarks/thresholds.toml allows for the tier, or when
a genolake step fails; 0 otherwise (features not implemented yet are reported as not measured).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from benchmarks.suites import SUITES
from benchmarks.suites.common import Config
from benchmarks.suites.context import Context

log = logging.getLogger("benchmarks")

TIERS: dict[str, dict[str, object]] = {
    "quick": {"samples": 200, "institutions": 3, "mb": 2.0, "queries": 200, "assoc_queries": 20, "cli_runs": 10,
              "ingest_repeats": 3, "ingest_input": (1000, 4.0), "scaling": (100, 1000), "scaling_mb": 1.0,
              "hail": True, "peer_budget_s": 3.0, "vcf2zarr": "all"},
    # three ingest runs per tool (one left the peer to one phase of the machine) and 1 Mb scaling cohorts: the full
    # tier took 21 min with cached cohorts on 2 cores (simulation adds to a first run);
    # vcf2zarr converts only the GT-only cohort there (~4 min; the GT:GQ:DP:AD one would take ~15 min on 2 cores)
    "full": {"samples": 1000, "institutions": 3, "mb": 20.0, "queries": 200, "assoc_queries": 200, "cli_runs": 15,
             "ingest_repeats": 3, "ingest_input": None, "scaling": (1000, 10000, 50000), "scaling_mb": 1.0,
             "hail": True, "peer_budget_s": 10.0, "vcf2zarr": "gt"},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the small CI tier (a few minutes)")
    p.add_argument("--samples", type=int, help="samples per institution of the main cohort")
    p.add_argument("--institutions", type=int, help="institutions of the main cohort")
    p.add_argument("--mb", type=float, help="megabases of the simulated autosome")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--queries", type=int, help="random queries per query type (>= 200 for the published table)")
    p.add_argument("--assoc-queries", type=int, help="random association queries (default: 20 quick, 200 full)")
    p.add_argument("--repeats", type=int, help="timed runs per ingest tool (the best counts)")
    p.add_argument("--cli-runs", type=int, help="whole-process runs per CLI command (>= 10 for the published table)")
    p.add_argument("--scaling", help="comma-separated sample counts of the scaling cohorts, e.g. 1000,10000")
    p.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated subset of {', '.join(SUITES)}")
    p.add_argument("--hail", action=argparse.BooleanOptionalAction, default=None,
                   help="run the Hail peer when hail imports (default: on; 1-3 min in the quick tier)")
    p.add_argument("--vcf2zarr", choices=("all", "gt", "none"),
                   help="size peer vcf2zarr (when bio2zarr imports): both storage cohorts, the GT-only one, or none "
                        "(default: all quick, gt full)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                   help="where the JSON, markdown and PNG go (default: benchmarks/results)")
    p.add_argument("--work", type=Path, help="work folder; cohorts in it are reused (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--thresholds", type=Path, help="thresholds file (default: benchmarks/thresholds.toml)")
    p.add_argument("--no-check", action="store_true", help="report only; never exit non-zero for a threshold")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace, work: Path) -> Config:
    tier = "quick" if args.quick else "full"
    d = dict(TIERS[tier])
    for name in ("samples", "institutions", "mb", "queries", "assoc_queries", "cli_runs"):
        if getattr(args, name) is not None:
            d[name] = getattr(args, name)
    if args.repeats is not None:
        d["ingest_repeats"] = args.repeats
    if args.samples is not None or args.mb is not None:  # an explicit cohort: ingest reads its first file
        d["ingest_input"] = None
    if args.scaling is not None:
        d["scaling"] = tuple(int(x) for x in args.scaling.split(",") if x.strip())
    if args.hail is not None:
        d["hail"] = args.hail
    if args.vcf2zarr is not None:
        d["vcf2zarr"] = args.vcf2zarr
    return Config(tier=tier, seed=args.seed, work=work, **d)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # our own progress at INFO; everything else (Dask, msprime, genolake) only when it goes wrong
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    log.setLevel(logging.INFO)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # scipy on zero cells of 2x2 tables
    from benchmarks.suites import report

    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="genolake-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # throwaway lakes get throwaway pseudonym keys, never the user's key folder
    os.environ["GENOLAKE_KEY_DIR"] = str(work / "keys")
    os.environ.pop("GENOLAKE_KEY_FILE", None)
    cfg = make_config(args, work)
    ctx = Context(cfg)
    started, t0 = report.now(), time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    log.info("genolake benchmarks, %s tier: %d x %d samples x %g Mb; work folder %s", cfg.tier, cfg.institutions,
             cfg.samples, cfg.mb, work)
    crashed: list[str] = []
    try:
        for name in (s for s in SUITES if s in suites):
            log.info("== %s", name)
            t = time.perf_counter()
            try:
                importlib.import_module(f"benchmarks.suites.{name}").run(ctx)
            except Exception as exc:
                traceback.print_exc()
                crashed.append(f"{name}: {type(exc).__name__}: {exc}")
                ctx.results.fail(f"{name}.*", f"suite crashed: {type(exc).__name__}: {exc}")
            ctx.results.seconds[name] = time.perf_counter() - t
        from benchmarks.suites.storage import after_all

        after_all(ctx)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    thresholds = args.thresholds or report.THRESHOLDS
    failures = report.evaluate(ctx.results, cfg.tier, thresholds)
    meta: dict[str, Any] = {
        "started": started, "date": f"{started:%Y-%m-%d %H:%M} UTC", "seconds": time.perf_counter() - t0,
        "commit": report.git_commit(), "load_start": load_start,
        "load_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    json_path, md_path, md = report.write(ctx.results, cfg, args.out, meta)
    print(md)
    print(f"wrote {json_path} and {md_path} ({meta['seconds'] / 60:.1f} min)", file=sys.stderr)
    problems = failures + [f"{e.key}: {e.reason}" for e in ctx.results.errors]
    for msg in problems:
        print(f"benchmarks: FAIL {msg}", file=sys.stderr)
    if problems and not args.no_check:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
