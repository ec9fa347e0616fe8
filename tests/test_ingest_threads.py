"""The in-process converter parses on one thread and hands batches of records to a second thread for the numpy
work (convert._run). Errors still name the first record at fault, whichever thread finds it, and the lake is the
same whatever the batch and part sizes: checked against the independent verifier (ingest.verify), which re-reads
every VCF record with cyvcf2."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_helpers import sorted_rows

from genolake.errors import BadInputFileError
from genolake.ingest import convert
from genolake.ingest.pipeline import ingest
from genolake.ingest.verify import verify_files

N_RECORDS = 1500  # about three batches of convert.BATCH (512)


def _write(path: Path, genotypes: dict[int, str], *, ref: dict[int, str] | None = None,
           alts: dict[int, str] | None = None, pos: dict[int, int] | None = None) -> Path:
    """A 2-sample VCF of N_RECORDS biallelic records at 100, 110, ...; record k (1-based) may get other values."""
    lines = ["##fileformat=VCFv4.2", "##reference=GRCh37", "##contig=<ID=20,length=63025520>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB"]
    for k in range(1, N_RECORDS + 1):
        p = (pos or {}).get(k, 100 + 10 * k)
        r = (ref or {}).get(k, "G")
        a = (alts or {}).get(k, "A")
        gt = genotypes.get(k, "0/1\t1|1" if k % 3 else "0/0\t./.")
        sample_cols = "\t".join(f"{g}:{k % 50}" for g in gt.split("\t"))
        lines.append(f"20\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT:DP\t{sample_cols}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _fails(tmp_path: Path, path: Path, match: str) -> None:
    with pytest.raises(BadInputFileError, match=match):
        ingest(tmp_path / "lake", "x", [path], workers=0)


def test_first_batch_fault_named_before_a_later_one(tmp_path: Path) -> None:
    # record 10's batch is with the numpy thread when record 1400 (out of order) is read
    path = _write(tmp_path / "a.vcf", {10: "0/2\t0/1"}, pos={1400: 50})
    _fails(tmp_path, path, r"record 10 \(20:200\): genotype allele index 2 but only 1 ALT allele")


def test_fault_found_by_the_numpy_thread_alone(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.vcf", {600: "0/0\t2/2"})
    _fails(tmp_path, path, r"record 600 \(20:6100\): genotype allele index 2 but only 1 ALT allele")


def test_second_batch_fault_before_a_later_bad_ref(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.vcf", {600: "0/2\t0/1"}, ref={1400: "M"})
    _fails(tmp_path, path, r"record 600 \(20:6100\): genotype allele index 2")


def test_batch_fault_before_a_bad_multiallelic_record(tmp_path: Path) -> None:
    # record 700 has two ALTs and allele index 3: found on the parsing thread, after record 5's batch was queued
    path = _write(tmp_path / "a.vcf", {5: "0/2\t0/0", 700: "0/3\t0/1"}, alts={700: "A,C"})
    _fails(tmp_path, path, r"record 5 \(20:150\): genotype allele index 2")


def test_bad_multiallelic_record_alone(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.vcf", {700: "0/3\t0/1"}, alts={700: "A,C"})
    _fails(tmp_path, path, r"record 700 \(20:7100\): genotype allele index 3 but only 2 ALT alleles")


def test_mixed_records_verify_whatever_the_batch_and_part_sizes(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # multi-allelic, haploid, triploid and missing calls between the batches of biallelic diploid records
    gts = {7: "1/2\t0/2", 8: "1\t0", 9: "0/1/1\t./.", 513: "2|1\t1", 514: ".\t1/1", 1024: "0/0/0\t1/1/2"}
    path = _write(tmp_path / "a.vcf", gts, alts={7: "A,C", 9: "T", 513: "A,T", 1024: "A,C"})
    ingest(tmp_path / "lake1", "x", [path], workers=0)
    assert verify_files(tmp_path / "lake1", "x", [path]) > N_RECORDS
    monkeypatch.setattr(convert, "BATCH", 7)
    monkeypatch.setattr(convert, "MAX_QUEUED", 1)
    monkeypatch.setattr(convert, "PART_ROWS", 300)  # genotype rows: a new part file every 150 biallelic records
    ingest(tmp_path / "lake2", "x", [path], workers=0)
    parts = list((tmp_path / "lake2" / "genotypes").rglob("*.parquet"))
    assert len(parts) > 5
    assert verify_files(tmp_path / "lake2", "x", [path]) > N_RECORDS
    for sql in ("SELECT * EXCLUDE (sample_id) FROM calls", "SELECT * FROM variants"):
        assert sorted_rows(tmp_path / "lake1", sql) == sorted_rows(tmp_path / "lake2", sql)


def _multi_contig(path: Path, contigs: list[str]) -> Path:
    lines = ["##fileformat=VCFv4.2", "##reference=GRCh37"]
    lines += [f"##contig=<ID={c},length=60000000>" for c in dict.fromkeys(contigs)]
    lines += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC"]
    for c in contigs:
        for k in range(1, 700):
            gt = "0/1\t1/1\t0/0" if k % 4 else "1/2\t0/2\t./."
            lines.append(f"{c}\t{100 + 10 * k}\t.\tG\t{'A,C' if k % 4 == 0 else 'A'}\t.\t.\t.\tGT\t{gt}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_each_contig_written_when_the_next_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _multi_contig(tmp_path / "a.vcf", ["20", "21", "22"])
    ingest(tmp_path / "lake1", "x", [path], workers=0)
    assert verify_files(tmp_path / "lake1", "x", [path]) > 3 * 699
    for contig in ("20", "21", "22"):
        assert len(list((tmp_path / "lake1" / "genotypes").rglob(f"contig={contig}/*.parquet"))) == 1
    monkeypatch.setattr(convert, "PART_ROWS", 900)
    ingest(tmp_path / "lake2", "x", [path], workers=0)
    assert verify_files(tmp_path / "lake2", "x", [path]) > 3 * 699
    for sql in ("SELECT * EXCLUDE (sample_id) FROM calls", "SELECT * FROM variants"):
        assert sorted_rows(tmp_path / "lake1", sql) == sorted_rows(tmp_path / "lake2", sql)


def test_contig_coming_back_after_it_was_written(tmp_path: Path) -> None:
    path = _multi_contig(tmp_path / "a.vcf", ["20", "21", "20"])
    _fails(tmp_path, path, r"record 1399 \(20:110\): records of contig 20 are not contiguous")
    assert not list((tmp_path / "lake").rglob("*.parquet"))
