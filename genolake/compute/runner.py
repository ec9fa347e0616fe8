"""The one task runner: a list of tasks and one function, run in this process or on Dask, with one error path.

Ingest (file/region conversions), aggregate (contig ranges) and annotate (regions and sources) all run their
tasks through :func:`run_tasks`. What it promises, whatever the runner:

- results come back in task order;
- a :class:`~genolake.errors.GenolakeError` raised by a task (say a :class:`~genolake.errors.BadInputFileError`
  naming the file and record) is raised again by :func:`run_tasks` as the same class with the same message,
  whether the task ran in this process or on a Dask worker, and without Dask's "Compute Failed" log or
  traceback on stderr: a worker catches it and returns it as a value (:class:`_Failure`) instead of failing the
  Dask task. Any other exception (a bug) is raised again as well, with the worker's traceback as a note;
- the first failure cancels the tasks still queued or running;
- a worker process that dies (killed, out of memory) gives one :class:`~genolake.errors.WorkerLostError` line,
  as does a lost connection to the scheduler;
- Ctrl-C stops the workers (a local pool's workers ignore SIGINT, so only the command reports it);
- nothing here commits anything: callers stage results and commit after :func:`run_tasks` returns, so a
  failure leaves the lake as it was.

Local workers run on a Dask ``LocalCluster`` (``local="dask"``, the default) or on a plain process pool
(``local="processes"``: :class:`concurrent.futures.ProcessPoolExecutor` on a ``forkserver`` that has imported
the task function's module once). The pool starts in about a second where a local Dask cluster takes 5-10 s,
which is most of a small ingest; ingest uses it.

This module is core-level: it imports no stage (ingest, query, compute jobs), only :mod:`genolake.errors` and,
when a cluster is used, :mod:`genolake.compute.cluster`.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from genolake.errors import GenolakeError, WorkerLostError

log = logging.getLogger(__name__)
R = TypeVar("R")
ProgressFn = Callable[[int, int, int], None]  # (items done, tasks done, tasks in all), genolake.progress's bar


def in_process(workers: int | None, scheduler: str | None) -> bool:
    """True when :func:`run_tasks` runs the tasks in this process (``workers=0`` and no scheduler)."""
    return scheduler is None and workers == 0


def run_tasks(
    fn: Callable[..., R],
    tasks: Sequence[Any],
    *,
    workers: int | None = 0,
    scheduler: str | None = None,
    broadcast: Any = None,
    progress: ProgressFn | None = None,
    count: Callable[[R], int] | None = None,
    live: bool = False,
    threads: int = 1,
    local: str = "dask",
    preload: Sequence[str] = (),
) -> list[R]:
    """Run ``fn(task[, broadcast])`` for every task and return the results in task order.

    Parameters
    ----------
    fn
        A module-level function (Dask workers import it by name).
    tasks
        The tasks, each picklable.
    workers
        0 runs every task in this process, one after the other; N > 0 starts a local Dask cluster of N
        single-threaded worker processes for this call; None one worker process per core. Ignored when
        ``scheduler`` is given.
    scheduler
        Address of an existing Dask scheduler (``tcp://host:8786``); its workers must see the same paths.
    broadcast
        When given, passed to every call as the second argument; on Dask it is sent to each worker once.
    progress
        ``progress(items done, tasks done, tasks in all)`` (the callback of
        :func:`genolake.progress.records_progress`), called once before the first task and after each task.
    count
        How many items (records, sites, keys) a task's result stands for; the first number of ``progress``.
    live
        In process only: call ``fn(task, progress=tick)`` so that the task reports items as it goes
        (``tick(n)`` adds ``n``); the total is corrected to ``count(result)`` when the task ends.
    threads
        In process only: run up to this many tasks at once on threads of this process (for functions whose
        work is in numpy / Arrow / DuckDB calls, which release the GIL). The same results, order and errors
        (the first failing task in task order; tasks not yet started are dropped). Not with ``live``.
    local
        What runs ``workers`` > 0 (or None) without a scheduler: ``"dask"``, a local Dask cluster, or
        ``"processes"``, a local process pool (same error path, much quicker to start; no Dask dashboard).
    preload
        With ``local="processes"``: modules the pool's forkserver imports once, besides ``fn``'s module, so
        that the workers forked from it do not each import them (ingest: pandas, which pyarrow imports on
        its first array built from Python objects, ~0.4 s).

    Returns
    -------
    list
        ``fn``'s results, in the order of ``tasks``.

    Raises
    ------
    GenolakeError
        The error a task raised (the same class and message in process and on Dask), or
        :class:`~genolake.errors.WorkerLostError` when a worker process died or the scheduler went away.

    Examples
    --------
    >>> run_tasks(abs, [-1, 2, -3], workers=0)
    [1, 2, 3]
    """
    n = len(tasks)
    extra = () if broadcast is None else (broadcast,)
    if progress:
        progress(0, 0, n)  # the bar knows its length before the first task ends
    if not tasks:
        return []  # no cluster to start
    if in_process(workers, scheduler):
        if threads > 1 and len(tasks) > 1 and not live:
            return _run_threads(fn, tasks, extra, threads=threads, progress=progress, count=count)
        return _run_here(fn, tasks, extra, progress=progress, count=count, live=live)
    if scheduler is None and local == "processes":
        return _run_on_pool(fn, tasks, extra, workers=workers, progress=progress, count=count, preload=preload)
    if local not in ("dask", "processes"):
        raise ValueError(f"local must be 'dask' or 'processes', not {local!r}")
    return _run_on_dask(fn, tasks, broadcast, workers=workers, scheduler=scheduler, progress=progress,
                        count=count)


class _Tally:
    """The progress of a run: items and tasks done, reported to ``progress`` as each task's result comes in."""

    def __init__(self, n: int, progress: ProgressFn | None, count: Callable[[Any], int] | None) -> None:
        self.n, self.progress, self.count = n, progress, count
        self.items = self.finished = 0

    def add(self, result: Any) -> None:
        self.finished += 1
        self.items += self.count(result) if self.count else 0
        if self.progress:
            self.progress(self.items, self.finished, self.n)


def _run_here(fn: Callable[..., R], tasks: Sequence[Any], extra: tuple[Any, ...], *, progress: ProgressFn | None,
              count: Callable[[R], int] | None, live: bool) -> list[R]:
    n = len(tasks)
    done = 0
    out: list[R] = []
    for k, task in enumerate(tasks):
        base = done
        if live and progress:
            def tick(items: int, k: int = k) -> None:
                nonlocal done
                done += items
                progress(done, k, n)

            res = fn(task, *extra, progress=tick)
        else:
            res = fn(task, *extra)
        out.append(res)
        done = base + (count(res) if count else 0)
        if progress:
            progress(done, k + 1, n)
    return out


def _run_threads(fn: Callable[..., R], tasks: Sequence[Any], extra: tuple[Any, ...], *, threads: int,
                 progress: ProgressFn | None, count: Callable[[R], int] | None) -> list[R]:
    from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

    n = len(tasks)
    results: list[Any] = [None] * n
    with ThreadPoolExecutor(max_workers=min(threads, n), thread_name_prefix="genolake-task") as pool:
        futures: list[Future[Any]] = [pool.submit(fn, task, *extra) for task in tasks]
        index = {f: i for i, f in enumerate(futures)}
        pending = set(futures)
        tally = _Tally(n, progress, count)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                failed = [index[f] for f in done if f.exception() is not None]
                if failed:
                    # as in one thread: the tasks after the failing one are dropped, the earlier ones finish,
                    # and the first failure in task order is raised
                    first = min(failed)
                    for f in futures[first + 1:]:
                        f.cancel()
                    wait(futures[:first])
                    raise next(f.exception() for f in futures[:first + 1]  # type: ignore[misc]
                               if f.exception() is not None) from None
                for f in done:
                    results[index[f]] = f.result()
                    tally.add(results[index[f]])
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return results


@dataclass
class _Failure:
    """What a worker returns instead of raising: the task's exception, made safe to send back."""

    error: BaseException


def _guarded(fn: Callable[..., Any], task: Any, *extra: Any) -> Any:
    """Run one task on a worker; an exception is returned as a :class:`_Failure`, not raised (a raised one
    would be logged by the worker with its traceback, on the terminal of the user's command)."""
    try:
        return fn(task, *extra)
    except Exception as exc:
        return _Failure(_sendable(exc))


def _sendable(exc: Exception) -> BaseException:
    """``exc`` if it survives pickling as itself, else a stand-in with the same message (a GenolakeError keeps
    its exit code). Anything but a GenolakeError is a bug: its worker traceback travels with it (Dask pickles
    tracebacks with tblib), or as a note where it cannot."""
    try:
        back = pickle.loads(pickle.dumps(exc))
    except Exception:
        back = None
    where = "on a worker process:\n" + "".join(traceback.format_exception(exc)).rstrip()
    if back is not None:
        if not isinstance(exc, GenolakeError) and back.__traceback__ is None:
            exc.add_note(where)
        return exc
    if isinstance(exc, GenolakeError):
        stand_in = GenolakeError(str(exc))
        stand_in.exit_code = exc.exit_code  # type: ignore[misc]
        return stand_in
    bug = RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    bug.add_note(where)
    return bug


def _run_on_dask(fn: Callable[..., R], tasks: Sequence[Any], broadcast: Any, *, workers: int | None,
                 scheduler: str | None, progress: ProgressFn | None, count: Callable[[R], int] | None) -> list[R]:
    import asyncio

    import distributed.client
    from distributed import KilledWorker, as_completed
    from distributed.comm.core import CommClosedError

    from genolake.compute.cluster import dask_client

    # a lost scheduler cancels every future (FutureCancelledError since distributed 2024.2)
    cancelled = getattr(distributed.client, "FutureCancelledError", asyncio.CancelledError)
    lost = (KilledWorker, CommClosedError, cancelled)
    n = len(tasks)
    results: list[Any] = [None] * n
    with dask_client(workers=workers, scheduler=scheduler) as client:
        try:
            extra = [] if broadcast is None else [[client.scatter(broadcast, broadcast=True)] * n]
            with warnings.catch_warnings():  # tasks may carry their data (annotate's keys): a large graph is fine
                warnings.filterwarnings("ignore", message="Sending large graph")
                futures = client.map(functools.partial(_guarded, fn), list(tasks), *extra, pure=False)
        except lost as exc:
            raise _lost(exc) from None
        index = {f.key: i for i, f in enumerate(futures)}
        tally = _Tally(n, progress, count)
        try:
            for fut in as_completed(futures):
                res = fut.result()
                i = index[fut.key]
                if isinstance(res, _Failure):
                    # report the failure of the first failing task in task order, as in process (the same
                    # input gives the same message): drop the later tasks, wait for the earlier ones
                    client.cancel(futures[i + 1:])
                    _raise_first_failure(res, (earlier.result() for earlier in futures[:i]))
                results[i] = res
                tally.add(res)
        except BaseException as exc:
            client.cancel(futures)
            if isinstance(exc, lost):
                raise _lost(exc) from None
            raise
    return results


def _raise_first_failure(failed: _Failure, earlier: Iterable[Any]) -> NoReturn:
    """Raise the error of the first failing task in task order, as in process: ``failed`` failed, and the
    results of the tasks before it (waited for one by one) may hold an earlier failure, which wins."""
    for got in earlier:
        if isinstance(got, _Failure):
            raise got.error from None
    raise failed.error from None


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the command (which stops them): no KeyboardInterrupt trace per worker."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def pool_size(workers: int | None) -> int:
    """Worker processes of a local pool: ``workers``, or one per core for None."""
    return workers if workers and workers > 0 else (os.cpu_count() or 1)


def _run_on_pool(fn: Callable[..., R], tasks: Sequence[Any], extra: tuple[Any, ...], *, workers: int | None,
                 progress: ProgressFn | None, count: Callable[[R], int] | None,
                 preload: Sequence[str] = ()) -> list[R]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("forkserver")
    # the server imports the task's module (numpy, pyarrow, cyvcf2...) once; workers are forked from it
    modules = [*preload, *([fn.__module__] if fn.__module__ not in ("__main__", "__mp_main__") else [])]
    if modules:
        ctx.set_forkserver_preload(modules)
    n = len(tasks)
    results: list[Any] = [None] * n
    pool = ProcessPoolExecutor(max_workers=min(pool_size(workers), n), mp_context=ctx, initializer=_ignore_sigint)
    clean = False
    try:
        futures = [pool.submit(_guarded, fn, task, *extra) for task in tasks]
        index = {f: i for i, f in enumerate(futures)}
        tally = _Tally(n, progress, count)
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=index.__getitem__):
                res = fut.result()
                i = index[fut]
                if isinstance(res, _Failure):
                    # the first failure in task order, as in process: drop the later tasks, wait for earlier ones
                    for later in futures[i + 1:]:
                        later.cancel()
                    _raise_first_failure(res, (earlier.result() for earlier in futures[:i]))
                results[i] = res
                tally.add(res)
        clean = True
    except BrokenProcessPool:
        raise WorkerLostError(
            "a worker process died while running the tasks (killed, most often for lack of memory); nothing was "
            "committed, the lake is unchanged; rerun with fewer --workers or with more memory per worker") from None
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:  # an error or Ctrl-C: stop the running tasks too, so nothing writes to staging any more
            _terminate(pool)
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _terminate(pool: Any) -> None:
    """Kill a process pool's workers and wait for them (Python 3.14 has ``terminate_workers`` for this)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=10)


def _lost(exc: BaseException) -> WorkerLostError:
    from distributed import KilledWorker

    # not "task k": the task Dask blames is any that ran on a dying worker as often as retries allow
    if isinstance(exc, KilledWorker):
        return WorkerLostError(
            "a Dask worker process died while running the tasks (killed, most often for lack of memory); nothing "
            "was committed, the lake is unchanged; rerun with fewer --workers or with more memory per worker")
    return WorkerLostError(
        "lost the connection to the Dask scheduler or a worker while the tasks ran; nothing was committed, the "
        "lake is unchanged; check the cluster and rerun")
