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
from collections.abc import Iterator
from typing import Any

from genolake.errors import UserInputError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """Yield a ``distributed.Client``: connected to ``scheduler`` if given, else a new LocalCluster.

    A local cluster uses one single-threaded worker process per core (``workers=None``) or ``workers``
    processes; it is closed on exit.
    """
    import dask
    from distributed import Client, LocalCluster

    # Without the CLI's --verbose, Dask logs nothing, not even its errors: a failed task, a dead worker or a lost
    # scheduler reach the user as the one line of genolake.compute.runner's error, not as log lines on stderr
    # (the client and a local cluster's scheduler log in this process, the workers in their own).
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    dask_level = logging.CRITICAL if quiet else logging.WARNING
    with contextlib.ExitStack() as stack:
        if quiet:
            stack.enter_context(_dask_logs_at(logging.CRITICAL))
            stack.enter_context(dask.config.set({"logging": {"distributed": "critical",
                                                             "distributed.client": "critical", "bokeh": "error"}}))
        if scheduler:
            try:
                remote = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise UserInputError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
            try:
                yield remote
            finally:
                remote.close()
            return
        n = workers if workers and workers > 0 else (os.cpu_count() or 1)
        # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536 (less unmanaged memory in long-lived workers).
        # Setting it turns off glibc's adaptive mmap threshold, so every multi-megabyte numpy buffer is mapped and
        # zeroed afresh: ingest ran 20% slower in a worker than in process. These workers live for one command, so
        # the variable is unset the way Dask documents (None). A value already in this process's environment (the
        # user's, or left there by an earlier Dask cluster: Dask's nanny writes it into os.environ) is inherited
        # as it is.
        environ = {**(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}),
                   "MALLOC_TRIM_THRESHOLD_": None}
        cluster: Any = None
        client: Any = None
        try:
            # Ctrl-C while the cluster starts is taken once it has started, here, where it can be closed: a
            # half-started cluster is closed at exit by Dask, with a screenful of errors
            with _sigint_deferred(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                cluster = LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    silence_logs=dask_level,
                    memory_limit=None,
                )
                client = Client(cluster)
            yield client
        finally:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C back for the block: a SIGINT received meanwhile raises KeyboardInterrupt as the block ends.
    (Python's handler is swapped, not the signal mask: any thread of the process may receive the signal.)"""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pressed: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _dask_logs_at(level: int) -> Iterator[None]:
    """Set Dask's loggers in this process to ``level`` (its own logging config gives some of them, such as
    ``distributed.client``, a level of their own), and restore them on exit."""
    names = ["distributed", "distributed.client", "distributed.scheduler", "distributed.nanny", "distributed.worker",
             *(k for k in logging.root.manager.loggerDict if k.startswith("distributed."))]
    loggers = [logging.getLogger(name) for name in dict.fromkeys(names)]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, saved, strict=True):
            lg.setLevel(old)
