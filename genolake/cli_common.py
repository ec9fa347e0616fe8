"""Options shared by every command, defined once."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

LakeOpt = Annotated[Path, typer.Option("--lake", envvar="GENOLAKE_LAKE", help="Lake folder (or $GENOLAKE_LAKE).")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, tsv, csv, json or parquet.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-w", help="0 = in this process; N = N local worker processes (ingest: a process pool; aggregate, annotate: a local Dask cluster). Default: chosen per job (ingest: in process for small inputs, else one per core; aggregate: in process, a thread per core)."),
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]


def stderr_console() -> Any:
    """A rich Console on a duplicate of stderr, so htslib message capture (fd 2) never swallows it."""
    from rich.console import Console

    fd = os.dup(2)
    return Console(file=os.fdopen(fd, "w", buffering=1), stderr=True)


def say(msg: str) -> None:
    print(msg, file=sys.stderr)
