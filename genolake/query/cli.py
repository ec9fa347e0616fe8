"""`genolake query ...` subcommands (thin: parse, call the Lake API, print)."""

from __future__ import annotations

from typing import Annotated

import typer

from genolake.cli_common import FormatOpt, LakeOpt, OutputOpt

app = typer.Typer(help="Query the lake (read-only).", no_args_is_help=True, pretty_exceptions_enable=False)


@app.command("sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="One read-only SQL statement over the lake's views.")],
    lake: LakeOpt,
    fmt: FormatOpt = "table",
    output: OutputOpt = None,
) -> None:
    """Run read-only SQL over the views: variants, variant_files, calls, samples, files, ploidy, ..."""
    from genolake.output import emit_table
    from genolake.query.lake import Lake

    emit_table(Lake(lake).sql(query), fmt, output)
