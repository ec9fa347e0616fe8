"""The one progress helper. Only the CLI turns it on; library code takes a plain callback."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

# progress(items done, tasks done, tasks in all)
ProgressCallback = Callable[..., None]


@contextlib.contextmanager
def records_progress(label: str, *, enabled: bool = True, unit: str = "records",
                     chunk: str = "tasks") -> Iterator[ProgressCallback | None]:
    """Yield a ``progress(done, tasks_done, tasks_total=None)`` callback that draws a bar on stderr (a TTY only):
    tasks done of all, ``unit`` counted and their rate, elapsed and remaining time; then one line with the
    count, the elapsed time and the rate; ``unit`` and ``chunk`` name what is counted (``variants``, ``blocks``).
    ``enabled=False`` (``--quiet``) or a non-terminal stderr: nothing."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from genolake.cli_common import stderr_console

    console = stderr_console()
    start = time.perf_counter()
    state = {"done": 0}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(chunk), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        tid = bar.add_task(label, total=None)

        def update(done: int, tasks: int, total: int | None = None) -> None:
            state["done"] = done
            rate = done / max(1e-9, time.perf_counter() - start)
            bar.update(tid, completed=tasks, total=total,
                       description=f"{label}: {done:,} {unit}, {rate:,.0f} {unit}/s")

        yield update
    seconds = time.perf_counter() - start
    if state["done"]:
        console.print(f"{label}: {state['done']:,} {unit} in {seconds:.1f} s "
                      f"({state['done'] / max(seconds, 1e-9):,.0f} {unit}/s)", soft_wrap=True)
