"""`genolake migrate` (thin: parse, call :func:`genolake.migrate.migrate`, print a summary).

Registered on the main app by :func:`register` (``genolake/cli.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import QuietOpt, stderr_console


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def migrate_cmd(
    lake: Annotated[Path, typer.Argument(help="The lake folder to upgrade.")],
    quiet: QuietOpt = False,
) -> None:
    """Upgrade a lake written by an older genolake to the current format, in place and atomically (rerun it
    after a crash: it completes or redoes the upgrade)."""
    from genolake.migrate import migrate

    rep = migrate(lake)
    console = stderr_console()
    if rep.already_current:
        console.print(f"{rep.lake} is already at format version {rep.to_version}: nothing to migrate",
                      soft_wrap=True, markup=False)
        return
    if quiet:
        return
    ratio = f" ({rep.genotypes_bytes / rep.calls_bytes:.2f}x)" if rep.calls_bytes else ""
    console.print(
        f"migrated {rep.lake} from format version {rep.from_version} to {rep.to_version}"
        + (" (an interrupted migration was redone)" if rep.recovered else "")
        + f": {rep.calls_files:,} calls file(s) -> {rep.genotypes_files:,} genotypes file(s), "
        f"{rep.stored_calls:,} stored calls; genotype store {_size(rep.calls_bytes)} -> {_size(rep.genotypes_bytes)}"
        f"{ratio}; lake {_size(rep.lake_bytes_before)} -> {_size(rep.lake_bytes_after)}",
        soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate_cmd)
