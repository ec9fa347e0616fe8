"""`genolake phenotypes load`: TSV/CSV/PED parsing, type inference, pseudonymisation, atomic replacement."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from query_fixtures import hail_vcf, need_bcftools

from genolake.errors import BadInputFileError, UserInputError
from genolake.phenotypes import infer_kind, load_phenotypes, phenotype_name

SAMPLES = ["S1", "S2", "S3", "S4", "S5", "S6"]


@pytest.fixture()
def tiny_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lake with 6 samples of institution `inst` (the first 6 of the Hail VCF, renamed S1..S6)."""
    need_bcftools()
    monkeypatch.setenv("GENOLAKE_KEY_DIR", str(tmp_path / "keys"))
    from genolake.ingest.pipeline import ingest

    names = subprocess.run(["bcftools", "query", "-l", str(hail_vcf())], check=True, capture_output=True,
                           text=True).stdout.split()[:6]
    rename = tmp_path / "rename.txt"
    rename.write_text("".join(f"{a} {b}\n" for a, b in zip(names, SAMPLES, strict=True)))
    vcf = tmp_path / "six.vcf.gz"
    view = subprocess.run(["bcftools", "view", "-s", ",".join(names), "-r", "20:10000000-10300000",
                           str(hail_vcf())], check=True, capture_output=True).stdout
    subprocess.run(["bcftools", "reheader", "-s", str(rename), "-o", str(vcf), "-"], input=view, check=True)
    lake = tmp_path / "lake"
    ingest(lake, "inst", [vcf], build="GRCh37", workers=0)
    yield lake


def _wide(lake: Path) -> list[dict[str, object]]:
    import genolake

    with genolake.open(lake) as lk:
        return lk.sql("SELECT * FROM phenotypes ORDER BY sample_id").to_pylist()


def test_tsv_types_inferred_and_report_counts(tiny_lake: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.tsv"
    f.write_text(
        "sample_id\tSex\tcase_status\tAge\tBMI\tHPO terms\tnote\n"
        "S1\tfemale\tcase\t54\t31.5\tHP:0001250;HP:0004322\tok\n"
        "S2\tmale\tcontrol\t61\tNA\tHP:0001250\t\n"
        "S3\tfemale\tNA\t.\t22\t\tfine\n"
        "S4\tmale\tcase\t40\t25.25\tHP:0000118\tok\n"
        "X9\tmale\tcontrol\t33\t20\t\tok\n"
    )
    rep = load_phenotypes(tiny_lake, "inst", f)
    assert rep["loaded"] == 5
    assert rep["in_table_not_in_lake"] == 1  # X9
    assert rep["in_lake_not_in_table"] == 2  # S5, S6
    assert rep["phenotypes"] == {"sex": "categorical", "case_status": "categorical", "age": "numeric",
                                 "bmi": "numeric", "hpo_terms": "list", "note": "categorical"}
    assert "X9" not in repr(rep) and "S1" not in repr(rep)
    rows = _wide(tiny_lake)
    assert len(rows) == 4  # X9 is not in the lake: counted, not stored (issue 9; --keep-unmatched stores it)
    assert rep["stored_samples"] == 4
    by_age = {r["age"]: r for r in rows}
    assert by_age[54.0]["hpo_terms"] == ["HP:0001250", "HP:0004322"]
    assert by_age[54.0]["bmi"] == 31.5 and by_age[61.0]["bmi"] is None
    assert by_age[61.0]["case_status"] == "control"
    assert {r["sex"] for r in rows} == {"male", "female"}


def test_sample_ids_pseudonymised_as_at_ingest(tiny_lake: Path, tmp_path: Path) -> None:
    import genolake

    f = tmp_path / "p.csv"
    f.write_text("id,status\nS1,case\nS2,control\n")
    load_phenotypes(tiny_lake, "inst", f, sample_column="ID")  # case-insensitive column match
    with genolake.open(tiny_lake) as lk:
        joined = lk.sql("SELECT count(*) AS n FROM phenotypes p JOIN samples s USING (institution, sample_id)")
        assert joined.to_pylist()[0]["n"] == 2
    for parquet in (tiny_lake / "phenotypes").rglob("*.parquet"):
        data = parquet.read_bytes()
        assert b"S1" not in data and b"S2" not in data


def test_ped_fam_columns_and_parents_pseudonymised(tiny_lake: Path, tmp_path: Path) -> None:
    f = tmp_path / "fam.ped"
    f.write_text(
        "#family_id sample_id paternal_id maternal_id sex phenotype ethnicity\n"
        "F1 S1 0 0 1 1 EUR\n"
        "F1 S2 0 0 2 2 EUR\n"
        "F1 S3 S1 S2 2 -9 EUR\n"
        "F2 S4 None None 0 0 AFR\n"
    )
    rep = load_phenotypes(tiny_lake, "inst", f)
    assert rep["format"] == "ped"
    assert rep["phenotypes"]["affected"] == "categorical" and rep["phenotypes"]["ethnicity"] == "categorical"
    rows = _wide(tiny_lake)
    ids = {r["sample_id"] for r in rows}
    kid = next(r for r in rows if r["paternal_id"] is not None)
    assert kid["paternal_id"] in ids and kid["maternal_id"] in ids  # parents join like samples
    assert kid["affected"] is None and kid["sex"] == "female"
    assert sorted(r["affected"] or "-" for r in rows) == ["-", "-", "case", "control"]
    assert {r["sex"] for r in rows} == {"male", "female", "unknown"}
    assert all(r["family_id"] not in ("F1", "F2") and len(r["family_id"]) == 32 for r in rows)
    fam = tmp_path / "plink.fam"
    fam.write_text("F1\tS1\t0\t0\t1\t2\nF1\tS2\t0\t0\t2\t1\n")
    rep = load_phenotypes(tiny_lake, "inst", fam)
    assert rep["loaded"] == 2 and rep["phenotypes"]["affected"] == "categorical"


def test_reload_replaces_the_institution_atomically(tiny_lake: Path, tmp_path: Path) -> None:
    import genolake

    a = tmp_path / "a.tsv"
    a.write_text("sample_id\tcase_status\tage\nS1\tcase\t50\nS2\tcontrol\t60\n")
    load_phenotypes(tiny_lake, "inst", a)
    b = tmp_path / "b.tsv"
    b.write_text("sample_id\tsmoker\nS3\tyes\n")
    load_phenotypes(tiny_lake, "inst", b)
    with genolake.open(tiny_lake) as lk:
        assert lk.sql("SELECT DISTINCT name FROM phenotypes_long").to_pylist() == [{"name": "smoker"}]
        assert lk.sql("SELECT * FROM phenotypes").column_names == ["institution", "sample_id", "smoker"]
    files = list((tiny_lake / "phenotypes").rglob("*.parquet"))
    from genolake.store import LakeStore

    active = LakeStore.open(tiny_lake).active_files("phenotypes")
    assert len(active) == 1 and len(files) >= 1


def test_types_override_and_validation(tiny_lake: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.tsv"
    f.write_text("sample_id\tsex\tcode\nS1\t1\tE11\nS2\t2\tE11,I10\n")
    rep = load_phenotypes(tiny_lake, "inst", f, types={"sex": "categorical"})
    assert rep["phenotypes"] == {"sex": "categorical", "code": "categorical"}
    rep = load_phenotypes(tiny_lake, "inst", f, types={"sex": "categorical", "code": "list"})
    assert rep["phenotypes"] == {"sex": "categorical", "code": "list"}
    with pytest.raises(UserInputError, match="unknown phenotype type"):
        load_phenotypes(tiny_lake, "inst", f, types={"sex": "boolean"})
    with pytest.raises(UserInputError, match="unknown column"):
        load_phenotypes(tiny_lake, "inst", f, types={"weight": "numeric"})
    with pytest.raises(BadInputFileError, match="non-number"):
        load_phenotypes(tiny_lake, "inst", tmp_path / "p.tsv", types={"code": "numeric"})


def test_bad_files_name_lines_not_ids(tiny_lake: Path, tmp_path: Path) -> None:
    dup = tmp_path / "dup.tsv"
    dup.write_text("sample_id\tx\nS1\ta\nS2\tb\nS1\tc\n")
    with pytest.raises(BadInputFileError, match=r"line 4.*line 2") as exc:
        load_phenotypes(tiny_lake, "inst", dup)
    assert "S1" not in str(exc.value)
    with pytest.raises(BadInputFileError, match=r"no sample ID column 'sample_id_x'.*--sample-column"):
        load_phenotypes(tiny_lake, "inst", tmp_path / "dup.tsv", sample_column="sample_id_x")
    reserved = tmp_path / "r.tsv"
    reserved.write_text("sample_id\tinstitution\nS1\tx\n")
    with pytest.raises(BadInputFileError, match="reserved"):
        load_phenotypes(tiny_lake, "inst", reserved)
    good = tmp_path / "good.tsv"
    good.write_text("sample_id\tx\nS1\ta\n")
    with pytest.raises(UserInputError, match=r"institution 'nope' has no samples.*inst"):
        load_phenotypes(tiny_lake, "nope", good)
    with pytest.raises(UserInputError, match="no such file"):
        load_phenotypes(tiny_lake, "inst", tmp_path / "missing.tsv")
    short = tmp_path / "short.ped"
    short.write_text("F1 S1 0 0\n")
    with pytest.raises(BadInputFileError, match="at least 6 columns"):
        load_phenotypes(tiny_lake, "inst", short)


def test_missing_lake(tmp_path: Path) -> None:
    f = tmp_path / "p.tsv"
    f.write_text("sample_id\tx\nS1\ta\n")
    with pytest.raises(UserInputError, match="not a genolake lake"):
        load_phenotypes(tmp_path / "nolake", "inst", f)


def test_name_and_kind_inference() -> None:
    assert phenotype_name("Hair colour (self-reported)") == "hair_colour_self_reported"
    assert phenotype_name("2nd visit") == "_2nd_visit"
    assert infer_kind(["1", "2.5", None, "-3e2"]) == "numeric"
    assert infer_kind(["HP:0001250", None]) == "list"
    assert infer_kind(["E11;I10", "E11"]) == "categorical"  # lists only where the user says so (issue 15.8)
    assert infer_kind(["HP:0001250;HP:0004322", "HP:0000118"]) == "list"  # unambiguous: HPO terms only
    assert infer_kind(["HP:0001250", "seizures, mild"]) == "categorical"
    assert infer_kind(["female", "male"]) == "categorical"
    assert infer_kind([None, None]) == "categorical"


def test_one_kind_per_phenotype_across_institutions(tiny_lake: Path, tmp_path: Path) -> None:
    """A column typed differently from another institution's phenotype of the same name is coerced or refused."""
    import genolake
    from genolake.ingest.pipeline import ingest

    other = tmp_path / "other.vcf"
    other.write_text("##fileformat=VCFv4.2\n##contig=<ID=20,length=63025520>\n"
                     '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">\n'
                     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tT1\tT2\n"
                     "20\t10000100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\n")
    ingest(tiny_lake, "other", [other], workers=0)
    a = tmp_path / "a.tsv"
    a.write_text("sample_id\tscore\tgrade\nS1\t1.5\tA\nS2\t2\tB\n")
    load_phenotypes(tiny_lake, "inst", a)
    b = tmp_path / "b.tsv"
    b.write_text("sample_id\tscore\tgrade\nT1\tNA\t1\nT2\t3\t2\n")  # grade looks numeric here: coerced to text
    rep = load_phenotypes(tiny_lake, "other", b)
    assert rep["phenotypes"] == {"score": "numeric", "grade": "categorical"}
    with genolake.open(tiny_lake) as lk:
        cols = {r["column_name"]: r["column_type"] for r in lk.sql("DESCRIBE phenotypes").to_pylist()}
        assert cols["score"] == "DOUBLE" and cols["grade"] == "VARCHAR"
    c = tmp_path / "c.tsv"
    c.write_text("sample_id\tscore\nT1\thigh\n")  # not numbers where score is numeric elsewhere
    with pytest.raises(UserInputError, match="'score' is numeric in other institutions"):
        load_phenotypes(tiny_lake, "other", c)
