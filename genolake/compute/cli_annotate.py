"""The `genolake annotate` command (thin: parse, call :func:`genolake.compute.annotate.annotate`, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from genolake.cli_common import LakeOpt, QuietOpt, SchedulerOpt, WorkersOpt, stderr_console

PathOpt = Path | None


def annotate_cmd(
    lake: LakeOpt,
    genes: Annotated[PathOpt, typer.Option("--genes", help="GTF/GFF3 (GENCODE, Ensembl) or a gene list "
                                           "`chrom start end symbol`.")] = None,
    clinvar: Annotated[PathOpt, typer.Option("--clinvar", help="ClinVar VCF (NCBI or MacArthur format).")] = None,
    dbsnp: Annotated[PathOpt, typer.Option("--dbsnp", help="Sites VCF whose ID column holds rsIDs.")] = None,
    frequencies: Annotated[list[Path] | None, typer.Option(
        "--frequencies", help="Sites VCF with AF/AC/AN (gnomAD, ...); repeat with one --prefix each.")] = None,
    prefix: Annotated[list[str] | None, typer.Option(
        "--prefix", help="Column prefix of the --frequencies source at the same position, e.g. gnomad.")] = None,
    csq: Annotated[bool, typer.Option("--csq", help="Parse VEP CSQ / SnpEff ANN stored at ingest.")] = False,
    csq_header: Annotated[list[Path] | None, typer.Option(
        "--csq-header", help="Original VCF whose header gives the CSQ/ANN field order (implies --csq).")] = None,
    source: Annotated[list[str] | None, typer.Option(
        "--source", help="A source as TYPE=PATH (genes, clinvar, dbsnp).")] = None,
    gene_coords: Annotated[str, typer.Option(
        "--gene-coords", help="Gene list coordinates: auto (.bed files: bed), 1-based (inclusive) or bed.")] = "auto",
    source_build: Annotated[str | None, typer.Option(
        "--source-build", help="Build of sources whose header does not say (GRCh37/GRCh38).")] = None,
    reference: Annotated[PathOpt, typer.Option(
        "--reference", help="FASTA to left-align source indels (for lakes ingested with --reference).")] = None,
    require_index: Annotated[bool, typer.Option(
        "--require-index", help="Refuse VCF sources without a usable tabix/CSI index.")] = False,
    freq_fields: Annotated[str | None, typer.Option(
        "--freq-fields", help="INFO keys of the frequency columns, e.g. af=AF_nfe,ac=AC_nfe,an=AN_nfe.")] = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Annotate every variant of the lake: genes, ClinVar, rsIDs, external frequencies, VEP/SnpEff consequences.

    Atomic and versioned: each source's checksum, build and date are recorded; a new run with a source replaces
    that source's columns and keeps the others; genotypes are never rewritten.
    """
    from genolake.compute.annotate import annotate
    from genolake.errors import UserInputError
    from genolake.progress import records_progress

    freqs = list(frequencies or [])
    prefixes = list(prefix or [])
    if len(freqs) != len(prefixes):
        raise UserInputError("give one --prefix per --frequencies file (in the same order)")
    pairs: list[tuple[str, Any]] = []
    for item in source or []:
        kind, sep, path = item.partition("=")
        if not sep or not path:
            raise UserInputError(f"--source {item!r}: use TYPE=PATH, e.g. clinvar=clinvar.vcf.gz")
        pairs.append((kind.strip(), path.strip()))
    with records_progress("annotate", enabled=not quiet, unit="variants") as progress:
        report = annotate(
            lake, genes=genes, clinvar=clinvar, dbsnp=dbsnp, frequencies=list(zip(freqs, prefixes, strict=True)),
            csq=csq, csq_headers=list(csq_header or []), sources=pairs, gene_coords=gene_coords,
            source_build=source_build, reference=reference, require_index=require_index, freq_fields=freq_fields,
            workers=workers, scheduler=scheduler, progress=progress,
        )
    if quiet:
        return
    console = stderr_console()
    for w in report.warnings:
        console.print(f"warning: {w}", soft_wrap=True, markup=False)
    for s in report.sources:
        label = f"{s.kind}" + (f" ({s.prefix})" if s.prefix else "")
        console.print(f"{label}: {s.name} [{s.source_id}, {s.read_mode}]: {s.n_records:,} records, "
                      f"{s.n_annotated:,} variants annotated", soft_wrap=True, markup=False)
    console.print(f"annotated {report.n_variants:,} variants in {report.lake} in {report.seconds:.1f} s "
                  f"({report.variants_per_second:,.0f} variants/s)", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add the `annotate` command to the main app."""
    app.command("annotate")(annotate_cmd)
