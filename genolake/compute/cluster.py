"""Dask clusters: a local multi-process cluster sized to the machine, or an existing one by address.

To run jobs on an existing cluster, start it with dask's own tools and pass its address::

    dask scheduler --port 8786 &             # on one host
    dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1   # on each worker host
    genolake ingest --scheduler tcp://HOST:8786 ...

Workers must see the lake and input paths at the same location (a shared filesystem). On Kubernetes use
dask-kubernetes (``KubeCluster``), on SLURM/PBS/LSF dask-jobqueue (``SLURMCluster``); both give a scheduler
address to pass with ``--scheduler``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from genolake.errors import UserInputError

log = logging.getLogger(__name__)
R = TypeVar("R")


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """Yield a ``distributed.Client``: connected to ``scheduler`` if given, else a new LocalCluster.

    A local cluster uses one single-threaded worker process per core (``workers=None``) or ``workers``
    processes; it is closed on exit.
    """
    import dask
    from distributed import Client, LocalCluster

    if logging.getLogger().getEffectiveLevel() > logging.INFO:  # the CLI's --verbose shows Dask's own logs
        logging.getLogger("distributed").setLevel(logging.ERROR)
        dask.config.set({"logging": {"distributed": "error", "distributed.client": "error", "bokeh": "error"}})
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise UserInputError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers if workers and workers > 0 else (os.cpu_count() or 1)
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536 (less unmanaged memory in long-lived workers). Setting
    # it turns off glibc's adaptive mmap threshold, so every multi-megabyte numpy buffer is mapped and zeroed
    # afresh: ingest ran 20% slower in a worker than in process. These workers live for one command, so the
    # variable is unset the way Dask documents (None). A value already in this process's environment (the user's,
    # or left there by an earlier Dask cluster: Dask's nanny writes it into os.environ) is inherited as it is.
    environ = {**(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}), "MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            memory_limit=None,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def map_tasks(
    fn: Callable[..., R],
    tasks: Sequence[Any],
    *,
    workers: int | None,
    scheduler: str | None,
    on_result: Callable[[R, int], None] | None = None,
    broadcast: Any = None,
) -> list[R]:
    """Run ``fn(task[, broadcast])`` for every task on Dask and return the results in task order.

    ``on_result(result, done)`` is called as each task finishes (for progress). A failure cancels the
    remaining tasks and is raised as is (named genolake errors keep their type across processes).
    ``broadcast``, when given, is scattered once to every worker and passed as the second argument.
    """
    from distributed import as_completed

    with dask_client(workers=workers, scheduler=scheduler) as client:
        extra = () if broadcast is None else (client.scatter(broadcast, broadcast=True),)
        futures = [client.submit(fn, t, *extra, pure=False) for t in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        try:
            for done, fut in enumerate(as_completed(futures), start=1):
                res = fut.result()
                results[index[fut.key]] = res
                if on_result is not None:
                    on_result(res, done)
        except BaseException:
            client.cancel(futures)
            raise
    return results
