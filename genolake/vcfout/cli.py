"""`genolake annotate-vcf` and `genolake export vcf` (thin: parse, call the library, print a summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import LakeOpt, QuietOpt, stderr_console


def annotate_vcf_cmd(
    vcf: Annotated[Path, typer.Argument(help="VCF, bgzipped VCF or BCF to annotate (any samples, or sites only).")],
    lake: LakeOpt,
    out: Annotated[Path, typer.Option("--output", "-o", help="Output OUT.vcf.gz (bgzipped, tabix-indexed).")],
    fields: Annotated[str, typer.Option(
        "--fields", help="Comma-separated: ac,an,af,nhomalt,nhemi,faf95,grpmax.")] = "ac,an,af",
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help="joint (default), an institution, or all (joint + every institution); repeatable.")] = None,
    stratum: Annotated[list[str] | None, typer.Option(
        "--stratum", help="COLUMN=value of a categorical phenotype, e.g. sex=female; repeatable.")] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Prefix of the INFO keys.")] = "GL_",
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="FASTA to left-align indels before matching (the one the lake was ingested with).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Annotate a VCF with the lake's allele frequencies (Number=A INFO fields GL_AC, GL_AN, GL_AF, ...)."""
    from genolake.progress import records_progress
    from genolake.vcfout.annotate_vcf import annotate_vcf

    with records_progress("annotate-vcf", enabled=not quiet) as progress:
        rep = annotate_vcf(lake, vcf, out, fields=fields, scopes=scope or ["joint"], strata=stratum or [],
                           prefix=prefix, reference=reference, progress=progress)
    if not quiet:
        for w in rep.warnings:
            stderr_console().print(f"warning: {w}", soft_wrap=True, markup=False)
        stderr_console().print(
            f"wrote {rep.output}: {rep.n_records:,} records, {rep.n_alleles:,} alleles ({rep.n_found:,} in the lake, "
            f"{rep.n_absent:,} not seen with an AN from absent-site samples), {len(rep.info_fields)} INFO fields "
            f"from {rep.source}, {rep.seconds:.1f} s", soft_wrap=True, markup=False)


def export_vcf_cmd(
    lake: LakeOpt,
    out: Annotated[Path, typer.Option("--output", "-o", help="OUT.vcf.gz (tabix) or OUT.bcf (CSI index).")],
    institution: Annotated[str | None, typer.Option("--institution", "-i", help="Only this institution.")] = None,
    region: Annotated[list[str] | None, typer.Option(
        "--region", "-r", help="CONTIG[:START-END], 1-based inclusive; repeatable.")] = None,
    regions_file: Annotated[Path | None, typer.Option("--regions-file", "-R", help="BED file of regions.")] = None,
    samples: Annotated[Path | None, typer.Option(
        "--samples", "-S", help="Sample IDs, one per line (pseudonyms, or raw IDs given to --reveal).")] = None,
    reveal: Annotated[Path | None, typer.Option(
        "--reveal", help="Raw IDs (one per line, or a VCF's samples) of --institution's own samples: name those "
                         "columns by raw ID (needs the lake key).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write the lake's genotypes to VCF/BCF: one column per (pseudonymised) sample, biallelic records as stored."""
    from genolake.vcfout.export_vcf import export_vcf

    rep = export_vcf(lake, out, institution=institution, regions=region or [], regions_file=regions_file,
                     samples_file=samples, reveal=reveal)
    if not quiet:
        stderr_console().print(
            f"wrote {rep.output}: {rep.n_records:,} records x {rep.n_samples:,} samples"
            + (f" ({rep.n_revealed:,} by raw ID)" if rep.n_revealed else "")
            + f", {rep.n_genotypes_stored:,} stored calls, {rep.seconds:.1f} s", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add `annotate-vcf` to the main app and `vcf` to its `export` group."""
    from genolake.compute.cli_aggregate import export_app

    app.command("annotate-vcf")(annotate_vcf_cmd)
    export_app.command("vcf")(export_vcf_cmd)
