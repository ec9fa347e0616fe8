"""`genolake annotate-vcf` reads a block of lines at a time and checks its common records (one REF and one ALT base)
with a few operations over the block; every other record goes the general way, one at a time. These tests run the
same inputs both ways (the general way alone: every block too small for the block checks) and want the same
bytes, the same report and the same error; and the block reader against the line reader it replaced."""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake, hail_vcf, sh

from genolake.errors import BadInputFileError
from genolake.vcfout import annotate_read, annotate_stream
from genolake.vcfout.annotate_lookup import Seen
from genolake.vcfout.annotate_read import text_blocks, text_records
from genolake.vcfout.annotate_vcf import annotate_vcf
from genolake.vcfout.annotate_write import column, value

FIELDS = "ac,an,af,nhomalt,nhemi,faf95"


def _both_ways(monkeypatch: pytest.MonkeyPatch, lake: Path, vcf: Path, out: Path, **kw: object) -> tuple[bytes, bytes]:
    """The decompressed output of the block way and of the general way (each with its report)."""
    got = []
    common = annotate_stream.Checker.common
    n_common = [0, 0]
    for general in (False, True):
        with monkeypatch.context() as m:

            def counted(self: annotate_stream.Checker, rows: list[list[str]], *a: list, _g: bool = general) -> None:
                n_common[_g] += len(rows)
                common(self, rows, *a)

            m.setattr(annotate_stream.Checker, "common", counted)
            if general:
                m.setattr(annotate_stream, "_MIN_BLOCK", 10**9)
            dest = out.with_name(("general-" if general else "blocks-") + out.name)
            rep = annotate_vcf(lake, vcf, dest, **kw)  # type: ignore[arg-type]
            with gzip.open(dest) as fh:
                got.append((fh.read(), (rep.n_records, rep.n_alleles, rep.n_found, rep.n_absent)))
    assert got[0][1] == got[1][1]
    assert n_common[1] == 0 and n_common[0] > got[0][1][0] // 3  # the block way took many records
    return got[0][0], got[1][0]


def _mixed_vcf(path: Path, declare_ours: bool) -> int:
    """The sample VCF's 346 records on 20 made every kind of record, then again on 21 and 22 (unseen there)."""
    with gzip.open(hail_vcf(), "rt") as fh:
        lines = fh.read().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    body = [ln.split("\t") for ln in lines if not ln.startswith("#")]
    if declare_ours:  # GL_AC already declared: the input's own GL_AC values are replaced
        header.insert(1, '##INFO=<ID=GL_AC,Number=A,Type=Integer,Description="an earlier annotation">')
    out = []
    for i, f in enumerate(body):
        ref, alt = f[3], f[4]
        kind = i % 12 if len(ref) == 1 and len(alt) == 1 else 0
        if kind == 1:
            f[3], f[4] = ref.lower(), alt.lower()
        elif kind == 2:
            f[4] = alt + "," + next(b for b in "ACGT" if b not in (ref, alt))  # multi-allelic
        elif kind == 3:
            f[3], f[4] = ref + "C", alt + "C"  # non-minimal: trims to the lake's allele
        elif kind == 4:
            f[4] = alt + "T"  # an insertion the lake does not have
        elif kind == 5:
            f[7] = "."
        elif kind == 6:
            f[7] = "GL_AC=5;X=1"
        elif kind == 7:
            f[4] = "."
        elif kind == 8:
            f[4] = alt.lower() + ",<NON_REF>"
        elif kind == 9:
            out.append("\t".join(f))  # the same record twice
        elif kind == 10:
            f[4] = "<DEL>"
        elif kind == 11:
            f[7] = ""
        out.append("\t".join(f))
    records = out + [c + ln[ln.index("\t"):] for c in ("21", "22") for ln in out]
    path.write_text("\n".join(header + records) + "\n")
    return len(records)


@pytest.mark.parametrize("declare_ours", [False, True])
def test_block_way_equals_general_way(sample_lake: SampleLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      declare_ours: bool) -> None:
    vcf = tmp_path / "mixed.vcf"
    n = _mixed_vcf(vcf, declare_ours)
    monkeypatch.setattr(annotate_read, "BLOCK_BYTES", 100_000)  # many blocks, lines cut across them
    blocks, general = _both_ways(monkeypatch, sample_lake.path, vcf, tmp_path / "o.vcf.gz", fields=FIELDS,
                                 scopes=["all"], strata=["sex=female"], chunk_records=50)
    assert blocks == general
    body = [ln for ln in blocks.decode().splitlines() if not ln.startswith("#")]
    assert len(body) == n and sum(";GL_AC=" in ln or ln.split("\t")[7].startswith("GL_AC=") for ln in body) > n // 2
    # and from allele_frequencies, sites only, bgzipped
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    from genolake.compute.aggregate import aggregate

    aggregate(lake, by=["sex"], workers=0)
    sites = tmp_path / "sites.vcf"
    sites.write_text("".join((ln if ln.startswith("##") else "\t".join(ln.split("\t")[:8])) + "\n"
                             for ln in vcf.read_text().splitlines()))
    sh("bgzip", "-f", sites)
    blocks, general = _both_ways(monkeypatch, lake, Path(str(sites) + ".gz"), tmp_path / "s.vcf.gz", fields=FIELDS,
                                 scopes=["all"], strata=["sex=female"])
    assert blocks == general


def _simple(path: Path, body: list[str]) -> Path:
    head = ["##fileformat=VCFv4.2", "##contig=<ID=20>", '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">',
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tp"]
    path.write_text("\n".join(head + body) + "\n")
    return path


_GOOD = [f"20\t{10_000_000 + 10 * i}\t.\tA\tG\t.\t.\t.\tGT\t0/1" for i in range(40)]


@pytest.mark.parametrize("bad", [
    (25, "20\t10000250\t.\tA\tQ\t.\t.\t.\tGT\t0/1"),       # invalid ALT
    (25, "20\t10000005\t.\tA\tG\t.\t.\t.\tGT\t0/1"),       # out of order
    (25, "20\t10000250\t.\ta\tA\t.\t.\t.\tGT\t0/1"),       # ALT = REF
    (25, "20\tabc\t.\tA\tG\t.\t.\t.\tGT\t0/1"),            # POS
    (25, "20\t0\t.\tA\tG\t.\t.\t.\tGT\t0/1"),              # POS 0
    (25, "20\t10000250\t.\tA\tG\t.\t.\t.\tGT\t0/1\t0/1"),  # two samples
    (25, "20\t10000250\t.\tA\tG\t.\t."),                   # 7 columns
    (25, "20\t10000250\t.\tX\tG\t.\t.\t.\tGT\t0/1"),       # REF
    (0, "20\t10000250\t.\tA\tG\t.\t.\t.\tGT"),             # no sample column, first record
])
def test_errors_are_the_same_both_ways(sample_lake: SampleLake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       bad: tuple[int, str]) -> None:
    at, line = bad
    vcf = _simple(tmp_path / "bad.vcf", [*_GOOD[:at], line, *_GOOD[at:]])
    msgs = []
    for general in (False, True):
        with monkeypatch.context() as m:
            if general:
                m.setattr(annotate_stream, "_MIN_BLOCK", 10**9)
            with pytest.raises(BadInputFileError) as exc:
                annotate_vcf(sample_lake.path, vcf, tmp_path / "o.vcf.gz")
            msgs.append(str(exc.value))
    assert msgs[0] == msgs[1] and f"record {at + 1}" in msgs[0]


def test_errors_across_contigs_are_the_same_both_ways(sample_lake: SampleLake, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    body = _GOOD[:20] + [ln.replace("20\t", "21\t", 1) for ln in _GOOD] + _GOOD[20:]  # 20 again: not contiguous
    vcf = _simple(tmp_path / "split.vcf", body)
    msgs = []
    for general in (False, True):
        with monkeypatch.context() as m:
            if general:
                m.setattr(annotate_stream, "_MIN_BLOCK", 10**9)
            with pytest.raises(BadInputFileError, match="not contiguous") as exc:
                annotate_vcf(sample_lake.path, vcf, tmp_path / "o.vcf.gz")
            msgs.append(str(exc.value))
    assert msgs[0] == msgs[1] and "record 61 (20:10000200)" in msgs[0]


_TRICKY = (b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
           + b"".join(b"20\t%d\t.\tA\tG\t.\t.\tX=%d\n" % (100 + i, i) for i in range(30))
           + b"20\t200\t.\tA\tG\t.\t.\tCRLF\r\n20\t201\t.\tA\tG\t.\t.\ttwo\r\r\n#a comment line\n\n"
           + "20\t202\t.\tA\tG\t.\t.\tNOTE=caf\u00e9\n".encode() + b"20\t203\t.\tA\tG\t.\t.\tbad\xff\xfebytes\n"
           + b"20\t204\t.\tA\tG\t.\t.\tlast-without-newline")


@pytest.mark.parametrize("gz", [False, True])
def test_block_reader_gives_the_lines_of_the_line_reader(tmp_path: Path, gz: bool) -> None:
    path = tmp_path / ("t.vcf.gz" if gz else "t.vcf")
    path.write_bytes(gzip.compress(_TRICKY) if gz else _TRICKY)
    fmt = "vcf.gz" if gz else "vcf"
    want = ["\t".join(f) for _n, f in text_records(str(path), fmt)]
    assert len(want) == 36
    for size in (1, 2, 7, 64, 1 << 20):
        assert [ln for block in text_blocks(str(path), fmt, size) for ln in block] == want


def test_truncated_gzip_fails_as_the_line_reader_fails(sample_lake: SampleLake, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    vcf = _simple(tmp_path / "long.vcf", [f"20\t{10_000_000 + i}\t.\tA\tG\t.\t.\t.\tGT\t0/1" for i in range(20_000)])
    sh("bgzip", "-f", vcf)
    data = Path(str(vcf) + ".gz").read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(BadInputFileError) as line_way:
        for _ in text_records(str(cut), "vcf.gz"):
            pass
    assert "cannot read" in str(line_way.value)
    monkeypatch.setattr(annotate_read, "BLOCK_BYTES", 50_000)
    with pytest.raises(BadInputFileError) as exc:
        annotate_vcf(sample_lake.path, cut, tmp_path / "o.vcf.gz")
    assert str(exc.value) == str(line_way.value)
    assert not (tmp_path / "o.vcf.gz").exists()


def test_column_formats_as_value() -> None:
    """The column-at-once formatter against the one-value reference, on every kind of value the look-up gives."""
    ints: list[int] = [0, 1, 7, 12345678901, 2, 0, 3]
    ans = [0, 2, 14, 12345678903, 0, 1, 3]
    fafs: list[float | None] = [None, math.nan, 0.0, 1.2345678e-7, 0.1234567, 5.0, 1 / 3]
    grp: list[str | None] = [None, "sex=female", "all", None, "x", "y", "z"]
    seen = Seen(list(range(7)), [0] * 7, ints, ans, ints[::-1], ints, fafs, grp)
    for f in ("ac", "an", "af", "nhomalt", "nhemi", "faf95", "grpmax"):
        want = [value(f, v) for v in zip(ints, ans, ints[::-1], ints, fafs, grp, strict=True)]
        assert column(f, seen) == want, f
        assert column(f, seen, [6, 0, 3]) == [want[6], want[0], want[3]], f
