"""Every edge-case and malformed VCF of tests/data/edge either ingests (and verifies) or fails cleanly.

A clean failure is: non-zero exit code, exactly one line on stderr starting ``genolake: error:`` that names
the file, no traceback, and a lake that is byte-for-byte what it was. The outcome of each file is pinned
below: "ok", or a substring of the error.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
from ingest_helpers import lake_fingerprint, run_cli

from genolake.contigs import detect_build

EDGE = Path(__file__).resolve().parent / "data" / "edge"
DATA = Path(__file__).resolve().parent / "data"
GOOD = DATA / "hail_sample_1kg_chr20_100s.vcf.gz"  # GRCh37
GOOD38 = DATA / "b2z_1kg_2020_chrM_3s.vcf.gz"  # GRCh38

NO_GT = "record has no GT (genotype) values"
NO_SAMPLES = "no sample columns"
GVCF_STAR = "gVCF reference-block allele <*>"
GVCF_NON_REF = "gVCF reference-block allele <NON_REF>"
EXPECTED = {
    "bcftools__annotate.escape.1.vcf": NO_GT,
    "bcftools__atomize.split.1.vcf": "ok",
    "bcftools__consensus.12.vcf": GVCF_STAR,  # record 2:320 has ALT <*> (used to be stored as a variant)
    "bcftools__convert.gt.noHead.vcf": "cannot read the VCF header",
    "bcftools__convert.gvcf.vcf": "ok",  # reference blocks have ALT '.', skipped and counted as such
    "bcftools__convert.vcf": "ok",
    "bcftools__empty.vcf": "ok",  # a header and no records
    "bcftools__fill-tags-AN0.vcf": "ok",
    "bcftools__fill-tags-hemi.vcf": "occurs 4 times after splitting and normalisation",  # one variant, 4 records
    "bcftools__filter-missing-floats.vcf": NO_SAMPLES,
    "bcftools__isec-miss.2.3.vcf": NO_GT,
    "bcftools__many-alts.vcf": "ok",
    "bcftools__mendelian.vcf": "ok",
    "bcftools__merge.broken-gvcf.a.vcf": "ok",
    "bcftools__merge.gvcf.11.a.vcf": GVCF_NON_REF,  # GATK reference blocks (used to be stored as variants)
    "bcftools__merge.gvcf.2.a.vcf": GVCF_STAR,
    "bcftools__merge.symbolic.1.b.vcf": "ok",
    "bcftools__mpileup.hwe.vcf": GVCF_STAR,
    "bcftools__norm.breakend.1.vcf": NO_SAMPLES,
    "bcftools__norm.iupac.vcf": NO_SAMPLES,
    "bcftools__norm.phased-split.vcf": "ok",
    "bcftools__norm.rmdup.vcf": NO_SAMPLES,
    "bcftools__norm.string-tags.vcf": NO_GT,
    "bcftools__norm.symbolic.vcf": NO_SAMPLES,
    "bcftools__query.filter.6.vcf": NO_SAMPLES,
    "bcftools__sort.vcf": NO_SAMPLES,
    "bcftools__split-vep.4.vcf": NO_SAMPLES,
    "bcftools__tag2tag.LPL.1.vcf": "ok",
    "bcftools__view.vcf": "ok",
    "bcftools__view64bit.1.vcf": NO_SAMPLES,
    "bcftools__view64bit.5.vcf": NO_GT,
    "bio2zarr__field_type_combos.vcf.gz": NO_GT,
    "bio2zarr__mixed_ploidy.vcf.gz": "ok",
    "bio2zarr__out_of_order_contigs.vcf.gz": NO_SAMPLES,
    "bio2zarr__sample_no_genotypes.vcf.gz": NO_SAMPLES,
    "bio2zarr__triploid.vcf.gz": "ok",
    "cyvcf2__empty.vcf": "empty file (no VCF header)",
    "cyvcf2__test-invalid-header.vcf": "Empty sample name",
    "gcpvt__invalid-4.0-POS-empty.vcf": "invalid POS 0",
    "gcpvt__invalid-4.2-AF-mismatch.vcf": "ok",  # only INFO/AF is wrong; its telomeric breakend ALT used to be refused
    "glow__1row_not_bgz.vcf.gz": NO_GT,  # plain gzip (not bgzip): read sequentially, then refused for no GT
    "glow__VCFv4.3.vcf": "ok",
    "glow__test_withNanQual.vcf": "ok",
    "hail__bad_flag_number.vcf": NO_SAMPLES,
    "hail__duplicate_ids.vcf": "Duplicated sample",
    "hail__invalid_base.vcf": "invalid REF 'M'",
    "hail__malformed.vcf": "Couldn't read GT data",
    "hail__missingInfoArray.vcf": "ok",
    "hail__negative_format_fields.vcf": NO_GT,
    "hail__undeclaredinfo.vcf": "ok",
    "htslib__formatcols.vcf": NO_GT,
    "htslib__formatmissing.vcf": NO_GT,
    "htslib__large_chr.vcf": NO_SAMPLES,
    "htslib__longrefs_index.vcf": GVCF_STAR,
    "htslib__modhdr.vcf.gz": NO_SAMPLES,
    "htslib__noroundtrip.vcf": "ok",
    "htslib__vcf44_1.vcf": "Couldn't read GT data",  # VCF 4.4 prefix phasing (`/0|1`): newer than cyvcf2's htslib
    "htslib__vcf_meta_meta.vcf": NO_SAMPLES,
    "htslib__weird-chr-names.vcf": NO_SAMPLES,
    "polarsbio__info_invalid_flag_value.vcf": NO_SAMPLES,
    "pysam__example_vcf43_with_utf8.vcf": "ok",
    "vcfvalidator_v4.4_failed__failed_body_alt_000.vcf": "invalid ALT allele 'R'",
    "vcfvalidator_v4.4_failed__failed_body_chrom_000.vcf": "Could not add dummy header for contig '<1'",
    "vcfvalidator_v4.4_failed__failed_body_duplicated_000.vcf": "occurs 2 times after splitting",
    "vcfvalidator_v4.4_failed__failed_body_format_000.vcf": "empty or malformed data line",  # used to segfault
    "vcfvalidator_v4.4_failed__failed_body_info_000.vcf": "ok",  # bad INFO only: genotypes are fine
    "vcfvalidator_v4.4_failed__failed_body_no_newline_000.vcf": NO_SAMPLES,
    "vcfvalidator_v4.4_failed__failed_body_pos_000.vcf": "Could not parse the position",  # used to segfault
    "vcfvalidator_v4.4_failed__failed_body_qual_000.vcf": "ok",  # bad QUAL is read as missing by htslib
    "vcfvalidator_v4.4_failed__failed_body_ref_000.vcf": "invalid REF 'C,A'",
    "vcfvalidator_v4.4_failed__failed_body_sample_000.vcf": "Couldn't read GT data",
    "vcfvalidator_v4.4_failed__failed_body_samples_ploidy_000.vcf": "ok",  # ploidy differs from the others
    "vcfvalidator_v4.4_failed__failed_body_unsorted_000.vcf": "file not sorted",
    "vcfvalidator_v4.4_failed__failed_fileformat_000.vcf": "cannot read the VCF header",
    "vcfvalidator_v4.4_failed__failed_header_000.vcf": "Could not parse the \"#CHROM..\" line",
    "vcfvalidator_v4.4_failed__failed_meta_info_000.vcf": NO_SAMPLES,
    # contig 1, then <1>, then 1 again: VCF 4.3+ requires the records of a contig to form one block
    "vcfvalidator_v4.4_passed__complexfile_passed_000.vcf": "records of contig 1 are not contiguous",
    "vcfvalidator_v4.4_passed__passed_CNV.vcf": "ALT lists the same allele twice",  # <DUP>,<DUP>: one key for two
    "vcfvalidator_v4.4_passed__passed_STR.vcf": "ALT lists the same allele twice",
    "vcfvalidator_v4.4_passed__passed_body_SV_CNVTR.vcf": "ok",
}


def _vcfs() -> list[Path]:
    return sorted(p for p in EDGE.iterdir() if not p.name.endswith((".tbi", ".csi")))


def test_every_edge_file_is_pinned() -> None:
    assert sorted(p.name for p in _vcfs()) == sorted(EXPECTED)
    assert len(EXPECTED) == 80  # all 80 files of ../shared/data/edge (their indexes come along)


def test_outcome_counts() -> None:
    """The table in the report: how many edge files ingest, and how many are refused."""
    ok = sum(1 for v in EXPECTED.values() if v == "ok")
    assert (ok, len(EXPECTED) - ok) == (25, 55)


def _header_lines(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    lines = []
    try:
        with opener(path, "rt", errors="replace") as fh:  # type: ignore[operator]
            for line in fh:
                if not line.startswith("##"):
                    break
                lines.append(line.rstrip("\n"))
    except (OSError, EOFError):
        pass
    return lines


def _base_lake(tmp_path_factory: pytest.TempPathFactory, build: str, good: Path) -> Path:
    lake = tmp_path_factory.mktemp("edge") / f"lake{build}"
    res = run_cli("ingest", "--lake", str(lake), "-i", "good", "--build", build, "--workers", "0", "-q", str(good))
    assert res.returncode == 0, res.stderr
    return lake


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GRCh37 lake holding one good file: a failed ingest must leave it byte-identical."""
    return _base_lake(tmp_path_factory, "GRCh37", GOOD)


@pytest.fixture(scope="module")
def base_lake38(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same for the edge files whose header says GRCh38."""
    return _base_lake(tmp_path_factory, "GRCh38", GOOD38)


def _run_in_process(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`genolake ARGS` through the console entry point, in this process (fd-level capture of stderr)."""
    import sys

    from genolake.cli import main

    capfd.readouterr()
    argv = sys.argv
    sys.argv = ["genolake", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    return code, capfd.readouterr().err


def assert_clean_failure(code: int, err: str, name: str, expected: str | None = None) -> None:
    """Non-zero exit, exactly one stderr line `genolake: error: ...` naming the file, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("genolake: error:"), lines[0]
    assert name in lines[0], lines[0]
    if expected is not None:
        assert expected in lines[0], lines[0]


@pytest.mark.parametrize("path", _vcfs(), ids=lambda p: p.name)
def test_edge_file(path: Path, base_lake: Path, base_lake38: Path, tmp_path: Path,
                   capfd: pytest.CaptureFixture[str]) -> None:
    expected = EXPECTED[path.name]
    header_build = None
    try:
        header_build = detect_build(_header_lines(path), str(path))
    except Exception:
        pass
    build = "GRCh38" if header_build == "GRCh38" else "GRCh37"
    lake = tmp_path / "lake"
    shutil.copytree(base_lake38 if build == "GRCh38" else base_lake, lake)
    before = lake_fingerprint(lake)
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake), "-i", "edge", "--build", build,
                                "--workers", "0", "-q", str(path))
    if expected == "ok":
        assert code == 0, err
        assert "Traceback" not in err
        from genolake.ingest.verify import verify_files

        verify_files(lake, "edge", [path])
        return
    assert_clean_failure(code, err, path.name, expected)
    assert lake_fingerprint(lake) == before, "a failed ingest changed the lake"


@pytest.mark.parametrize("name", ["vcfvalidator_v4.4_failed__failed_body_pos_000.vcf", "hail__invalid_base.vcf"])
def test_edge_file_as_a_separate_process(name: str, base_lake: Path, tmp_path: Path) -> None:
    """The same contract through a real `python -m genolake` process (what a user's shell sees)."""
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    before = lake_fingerprint(lake)
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", str(EDGE / name))
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("genolake: error:") and name in res.stderr
    assert lake_fingerprint(lake) == before


def _bcf(tmp: Path) -> Path:
    out = tmp / "good.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(out), str(GOOD)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("kind", ["bgzip", "bcf", "gzip"])
def test_truncated_file_is_refused(kind: str, tmp_path: Path, base_lake: Path,
                                   capfd: pytest.CaptureFixture[str]) -> None:
    """A copy cut in the middle (an interrupted transfer) is refused before any record is read."""
    if kind == "bgzip":
        data, name = GOOD.read_bytes(), "cut.vcf.gz"
    elif kind == "bcf":
        data, name = _bcf(tmp_path).read_bytes(), "cut.bcf"
    else:
        data, name = gzip.compress(gzip.decompress(GOOD.read_bytes())), "cut-plain.vcf.gz"
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    before = lake_fingerprint(lake)
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37",
                                "--workers", "0", str(cut))
    assert_clean_failure(code, err, name, "truncated")
    assert lake_fingerprint(lake) == before


def test_plain_gzip_is_read_sequentially(tmp_path: Path) -> None:
    text = gzip.decompress(GOOD.read_bytes())
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(text))  # ordinary gzip, not BGZF, no index
    lake = tmp_path / "lake"
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", "-q", str(plain))
    assert res.returncode == 0, res.stderr
    from genolake.ingest.verify import verify_files

    assert verify_files(lake, "x", [plain]) == 346
    import genolake

    lk = genolake.open(lake)
    assert lk.sql("SELECT format FROM files").to_pylist() == [{"format": "vcf.gzip"}]


def _vcf_text(samples: list[str], records: list[str]) -> str:
    return ("##fileformat=VCFv4.2\n##reference=GRCh37\n##contig=<ID=20,length=63025520>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n"
            + "".join(r + "\n" for r in records))


@pytest.mark.parametrize("case,text,expected", [
    ("unsorted.vcf", _vcf_text(["A"], ["20\t200\t.\tC\tT\t.\t.\t.\tGT\t0/1", "20\t100\t.\tG\tA\t.\t.\t.\tGT\t0/1"]),
     "record 2 (20:100): position 100 comes after 200 (file not sorted"),
    ("dup_samples.vcf", _vcf_text(["A", "B", "A"], ["20\t100\t.\tG\tA\t.\t.\t.\tGT\t0/1\t0/0\t1/1"]),
     "Duplicated sample name sample column 1"),
    ("two_names_one_contig.vcf", _vcf_text(["A"], ["20\t100\t.\tG\tA\t.\t.\t.\tGT\t0/1",
                                                   "chr20\t200\t.\tC\tT\t.\t.\t.\tGT\t0/1"]),
     "contigs chr20 and another name for 20 both occur"),
    ("allele_index.vcf", _vcf_text(["A"], ["20\t100\t.\tG\tA\t.\t.\t.\tGT\t0/2"]),
     "genotype allele index 2 but only 1 ALT allele"),
    # checked once per batch of records: the first fault is still the one named, not a later one
    ("allele_index_then_unsorted.vcf",
     _vcf_text(["A"], ["20\t100\t.\tG\tA\t.\t.\t.\tGT\t0/1", "20\t150\t.\tG\tA\t.\t.\t.\tGT\t2/1",
                       "20\t160\t.\tG\tA\t.\t.\t.\tGT\t0/1", "20\t50\t.\tG\tA\t.\t.\t.\tGT\t0/1"]),
     "record 2 (20:150): genotype allele index 2 but only 1 ALT allele"),
    ("alt_equals_ref.vcf", _vcf_text(["A"], ["20\t100\t.\tG\tG\t.\t.\t.\tGT\t0/1"]), "ALT allele G equals REF"),
    ("bad_gt.vcf", _vcf_text(["A"], ["20\t100\t.\tG\tA\t.\t.\t.\tGT\tx/1"]), "Couldn't read GT data"),
])
def test_hand_made_bad_files(case: str, text: str, expected: str | None, tmp_path: Path, base_lake: Path,
                             capfd: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / case
    path.write_bytes(text.encode())
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    before = lake_fingerprint(lake)
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake), "-i", "x", "--workers", "0", "-q", str(path))
    assert_clean_failure(code, err, case, expected)
    assert lake_fingerprint(lake) == before


def test_windows_line_ends_ingest(tmp_path: Path) -> None:
    """CRLF line ends (a file edited on Windows) are valid input: htslib drops the CR."""
    from genolake.ingest.pipeline import ingest
    from genolake.ingest.verify import verify_files

    path = tmp_path / "crlf.vcf"
    text = _vcf_text(["A", "B"], ["20\t100\t.\tG\tA\t.\t.\t.\tGT\t0/1\t1/1", "20\t101\t.\tG\tA,C\t.\t.\t.\tGT\t0/1\t1/2"])
    path.write_bytes(text.replace("\n", "\r\n").encode())
    ingest(tmp_path / "lake", "x", [path], workers=0)
    assert verify_files(tmp_path / "lake", "x", [path]) == 3


def test_build_mismatch_is_refused(tmp_path: Path, base_lake: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    before = lake_fingerprint(lake)
    grch38 = DATA / "b2z_1kg_nygc_chr22_100s.vcf.gz"
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--workers", "0", str(grch38))
    assert_clean_failure(res.returncode, res.stderr, grch38.name, "reference build GRCh38 but the lake")
    assert "GRCh37" in res.stderr
    assert lake_fingerprint(lake) == before
    # --build contradicting the header is refused too, before anything is read
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", str(grch38))
    assert_clean_failure(res.returncode, res.stderr, grch38.name, "header says GRCh38 but --build GRCh37")
    assert lake_fingerprint(lake) == before


def test_missing_build_asks_for_it(tmp_path: Path) -> None:
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "x", "--workers", "0", str(GOOD))
    assert_clean_failure(res.returncode, res.stderr, GOOD.name, "pass --build GRCh37 or --build GRCh38")
    assert not (tmp_path / "lake" / "genolake.json").exists()


def test_wrong_paths_are_one_line_errors(tmp_path: Path, base_lake: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A folder given as FILE, --lake naming a file or a folder inside a lake: one line, nothing written."""
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    before = lake_fingerprint(lake)
    folder = tmp_path / "not_a_vcf"
    folder.mkdir()
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake), "-i", "x", "--workers", "0", str(folder))
    assert_clean_failure(code, err, "not_a_vcf", "is a folder")
    a_file = tmp_path / "lake.txt"
    a_file.write_text("x")
    code, err = _run_in_process(capfd, "ingest", "--lake", str(a_file), "-i", "x", "--build", "GRCh37",
                                "--workers", "0", str(GOOD))
    assert_clean_failure(code, err, "lake.txt", "is a file, not a lake folder")
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake / "calls"), "-i", "x", "--build", "GRCh37",
                                "--workers", "0", str(GOOD))
    assert_clean_failure(code, err, "calls", "is inside the lake")
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake), "-i", "x", "--workers", "0",
                                str(tmp_path / "missing.vcf"))
    assert_clean_failure(code, err, "missing.vcf", "no such file")
    assert lake_fingerprint(lake) == before
