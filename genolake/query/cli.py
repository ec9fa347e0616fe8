"""`genolake query ...` and `genolake phenotypes ...` subcommands (thin: parse, call the library, print).

Imports stay inside the commands: `genolake query variant` must start fast (no pandas, Dask or scipy).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import FormatOpt, LakeOpt, OutputOpt

app = typer.Typer(help="Query the lake (read-only).", no_args_is_help=True, pretty_exceptions_enable=False)
phenotypes_app = typer.Typer(help="Sample phenotypes (TSV/CSV or PED/FAM).", no_args_is_help=True,
                             pretty_exceptions_enable=False)

WhereOpt = Annotated[
    str | None,
    typer.Option("--where", help="Phenotype condition, e.g. \"case_status = 'case' AND age > 50\" "
                                 "(=, !=, <, >, IN (...), BETWEEN, LIKE, CONTAINS, IS NULL, AND/OR/NOT)."),
]
RegionOpt = Annotated[str | None, typer.Option("--region", help="CONTIG:START-END, 1-based inclusive.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Stop the query after this many seconds.")]
MemoryOpt = Annotated[str | None, typer.Option("--memory-limit",
                                               help="Memory for the query, e.g. 4GB (default: a quarter of RAM).")]


def _open(lake: Path):  # type: ignore[no-untyped-def]
    from genolake.query.cli_variant import open_lake

    return open_lake(lake)


@app.command("sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="One read-only SQL statement over the lake's views.")],
    lake: LakeOpt,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    timeout: TimeoutOpt = 300.0,
    memory_limit: MemoryOpt = None,
) -> None:
    """Run read-only SQL over the views: variants, variant_files, calls, samples, phenotypes, files, ploidy, ..."""
    from genolake.output import emit_table
    from genolake.query.sandbox import parse_size

    limit = parse_size(memory_limit) if memory_limit else None
    emit_table(_open(lake).sql(query, timeout=timeout, memory_limit=limit), fmt, output)


@app.command("variant")
def variant_cmd(
    lake: LakeOpt,
    variants: Annotated[list[str] | None, typer.Argument(
        help="chr20-1014254-A-T, 20:1014254:A:T, 20_1014254_A_T, chr20:1014254A>T or an rsID; several, or - "
             "for one per line on stdin.")] = None,
    ids: Annotated[Path | None, typer.Option("--ids", help="A file of variant IDs, one per line.")] = None,
    part: Annotated[str, typer.Option(
        "--part", help="For tsv/csv (one table): frequencies, phenotypes, variant or annotations.")] = "frequencies",
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Frequencies (joint and per institution), carriers by phenotype and annotations of variants."""
    from genolake.query.cli_variant import run_variant

    run_variant(lake=lake, variants=variants, ids=ids, part=part, fmt=fmt, output=output)


@app.command("region")
def region_cmd(
    lake: LakeOpt,
    region: Annotated[list[str] | None, typer.Argument(
        help="CONTIG:START-END (1-based, inclusive), CONTIG:START- (to the end), CONTIG; commas for several.")] = None,
    regions: Annotated[list[str] | None, typer.Option(
        "--regions", "-r", help="As bcftools -r: regions, comma-separated (repeatable).")] = None,
    regions_file: Annotated[Path | None, typer.Option(
        "--regions-file", "-R", help="As bcftools -R: a .bed file (0-based) or CHROM POS / CHROM BEG END (1-based).")] = None,
    max_af: Annotated[float | None, typer.Option("--max-af", help="Only variants with joint AF <= this.")] = None,
    min_ac: Annotated[int | None, typer.Option("--min-ac", help="Only variants with joint AC >= this.")] = None,
    institution: Annotated[str | None, typer.Option("--institution", "-i",
                                                    help="Count this institution's samples only.")] = None,
    where: WhereOpt = None,
    clinvar: Annotated[str | None, typer.Option("--clinvar", help="ClinVar classes, e.g. pathogenic|likely_pathogenic (needs annotate).")] = None,
    consequence: Annotated[str | None, typer.Option("--consequence", help="Consequence terms or impacts (needs annotate).")] = None,
    max_external_af: Annotated[float | None, typer.Option("--max-external-af", help="Greatest external AF at most this (needs annotate).")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Variants in regions with joint frequencies, in position order (--where: carried by matching samples)."""
    from genolake.errors import UserInputError
    from genolake.output import emit_table
    from genolake.query.ids import parse_regions, read_regions_file
    from genolake.query.region import regions_table

    lk = _open(lake)
    style = lk.store.contig_style
    regs = parse_regions([*(region or []), *(regions or [])], style)
    if regions_file is not None:
        regs += read_regions_file(regions_file, style)
    if not regs:
        raise UserInputError("give a region: CONTIG:START-END, -r REGIONS or -R FILE")
    table = regions_table(lk, list(regs), max_af=max_af, min_ac=min_ac, institution=institution, where=where,
                          clinvar=clinvar, consequence=consequence, max_external_af=max_external_af)
    emit_table(table, fmt, output)


@app.command("carriers")
def carriers_cmd(
    lake: LakeOpt,
    variants: Annotated[list[str] | None, typer.Argument(
        help="Variant IDs or rsIDs; several, or - for one per line on stdin.")] = None,
    ids: Annotated[Path | None, typer.Option("--ids", help="A file of variant IDs, one per line.")] = None,
    where: WhereOpt = None,
    reveal: Annotated[Path | None, typer.Option("--reveal", help="Your own raw IDs (a list or a VCF): show them "
                                                                 "next to your carriers' pseudonyms (needs "
                                                                 "--institution and the lake's key).")] = None,
    institution: Annotated[str | None, typer.Option("--institution", "-i", help="Your institution (--reveal).")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Pseudonymised carriers of variants with institution, genotype and phenotypes, plus counts.

    With several IDs the table has a leading `variant` column. A variant no ingested file lists is reported on
    stderr with the variants at its position (and, for one ID with --format json, as {"observed": false, ...}).
    """
    from genolake.cli_common import say
    from genolake.output import emit_table, to_json
    from genolake.query.ids import collect_ids
    from genolake.query.variant import carriers_table, not_observed_message, resolve, site_rows, variants_near

    texts = collect_ids(list(variants or []), ids)
    lk = _open(lake)
    keys = [resolve(lk, t) for t in texts]  # every ID checked before anything is printed
    tables = []
    for key in keys:
        if not site_rows(lk, key)[0]:
            say("genolake: " + not_observed_message(lk, key))
            if len(keys) == 1 and fmt == "json":
                text = to_json({"variant": str(key), "observed": False, "at_position": variants_near(lk, key),
                                "carriers": []}) + "\n"
                output.write_text(text) if output else sys.stdout.write(text)
                return
        table = carriers_table(lk, key, where=where)
        if reveal is not None:
            from genolake.samples.lookup import reveal_carriers

            table = reveal_carriers(lake, table, institution=institution, path=reveal)
        _carrier_summary(str(key) if len(keys) > 1 else "", table)
        if len(keys) > 1:
            import pyarrow as pa

            table = table.add_column(0, "variant", pa.array([str(key)] * table.num_rows, pa.string()))
        tables.append(table)
    if len(tables) > 1:
        import pyarrow as pa

        emit_table(pa.concat_tables(tables, promote_options="permissive"), fmt, output)
    else:
        emit_table(tables[0], fmt, output)


def _carrier_summary(label: str, table) -> None:  # type: ignore[no-untyped-def]
    from genolake.cli_common import say

    rows = table.select(["institution", "alt_count", "ploidy"]).to_pylist()
    per: dict[str, int] = {}
    for r in rows:
        per[r["institution"]] = per.get(r["institution"], 0) + 1
    hom = sum(1 for r in rows if r["ploidy"] == 2 and r["alt_count"] == 2)
    hemi = sum(1 for r in rows if r["ploidy"] == 1)
    say((f"{label}: " if label else "")
        + f"{len(rows)} carriers ({len(rows) - hom - hemi} het, {hom} hom-alt, {hemi} hemizygous); "
        + (", ".join(f"{k} {v}" for k, v in sorted(per.items())) or "none"))


@app.command("assoc")
def assoc_cmd(
    lake: LakeOpt,
    phenotype: Annotated[str, typer.Option("--phenotype", help="Case-control (categorical) or, for --test linear, numeric phenotype.")],
    case: Annotated[str | None, typer.Option("--case", help="Value of cases (default: 'case').")] = None,
    control: Annotated[str | None, typer.Option("--control", help="Value of controls (default: the other(s)).")] = None,
    region: RegionOpt = None,
    gene: Annotated[str | None, typer.Option("--gene", help="Gene symbol (needs `genolake annotate --genes`).")] = None,
    min_ac: Annotated[int | None, typer.Option("--min-ac", help="Only variants with AC >= N in the people tested (default 1).")] = None,
    max_af: Annotated[float | None, typer.Option("--max-af", help="Only variants with AF <= this in the people tested.")] = None,
    burden: Annotated[bool, typer.Option("--burden", help="One collapsing test over the qualifying variants.")] = False,
    test: Annotated[str, typer.Option("--test", help="fisher (exact, per variant), logistic (case-control) or linear (numeric phenotype).")] = "fisher",
    covariates: Annotated[str | None, typer.Option("--covariates", help="Phenotype columns, e.g. age,sex,pc1,pc2 (categorical ones one-hot encoded).")] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="Burden weights: none or madsen-browning.")] = None,
    firth_mac: Annotated[int, typer.Option("--firth-mac", help="Logistic: score test, then Firth if p < 0.05, below this minor allele count (0: off).")] = 20,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a Manhattan and QQ plot (PNG/PDF/SVG; needs genolake[plot]).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Association per variant, sorted by p with BH q-values: Fisher's exact test (odds ratio, 95% CI), or
    logistic/linear regression on dosage with covariates; or one burden test (--burden)."""
    from genolake.output import emit_table
    from genolake.progress import records_progress

    if plot is not None:
        from genolake.plot import require_matplotlib

        require_matplotlib()
    with records_progress(f"assoc ({test})", enabled=not quiet, unit="variants", chunk="blocks") as progress:
        table = _open(lake).assoc(phenotype, case=case, control=control, region=region, gene=gene, min_ac=min_ac,
                                  max_af=max_af, burden=burden, test=test, covariates=covariates, weights=weights,
                                  firth_mac=firth_mac, progress=progress)
    emit_table(table, fmt, output)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if not quiet and "genolake.people" in meta:
        from genolake.cli_common import say

        say(f"{meta['genolake.test']} regression on {meta['genolake.people']} people"
            + (f" ({meta['genolake.cases']} cases, {meta['genolake.controls']} controls)" if "genolake.cases" in meta else "")
            + f"; {meta['genolake.dropped_missing_covariate']} dropped for a missing covariate; covariates: "
            + (meta["genolake.covariates"] or "none"))
    if plot is not None and not burden:
        from genolake.plot import save_assoc_plot

        save_assoc_plot(table, plot)


@app.command("run")
def run_cmd(
    query_file: Annotated[str, typer.Argument(help="queries/NAME.sql (or NAME) from the catalogue, or any .sql file.")],
    lake: LakeOpt,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for a $KEY of the query.")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    timeout: TimeoutOpt = 300.0,
    memory_limit: MemoryOpt = None,
) -> None:
    """Run a named, parameterised catalogue query (see `genolake query catalogue`)."""
    from genolake.errors import UserInputError
    from genolake.output import emit_table
    from genolake.query.sandbox import parse_size

    params: dict[str, str] = {}
    for p in param or []:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--param {p!r}: use KEY=VALUE")
        params[key.strip()] = value
    limit = parse_size(memory_limit) if memory_limit else None
    emit_table(_open(lake).run(query_file, params, timeout=timeout, memory_limit=limit), fmt, output)


@app.command("catalogue")
def catalogue_cmd(fmt: FormatOpt = "table", output: OutputOpt = None) -> None:
    """List the named queries of the queries/ catalogue with what they answer and their parameters."""
    from genolake.output import emit_table
    from genolake.query.catalogue import catalogue_table

    emit_table(catalogue_table(), fmt, output)


@phenotypes_app.command("load")
def phenotypes_load(
    file: Annotated[Path, typer.Argument(help="TSV/CSV with a sample ID column, or a PED/FAM file.")],
    lake: LakeOpt,
    institution: Annotated[str, typer.Option("--institution", "-i", help="Institution the samples belong to.")],
    sample_column: Annotated[str, typer.Option("--sample-column", help="Sample ID column of a TSV/CSV.")] = "sample_id",
    type_: Annotated[list[str] | None, typer.Option("--type", "-t",
                                                    help="NAME=categorical|numeric|list (repeatable).")] = None,
    list_columns: Annotated[str | None, typer.Option(
        "--list-columns", help="Columns holding lists, e.g. hpo,icd10 (cells split on ';', '|' or ',').")] = None,
    keep_unmatched: Annotated[bool, typer.Option("--keep-unmatched", help="Also store rows of samples not (yet) "
                                                 "in the institution's files (a later ingest picks them up).")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Load (or replace, atomically) an institution's phenotypes; reports counts, never sample IDs."""
    from genolake.errors import UserInputError
    from genolake.output import emit_object
    from genolake.phenotypes import load_phenotypes

    types: dict[str, str] = {}
    for t in type_ or []:
        key, sep, value = t.partition("=")
        if not sep:
            raise UserInputError(f"--type {t!r}: use NAME=categorical|numeric|list")
        types[key.strip()] = value.strip()
    for name in (list_columns or "").split(","):
        if name.strip():
            types[name.strip()] = "list"
    report = load_phenotypes(lake, institution, file, types=types or None, sample_column=sample_column,
                             keep_unmatched=keep_unmatched)
    emit_object(report, fmt)


@phenotypes_app.command("list")
def phenotypes_list(lake: LakeOpt, fmt: FormatOpt = "table", output: OutputOpt = None) -> None:
    """Phenotypes per institution: kind, samples with a value, distinct values."""
    from genolake.output import emit_table
    from genolake.phenotypes import phenotype_summary

    emit_table(phenotype_summary(lake), fmt, output)


@app.command("gene")
def gene_cmd(
    symbol: Annotated[str, typer.Argument(help="Gene symbol or gene ID (from the annotation gene source).")],
    lake: LakeOpt,
    clinvar: Annotated[str | None, typer.Option(
        "--clinvar", help="ClinVar classes, any of: pathogenic|likely_pathogenic|uncertain|likely_benign|benign|"
                          "conflicting|... or `any`.")] = None,
    max_af: Annotated[float | None, typer.Option(
        "--max-af", help="At most this AF in every external frequency source (annotate --frequencies).")] = None,
    consequence: Annotated[str | None, typer.Option(
        "--consequence", help="Terms (missense_variant,stop_gained), TERM+ for at least as severe, or HIGH/MODERATE+.")] = None,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """The lake's variants in a gene with ClinVar, consequence and external frequencies (needs `genolake annotate`)."""
    from genolake.output import emit_table
    from genolake.query.genes import gene_variants

    emit_table(gene_variants(_open(lake), symbol, clinvar=clinvar, max_af=max_af, consequence=consequence), fmt, output)
