"""`genolake aggregate` and `genolake export hail` (thin: parse, call the library, print a summary).

Registered on the main app by :func:`register` (``genolake/cli.py``). Imports stay inside the commands so that
``genolake --help`` does not load Dask, scipy or Hail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import LakeOpt, QuietOpt, SchedulerOpt, WorkersOpt, stderr_console

ByOpt = Annotated[
    list[str] | None,
    typer.Option("--by", help="Phenotype column to stratify by (repeatable); each value becomes a stratum COLUMN=value."),
]
FafGroupsOpt = Annotated[
    list[str] | None,
    typer.Option("--faf-groups", help="--by column(s) (e.g. genetic ancestry) over whose strata the joint faf95 is "
                                      "maximised and grpmax chosen (gnomAD's fafmax/grpmax)."),
]
AdjOpt = Annotated[
    bool,
    typer.Option("--adj", help="Also count only genotypes passing gnomAD's adj filter (GQ>=20, DP>=10 (5 haploid), "
                               "het AD[alt]/DP>=0.2 where stored), as strata prefixed 'adj:'."),
]
DedupeOpt = Annotated[
    bool,
    typer.Option("--dedupe", help="Count each person found in several copies (`genolake samples duplicates`) once, "
                                  "keeping the copy of the institution ingested first."),
]
DedupeSitesOpt = Annotated[
    int | None, typer.Option("--dedupe-min-sites", help="--dedupe: compare people on at least this many sites (500).")
]
EngineOpt = Annotated[str, typer.Option("--engine", help="dask (default) or hail (pip install 'genolake\\[hail]'; Java).")]

export_app = typer.Typer(help="Export the lake for other tools.", no_args_is_help=True, pretty_exceptions_enable=False)


def aggregate_cmd(
    lake: LakeOpt,
    by: ByOpt = None,
    faf_groups: FafGroupsOpt = None,
    adj: AdjOpt = False,
    dedupe: DedupeOpt = False,
    dedupe_min_sites: DedupeSitesOpt = None,
    engine: EngineOpt = "dask",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Compute allele frequencies (joint, per institution, per --by stratum) into the table `allele_frequencies`."""
    from genolake.compute.aggregate import aggregate
    from genolake.progress import records_progress

    with records_progress("aggregate", enabled=not quiet, unit="sites") as progress:
        report = aggregate(lake, by=by or [], faf_groups=faf_groups or [], adj=adj, engine=engine, workers=workers,
                           scheduler=scheduler, progress=progress, dedupe=dedupe,
                           dedupe_min_sites=dedupe_min_sites)
    if not quiet:
        stderr_console().print(
            f"allele_frequencies: {report.rows:,} rows for {report.sites:,} variants, "
            f"{len(report.institutions)} institution(s), {len(report.strata)} strata"
            + (" (+ adj)" if adj else "") + f", {report.parts} part(s), {report.engine} engine, "
            f"{report.seconds:.1f} s", soft_wrap=True)
        if dedupe:
            stderr_console().print(f"--dedupe: {report.duplicate_groups} person(s) found in several copies; "
                                   f"{report.dropped} duplicate copies not counted (the copy of the institution "
                                   "ingested first is kept)", soft_wrap=True)


@export_app.command("hail")
def export_hail_cmd(
    out: Annotated[Path, typer.Argument(help="Output MatrixTable folder (e.g. lake.mt).")],
    lake: LakeOpt,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Write the lake as a Hail MatrixTable (locus/alleles x pseudonymised samples with phenotypes; GT, GQ, DP, AD)."""
    from genolake.compute.export import export_hail

    info = export_hail(lake, out, overwrite=overwrite)
    stderr_console().print(f"wrote {info['path']}: {info['rows']:,} variants x {info['cols']:,} samples "
                           f"({info['reference_genome']})", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `aggregate` and the `export` group to the main app."""
    app.command("aggregate")(aggregate_cmd)
    app.add_typer(export_app, name="export")
