"""Ingest of real 1000 Genomes files, checked from outside: cyvcf2 re-read (verify) and bcftools counts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import genolake
from genolake.ingest.pipeline import ingest
from genolake.ingest.verify import VerificationError, verify_files

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"

REAL_GRCH37 = [
    "hail_sample_1kg_chr20_100s.vcf.gz",
    "va_hapmap_exome_chr22_22s.vcf.gz",
    "1kg_phase3_broad_chr20_2535s.vcf.gz",
]
REAL_GRCH38 = ["b2z_1kg_nygc_chr22_100s.vcf.gz", "b2z_1kg_2020_chrM_3s.vcf.gz"]
PLOIDY_EDGE = ["edge/bio2zarr__mixed_ploidy.vcf.gz", "edge/bio2zarr__triploid.vcf.gz"]


@pytest.fixture(scope="module")
def lake37(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("real") / "lake37"
    for i, name in enumerate(REAL_GRCH37 + PLOIDY_EDGE):
        ingest(lake, f"inst{i}", [DATA / name], build="GRCh37", workers=0)
    return lake


@pytest.fixture(scope="module")
def lake38(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("real") / "lake38"
    for i, name in enumerate(REAL_GRCH38):
        ingest(lake, f"inst{i}", [DATA / name], build="GRCh38", workers=0)
    return lake


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH37 + PLOIDY_EDGE)))
def test_round_trip_grch37(lake37: Path, i: int, name: str) -> None:
    assert verify_files(lake37, f"inst{i}", [DATA / name]) > 0


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH38)))
def test_round_trip_grch38(lake38: Path, i: int, name: str) -> None:
    assert verify_files(lake38, f"inst{i}", [DATA / name]) > 0


def test_round_trip_sample_data(tmp_path: Path) -> None:
    """The bundled three institutions: bgzip+tbi, plain VCF with chr20, BCF with multi-allelic records."""
    lake = tmp_path / "lake"
    for inst, name in (("north", "north.vcf.gz"), ("south", "south.vcf"), ("east", "east.bcf")):
        ingest(lake, inst, [SAMPLE / name], workers=0)
        assert verify_files(lake, inst, [SAMPLE / name]) > 4000
    lk = genolake.open(lake)
    # `south` wrote chr20, the others 20: one contig in the lake
    assert lk.sql("SELECT DISTINCT contig FROM variant_files").to_pylist() == [{"contig": "20"}]


def test_verify_notices_a_different_file(lake37: Path) -> None:
    with pytest.raises(VerificationError):
        verify_files(lake37, "inst0", [DATA / "va_hapmap_exome_chr22_22s.vcf.gz"])


def _fill_tags(path: Path) -> dict[tuple[str, int, str, str], tuple[int, int, int, int]]:
    """bcftools +fill-tags on the ORIGINAL record: per (chrom, pos, alt): AC, AN, AC_Hom/2, AC_Hemi.

    Splitting first (`bcftools norm -m-`) and then filling tags miscounts AN for a triploid sample in
    bcftools 1.16 (AN 5 instead of 6 at bio2zarr__mixed_ploidy.vcf.gz 1:6, where fill-tags on the unsplit
    record says 6, as genolake does), so the oracle runs on the unsplit records and is expanded per alt.
    """
    cmd = f"bcftools +fill-tags '{path}' -- -t AN,AC,AC_Hom,AC_Hemi | bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\t%AN\\t%AC\\t%AC_Hom\\t%AC_Hemi\\n'"
    out = subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout
    res: dict[tuple[str, int, str, str], tuple[int, int, int, int]] = {}
    for line in out.splitlines():
        chrom, pos, ref, alts, an, ac, hom, hemi = line.split("\t")
        for k, alt in enumerate(alts.split(",")):
            res[(chrom, int(pos), ref, alt)] = (
                int(ac.split(",")[k]), int(an), int(hom.split(",")[k]) // 2, int(hemi.split(",")[k]),
            )
    return res


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH37 + PLOIDY_EDGE))[:-1])
def test_site_counts_equal_bcftools(lake37: Path, i: int, name: str) -> None:
    truth = _fill_tags(DATA / name)
    lk = genolake.open(lake37)
    rows = lk.sql(
        "SELECT contig, orig_pos, orig_ref, orig_alt, ac, an, nhomalt, nhemi FROM variant_files WHERE institution = ?",
        [f"inst{i}"],
    ).to_pylist()
    assert len(rows) == len(truth)
    for r in rows:
        want = truth[(r["contig"], r["orig_pos"], r["orig_ref"], r["orig_alt"])]
        assert (r["ac"], r["an"], r["nhomalt"], r["nhemi"]) == want, r


def test_triploid_counts_hand_computed(lake37: Path) -> None:
    """One triploid sample 0/0/0: AN = 3. (bcftools 1.16 +fill-tags says AN=2 here, so it is no oracle.)"""
    lk = genolake.open(lake37)
    row = lk.sql("SELECT ac, an, nhomalt, n_called FROM variant_files WHERE institution = 'inst4'").to_pylist()
    assert row == [{"ac": 0, "an": 3, "nhomalt": 0, "n_called": 1}]
    calls = lk.sql("SELECT gt, ploidy, called, alt_count FROM calls WHERE institution = 'inst4'").to_pylist()
    assert calls == [{"gt": "0/0/0", "ploidy": 3, "called": 3, "alt_count": 0}]  # not diploid 0/0: stored


def test_haploid_chrm_counts_equal_bcftools(lake38: Path) -> None:
    truth = _fill_tags(DATA / "b2z_1kg_2020_chrM_3s.vcf.gz")
    lk = genolake.open(lake38)
    rows = lk.sql("SELECT contig, orig_pos, orig_ref, orig_alt, ac, an, nhomalt, nhemi FROM variant_files "
                  "WHERE institution = 'inst1'").to_pylist()
    assert rows
    for r in rows:
        assert (r["ac"], r["an"], r["nhomalt"], r["nhemi"]) == truth[(r["contig"], r["orig_pos"], r["orig_ref"],
                                                                      r["orig_alt"])]


HEADER = (
    "##fileformat=VCFv4.2\n##reference=GRCh37\n##contig=<ID={c},length=63025520>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}\n"
)


def _vcf(path: Path, contig: str, samples: list[str], records: list[str]) -> Path:
    path.write_text(HEADER.format(c=contig, samples="\t".join(samples)) + "".join(r + "\n" for r in records))
    return path


def test_same_variant_written_two_ways_gets_one_key(tmp_path: Path) -> None:
    """Multi-allelic vs biallelic records, `20` vs `chr20`, non-minimal vs minimal indels: one key each."""
    a = _vcf(tmp_path / "a.vcf", "20", ["A1", "A2"], [
        "20\t100\t.\tACT\tAT,GCT\t.\tPASS\t.\tGT\t0/1\t1/2",   # ACT>AT is the deletion C, ACT>GCT the SNV A>G
        "20\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/1\t0/0",
    ])
    b = _vcf(tmp_path / "b.vcf", "chr20", ["B1", "B2"], [
        "chr20\t100\t.\tA\tG\t.\tPASS\t.\tGT\t1/1\t0/0",
        "chr20\t100\t.\tAC\tA\t.\tPASS\t.\tGT\t0/1\t0/0",
        "chr20\t200\t.\tC\tT\t.\tPASS\t.\tGT\t0/0\t0/1",
    ])
    lake = tmp_path / "lake"
    ingest(lake, "a", [a], workers=0)
    ingest(lake, "b", [b], workers=0)
    lk = genolake.open(lake)
    keys = lk.sql("SELECT contig, pos, ref, alt, count(*) AS n FROM variant_files GROUP BY ALL ORDER BY pos, ref, alt")
    assert keys.to_pylist() == [
        {"contig": "20", "pos": 100, "ref": "A", "alt": "G", "n": 2},
        {"contig": "20", "pos": 100, "ref": "AC", "alt": "A", "n": 2},
        {"contig": "20", "pos": 200, "ref": "C", "alt": "T", "n": 2},
    ]
    # the 1/2 genotype of A2 is recoded per alt keeping allele order: 1/0 and 0/1, as `bcftools norm -m-` writes
    norm = subprocess.run(["bcftools", "norm", "-m-", str(a)], check=True, capture_output=True, text=True).stdout
    bt = [line.split("\t") for line in norm.splitlines() if line.startswith("20\t100")]
    assert [r[-1] for r in bt] == ["1/0", "0/1"]
    gts = lk.sql("SELECT alt, gt FROM calls c JOIN samples s USING (sample_id) "
                 "WHERE c.institution = 'a' AND s.column_index = 1 AND pos = 100 ORDER BY alt").to_pylist()
    assert gts == [{"alt": "A", "gt": "1/0"}, {"alt": "G", "gt": "0/1"}]
    assert verify_files(lake, "a", [a]) == 3


def test_left_alignment_matches_bcftools_norm(tmp_path: Path) -> None:
    pysam = pytest.importorskip("pysam")
    seq = "GATTACA" + "CAGCAGCAGCAG" + "TTGACCA" * 10
    fa = tmp_path / "ref.fa"
    fa.write_text(">20\n" + seq + "\n")
    pysam.faidx(str(fa))
    # a CAG deletion written at the right end of the repeat (1-based pos 16: ...CAG|CAG)
    pos = 16
    ref = seq[pos - 1: pos + 3]
    alt = seq[pos - 1]
    vcf = _vcf(tmp_path / "x.vcf", "20", ["S1"], [f"20\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t0/1"])
    norm = subprocess.run(["bcftools", "norm", "-f", str(fa), str(vcf)], check=True, capture_output=True,
                          text=True).stdout
    bt = next(line.split("\t") for line in norm.splitlines() if not line.startswith("#"))
    lake = tmp_path / "lake"
    ingest(lake, "x", [vcf], workers=0, reference=fa)
    got = genolake.open(lake).sql("SELECT pos, ref, alt FROM variant_files").to_pylist()
    assert got == [{"pos": int(bt[1]), "ref": bt[3], "alt": bt[4]}]
    assert int(bt[1]) < pos  # it really moved


def test_reference_mismatch_is_refused(tmp_path: Path) -> None:
    pysam = pytest.importorskip("pysam")
    fa = tmp_path / "ref.fa"
    fa.write_text(">20\n" + "ACGT" * 50 + "\n")
    pysam.faidx(str(fa))
    vcf = _vcf(tmp_path / "x.vcf", "20", ["S1"], ["20\t1\t.\tG\tT\t.\tPASS\t.\tGT\t0/1"])
    from genolake.errors import BadInputFileError

    with pytest.raises(BadInputFileError, match="does not match the reference"):
        ingest(tmp_path / "lake", "x", [vcf], workers=0, reference=fa)
