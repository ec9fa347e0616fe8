"""The one progress helper. Only the CLI turns it on; library code takes a plain callback."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def records_progress(label: str, *, enabled: bool = True, unit: str = "records",
                     chunk: str = "chunks") -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``progress(records_done, tasks_done)`` callback that draws records/s on stderr (a TTY only);
    ``unit`` and ``chunk`` name what is counted (``variants``, ``blocks``)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from genolake.cli_common import stderr_console

    start = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=stderr_console(), transient=True) as bar:
        tid = bar.add_task(label)

        def update(records: int, tasks: int) -> None:
            rate = records / max(1e-9, time.perf_counter() - start)
            bar.update(tid, description=f"{label}: {records:,} {unit}, {rate:,.0f} {unit}/s, {tasks} {chunk} done")

        yield update
