"""The one task runner (genolake.compute.runner): results in task order, progress, and one error path in process
and on real multi-process Dask clusters: the same error class and one-line message with --workers 0, 1 and 2
through the console script, no Dask log or traceback on stderr, the lake unchanged after a failure."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_helpers import lake_fingerprint

from genolake.compute.runner import run_tasks
from genolake.errors import BadInputFileError, GenolakeError, MissingExtraError, UserInputError, WorkerLostError

DATA = Path(__file__).resolve().parent / "data"
EDGE = DATA / "edge"
HAIL = DATA / "hail_sample_1kg_chr20_100s.vcf.gz"
CLINVAR37 = DATA / "clinvar_b37_chr20_chr22.vcf.gz"
BAD_POS = EDGE / "vcfvalidator_v4.4_failed__failed_body_pos_000.vcf"
BAD_REF = EDGE / "hail__invalid_base.vcf"


# --------------------------------------------------------------------------------------- task functions
def _square(x: int, offset: int = 0) -> int:
    time.sleep(0.05 * (x % 3))  # finish out of order
    return x * x + offset


def _fail_some(x: int) -> int:
    """Task 1 fails late, task 3 fails at once: the runner must report task 1's error (as in process)."""
    if x == 1:
        time.sleep(1.0)
        raise BadInputFileError("in.vcf", "first bad record", record="record 7")
    if x == 3:
        raise BadInputFileError("in.vcf", "later bad record", record="record 9")
    return x


def _bug(x: int) -> int:
    if x == 2:
        raise ValueError(f"a bug in task {x}")
    return x


def _ticking(x: int, progress: object = None) -> int:
    if callable(progress):
        progress(x)
        progress(x)
    return 3 * x


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The `genolake` console script of this Python, as a user runs it."""
    exe = Path(sys.executable).with_name("genolake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "genolake"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600, env=os.environ.copy())


# ------------------------------------------------------------------------------------------- in process
def test_in_process_results_progress_and_live_ticks() -> None:
    seen: list[tuple[int, int, int]] = []
    got = run_tasks(_square, [3, 1, 2], workers=0, broadcast=10, progress=lambda *a: seen.append(a),
                    count=lambda r: r)
    assert got == [19, 11, 14]
    assert seen == [(0, 0, 3), (19, 1, 3), (30, 2, 3), (44, 3, 3)]
    ticks: list[tuple[int, int, int]] = []
    assert run_tasks(_ticking, [1, 2], workers=0, progress=lambda *a: ticks.append(a), count=lambda r: r,
                     live=True) == [3, 6]
    # ticks add up inside a task; the total is set to count(result) when the task ends
    assert ticks == [(0, 0, 2), (1, 0, 2), (2, 0, 2), (3, 1, 2), (5, 1, 2), (7, 1, 2), (9, 2, 2)]
    assert run_tasks(_square, [], workers=2) == []  # nothing to do: no cluster is started


def test_in_process_error_is_raised_as_is() -> None:
    with pytest.raises(BadInputFileError, match=r"^in\.vcf: record 7: first bad record$"):
        run_tasks(_fail_some, [0, 1, 2, 3], workers=0)


@pytest.mark.parametrize("exc", [
    BadInputFileError("a.vcf", "bad POS", record="record 3"),
    BadInputFileError("a.vcf", "no header"),
    MissingExtraError("hail", "hail"),
    UserInputError("--by x: no such column"),
    WorkerLostError("a worker died"),
])
def test_genolake_errors_survive_pickling(exc: GenolakeError) -> None:
    """Dask sends a task's error to the client pickled: the class, message, exit code and fields stay."""
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc) and back.exit_code == exc.exit_code
    assert vars(back) == vars(exc)


# ------------------------------------------------------------------------------------- a Dask cluster
@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A real two-process LocalCluster, shared by the library-level tests (the --scheduler path)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.mark.cluster
def test_dask_results_in_task_order(scheduler: str) -> None:
    seen: list[tuple[int, int, int]] = []
    got = run_tasks(_square, list(range(8)), scheduler=scheduler, broadcast=1, progress=lambda *a: seen.append(a),
                    count=lambda r: 1)
    assert got == [x * x + 1 for x in range(8)]
    assert seen[0] == (0, 0, 8) and seen[-1] == (8, 8, 8)
    assert [s[1] for s in seen] == list(range(9))


@pytest.mark.cluster
def test_dask_reports_the_first_failure_in_task_order(scheduler: str) -> None:
    with pytest.raises(BadInputFileError, match=r"^in\.vcf: record 7: first bad record$") as info:
        run_tasks(_fail_some, [0, 1, 2, 3], scheduler=scheduler)
    assert info.value.path == "in.vcf" and info.value.record == "record 7"


@pytest.mark.cluster
def test_dask_bug_keeps_its_class_and_worker_traceback(scheduler: str) -> None:
    import traceback

    with pytest.raises(ValueError, match=r"^a bug in task 2$") as info:
        run_tasks(_bug, [0, 1, 2, 3], scheduler=scheduler)
    assert "in _bug" in "".join(traceback.format_exception(info.value))


@pytest.mark.cluster
def test_killed_worker_gives_one_line(tmp_path: Path) -> None:
    """A worker process killed mid-task (as the kernel's OOM killer does): one line, exit 1, no Dask logs."""
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent("""
        import logging, os, signal, sys
        from genolake.compute.runner import run_tasks
        from genolake.errors import GenolakeError

        def work(x):
            if x == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return x

        if __name__ == "__main__":
            logging.basicConfig(level=logging.WARNING, format="genolake: %(message)s")  # as the CLI does
            try:
                run_tasks(work, [0, 1, 2, 3], workers=int(sys.argv[1]))
            except GenolakeError as exc:
                print(f"genolake: error: {exc}", file=sys.stderr)
                sys.exit(exc.exit_code)
    """))
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}  # no retries: a quicker test
    proc = subprocess.run([sys.executable, str(script), "2"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("genolake: error: a Dask worker process died while running the tasks")


# ------------------------------------------------------------------------------- a local process pool
def test_pool_results_in_task_order() -> None:
    seen: list[tuple[int, int, int]] = []
    got = run_tasks(_square, list(range(6)), workers=2, local="processes", broadcast=1,
                    progress=lambda *a: seen.append(a), count=lambda r: 1)
    assert got == [x * x + 1 for x in range(6)]
    assert seen[0] == (0, 0, 6) and seen[-1] == (6, 6, 6)
    assert [s[1] for s in seen] == list(range(7))


def test_pool_reports_the_first_failure_in_task_order() -> None:
    with pytest.raises(BadInputFileError, match=r"^in\.vcf: record 7: first bad record$") as info:
        run_tasks(_fail_some, [0, 1, 2, 3], workers=2, local="processes")
    assert info.value.path == "in.vcf" and info.value.record == "record 7"


def test_pool_bug_keeps_its_class_and_worker_traceback() -> None:
    import traceback

    with pytest.raises(ValueError, match=r"^a bug in task 2\n") as info:  # then the worker's traceback, a note
        run_tasks(_bug, [0, 1, 2, 3], workers=2, local="processes")
    assert "in _bug" in "".join(traceback.format_exception(info.value))


def test_pool_killed_worker_gives_one_line(tmp_path: Path) -> None:
    """A pool worker killed mid-task: one WorkerLostError line, exit 1, no traceback."""
    script = tmp_path / "kill_pool.py"
    script.write_text(textwrap.dedent("""
        import logging, os, signal, sys
        from genolake.compute.runner import run_tasks
        from genolake.errors import GenolakeError

        def work(x):
            if x == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return x

        if __name__ == "__main__":
            logging.basicConfig(level=logging.WARNING, format="genolake: %(message)s")
            try:
                run_tasks(work, [0, 1, 2, 3], workers=2, local="processes")
            except GenolakeError as exc:
                print(f"genolake: error: {exc}", file=sys.stderr)
                sys.exit(exc.exit_code)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("genolake: error: a worker process died while running the tasks"), proc.stderr


# ---------------------------------------------------------------------------- the console script, 0/1/2
@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genolake.ingest.pipeline import ingest

    path = tmp_path_factory.mktemp("runner") / "lake"
    ingest(path, "x", [HAIL], build="GRCh37", workers=0)
    return path


def _same_one_line_each_time(lake: Path, *args: str) -> str:
    before = lake_fingerprint(lake)
    errs = []
    for workers in ("0", "1", "2"):
        proc = _cli(*args, "--lake", str(lake), "--workers", workers)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("genolake: error: "), proc.stderr
        errs.append(proc.stderr)
    assert errs[0] == errs[1] == errs[2]
    assert lake_fingerprint(lake) == before, "a failed command changed the lake"
    return errs[0]


@pytest.mark.cluster
def test_ingest_malformed_vcf_same_line_for_0_1_2_workers(lake: Path) -> None:
    """Two malformed files in one command: each worker count names the first file and its record."""
    err = _same_one_line_each_time(lake, "ingest", "-i", "x", "--build", "GRCh37", str(BAD_POS), str(BAD_REF))
    assert BAD_POS.name in err and "Could not parse the position" in err


@pytest.mark.cluster
def test_annotate_malformed_sources_same_line_for_0_1_2_workers(lake: Path, tmp_path: Path) -> None:
    """A ClinVar VCF with a bad POS (read sequentially, one task) and an indexed one with a short record
    (region tasks)."""
    text = gzip.decompress(CLINVAR37.read_bytes()).decode().splitlines(keepends=True)
    body = [k for k, line in enumerate(text) if not line.startswith("#")]
    bad_pos = list(text)
    fields = bad_pos[body[49]].split("\t")
    bad_pos[body[49]] = "\t".join([fields[0], "12x", *fields[2:]])
    plain = tmp_path / "clinvar_bad_pos.vcf"
    plain.write_text("".join(bad_pos))
    err = _same_one_line_each_time(lake, "annotate", "--clinvar", str(plain))
    assert "clinvar_bad_pos.vcf" in err and "POS '12x' is not an integer" in err
    short = list(text)
    short[body[49]] = "\t".join(short[body[49]].split("\t")[:6]) + "\n"
    indexed = tmp_path / "clinvar_short_record.vcf"
    indexed.write_text("".join(short))
    subprocess.run(["bgzip", "-f", str(indexed)], check=True)
    subprocess.run(["tabix", "-p", "vcf", f"{indexed}.gz"], check=True)
    err = _same_one_line_each_time(lake, "annotate", "--clinvar", f"{indexed}.gz")
    assert "clinvar_short_record.vcf.gz" in err and "wrong number of tab-separated columns" in err


@pytest.mark.cluster
def test_aggregate_damaged_lake_file_same_error_for_0_1_2_workers(lake: Path, tmp_path: Path) -> None:
    """A genotype file damaged on disk fails inside the counting task: the same exception, message and exit
    code whatever the worker count, no Dask log line, and nothing committed. (pyarrow's error is not a named
    genolake error, so the CLI shows it with its traceback, as for any unexpected error.)"""
    damaged = tmp_path / "lake"
    shutil.copytree(lake, damaged)
    target = sorted((damaged / "genotypes").rglob("*.parquet"))[0]
    data = bytearray(target.read_bytes())
    data[200:len(data) // 2] = b"\x55" * (len(data) // 2 - 200)  # data pages; the footer stays readable
    target.write_bytes(bytes(data))
    before = lake_fingerprint(damaged)
    last = []
    for workers in ("0", "1", "2"):
        proc = _cli("aggregate", "--lake", str(damaged), "--workers", workers)
        assert proc.returncode == 1
        assert "distributed." not in proc.stderr and "Compute Failed" not in proc.stderr, proc.stderr
        last.append(proc.stderr.strip().splitlines()[-1])
    assert last[0] == last[1] == last[2] and last[0].startswith(("OSError: ", "pyarrow.lib.ArrowInvalid: ")), last
    assert lake_fingerprint(damaged) == before


def _big_vcf(path: Path, *, samples: int = 300, records: int = 40_000) -> Path:
    """A synthetic GRCh37 VCF whose ingest takes several seconds (time to interrupt it)."""
    import numpy as np

    rng = np.random.default_rng(11)
    codes = np.array(["0/0", "0/1", "1/1", "./."], dtype=object)
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##reference=GRCh37\n##contig=<ID=20,length=63025520>\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t")
        fh.write("\t".join(f"P{i}" for i in range(samples)) + "\n")
        g = codes[rng.choice(4, size=(records, samples), p=[0.93, 0.05, 0.015, 0.005])]
        for k in range(records):
            fh.write(f"20\t{1000 + 7 * k}\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(g[k]) + "\n")
    return path


@pytest.mark.cluster
@pytest.mark.parametrize("workers", ["0", "2"])
def test_ctrl_c_exits_130_with_one_line(lake: Path, tmp_path: Path, workers: str) -> None:
    """Ctrl-C (SIGINT) mid-ingest, in process or on a local cluster: exit code 130, the one "interrupted" line,
    the lake unchanged. (typer returns 130 instead of raising outside standalone mode: the CLI used to exit 0.)"""
    import signal

    big = _big_vcf(tmp_path / "big.vcf")
    before = lake_fingerprint(lake)
    exe = Path(sys.executable).with_name("genolake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "genolake"]
    proc = subprocess.Popen([*cmd, "ingest", "--lake", str(lake), "-i", "y", "--workers", workers, str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    staging = lake / "_staging"
    deadline = time.time() + 120
    while time.time() < deadline and not (staging.exists() and any(staging.iterdir())):
        time.sleep(0.05)
    if workers == "0":
        time.sleep(1.0)  # inside the conversion
    else:  # the local cluster's worker processes exist (not a fixed wait: a quiet machine starts them fast)
        import psutil

        parent = psutil.Process(proc.pid)
        while time.time() < deadline and proc.poll() is None and len(parent.children(recursive=True)) < 3:
            time.sleep(0.05)
        time.sleep(0.5)
    assert proc.poll() is None, "ingest finished before it could be interrupted; make the file bigger"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err == "genolake: interrupted; nothing was committed, the lake is unchanged\n", err
    assert lake_fingerprint(lake) == before


@pytest.mark.cluster
def test_lost_scheduler_gives_one_line(tmp_path: Path) -> None:
    """A scheduler started with Dask's own tools (`dask scheduler`, `dask worker`) dies while tasks run: one
    WorkerLostError line, no Dask traceback."""
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    bindir = Path(sys.executable).parent
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bindir / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    script = tmp_path / "lost.py"
    script.write_text(textwrap.dedent(f"""
        import logging, sys, time
        from genolake.compute.runner import run_tasks
        from genolake.errors import GenolakeError

        def slow(x):
            time.sleep(60)
            return x

        if __name__ == "__main__":
            logging.basicConfig(level=logging.WARNING, format="genolake: %(message)s")
            try:
                run_tasks(slow, [1, 2], scheduler="{address}")
            except GenolakeError as exc:
                print(f"genolake: error: {{exc}}", file=sys.stderr)
                sys.exit(exc.exit_code)
    """))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # the worker has joined
            probe = subprocess.run([sys.executable, "-c", f"from distributed import Client; c = Client('{address}', "
                                    "timeout=5); print(len(c.scheduler_info()['workers'])); c.close()"],
                                   capture_output=True, text=True)
            if probe.stdout.strip() not in ("", "0"):
                break
            time.sleep(1)
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        time.sleep(6)  # connected, tasks running on the worker
        assert proc.poll() is None, proc.communicate()
        sched.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=120)
    finally:
        for p in (worker, sched):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=60)
    assert proc.returncode == 1, err
    assert err.startswith("genolake: error: lost the connection to the Dask scheduler") and err.count("\n") == 1, err
