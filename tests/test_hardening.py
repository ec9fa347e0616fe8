"""Issue 15's reproductions outside the SQL sandbox (tests/test_sql_sandbox.py): each one gives one clear line
(or the right answer) and leaves the lake as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ingest_helpers import lake_fingerprint, run_cli

import genolake
from genolake.errors import BadInputFileError, LakeStateError, UserInputError
from genolake.ingest.pipeline import ingest, validate_institution

ROOT = Path(__file__).resolve().parent.parent
SOUTH = ROOT / "data" / "sample_vcfs" / "south.vcf"
NORTH = ROOT / "data" / "sample_vcfs" / "north.vcf.gz"
EAST = ROOT / "data" / "sample_vcfs" / "east.bcf"


# ----------------------------------------------------------------------------- 2. reserved institution names
@pytest.mark.parametrize("name", ["joint", "JOINT", "Joint", "all", "con", "NUL", "com1", "lpt9", "aux.x", "north."])
def test_reserved_institution_names_are_refused(name: str) -> None:
    with pytest.raises(UserInputError, match=r"reserved|invalid institution name"):
        validate_institution(name)


@pytest.mark.parametrize("name", ["north", "st-mary_s.2", "joint2", "jointly", "a"])
def test_ordinary_institution_names_pass(name: str) -> None:
    assert validate_institution(name) == name


def test_ingest_as_joint_is_one_line_and_no_lake(tmp_path: Path) -> None:
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "joint", "-w", "0", str(SOUTH))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "reserved" in res.stderr
    assert not (tmp_path / "lake").exists()


# ----------------------------------------------------------------------------- 4. a lake without genolake.json
def test_lake_without_its_record_is_not_rekeyed(tmp_path: Path, key_dir: Path) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "south", [SOUTH], workers=0)
    (lake / "genolake.json").unlink()
    before = lake_fingerprint(lake)
    keys = sorted(p.name for p in key_dir.iterdir())
    with pytest.raises(LakeStateError, match=r"no genolake.json.*restore genolake.json from a backup"):
        ingest(lake, "east", [EAST], workers=0)
    res = run_cli("ingest", "--lake", str(lake), "-i", "east", "-w", "0", str(EAST))
    assert res.returncode != 0 and res.stderr.strip().count("\n") == 0 and "restore genolake.json" in res.stderr
    assert lake_fingerprint(lake) == before
    assert sorted(p.name for p in key_dir.iterdir()) == keys  # no second key
    res = run_cli("query", "sql", "--lake", str(lake), "SELECT 1")
    assert res.returncode != 0 and "restore genolake.json" in res.stderr


def test_restoring_the_record_brings_the_lake_back(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "south", [SOUTH], workers=0)
    record = (lake / "genolake.json").read_text()
    (lake / "genolake.json").unlink()
    with pytest.raises(LakeStateError):
        ingest(lake, "east", [EAST], workers=0)
    (lake / "genolake.json").write_text(record)
    ingest(lake, "east", [EAST], workers=0)
    with genolake.open(lake) as lk:
        assert lk.store.config["lake_id"] == json.loads(record)["lake_id"]
        assert lk.sql("SELECT count(DISTINCT institution) AS n FROM files").to_pylist() == [{"n": 2}]


def test_interrupted_creation_without_data_can_be_rerun(tmp_path: Path) -> None:
    """Tables created but no record written yet (a crash during creation) hold no data: not refused."""
    lake = tmp_path / "lake"
    ingest(lake, "south", [SOUTH], workers=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copytree(lake / "files" / "_delta_log", empty / "files" / "_delta_log")
    for p in (empty / "files" / "_delta_log").glob("*.json"):
        if int(p.stem) > 0:
            p.unlink()
    ingest(empty, "south", [SOUTH], workers=0)
    assert (empty / "genolake.json").exists()


# ----------------------------------------------------------------------------- 3. a file modified during ingest
def test_file_changed_during_ingest_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "east", [EAST], workers=0)
    vcf = tmp_path / "in.vcf"
    shutil.copy(SOUTH, vcf)
    last = vcf.read_text().rstrip("\n").split("\n")[-1].split("\t")
    last[1] = str(int(last[1]) + 1)
    extra = "\t".join(last) + "\n"
    before = lake_fingerprint(lake)
    appended = []

    def grow(*_progress: int) -> None:  # another program appends a record while genolake reads
        if not appended:
            with open(vcf, "a") as fh:
                fh.write(extra)
            appended.append(1)

    with pytest.raises(BadInputFileError, match="changed while it was being ingested"):
        ingest(lake, "south", [vcf], workers=0, progress=grow)
    assert appended and lake_fingerprint(lake) == before
    # the complete file then goes in, under the checksum of the bytes read
    report = ingest(lake, "south", [vcf], workers=0)
    import hashlib

    with genolake.open(lake) as lk:
        sha = lk.sql("SELECT sha256 FROM files WHERE institution = 'south'").to_pylist()[0]["sha256"]
    assert sha == hashlib.sha256(vcf.read_bytes()).hexdigest()
    assert report.files[0].n_records == sum(1 for line in vcf.read_text().splitlines() if not line.startswith("#"))


# ----------------------------------------------------------------------------- 6. raw IDs, file names, key mode
def test_redact_samples() -> None:
    from genolake.ingest.reader import redact_samples

    samples = ["NA06985", "HG00173", "7"]
    assert redact_samples("Duplicated sample name 'NA06985'", samples) == "Duplicated sample name sample column 1"
    assert redact_samples("sample HG00173 has 3 values", samples) == "sample sample column 2 has 3 values"
    assert redact_samples("record 7 of '7'", samples) == "record 7 of sample column 3"
    assert redact_samples("NA069850 NA06985x", samples) == "NA069850 NA06985x"


def test_htslib_message_with_a_sample_name_is_scrubbed(tmp_path: Path) -> None:
    lines = SOUTH.read_text().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("#CHROM"):
            cols = line.split("\t")
            cols[10] = cols[9]  # the second sample column repeats the first name
            lines[i] = "\t".join(cols)
            name = cols[9]
    vcf = tmp_path / "dup.vcf"
    vcf.write_text("\n".join(lines))
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "x", "-w", "0", str(vcf))
    assert res.returncode == 1
    assert name not in res.stderr and name not in res.stdout
    assert "sample column 1" in res.stderr and res.stderr.strip().count("\n") == 0


def test_summary_names_files_by_position_not_name(tmp_path: Path) -> None:
    named = tmp_path / "NA06985_HG00173.vcf"
    shutil.copy(SOUTH, named)
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "x", "-w", "0", str(EAST), str(named))
    assert res.returncode == 0, res.stderr
    assert "NA06985" not in res.stderr + res.stdout
    assert "file 2 of 2 (sha256 " in res.stderr and "file 1 of 2 (sha256 " in res.stderr
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "x", "-w", "0", str(named))
    assert "NA06985" not in res.stderr and "file 1 of 1 (sha256 " in res.stderr and "already ingested" in res.stderr


def test_key_readable_by_others_is_refused(tmp_path: Path, key_dir: Path) -> None:
    import os

    lake = tmp_path / "lake"
    ingest(lake, "south", [SOUTH], workers=0)
    key = key_dir / f"{json.loads((lake / 'genolake.json').read_text())['lake_id']}.key"
    assert key.stat().st_mode & 0o777 == 0o600
    before = lake_fingerprint(lake)
    os.chmod(key, 0o644)
    try:
        res = run_cli("ingest", "--lake", str(lake), "-i", "east", "-w", "0", str(EAST))
        assert res.returncode == 1 and res.stderr.strip().count("\n") == 0
        assert f"chmod 600 {key}" in res.stderr
        assert lake_fingerprint(lake) == before
    finally:
        os.chmod(key, 0o600)
    ingest(lake, "east", [EAST], workers=0)


# ----------------------------------------------------------------------------- 8. phenotype files
@pytest.fixture(scope="module")
def pheno_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    from genolake.ingest.reader import header_samples

    lake = tmp_path_factory.mktemp("pheno") / "lake"
    ingest(lake, "south", [SOUTH], workers=0)
    return lake, header_samples(str(SOUTH))[:3]


def test_huge_phenotype_cell_is_one_line(pheno_lake: tuple[Path, list[str]], tmp_path: Path) -> None:
    from genolake.phenotypes import load_phenotypes

    lake, ids = pheno_lake
    before = lake_fingerprint(lake)
    for suffix, sep in ((".tsv", "\t"), (".csv", ",")):
        f = tmp_path / f"big{suffix}"
        f.write_text(f"sample_id{sep}note\n{ids[0]}{sep}ok\n{ids[1]}{sep}{'x' * 200_000}\n")
        with pytest.raises(BadInputFileError, match=r"line 3.*128 KiB"):
            load_phenotypes(lake, "south", f)
        res = run_cli("phenotypes", "load", "--lake", str(lake), "-i", "south", str(f))
        assert res.returncode == 1 and res.stderr.strip().count("\n") == 0 and "128 KiB" in res.stderr
    assert lake_fingerprint(lake) == before


def test_free_text_is_not_split_and_formulas_are_neutralised_in_csv(pheno_lake: tuple[Path, list[str]],
                                                                     tmp_path: Path) -> None:
    lake, ids = pheno_lake
    f = tmp_path / "p.tsv"
    formula = "=cmd|' /C calc'!A0"
    f.write_text("sample_id\tnote\tcodes\tscore\n"
                 f"{ids[0]}\t{formula}\tE11;I10\t-0.5\n"
                 f"{ids[1]}\tseizures, mild; recurrent\tE11\t2\n"
                 f"{ids[2]}\t@SUM(A1)\tI10|E11\t3\n")
    res = run_cli("phenotypes", "load", "--lake", str(lake), "-i", "south", "--format", "json", str(f))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["phenotypes"] == {"note": "categorical", "codes": "categorical",
                                                    "score": "numeric"}
    with genolake.open(lake) as lk:
        notes = sorted(r["note"] for r in lk.sql("SELECT note FROM phenotypes WHERE note IS NOT NULL").to_pylist())
    assert notes == sorted([formula, "seizures, mild; recurrent", "@SUM(A1)"])  # stored as written
    res = run_cli("query", "sql", "--lake", str(lake), "--format", "csv",
                  "SELECT note, score FROM phenotypes WHERE note IS NOT NULL ORDER BY score")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[1] == "'=cmd|' /C calc'!A0,-0.5"  # neutralised; a number is not
    assert lines[3].startswith("'@SUM(A1)")
    tsv = run_cli("query", "sql", "--lake", str(lake), "--format", "tsv", "SELECT note FROM phenotypes ORDER BY note")
    assert formula in tsv.stdout.splitlines()  # TSV stays exact
    # lists where the user says so
    res = run_cli("phenotypes", "load", "--lake", str(lake), "-i", "south", "--list-columns", "codes",
                  "--format", "json", str(f))
    assert json.loads(res.stdout)["phenotypes"]["codes"] == "list"
    with genolake.open(lake) as lk:
        got = sorted(map(sorted, (r["codes"] for r in lk.sql("SELECT codes FROM phenotypes").to_pylist())))
    assert got == [["E11"], ["E11", "I10"], ["E11", "I10"]]


# ----------------------------------------------------------------------------- 5. full disk, read-only lake
def _mount_tmpfs(where: Path, size: str) -> None:
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the unit-level simulations below still run")


def _umount(where: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_disk_full_during_the_delta_commit_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC inside the Delta commit (simulated at deltalake's write call: the first table commits, the next
    hits a full disk), the rerun while still full, and the rerun after space is freed."""
    import errno

    import deltalake

    from genolake.errors import LakeWriteError

    lake = tmp_path / "lake"
    ingest(lake, "east", [EAST], workers=0)
    before = lake_fingerprint(lake)
    real = deltalake.DeltaTable.create_write_transaction
    calls = []

    def full(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "Generic LocalFileSystem error: No space left on device (os error 28)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", full)
    with pytest.raises(LakeWriteError, match=r"disk holding the lake is full .*committing; the commit is recorded"):
        ingest(lake, "south", [SOUTH], workers=0)
    assert list((lake / "_txn").glob("*.json"))  # the redo record
    with genolake.open(lake) as lk:  # nothing of the new file is visible
        assert lk.sql("SELECT count(*) AS n FROM files").to_pylist() == [{"n": 1}]
    with pytest.raises(LakeWriteError, match=r"is full .*completing an interrupted commit"):  # still full
        ingest(lake, "south", [SOUTH], workers=0)
    monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", real)  # space freed
    report = ingest(lake, "south", [SOUTH], workers=0)
    assert [f.status for f in report.files] == ["skipped"]  # the interrupted commit was completed first
    assert not list((lake / "_txn").glob("*.json"))
    with genolake.open(lake) as lk:
        assert lk.sql("SELECT institution, count(*) AS n FROM files GROUP BY 1 ORDER BY 1").to_pylist() == [
            {"institution": "east", "n": 1}, {"institution": "south", "n": 1}]
    assert set(before) <= set(lake_fingerprint(lake))


def test_disk_full_while_staging_is_not_a_parse_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import pyarrow.parquet as pq

    from genolake.errors import LakeWriteError

    lake = tmp_path / "lake"
    ingest(lake, "east", [EAST], workers=0)
    before = lake_fingerprint(lake)

    def full(*_a, **_k):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(LakeWriteError, match=r"full .*nothing was changed"):
        ingest(lake, "south", [SOUTH], workers=0)
    monkeypatch.undo()
    assert {k: v for k, v in lake_fingerprint(lake).items() if not k.startswith("_staging")} == before
    assert [f.status for f in ingest(lake, "south", [SOUTH], workers=0).files] == ["ingested"]


def test_real_full_disk_and_read_only_lake(tmp_path: Path) -> None:
    """On a real tmpfs: a full disk and a read-only mount each give one line; the rerun completes with exit 0."""
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt, "6m")
    try:
        lake = mnt / "lake"
        res = run_cli("ingest", "--lake", str(lake), "-i", "east", "-w", "0", str(EAST))
        assert res.returncode == 0, res.stderr
        before = lake_fingerprint(lake)
        filler = mnt / "filler"
        with open(filler, "wb") as fh:  # leave about 16 KiB free
            import os

            free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
            fh.write(b"\0" * max(0, free - 16 * 1024))
        res = run_cli("ingest", "--lake", str(lake), "-i", "south", "-w", "0", str(SOUTH))
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip().count("\n") == 0 and "is full" in res.stderr and "Traceback" not in res.stderr
        filler.unlink()
        res = run_cli("ingest", "--lake", str(lake), "-i", "south", "-w", "0", str(SOUTH))
        assert res.returncode == 0, res.stderr
        assert set(before) <= set(lake_fingerprint(lake))
        # read-only
        import subprocess

        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        frozen = lake_fingerprint(lake)
        pheno = tmp_path / "p.tsv"
        from genolake.ingest.reader import header_samples

        pheno.write_text("sample_id\tage\n" + "".join(f"{s}\t{40 + i}\n"
                                                       for i, s in enumerate(header_samples(str(SOUTH))[:5])))
        for args in (["ingest", "--lake", str(lake), "-i", "north", "-w", "0", str(NORTH)],
                     ["phenotypes", "load", "--lake", str(lake), "-i", "south", str(pheno)],
                     ["aggregate", "--lake", str(lake), "--workers", "0"]):
            res = run_cli(*args)
            assert res.returncode == 1, (args, res.stderr)
            assert "read-only file system" in res.stderr and "Traceback" not in res.stderr, res.stderr
            assert res.stderr.strip().count("\n") == 0, res.stderr
        res = run_cli("query", "sql", "--lake", str(lake), "SELECT count(*) AS n FROM files")
        assert res.returncode == 0, res.stderr  # reading a read-only lake works
        assert lake_fingerprint(lake) == frozen
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        res = run_cli("phenotypes", "load", "--lake", str(lake), "-i", "south", str(pheno))
        assert res.returncode == 0, res.stderr
    finally:
        _umount(mnt)
