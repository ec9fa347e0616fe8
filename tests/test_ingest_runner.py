"""The default ingest runner: small inputs, and inputs that make one task (no index), in this process; larger
indexed ones on a local process pool; the report and the CLI say which runner was chosen."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import run_cli

from genolake.ingest import pipeline

NORTH = Path(__file__).parents[1] / "data" / "sample_vcfs" / "north.vcf.gz"


def test_small_input_runs_in_process_by_default(tmp_path: Path) -> None:
    report = pipeline.ingest(tmp_path / "lake", "north", [NORTH])
    assert report.runner == "in process"


def test_large_input_would_start_a_process_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the threshold an indexed input is cut into region tasks for a local process pool (not a Dask
    cluster); checked by making the threshold tiny and the pool path fail before it starts."""
    import genolake.ingest.plan as plan

    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)
    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)  # several regions in the 600 kb sample file

    def no_pool(*_a: object, **_k: object) -> None:
        raise RuntimeError("pool path taken")

    def no_cluster(*_a: object, **_k: object) -> None:
        raise AssertionError("a Dask cluster was started")

    monkeypatch.setattr("genolake.compute.runner._run_on_pool", no_pool)
    monkeypatch.setattr("genolake.compute.runner._run_on_dask", no_cluster)
    with pytest.raises(RuntimeError, match="pool path taken"):
        pipeline.ingest(tmp_path / "lake", "north", [NORTH])


def test_large_input_of_one_task_runs_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file without an index cannot be cut into regions: one task, so no worker process is started."""
    import shutil

    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)
    plain = tmp_path / "north.vcf.gz"
    shutil.copy(NORTH, plain)  # without its .tbi

    def no_workers(*_a: object, **_k: object) -> None:
        raise AssertionError("worker processes were started")

    monkeypatch.setattr("genolake.compute.runner._run_on_pool", no_workers)
    monkeypatch.setattr("genolake.compute.runner._run_on_dask", no_workers)
    report = pipeline.ingest(tmp_path / "lake", "north", [plain])
    assert report.runner == "in process"


def test_process_pool_runs_region_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default on a (made) large indexed input: a real local pool of worker processes, named in the report."""
    import genolake.ingest.plan as plan

    monkeypatch.setattr(pipeline, "IN_PROCESS_BYTES", 1)
    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)
    report = pipeline.ingest(tmp_path / "lake", "north", [NORTH])
    assert report.runner.startswith("local pool of ") and report.runner.endswith(" worker processes"), report.runner
    assert report.files[0].status == "ingested" and report.files[0].n_records > 0


def test_cli_says_which_runner(tmp_path: Path) -> None:
    proc = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "north", str(NORTH))
    assert proc.returncode == 0, proc.stderr
    assert "in process" in proc.stderr


# ------------------------------------------------------------------------- reader threads, in process
CALLS_SQL = "SELECT institution, contig, pos, ref, alt, sample_id, gt, gq, dp, ad_ref, ad_alt FROM calls"
VARIANTS_SQL = "SELECT institution, contig, pos, ref, alt, ac, an, nhomalt, nhemi, n_called, n_missing FROM variant_files"


def _shared_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genolake.pseudonym import create_key

    key = tmp_path / "shared.key"  # one key: pseudonyms comparable across lakes
    create_key(key)
    monkeypatch.setenv("GENOLAKE_KEY_FILE", str(key))


def test_reader_threads_give_the_same_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest_helpers import sorted_rows

    _shared_key(tmp_path, monkeypatch)
    one = pipeline.ingest(tmp_path / "one", "x", [NORTH], workers=0)
    assert one.runner == "in process"
    import genolake.ingest.plan as plan

    monkeypatch.setattr(pipeline, "THREAD_BYTES", 1)
    monkeypatch.setattr(pipeline, "reader_threads", lambda: 2)
    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)
    seen: list[tuple[int, int, int]] = []
    two = pipeline.ingest(tmp_path / "two", "x", [NORTH], workers=0, progress=lambda *a: seen.append(a))
    assert two.runner == "in process, 2 reader threads"
    assert len(list((tmp_path / "two" / "genotypes").rglob("*.parquet"))) > 2, "expected several region tasks"
    assert seen[-1][0] == two.files[0].n_records == one.files[0].n_records and seen[-1][1] == seen[-1][2]
    for sql in (CALLS_SQL, VARIANTS_SQL, "SELECT sample_id, contig, ploidy FROM ploidy"):
        assert sorted_rows(tmp_path / "one", sql) == sorted_rows(tmp_path / "two", sql)


def _faulty_copy(tmp_path: Path, line: int, edit: str) -> Path:
    """north.vcf.gz with data line ``line`` changed by ``edit`` (a REF, or one genotype), bgzipped and indexed."""
    import gzip
    import subprocess

    text = gzip.decompress(NORTH.read_bytes()).decode().splitlines(keepends=True)
    body = [k for k, row in enumerate(text) if not row.startswith("#")]
    fields = text[body[line]].split("\t")
    if edit == "ref":
        fields[3] = "X"
    else:
        fields[9] = "0|2"  # an allele the record does not have (found by the numpy thread)
    text[body[line]] = "\t".join(fields)
    out = tmp_path / "north_faulty.vcf"
    out.write_text("".join(text))
    subprocess.run(["bgzip", "-f", str(out)], check=True)
    subprocess.run(["tabix", "-p", "vcf", f"{out}.gz"], check=True)
    return Path(f"{out}.gz")


@pytest.mark.parametrize("edit", ["ref", "allele"])
def test_fault_in_a_threaded_file_named_as_on_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture, edit: str) -> None:
    """A bad record late in the file: the reader threads give the same one error as reading on one thread
    (record number and position), and the lake is not created."""
    from genolake.errors import BadInputFileError

    bad = _faulty_copy(tmp_path, 4000, edit)
    with pytest.raises(BadInputFileError) as one:
        pipeline.ingest(tmp_path / "one", "x", [bad], workers=0)
    import genolake.ingest.plan as plan

    monkeypatch.setattr(pipeline, "THREAD_BYTES", 1)
    monkeypatch.setattr(pipeline, "reader_threads", lambda: 2)
    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)
    with caplog.at_level("INFO", logger="genolake.ingest.convert"), pytest.raises(BadInputFileError) as two:
        pipeline.ingest(tmp_path / "two", "x", [bad], workers=0)
    assert "reading it again on one" in caplog.text  # the threads met the fault, one thread named it
    assert str(two.value) == str(one.value)
    assert not (tmp_path / "two" / "genotypes").exists() or not list((tmp_path / "two" / "genotypes").rglob("*.parquet"))
    assert "record 4001 " in str(one.value), str(one.value)
