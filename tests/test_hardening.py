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

    def grow(done: int, *_progress: int) -> None:  # another program appends a record while genolake reads
        if not appended and done:  # (the first call, done = 0, announces the number of tasks before reading)
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


# ----------------------------------------------------------------------------- 7. inputs accepted silently
_HEAD = (
    "##fileformat=VCFv4.2\n##reference=GRCh37\n##contig=<ID=20,length=5000>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n'
    '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n'
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\tS3\n"
)


def _vcf(tmp_path: Path, body: str, name: str = "in.vcf") -> Path:
    path = tmp_path / name
    path.write_text(_HEAD + body)
    return path


@pytest.mark.parametrize(("body", "message"), [
    ("20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t0/0\n20\t6000\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t0/0\n",
     "record 2 (20:6000): POS 6000 is beyond the length of contig 20 in the header (5,000)"),
    ("20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t0/0\n20\t100\t.\tC\tT\t.\t.\t.\tGT\t0/1\t0/0\t0/0\n",
     "record 2 (20:100): REF C contradicts REF A of an earlier record at the same position"),
    ("20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/0\t0/0\t1/1\n",
     "record 1: 4 sample columns but the header names 3"),
])
def test_contradictory_inputs_are_refused(tmp_path: Path, body: str, message: str) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "east", [EAST], workers=0)
    before = lake_fingerprint(lake)
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "-w", "0", str(_vcf(tmp_path, body)))
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0, res.stderr
    assert message in res.stderr, res.stderr
    assert lake_fingerprint(lake) == before


def test_overlapping_indel_and_snv_at_one_position_pass(tmp_path: Path) -> None:
    """REFs that agree on the bases they share (an indel and an SNV at one POS) are normal."""
    body = ("20\t100\t.\tAT\tA\t.\t.\t.\tGT\t0/1\t0/0\t0/0\n"
            "20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/0\t0/1\t0/0\n")
    report = ingest(tmp_path / "lake", "x", [_vcf(tmp_path, body)], workers=0)
    assert report.files[0].n_variants == 2


def test_bad_format_values_are_missing_and_counted(tmp_path: Path) -> None:
    body = (
        # AD with 3 values for 2 alleles (record-level: not stored), negative AD, a short AD, GQ beyond int32
        "20\t100\t.\tA\tG\t.\t.\t.\tGT:AD:GQ:DP\t0/1:5,3,1:30:10\t0/1:4,3,0:20:8\t0/0:7,0,0:3000000000:9\n"
        "20\t101\t.\tA\tG\t.\t.\t.\tGT:AD:GQ:DP\t0/1:-5,3:30:-2\t1/1:4:20:8\t0/1:2,2:99:100000000000\n"
        "20\t102\t.\tA\tG,T\t.\t.\t.\tGT:AD:GQ:DP\t1/2:-1,3,4:30:10\t0/0:9,0,0:20:8\t0/1:2,2,0:99:10\n"
    )
    lake = tmp_path / "lake"
    report = ingest(lake, "x", [_vcf(tmp_path, body)], workers=0)
    text = "\n".join(report.warnings)
    assert "file 1 of 1 (sha256 " in text
    assert "1 records whose FORMAT/AD does not have one value per allele" in text
    # AD -5, DP -2, and AD -1 of a 1/2 genotype counted once per split allele row (G and T)
    assert "4 negative FORMAT/GQ, DP or AD values stored as missing" in text
    assert "1 genotypes with fewer FORMAT/AD values than alleles" in text
    with genolake.open(lake) as lk:
        rows = lk.sql("SELECT pos, alt, gt, gq, dp, ad_ref, ad_alt FROM calls ORDER BY pos, alt, gt, ad_alt").to_pylist()
    at = {(r["pos"], r["alt"], r["gt"], r["ad_alt"]) for r in rows}
    assert (100, "G", "0/1", None) in at  # record-level AD refused, not truncated
    neg = [r for r in rows if r["pos"] == 101 and r["gt"] == "0/1" and r["ad_alt"] == 3]
    assert neg and neg[0]["ad_ref"] is None and neg[0]["dp"] is None  # -5 and -2 -> missing
    assert all(r["ad_ref"] is None or r["ad_ref"] >= 0 for r in rows)
    assert all(r["dp"] is None or r["dp"] >= 0 for r in rows)
    big = [r for r in rows if r["pos"] == 101 and r["gt"] == "0/1" and r["ad_alt"] == 2]
    assert big and big[0]["dp"] is None  # 1e11 does not fit int32: missing (htslib), not a wrapped number


def test_warnings_are_printed_by_the_cli(tmp_path: Path) -> None:
    body = "20\t100\t.\tA\tG\t.\t.\t.\tGT:AD\t0/1:-5,3\t0/0:9,0\t0/0:9,0\n"
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "x", "-w", "0", str(_vcf(tmp_path, body)))
    assert res.returncode == 0, res.stderr
    assert "warning: file 1 of 1 (sha256 " in res.stderr and "1 negative FORMAT/GQ, DP or AD values" in res.stderr


# ----------------------------------------------------------------------------- 9. verify streams
def test_verify_streams_in_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With windows of a few base pairs (hundreds of window reads) verify agrees with the lake, and still
    finds a changed genotype; the lake is read per window, never as a whole."""
    import pyarrow.parquet as pq

    from genolake.ingest import verify as verify_mod
    from genolake.ingest.verify import VerificationError, verify_files

    hail = Path(__file__).resolve().parent / "data" / "hail_sample_1kg_chr20_100s.vcf.gz"
    lake = tmp_path / "lake"
    ingest(lake, "x", [hail], build="GRCh37", workers=0)
    loads: list[int] = []
    real_load = verify_mod._LakeWindow.load

    def counting(self, contig, pos, path):  # type: ignore[no-untyped-def]
        real_load(self, contig, pos, path)
        loads.append(sum(len(v) for v in self.calls.values()))

    monkeypatch.setattr(verify_mod._LakeWindow, "load", counting)
    monkeypatch.setattr(verify_mod, "WINDOW_BP", 10)
    monkeypatch.setattr(verify_mod, "WINDOW_ROWS", 40)
    assert verify_files(lake, "x", [hail]) == 346
    assert len(loads) > 50 and max(loads) < 7134 // 10  # many small windows, none holding the file
    data = next((lake / "genotypes").rglob("*.parquet"))
    from test_ingest_real import _recode

    pq.write_table(_recode(pq.read_table(data), "0/1", "1/1"), data)
    with pytest.raises(VerificationError, match="VCF 0/1, lake 1/1"):
        verify_files(lake, "x", [hail])
