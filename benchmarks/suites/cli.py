"""CLI cold start: `genolake query variant` as a whole process vs `bcftools view -r` as a whole process.

"Cold" means a new process each time (interpreter start, imports, opening the lake); the files themselves
are in the page cache after one untimed run of each command, as they are for a user who asks twice.
Context rows: a Python script doing the point query with pysam over every file, and `python -c pass`
(the interpreter's own start, a floor no Python tool can go below). The lake is the one issue 10 names,
aggregated and annotated: when the aggregate and annotate suites did not run before (``--suites cli``), it is
aggregated (``--by`` the cohort's group column, in process) and annotated (the annotate suite's generated
ClinVar-like VCF and gene list) here, untimed. Each command's CPU time (user + system, its threads included)
is reported beside the wall time: on a shared machine it moves less with the load.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.suites.common import Measure, have_tool, run_timed, summary
from benchmarks.suites.context import Context
from benchmarks.suites.queries import pick_variants, variant_id

log = logging.getLogger("benchmarks")

PYSAM_SCRIPT = """
import sys, pysam
contig, pos, ref, alt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ac = an = 0
for path in sys.argv[5:]:
    f = pysam.VariantFile(path)
    c = contig if contig in f.header.contigs else (contig[3:] if contig.startswith("chr") else "chr" + contig)
    for rec in f.fetch(c, pos - 1, pos):
        if rec.pos == pos and rec.ref == ref and alt in rec.alts:
            k = rec.alts.index(alt) + 1
            for s in rec.samples.values():
                for a in s.allele_indices:
                    if a is not None:
                        an += 1
                        ac += a == k
print(contig, pos, ref, alt, ac, an, ac / an if an else None)
"""


def entry_point() -> str:
    """``module:function`` of the `genolake` console script in this checkout's pyproject.toml."""
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["scripts"]["genolake"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "genolake.launch:main"


def genolake_cmd() -> list[str]:
    """The command that runs `genolake` (see :func:`_genolake_cmd`; found once per run)."""
    return list(_genolake_cmd())


@functools.cache
def _genolake_cmd() -> tuple[str, ...]:
    """The console script installed with this Python (what `pip install` puts in a venv's bin/). A `genolake`
    found first on PATH can be a version manager's shim (pyenv's is a bash script: +0.1 s a run).

    A script installed before the entry point changed (an editable install keeps its old script until it is
    installed again) would time the old start-up: then the command is what the script would run now, the entry
    point of pyproject.toml, on this Python (a warning says to reinstall)."""
    module, _, func = entry_point().partition(":")
    beside = Path(sys.executable).with_name("genolake")
    exe = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("genolake")
    if exe:
        try:
            current = f"from {module} import {func}" in Path(exe).read_text(errors="replace")
        except OSError:
            current = False
        if current:
            return (exe,)
        log.warning("  the installed genolake script (%s) does not run %s:%s; timing the entry point itself "
                    "(reinstall: pip install -e .)", exe, module, func)
    # -P: no working folder on sys.path (as for a script), so a checkout there is not imported instead
    return (sys.executable, "-P", "-c", f"import sys\nfrom {module} import {func}\nsys.argv[0] = 'genolake'\n"
            f"sys.exit({func}())")


def has_query_variant() -> bool:
    proc = subprocess.run([*genolake_cmd(), "query", "variant", "--help"], capture_output=True, check=False)
    return proc.returncode == 0


def prepare_lake(ctx: Context, lake_path: Path) -> list[str]:
    """Aggregate and annotate the lake unless earlier suites did (untimed); returns what was done here."""
    import genolake

    with genolake.open(lake_path) as lake:
        cat = lake.engine.catalog
        aggregated = "allele_frequencies" in cat.tables and cat.frequencies_current
        annotated = "annotations" in cat.tables
    done: list[str] = []
    cohort = ctx.cohort()
    if not aggregated:
        from benchmarks.suites.cohort import group_column
        from genolake.compute.aggregate import aggregate

        by = group_column(cohort)
        aggregate(lake_path, by=[by] if by else [], workers=0)
        done.append("aggregated" + (f" --by {by}" if by else ""))
    if not annotated and not all(have_tool(t) for t in ("bcftools", "bgzip", "tabix")):
        done.append("not annotated (the sources need bcftools, bgzip and tabix)")
    elif not annotated:
        from benchmarks.suites.annotate import prepare, uses_chr

        scratch = ctx.work / "cli-scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        with genolake.open(lake_path) as lake:
            sources = prepare(ctx, cohort, lake, scratch)
        clin, genes = sources[uses_chr(cohort.vcfs[0])]
        run_timed([*genolake_cmd(), "annotate", "--lake", str(lake_path), "--clinvar", str(clin), "--genes",
                   str(genes), "--workers", "0"])
        shutil.rmtree(scratch, ignore_errors=True)
        done.append("annotated (ClinVar-like + genes)")
    return done


def _timed_cpu(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process (CPU: user + system of the process and its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run_timed(cmd, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run(ctx: Context) -> None:
    import genolake

    res, cfg = ctx.results, ctx.config
    cohort = ctx.cohort()
    lake_path = ctx.lake()
    prepared = prepare_lake(ctx, lake_path)
    with genolake.open(lake_path) as lake:
        variants = pick_variants(lake, cfg.cli_runs, cfg.seed + 10)
    vcf0 = cohort.vcfs[0]
    import pysam

    with pysam.VariantFile(str(vcf0)) as f:
        contigs0 = set(f.header.contigs)

    def contig0(c: str) -> str:
        return c if c in contigs0 else (c.removeprefix("chr") if c.startswith("chr") else "chr" + c)

    commands: dict[str, tuple[str, str, list[Sequence[str]]]] = {}
    if has_query_variant():
        commands["cli.genolake_variant"] = (
            "genolake", "genolake query variant ID --format json (whole process, all institutions)",
            [[*genolake_cmd(), "query", "variant", "--lake", str(lake_path), "--format", "json", variant_id(v)]
             for v in variants])
    else:
        res.skip("cli.genolake_variant", "`genolake query variant` is not implemented yet")
    if have_tool("bcftools"):
        commands["cli.bcftools_view"] = (
            "bcftools", "bcftools view -H -r (whole process, one institution's file)",
            [["bcftools", "view", "-H", "-r", f"{contig0(v[0])}:{v[1]}-{v[1]}", str(vcf0)] for v in variants])
    else:
        res.skip("cli.bcftools_view", "bcftools is not on the PATH")
    commands["cli.python_pysam"] = (
        "python", "python script: pysam fetch + AC/AN in every file (context)",
        [[sys.executable, "-c", PYSAM_SCRIPT, v[0], str(v[1]), v[2], v[3], *map(str, cohort.vcfs)] for v in variants])
    commands["cli.python_startup"] = ("python", "python -c pass (interpreter start, floor; context)",
                                      [[sys.executable, "-c", "pass"] for _ in variants])
    # Python's bytecode is kept as an installed package has it (pip compiles it): a shell or CI that sets
    # PYTHONDONTWRITEBYTECODE would otherwise have every run compile genolake's modules from source again
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ctx.work / "pycache")
    for _, _, cmds in commands.values():  # warm the page cache (and write the bytecode), untimed
        run_timed(cmds[0], env=env)
    times: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    load = [os.getloadavg()[0]]
    for i in range(len(variants)):
        for key, (_, _, cmds) in commands.items():
            wall, used = _timed_cpu(cmds[i], env)
            times[key].append(wall)
            cpu[key].append(used)
    load.append(os.getloadavg()[0])
    floor = summary(times["cli.python_startup"])[0] if times.get("cli.python_startup") else None
    for key, (tool, what, _) in commands.items():
        med, p95 = summary(times[key])
        cpu_med = summary(cpu[key])[0]
        note = f"CPU {cpu_med * 1e3:.0f} ms" + (f"; {med / floor:.1f}x python -c pass" if floor else "")
        res.add(Measure(key, tool, what, "s", med, p95=p95, n=len(times[key]), note=note))
    res.extra["cli"] = {"lake": "aggregated and annotated", "by_this_suite": prepared,
                        "load_average": load, "cpu_seconds_median": {k: summary(v)[0] for k, v in cpu.items()}}
    res.compare("cli.variant_vs_bcftools", "cli.genolake_variant", "cli.bcftools_view", "time",
                "CLI cold start vs bcftools view -r")
    res.compare("cli.variant_vs_python_pysam", "cli.genolake_variant", "cli.python_pysam", "time",
                "CLI cold start vs a pysam script")
    res.compare("cli.variant_vs_python_startup", "cli.genolake_variant", "cli.python_startup", "time",
                "CLI cold start vs python -c pass")
