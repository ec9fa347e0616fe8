"""tests/data/regressions: one small VCF per bug found, each pinned to what genolake must do now."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pysam
import pytest

import genolake
from genolake.errors import BadInputFileError
from genolake.ingest.pipeline import ingest
from genolake.ingest.verify import verify_files

REGRESSIONS = Path(__file__).resolve().parent / "data" / "regressions"

EXPECTED = {
    "telomeric_breakend_alt_refused.vcf": "ok",
    "gvcf_non_ref_allele_stored_as_variant.vcf": "record 1 (20:100): gVCF reference-block allele <NON_REF>",
    "gvcf_star_allele_stored_as_variant.vcf": "record 1 (20:100): gVCF reference-block allele <*>",
    "chr_contig_not_left_aligned_with_plain_fasta.vcf": "ok",  # with --reference, see below
}
SEQ = "GATTACAGGC" "TTTTTG" + "CA" * 20  # a T homopolymer at 11-15


def test_every_regression_file_is_pinned() -> None:
    assert sorted(p.name for p in REGRESSIONS.glob("*.vcf")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_regression_file(name: str, tmp_path: Path) -> None:
    path = REGRESSIONS / name
    lake = tmp_path / "lake"
    reference = None
    if name.startswith("chr_contig"):
        reference = tmp_path / "plain.fa"
        reference.write_text(">20\n" + SEQ + "\n")
        pysam.faidx(str(reference))
    if EXPECTED[name] != "ok":
        with pytest.raises(BadInputFileError, match=EXPECTED[name].replace("(", r"\(").replace(")", r"\)")
                           .replace("*", r"\*")):
            ingest(lake, "x", [path], workers=0)
        return
    ingest(lake, "x", [path], workers=0, reference=reference)
    assert verify_files(lake, "x", [path]) > 0


def test_telomeric_breakends_are_kept_as_written(tmp_path: Path) -> None:
    path = REGRESSIONS / "telomeric_breakend_alt_refused.vcf"
    ingest(tmp_path / "lake", "x", [path], workers=0)
    rows = genolake.open(tmp_path / "lake").sql("SELECT pos, ref, alt, ac FROM variant_files ORDER BY ALL")
    assert rows.to_pylist() == [
        {"pos": 1, "ref": "N", "alt": ".[13:123457[", "ac": 1},
        {"pos": 123456, "ref": "C", "alt": "C[1:1[", "ac": 1},
        {"pos": 123457, "ref": "A", "alt": "]1:249250621]A", "ac": 3},
        {"pos": 249250621, "ref": "N", "alt": "]13:123456].", "ac": 3},
    ]


def test_chr_contig_is_left_aligned_with_a_plain_fasta(tmp_path: Path) -> None:
    """The keys equal `bcftools norm -m- -f` run with a FASTA that names the contig as the VCF does."""
    path = REGRESSIONS / "chr_contig_not_left_aligned_with_plain_fasta.vcf"
    plain = tmp_path / "plain.fa"
    plain.write_text(">20\n" + SEQ + "\n")
    pysam.faidx(str(plain))
    chr_fa = tmp_path / "chr.fa"
    chr_fa.write_text(">chr20\n" + SEQ + "\n")
    pysam.faidx(str(chr_fa))
    out = subprocess.run(f"bcftools norm -m- -f '{chr_fa}' '{path}' 2>/dev/null | bcftools query -f '%POS\\t%REF\\t%ALT\\n'",
                         shell=True, check=True, capture_output=True, text=True).stdout
    want = sorted((int(p), r, a) for p, r, a in (line.split("\t") for line in out.splitlines()))
    ingest(tmp_path / "lake", "x", [path], workers=0, reference=plain)
    got = genolake.open(tmp_path / "lake").sql("SELECT pos, ref, alt FROM variant_files").to_pylist()
    assert sorted((r["pos"], r["ref"], r["alt"]) for r in got) == want
    assert want[0][0] == 10  # moved to the left end of the homopolymer
