"""`genolake pca`: principal components of ancestry stored as phenotypes pc1..pcK (thin: parse, call, print)."""

from __future__ import annotations

from typing import Annotated

import typer

from genolake.cli_common import FormatOpt, LakeOpt


def register(app: typer.Typer) -> None:
    app.command("pca")(pca_cmd)


def pca_cmd(
    lake: LakeOpt,
    k: Annotated[int, typer.Option("--k", help="Number of components (phenotypes pc1..pcK).")] = 10,
    min_af: Annotated[float, typer.Option("--min-af", help="Use variants with allele frequency in [F, 1-F].")] = 0.05,
    r2: Annotated[float, typer.Option("--r2", help="LD thinning: keep a variant if r^2 <= this with the kept ones before it.")] = 0.2,
    window: Annotated[int, typer.Option("--window", help="LD thinning window, in variants.")] = 50,
    max_variants: Annotated[int, typer.Option("--max-variants", help="At most this many variants (evenly spaced).")] = 20_000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and report; do not store the phenotypes.")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Principal components over common, LD-thinned autosomal variants, stored as numeric phenotypes pc1..pcK
    (use them with `genolake query assoc --covariates pc1,pc2,...`)."""
    from genolake.output import emit_object
    from genolake.stats.pca import run_pca

    report = run_pca(lake, k=k, min_af=min_af, r2=r2, window=window, max_variants=max_variants, write=not dry_run)
    emit_object(report, fmt)
