"""The same variant written two ways gets one key `(contig, pos, ref, alt)`: multi-allelic vs biallelic records,
`chr20` vs `20`, non-minimal vs minimal alleles, and (with --reference) an indel written anywhere in a repeat;
bcftools norm is the oracle for splitting and left-alignment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pysam
import pytest

import genolake
from genolake.ingest.pipeline import ingest
from genolake.ingest.verify import verify_files

HEADER = (
    "##fileformat=VCFv4.2\n##reference=GRCh37\n##contig=<ID={c},length=63025520>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{samples}\n"
)


def _vcf(path: Path, contig: str, samples: list[str], records: list[str]) -> Path:
    path.write_text(HEADER.format(c=contig, samples="\t".join(samples)) + "".join(r + "\n" for r in records))
    return path


def _keys(lake: Path) -> list[dict[str, object]]:
    lk = genolake.open(lake)
    try:
        return lk.sql("SELECT contig, pos, ref, alt, count(*) AS n FROM variant_files GROUP BY ALL "
                      "ORDER BY pos, ref, alt").to_pylist()
    finally:
        lk.close()


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
    assert _keys(lake) == [
        {"contig": "20", "pos": 100, "ref": "A", "alt": "G", "n": 2},
        {"contig": "20", "pos": 100, "ref": "AC", "alt": "A", "n": 2},
        {"contig": "20", "pos": 200, "ref": "C", "alt": "T", "n": 2},
    ]
    # the 1/2 genotype of A2 is recoded per alt keeping allele order: 1/0 and 0/1, as `bcftools norm -m-` writes
    norm = subprocess.run(["bcftools", "norm", "-m-", str(a)], check=True, capture_output=True, text=True).stdout
    bt = [line.split("\t") for line in norm.splitlines() if line.startswith("20\t100")]
    assert [r[-1] for r in bt] == ["1/0", "0/1"]
    lk = genolake.open(lake)
    gts = lk.sql("SELECT alt, gt FROM calls c JOIN samples s USING (sample_id) "
                 "WHERE c.institution = 'a' AND s.column_index = 1 AND pos = 100 ORDER BY alt").to_pylist()
    assert gts == [{"alt": "A", "gt": "1/0"}, {"alt": "G", "gt": "0/1"}]
    # the sites add up across the two institutions as if one file held all four samples
    assert lk.sql("SELECT pos, ref, alt, sum(ac) AS ac, sum(an) AS an FROM variant_files GROUP BY ALL "
                  "ORDER BY ALL").to_pylist() == [
        {"pos": 100, "ref": "A", "alt": "G", "ac": 3, "an": 8},
        {"pos": 100, "ref": "AC", "alt": "A", "ac": 3, "an": 8},
        {"pos": 200, "ref": "C", "alt": "T", "ac": 2, "an": 8},
    ]
    assert verify_files(lake, "a", [a]) == 3


def test_split_matches_bcftools_norm_on_a_real_multiallelic_file(tmp_path: Path) -> None:
    """Every split row of bcftools' many-alts test file is a lake key, with the same genotypes per sample."""
    src = Path(__file__).resolve().parent / "data" / "edge" / "bcftools__many-alts.vcf"
    lake = tmp_path / "lake"
    ingest(lake, "x", [src], build="GRCh37", workers=0)
    fmt = "%CHROM\\t%POS\\t%REF\\t%ALT[\\t%GT]\\n"
    out = subprocess.run(f"bcftools norm -m- '{src}' 2>/dev/null | bcftools query -f '{fmt}'", shell=True,
                         check=True, capture_output=True, text=True).stdout
    want: dict[tuple[str, int, str, str], list[str]] = {}
    for line in out.splitlines():
        chrom, pos, ref, alt, *gts = line.split("\t")
        want[(chrom, int(pos), ref, alt)] = gts
    lk = genolake.open(lake)
    n = lk.sql("SELECT count(*) AS n FROM samples").to_pylist()[0]["n"]
    rows = lk.sql("SELECT contig, orig_pos, orig_ref, orig_alt FROM variant_files").to_pylist()
    assert sorted((r["contig"], r["orig_pos"], r["orig_ref"], r["orig_alt"]) for r in rows) == sorted(want)
    calls = lk.sql("SELECT v.orig_pos, v.orig_alt, s.column_index, c.gt FROM calls c "
                   "JOIN variant_files v USING (contig, pos, ref, alt, file_id) JOIN samples s USING (sample_id)"
                   ).to_pylist()
    got = {k: ["0/0"] * n for k in want}
    for c in calls:
        key = next(k for k in want if k[1] == c["orig_pos"] and k[3] == c["orig_alt"])
        got[key][c["column_index"]] = c["gt"]
    assert got == want


# ----------------------------------------------------------------------------- left-alignment (--reference)
SEQ = (
    "GATTACA" "CAGCAGCAGCAG" "TTGACCA"      # 1-26: a CAG repeat at 8-19
    "GCTTTTTTGCA"                             # 27-37: a T homopolymer at 29-34
    "ACACACACGT"                              # 38-47: an AC repeat at 38-45
    + "TTGACCA" * 10
)


def _fasta(tmp: Path) -> Path:
    fa = tmp / "ref.fa"
    fa.write_text(">20\n" + SEQ + "\n")
    pysam.faidx(str(fa))
    return fa


def _right_end(kind: str) -> tuple[int, str, str]:
    """An indel written at the right end of its repeat (as some callers do)."""
    if kind == "cag_deletion":
        pos = 16  # ...CAG|CAG: deletes the last CAG
        return pos, SEQ[pos - 1: pos + 3], SEQ[pos - 1]
    if kind == "homopolymer_deletion":
        pos = 33  # TT -> T at the end of TTTTTT (29-34)
        return pos, SEQ[pos - 1: pos + 1], SEQ[pos - 1]
    if kind == "homopolymer_insertion":
        pos = 34
        return pos, SEQ[pos - 1], SEQ[pos - 1] + "T"
    if kind == "dinucleotide_insertion":
        pos = 45  # ...AC|: insert one more AC
        return pos, SEQ[pos - 1], SEQ[pos - 1] + "AC"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["cag_deletion", "homopolymer_deletion", "homopolymer_insertion",
                                  "dinucleotide_insertion"])
def test_left_alignment_matches_bcftools_norm(kind: str, tmp_path: Path) -> None:
    fa = _fasta(tmp_path)
    pos, ref, alt = _right_end(kind)
    vcf = _vcf(tmp_path / "x.vcf", "20", ["S1"], [f"20\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t0/1"])
    norm = subprocess.run(["bcftools", "norm", "-f", str(fa), str(vcf)], check=True, capture_output=True,
                          text=True).stdout
    bt = next(line.split("\t") for line in norm.splitlines() if not line.startswith("#"))
    lake = tmp_path / "lake"
    ingest(lake, "x", [vcf], workers=0, reference=fa)
    got = genolake.open(lake).sql("SELECT pos, ref, alt, orig_pos FROM variant_files").to_pylist()
    assert got == [{"pos": int(bt[1]), "ref": bt[3], "alt": bt[4], "orig_pos": pos}]
    assert int(bt[1]) < pos  # it really moved
    assert verify_files(lake, "x", [vcf]) == 1  # verify finds it through orig_pos (it does not left-align)


def test_indel_written_at_both_ends_gets_one_key(tmp_path: Path) -> None:
    """Two hospitals, one writes the homopolymer deletion left-aligned and one at the right end."""
    fa = _fasta(tmp_path)
    pos, ref, alt = _right_end("homopolymer_deletion")
    left = _vcf(tmp_path / "left.vcf", "20", ["A"], ["20\t28\t.\tCT\tC\t.\tPASS\t.\tGT\t0/1"])
    right = _vcf(tmp_path / "right.vcf", "chr20", ["B"], [f"chr20\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t1/1"])
    lake = tmp_path / "lake"
    ingest(lake, "a", [left], workers=0, reference=fa)
    ingest(lake, "b", [right], workers=0, reference=fa)
    assert _keys(lake) == [{"contig": "20", "pos": 28, "ref": "CT", "alt": "C", "n": 2}]
    # without --reference the two stay apart (trimming alone cannot move an indel through a repeat)
    ingest(tmp_path / "plain", "a", [left], workers=0)
    ingest(tmp_path / "plain", "b", [right], workers=0)
    assert [(k["pos"], k["n"]) for k in _keys(tmp_path / "plain")] == [(28, 1), (pos, 1)]


def test_reference_mismatch_is_refused(tmp_path: Path) -> None:
    fa = tmp_path / "ref.fa"
    fa.write_text(">20\n" + "ACGT" * 50 + "\n")
    pysam.faidx(str(fa))
    vcf = _vcf(tmp_path / "x.vcf", "20", ["S1"], ["20\t1\t.\tG\tT\t.\tPASS\t.\tGT\t0/1"])
    from genolake.errors import BadInputFileError

    with pytest.raises(BadInputFileError, match=r"record 1 \(20:1\): REF G does not match the reference FASTA \(A\)"):
        ingest(tmp_path / "lake", "x", [vcf], workers=0, reference=fa)
    assert not (tmp_path / "lake" / "calls" / "institution=x").exists()
