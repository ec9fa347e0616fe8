"""Every edge-case and malformed VCF of tests/data/edge either ingests (and verifies) or fails cleanly.

A clean failure is: non-zero exit code, exactly one line on stderr starting ``genolake: error:`` that names
the file, no traceback, and a lake that is byte-for-byte what it was. The outcome of each file is pinned
below: "ok", or a substring of the error.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from ingest_helpers import lake_fingerprint, run_cli

from genolake.contigs import detect_build

EDGE = Path(__file__).resolve().parent / "data" / "edge"
GOOD = Path(__file__).resolve().parent / "data" / "hail_sample_1kg_chr20_100s.vcf.gz"

NO_GT = "record has no GT (genotype) values"
NO_SAMPLES = "no sample columns"
EXPECTED = {
    "bcftools__annotate.escape.1.vcf": NO_GT,
    "bcftools__atomize.split.1.vcf": "ok",
    "bcftools__consensus.12.vcf": "ok",
    "bcftools__convert.gt.noHead.vcf": "cannot read the VCF header",
    "bcftools__convert.gvcf.vcf": "ok",  # reference blocks have ALT '.', skipped and counted as such
    "bcftools__convert.vcf": "ok",
    "bcftools__empty.vcf": "ok",  # a header and no records
    "bcftools__fill-tags-AN0.vcf": "ok",
    "bcftools__fill-tags-hemi.vcf": "occurs 4 times after splitting and normalisation",
    "bcftools__filter-missing-floats.vcf": NO_SAMPLES,
    "bcftools__isec-miss.2.3.vcf": NO_GT,
    "bcftools__many-alts.vcf": "ok",
    "bcftools__mendelian.vcf": "ok",
    "bcftools__merge.broken-gvcf.a.vcf": "ok",
    "bcftools__merge.gvcf.11.a.vcf": "ok",
    "bcftools__merge.gvcf.2.a.vcf": NO_GT,
    "bcftools__merge.symbolic.1.b.vcf": "ok",
    "bcftools__mpileup.hwe.vcf": NO_GT,
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
    "gcpvt__invalid-4.2-AF-mismatch.vcf": "invalid ALT allele '.[13:123457['",
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
    "htslib__longrefs_index.vcf": NO_GT,
    "htslib__modhdr.vcf.gz": NO_SAMPLES,
    "htslib__noroundtrip.vcf": "ok",
    "htslib__vcf44_1.vcf": "Couldn't read GT data",
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
    "vcfvalidator_v4.4_passed__complexfile_passed_000.vcf": "records of contig 1 are not contiguous",
    "vcfvalidator_v4.4_passed__passed_CNV.vcf": "ALT lists the same allele twice",
    "vcfvalidator_v4.4_passed__passed_STR.vcf": "ALT lists the same allele twice",
    "vcfvalidator_v4.4_passed__passed_body_SV_CNVTR.vcf": "ok",
}


def _vcfs() -> list[Path]:
    return sorted(p for p in EDGE.iterdir() if not p.name.endswith((".tbi", ".csi")))


def test_every_edge_file_is_pinned() -> None:
    assert sorted(p.name for p in _vcfs()) == sorted(EXPECTED)


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


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GRCh37 lake holding one good file: a failed ingest must leave it byte-identical."""
    lake = tmp_path_factory.mktemp("edge") / "lake"
    res = run_cli("ingest", "--lake", str(lake), "-i", "good", "--build", "GRCh37", "--workers", "0", "-q", str(GOOD))
    assert res.returncode == 0, res.stderr
    return lake


def _run_in_process(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`genolake ARGS` through the console entry point, in this process (fd-level capture of stderr)."""
    import sys

    from genolake.cli import main

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


@pytest.mark.parametrize("path", _vcfs(), ids=lambda p: p.name)
def test_edge_file(path: Path, base_lake: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    expected = EXPECTED[path.name]
    header_build = None
    try:
        header_build = detect_build(_header_lines(path), str(path))
    except Exception:
        pass
    lake = tmp_path / "lake"
    if header_build == "GRCh38":
        lake.mkdir()  # a GRCh38 file gets a fresh lake (the base lake is GRCh37)
        before: dict[str, str] = {}
        args = ["--build", "GRCh38"]
    else:
        shutil.copytree(base_lake, lake)
        before = lake_fingerprint(lake)
        args = ["--build", "GRCh37"]
    code, err = _run_in_process(capfd, "ingest", "--lake", str(lake), "-i", "edge", *args, "--workers", "0", "-q",
                                str(path))
    if expected == "ok":
        assert code == 0, err
        assert "Traceback" not in err
        from genolake.ingest.verify import verify_files

        verify_files(lake, "edge", [path])
        return
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("genolake: error:"), lines[0]
    assert path.name in lines[0]
    assert expected in lines[0]
    if before:
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


def test_truncated_bgzip_is_refused(tmp_path: Path, base_lake: Path) -> None:
    data = GOOD.read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    before = lake_fingerprint(lake)
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", str(cut))
    assert res.returncode != 0
    assert "truncated" in res.stderr and "cut.vcf.gz" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert lake_fingerprint(lake) == before


def test_plain_gzip_is_read_sequentially(tmp_path: Path) -> None:
    text = gzip.decompress(GOOD.read_bytes())
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(text))  # ordinary gzip, not BGZF, no index
    lake = tmp_path / "lake"
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "-q", str(plain))
    assert res.returncode == 0, res.stderr
    from genolake.ingest.verify import verify_files

    assert verify_files(lake, "x", [plain]) == 346


def test_build_mismatch_is_refused(tmp_path: Path, base_lake: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(base_lake, lake)
    grch38 = Path(__file__).resolve().parent / "data" / "b2z_1kg_nygc_chr22_100s.vcf.gz"
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--workers", "0", str(grch38))
    assert res.returncode != 0
    assert "GRCh38" in res.stderr and "GRCh37" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_missing_build_asks_for_it(tmp_path: Path) -> None:
    res = run_cli("ingest", "--lake", str(tmp_path / "lake"), "-i", "x", "--workers", "0", str(GOOD))
    assert res.returncode != 0
    assert "--build" in res.stderr
    assert not (tmp_path / "lake" / "genolake.json").exists()
