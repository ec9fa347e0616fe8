"""`genolake samples ...` (duplicates, remove, lookup) and `genolake vacuum` (thin: parse, call, print).

Registered on the main app by :func:`register` (``genolake/cli.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import FormatOpt, LakeOpt, OutputOpt, QuietOpt, stderr_console

app = typer.Typer(help="People in the lake: duplicates and relatives, withdrawal of consent, recontact.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

InstitutionOpt = Annotated[str, typer.Option("--institution", "-i", help="The institution the IDs belong to.")]


@app.command("duplicates")
def duplicates_cmd(
    lake: LakeOpt,
    min_sites: Annotated[int, typer.Option("--min-sites", help="Compare a pair only on at least this many sites "
                                                               "both have called.")] = 500,
    relatives: Annotated[bool, typer.Option("--relatives", help="Also report first-degree relatives "
                                                                "(kinship ~0.25).")] = False,
    min_af: Annotated[float, typer.Option("--min-af", help="Use sites of pooled AF in [x, 1-x].")] = 0.05,
    max_sites: Annotated[int, typer.Option("--max-sites", help="At most this many sites, spread evenly.")] = 5000,
    max_discordance: Annotated[float, typer.Option("--max-discordance", help="A duplicate differs at no more than "
                                                                             "this share of sites.")] = 0.05,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Pairs of samples (across and within institutions) that are the same person: KING-robust kinship,
    sites compared and discordance. Pseudonyms only."""
    from genolake.output import emit_table
    from genolake.samples.duplicates import find_duplicates

    rep = find_duplicates(lake, min_sites=min_sites, relatives=relatives, min_af=min_af, max_sites=max_sites,
                          max_discordance=max_discordance)
    emit_table(rep.pairs, fmt, output)
    for w in rep.warnings:
        stderr_console().print(f"genolake: warning: {w}", soft_wrap=True)
    if not quiet:
        dup = sum(1 for r in rep.pairs["relationship"].to_pylist() if r == "duplicate")
        stderr_console().print(
            f"{dup} duplicate pair(s)" + (f", {rep.pairs.num_rows - dup} first-degree pair(s)" if relatives else "")
            + f" among {rep.people:,} people on {rep.sites:,} sites ({rep.pairs_compared:,} pairs compared"
            + (f", {rep.pairs_too_few_sites:,} with fewer than {min_sites} shared sites not compared"
               if rep.pairs_too_few_sites else "") + f") in {sum(rep.seconds.values()):.1f} s", soft_wrap=True)


@app.command("remove")
def remove_cmd(
    ids: Annotated[Path, typer.Argument(help="File of raw sample IDs (one per line), or pseudonyms with "
                                             "--pseudonyms.")],
    lake: LakeOpt,
    institution: InstitutionOpt,
    pseudonyms: Annotated[bool, typer.Option("--pseudonyms", help="The file lists pseudonyms, not raw IDs.")] = False,
) -> None:
    """Withdrawal of consent: remove every row of these people from every table in one atomic commit."""
    from genolake.samples.remove import remove_samples

    r = remove_samples(lake, institution=institution, path=ids, pseudonyms=pseudonyms)
    stderr_console().print(
        f"removed {r.removed} people of {r.institution!r}"
        + (f" ({r.not_found} of the {r.given} IDs given are not in the lake)" if r.not_found else "")
        + f": {r.files_rewritten} file(s) rewritten, {r.files_dropped} left the lake (no sample left), "
        f"{r.phenotype_rows} phenotype value(s); {r.parquet_removed} Parquet file(s) replaced by {r.parquet_added}."
        " allele_frequencies is now stale (queries count from the lake): run `genolake aggregate`. The old files "
        "stay on disk for Delta time travel until `genolake vacuum`.", soft_wrap=True)


@app.command("lookup")
def lookup_cmd(
    ids: Annotated[Path, typer.Argument(help="File of raw sample IDs (one per line) or a VCF/BCF (its header's "
                                             "samples).")],
    lake: LakeOpt,
    institution: InstitutionOpt,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Recontact: pseudonym and raw ID side by side, computed locally with the lake's key (nothing is written)."""
    from genolake.output import emit_table
    from genolake.samples.lookup import lookup

    emit_table(lookup(lake, institution=institution, path=ids), fmt, output)


def vacuum_cmd(lake: LakeOpt) -> None:
    """Delete Parquet files no longer in the current version (removed people, replaced files) from disk."""
    from genolake.samples.remove import vacuum

    out = vacuum(lake)
    stderr_console().print(f"vacuum: deleted {sum(out.values()):,} file(s) no longer in the lake's current "
                           "version" + (" (" + ", ".join(f"{k} {v}" for k, v in out.items() if v) + ")"
                                        if any(out.values()) else ""), soft_wrap=True)


def register(main: typer.Typer) -> None:
    """Add the `samples` group and `vacuum` to the main app."""
    main.add_typer(app, name="samples")
    main.command("vacuum")(vacuum_cmd)
