"""The `genolake` program (console script and ``python -m genolake``).

A plain ``genolake query variant --lake L ... ID`` line (:func:`genolake.query.cli_variant.parse`) runs without
importing typer or click (35-45 ms of the cold command's CPU); every other command line goes to the typer app
(:func:`genolake.cli.main`). Both report errors the same way (:func:`guarded`): a named error as one line and
its exit code, a refused write with what to do, Ctrl-C as 130.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["guarded", "main", "setup_logging"]


def setup_logging(verbose: bool) -> None:
    """The root command's logging: genolake's messages on stderr (details with ``-v``), other libraries' quiet."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="genolake: %(message)s")
    for noisy in ("distributed", "tornado", "asyncio", "bokeh"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@contextmanager
def guarded() -> Iterator[None]:
    """Turn what a user can cause into one line on stderr and an exit code (no traceback)."""
    from genolake.errors import GenolakeError

    try:
        yield
    except GenolakeError as exc:
        print(f"genolake: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a write path outside the store's own checks (e.g. a job's staged output)
        from genolake.errors import write_failure

        got = write_failure(exc)
        if got is None:
            raise
        print(f"genolake: error: {got[0]} ({exc}); {got[1]} and rerun the same command (it completes a commit "
              "it interrupted)", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("genolake: interrupted; nothing was committed, the lake is unchanged", file=sys.stderr)
        sys.exit(130)


def main() -> None:
    """Run the command line ``sys.argv``."""
    from genolake.cli_narrow import prepare
    from genolake.query.cli_variant import parse

    argv = sys.argv[1:]
    prepare(argv)  # before numpy is imported
    args = parse(argv)
    if args is None:
        from genolake.cli import main as typer_main

        typer_main()
        return
    from genolake.query.cli_variant import run_variant

    setup_logging(False)
    with guarded():
        run_variant(**args)
