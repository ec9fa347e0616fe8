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

    def grow(_records: int, _tasks: int) -> None:  # another program appends a record while genolake reads
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
