"""`genolake query variant` without typer: the command's body and the parser of its common command lines.

The cold command (issue 10: whole process <= 0.35 s) spends a tenth of its CPU importing typer and click and
building the typer app (35-45 ms of 320 ms, median of 15 interleaved runs on the 2-core benchmark machine), for a
command line that is nearly always ``query variant --lake L [--format F] [--part P] [--output O] [--ids I]
ID...``. :func:`parse` reads exactly such a line (each option once, as ``--opt value`` or ``--opt=value``) and
returns None for anything else (``--help``, ``-v``, an unknown or repeated option, a value starting with ``-``,
no ``--lake``...), which then goes through the typer app, so help, usage errors and their exit codes are
typer's. The typer command (:func:`genolake.query.cli.variant_cmd`) and this parser call the same
:func:`run_variant`.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genolake.query.lake import Lake

__all__ = ["PARTS", "open_lake", "parse", "run_variant"]

PARTS = ("frequencies", "phenotypes", "variant", "annotations")

# the command's options (genolake.query.cli.variant_cmd) -> run_variant's keyword; all take one value
_OPTIONS = {"--lake": "lake", "--ids": "ids", "--part": "part", "--format": "fmt", "-f": "fmt", "--output": "output",
            "-o": "output"}
_PATHS = ("lake", "ids", "output")


def parse(argv: list[str]) -> dict[str, Any] | None:
    """The keywords of :func:`run_variant` for ``argv`` (the arguments after the program name) when it is a plain
    ``query variant`` command line that typer would read the same way; None otherwise (typer reads it)."""
    if argv[:2] != ["query", "variant"]:
        return None
    got: dict[str, Any] = {}
    variants: list[str] = []
    rest = argv[2:]
    i = 0
    while i < len(rest):
        tok = rest[i]
        if tok == "-" or not tok.startswith("-"):
            variants.append(tok)
            i += 1
            continue
        name, eq, value = tok.partition("=")
        key = _OPTIONS.get(name)
        if key is None or key in got or (eq and not name.startswith("--")):
            return None
        if not eq:
            if i + 1 >= len(rest):
                return None
            value = rest[i + 1]
            i += 1
        if not value or value.startswith("-"):
            return None
        got[key] = value
        i += 1
    if "lake" not in got:  # typer's own message (or $GENOLAKE_LAKE)
        return None
    out: dict[str, Any] = {"variants": variants or None, "ids": None, "part": "frequencies", "fmt": "table",
                           "output": None}
    out.update({k: Path(v) if k in _PATHS else v for k, v in got.items()})
    return out


def open_lake(lake: Path) -> Lake:
    """The lake opened for one query in this process."""
    from genolake.query.lake import Lake

    # one query per process: DuckDB serves point reads (the pyarrow reader pays off once footers are cached,
    # and its compute layer imports pandas, 0.2 s of start-up)
    return Lake(lake, point_reads=False)


def run_variant(*, lake: Path, variants: list[str] | None, ids: Path | None, part: str, fmt: str,
                output: Path | None) -> None:
    """`genolake query variant`: print the reports of the variants named by ``variants`` (IDs, ``-`` for stdin)
    and the file ``ids`` as ``fmt`` (table, tsv, csv, json or parquet; tsv/csv/parquet hold the table ``part``)
    to ``output`` or stdout."""
    from genolake.errors import UserInputError
    from genolake.query.ids import collect_ids, is_rsid, parse_variant

    if fmt == "parquet" and output is None:
        raise UserInputError("--format parquet needs --output FILE")
    if part not in PARTS:
        raise UserInputError(f"--part {part!r}: use one of {', '.join(PARTS)}")
    texts = collect_ids(list(variants or []), ids)
    # A cold start allocates mostly objects that live as long as the process (modules, the lake's catalogue):
    # the cyclic collector's passes over them are wasted work (7 ms, 2% of a one-variant command's CPU: median
    # of 21 alternating runs), so it is paused until the first answer and runs as usual for the rest.
    gc.disable()
    try:
        # the usual command line is answered without numpy and the library's engine; anything unusual (an
        # rsID, a variant not in the lake...) by the library (cold_report returns None)
        from genolake.query.cold_report import reports as cold_reports

        served = cold_reports(lake, texts)
        if served is None:
            lk = open_lake(lake)
            for t in texts:  # every ID checked before anything is printed
                if not is_rsid(t):
                    parse_variant(t, lk.store.contig_style)
            first = lk.variant(texts[0])  # (collect_ids gives at least one ID)
    finally:
        gc.enable()
    if served is not None:
        _emit(served, part, fmt, output)
        return
    reports = []
    for i, t in enumerate(texts):
        report = first if i == 0 else lk.variant(t)
        if not report["variant"]["observed"]:
            from genolake.query.ids import VariantKey
            from genolake.query.variant import not_observed_message

            v = report["variant"]
            print("genolake: " + not_observed_message(lk, VariantKey(v["contig"], v["pos"], v["ref"], v["alt"]))
                  + "; counts are from absent-as-ref / callable-region files only", file=sys.stderr)
        reports.append(report)
    _emit(reports, part, fmt, output)


def _emit(reports: list[dict[str, Any]], part: str, fmt: str, output: Path | None) -> None:
    """Print (or write to ``output``) the variant reports as ``fmt``."""
    from genolake.output import emit_object, emit_rows, report_rows

    if fmt in ("tsv", "csv", "parquet"):
        emit_rows(*report_rows(reports, part), fmt, output)
    elif len(reports) == 1:
        emit_object(reports[0], fmt, output)
    elif fmt == "json":
        from genolake.output import to_json

        text = to_json(reports) + "\n"
        output.write_text(text) if output else sys.stdout.write(text)
    else:
        import io
        from contextlib import redirect_stdout

        buf = io.StringIO()
        with redirect_stdout(buf):
            for r in reports:
                sys.stdout.write(f"== {r['variant']['id']}\n")
                emit_object(r, fmt)
                sys.stdout.write("\n")
        output.write_text(buf.getvalue()) if output else sys.stdout.write(buf.getvalue())
