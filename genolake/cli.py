"""The `genolake` command line (typer). Commands are thin: parse, call one library function, print."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import FormatOpt, LakeOpt, QuietOpt, SchedulerOpt, WorkersOpt, stderr_console
from genolake.cli_migrate import register as register_migrate
from genolake.compute.cli_aggregate import register as register_aggregate
from genolake.compute.cli_annotate import register as register_annotate
from genolake.query.cli import app as query_app
from genolake.query.cli import phenotypes_app
from genolake.samples.cli import register as register_samples
from genolake.serve.cli import register as register_serve
from genolake.stats.cli_pca import register as register_pca
from genolake.vcfout.cli import register as register_vcfout

app = typer.Typer(
    help="genolake: a genomic variant data lake (VCF -> pseudonymised, partitioned Parquet) and query engine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(query_app, name="query")
register_annotate(app)
app.add_typer(phenotypes_app, name="phenotypes")
register_aggregate(app)
register_vcfout(app)
register_samples(app)
register_pca(app)
register_serve(app)
register_migrate(app)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False) -> None:
    from genolake.launch import setup_logging

    setup_logging(verbose)


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="VCF, bgzipped VCF (.vcf.gz, indexed or not) or BCF files.")],
    lake: LakeOpt,
    institution: Annotated[str, typer.Option("--institution", "-i", help="Name of the contributing institution.")],
    build: Annotated[str | None, typer.Option("--build", help="GRCh37 or GRCh38 when the header does not say.")] = None,
    reference: Annotated[Path | None, typer.Option("--reference", help="FASTA to left-align indels (pysam).")] = None,
    absent_as_ref: Annotated[bool, typer.Option("--absent-as-ref", help="Sites absent from the file are hom-ref for its samples.")] = False,
    callable_regions: Annotated[Path | None, typer.Option("--callable-regions", help="BED: absent sites inside are hom-ref.")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace files of this institution that hold the same samples.")] = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Add VCF/BCF files of one institution to the lake (atomic; a file already there is a no-op)."""
    from genolake.ingest.pipeline import ingest as run_ingest
    from genolake.progress import records_progress

    with records_progress("ingest", enabled=not quiet) as progress:
        report = run_ingest(
            lake, institution, list(files), build=build, reference=reference, absent_as_ref=absent_as_ref,
            callable_regions=callable_regions, replace=replace, workers=workers, scheduler=scheduler,
            progress=progress,
        )
    from genolake.ingest.pipeline import warnings_summary

    for f in report.files:
        for w in f.warnings:
            logging.getLogger("genolake.ingest").info("file %d of %d: %s", f.position, report.n_inputs, w)
    if not quiet:
        console = stderr_console()
        for f in sorted(report.files, key=lambda f: f.position):
            # input file names are sensitive (they often hold sample IDs): position and short checksum only
            label = f.label(report.n_inputs)
            if f.warnings:
                console.print(f"{label}: {warnings_summary(f.warnings)}; --verbose for the full text", soft_wrap=True)
            if f.status == "skipped":
                console.print(f"{label}: {f.message}", soft_wrap=True)
            else:
                console.print(
                    f"{label}: {f.n_records:,} records -> {f.n_variants:,} variants, {f.n_calls:,} calls, "
                    f"{f.n_samples:,} samples" + (f" ({f.n_skipped:,} records without ALT skipped)" if f.n_skipped else "")
                    + (f"; {f.message}" if f.message else ""),
                    soft_wrap=True,
                )
        for w in report.warnings:
            console.print(f"warning: {w}", soft_wrap=True, markup=False)
        rate = report.genotypes / report.seconds if report.seconds else 0
        if any(f.status != "skipped" for f in report.files):
            console.print(f"ingested into {report.lake} as {report.institution!r} in {report.seconds:.1f} s "
                          f"({rate:,.0f} genotypes/s, {report.runner})", soft_wrap=True)


@app.command()
def info(
    lake: LakeOpt,
    fmt: FormatOpt = "table",
    part: Annotated[str, typer.Option("--part", help="For tsv/csv (one table): summary, institutions or files.")]
    = "institutions",
) -> None:
    """What the lake holds: institutions, files (checksum, time, counts, absent-site mode), samples, bytes."""
    import pyarrow as pa

    from genolake.errors import UserInputError
    from genolake.output import emit_object, emit_table, to_json
    from genolake.query.lake import Lake

    if part not in ("summary", "institutions", "files"):
        raise UserInputError(f"--part {part!r}: use summary, institutions or files")
    data = Lake(lake).info()
    if fmt == "json":
        sys.stdout.write(to_json(data) + "\n")
        return
    head = {k: v for k, v in data.items() if not isinstance(v, list)}
    if fmt != "table":  # tsv/csv/parquet: one rectangular table
        if part == "summary":
            emit_object(head, fmt)
        else:
            rows = data[part]
            emit_table(pa.Table.from_pylist(rows) if rows else pa.table({}), fmt)
        return
    emit_object(head, "table")
    if data["institutions"]:
        emit_table(pa.Table.from_pylist(data["institutions"]), fmt, title="institutions")
    if data["files"]:
        emit_table(pa.Table.from_pylist(data["files"]), fmt, title="files")


@app.command()
def verify(
    files: Annotated[list[Path], typer.Argument(help="The VCF/BCF files that were ingested.")],
    lake: LakeOpt,
    institution: Annotated[str, typer.Option("--institution", "-i")],
) -> None:
    """Re-read ingested VCFs with cyvcf2 and check every record and genotype against the lake."""
    from genolake.ingest.verify import verify_files

    n = verify_files(lake, institution, list(files))
    stderr_console().print(f"verified {n:,} split records: lake and VCF agree")


@app.command()
def demo(
    lake: Annotated[Path, typer.Option("--lake", help="Where to create the demo lake.")] = Path("genolake-demo-lake"),
    workers: WorkersOpt = None,
) -> None:
    """Ingest the bundled sample VCFs as three institutions and print a few answers."""
    from genolake.demo import run_demo

    run_demo(lake, workers=workers)


def main() -> None:
    """The typer app on ``sys.argv`` (the program's entry point, :func:`genolake.launch.main`, sends here every
    command line it does not run itself)."""
    import click

    from genolake.cli_narrow import narrowed, prepare
    from genolake.launch import guarded

    prepare(sys.argv[1:])  # before numpy is imported (genolake.cli_narrow)
    with guarded():
        try:
            code = narrowed(app, sys.argv[1:])(standalone_mode=False)  # only the named command is built
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            raise KeyboardInterrupt from None
        if code == 130:  # typer turns Ctrl-C into `return 130` outside standalone mode (typer.core._main)
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)


if __name__ == "__main__":
    main()
