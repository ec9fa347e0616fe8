"""`genolake annotate-vcf`: values checked against `bcftools +fill-tags` on the bcftools-merged oracle of the
sample lake (joint, per institution, a phenotype stratum), hand-computed absent-site AN for alleles the lake has
not seen, non-minimal and multi-allelic input, left-alignment, the allele_frequencies path, chunking, bad input."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from ingest_helpers import run_cli
from query_fixtures import *  # noqa: F403 - the sample_lake / opened fixtures
from query_fixtures import SampleLake, fill_tags, hail_vcf, sh

from genolake.errors import BadInputFileError, BuildMismatchError, UserInputError
from genolake.vcfout.annotate_vcf import annotate_vcf

FIELDS = "ac,an,af,nhomalt,nhemi"


def _query(vcf: Path, keys: list[str]) -> list[dict[str, str]]:
    fmt = "%CHROM\\t%POS\\t%REF\\t%ALT\\t" + "\\t".join(f"%{k}" for k in keys) + "\\n"
    out = []
    for line in sh("bcftools", "query", "-f", fmt, vcf).splitlines():
        f = line.split("\t")
        out.append({"key": (f[0], int(f[1]), f[2], f[3]), **dict(zip(keys, f[4:], strict=True))})
    return out


def _body(vcf: Path) -> list[str]:
    with gzip.open(vcf, "rt") as fh:
        return [line for line in fh if not line.startswith("#")]


@pytest.fixture(scope="module")
def annotated(sample_lake: SampleLake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("annotated") / "hail.gl.vcf.gz"
    rep = annotate_vcf(sample_lake.path, hail_vcf(), out, fields=FIELDS, scopes=["all"], strata=["sex=female"])
    assert rep.source == "lake" and rep.n_records == rep.n_found == 346
    return out


def test_values_match_bcftools_fill_tags(sample_lake: SampleLake, annotated: Path, tmp_path: Path) -> None:
    assert sample_lake.oracle is not None
    truth = sample_lake.phenotypes["truth"]
    joint = fill_tags(sample_lake.oracle, None, tmp_path)
    inst = fill_tags(sample_lake.oracle, {s: i for i, ss in sample_lake.institutions.items() for s in ss}, tmp_path,
                     "inst")
    female = fill_tags(sample_lake.oracle, {s: "F" for s, r in truth.items() if r["sex"] == "female"}, tmp_path,
                       "sex")
    keys = ["GL_AC", "GL_AN", "GL_AF", "GL_nhomalt", "GL_nhemi", "GL_AC_north", "GL_AN_north", "GL_AC_south",
            "GL_AN_south", "GL_AC_east", "GL_AN_east", "GL_AC_sex_female", "GL_AN_sex_female",
            "GL_AC_east_sex_female"]
    rows = _query(annotated, keys)
    assert len(rows) == 346
    for r in rows:
        k = r["key"]
        assert int(r["GL_AC"]) == joint[k]["AC"] and int(r["GL_AN"]) == joint[k]["AN"], k
        assert int(r["GL_nhomalt"]) * 2 == joint[k]["AC_Hom"] and r["GL_nhemi"] == "0"
        an = joint[k]["AN"]
        assert (r["GL_AF"] == ".") if an == 0 else abs(float(r["GL_AF"]) - joint[k]["AC"] / an) < 1e-5 * max(1, joint[k]["AC"] / an)
        for i in ("north", "south", "east"):
            assert int(r[f"GL_AC_{i}"]) == inst[k][f"AC_{i}"] and int(r[f"GL_AN_{i}"]) == inst[k][f"AN_{i}"], (k, i)
        assert int(r["GL_AC_sex_female"]) == female[k]["AC_F"] and int(r["GL_AN_sex_female"]) == female[k]["AN_F"]


def test_output_keeps_every_record_and_is_indexed(annotated: Path) -> None:
    assert Path(str(annotated) + ".tbi").exists()
    src = sh("bcftools", "view", "-H", hail_vcf()).splitlines()
    out = sh("bcftools", "view", "-H", annotated).splitlines()
    assert len(src) == len(out)
    for a, b in zip(src, out, strict=True):
        fa, fb = a.split("\t"), b.split("\t")
        assert fa[:7] == fb[:7] and fa[8:] == fb[8:]  # everything but INFO unchanged, genotypes included
        assert fb[7].startswith(fa[7] + ";GL_AC=")
    header = sh("bcftools", "view", "-h", annotated)
    assert '##INFO=<ID=GL_AF,Number=A,Type=Float,Description="Alternate allele frequency AC/AN in the genolake lake' in header
    assert "files table version" in header and "genolake counting rule" in header
    assert sh("bcftools", "view", "-H", "-r", "20:10019093", annotated).count("\n") == 1  # region reads: indexed
    assert sh("bcftools", "query", "-f", "%GL_AF\\n", annotated).splitlines()[0] == "0.445"


def test_annotating_twice_replaces_the_fields(sample_lake: SampleLake, annotated: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.vcf.gz"
    annotate_vcf(sample_lake.path, annotated, again, fields=FIELDS, scopes=["all"], strata=["sex=female"])
    assert _body(again) == _body(annotated)
    assert sh("bcftools", "view", "-h", again).count("##INFO=<ID=GL_AC,") == 1


def _hand_vcf(path: Path, records: list[str], samples: list[str] | None = None, contig_line: str = "##contig=<ID=20>") -> Path:
    cols = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO" + ("\tFORMAT\t" + "\t".join(samples) if samples else "")
    lines = ["##fileformat=VCFv4.2", contig_line, '##INFO=<ID=X,Number=1,Type=Integer,Description="x">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">', cols, *records]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_non_minimal_multiallelic_and_unseen_alleles(sample_lake: SampleLake, opened: object, tmp_path: Path) -> None:
    """Hand-computed: south (30 diploid samples, --absent-as-ref) adds 60 to AN at any allele it lacks; east
    (30 samples, callable 20:10,000,001-13,000,000 and 15,000,001-16,000,000) adds 60 inside those; north
    (no-call) adds nothing, so north alone does not know the AN of an allele it never saw."""
    v = opened.variant("20-10019093-A-G")["frequencies"]  # type: ignore[attr-defined]
    seen = {f["scope"]: f for f in v}
    vcf = _hand_vcf(tmp_path / "in.vcf", [
        "chr20\t10019093\trsX\tAT\tGT\t50\tPASS\tX=1\tGT\t0/1",   # non-minimal, chr-named: the lake's 20-10019093-A-G
        "20\t10019093\t.\tA\tG,C\t.\t.\t.\tGT\t1/2",              # multi-allelic: seen G, unseen C (east callable)
        "20\t14000000\t.\tG\tA\t.\t.\t.\tGT\t0/1",                # unseen, outside east's callable regions
        "20\t15500000\t.\tTTT\tT\t.\t.\t.\tGT\t./.",              # unseen deletion inside east's second region
    ], samples=["patient"])
    out = tmp_path / "out.vcf.gz"
    rep = annotate_vcf(sample_lake.path, vcf, out, fields="ac,an,af,nhomalt", scopes=["all"])
    assert (rep.n_records, rep.n_alleles, rep.n_found, rep.n_absent) == (4, 5, 2, 3)
    rows = _query(out, ["GL_AC", "GL_AN", "GL_AF", "GL_AC_north", "GL_AN_north", "GL_AN_south", "GL_AN_east",
                        "GL_AF_east"])
    j, n, s, e = seen["joint"], seen["north"], seen["south"], seen["east"]
    assert rows[0]["key"] == ("chr20", 10019093, "AT", "GT")  # the record itself is unchanged
    assert (rows[0]["GL_AC"], rows[0]["GL_AN"]) == (str(j["ac"]), str(j["an"]))
    assert (rows[0]["GL_AC_north"], rows[0]["GL_AN_north"], rows[0]["GL_AN_south"], rows[0]["GL_AN_east"]) == (
        str(n["ac"]), str(n["an"]), str(s["an"]), str(e["an"]))
    assert rows[1]["GL_AC"] == f"{j['ac']},0" and rows[1]["GL_AN"] == f"{j['an']},120"
    assert rows[1]["GL_AC_north"] == f"{n['ac']},." and rows[1]["GL_AN_north"] == f"{n['an']},."
    assert rows[1]["GL_AF"].split(",")[1] == "0"
    assert (rows[2]["GL_AC"], rows[2]["GL_AN"], rows[2]["GL_AN_south"], rows[2]["GL_AN_east"], rows[2]["GL_AF_east"]) == (
        "0", "60", "60", ".", ".")
    assert (rows[3]["GL_AN"], rows[3]["GL_AN_east"], rows[3]["GL_AN_north"]) == ("120", "60", ".")
    # a sites-only input gets the same values
    sites = _hand_vcf(tmp_path / "sites.vcf", [ln.rsplit("\t", 2)[0] for ln in
                                               (tmp_path / "in.vcf").read_text().splitlines()[5:]])
    out2 = tmp_path / "sites.vcf.gz"
    annotate_vcf(sample_lake.path, sites, out2, fields="ac,an,af,nhomalt", scopes=["all"])
    assert [r["GL_AN"] for r in _query(out2, ["GL_AN"])] == [r["GL_AN"] for r in rows]


def test_allele_frequencies_path_gives_the_same_values(sample_lake: SampleLake, annotated: Path, tmp_path: Path) -> None:
    from genolake.compute.aggregate import aggregate

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)  # the same lake_id: the same key
    aggregate(lake, by=["sex"], workers=0)
    out = tmp_path / "af.vcf.gz"
    rep = annotate_vcf(lake, hail_vcf(), out, fields=FIELDS, scopes=["all"], strata=["sex=female"])
    assert rep.source == "allele_frequencies"
    assert _body(out) == _body(annotated)
    rep = annotate_vcf(lake, hail_vcf(), tmp_path / "f.vcf.gz", fields="ac,an,faf95", chunk_records=50)
    with pytest.raises(UserInputError, match="grpmax needs allele_frequencies from `genolake aggregate --faf-groups`"):
        annotate_vcf(sample_lake.path, hail_vcf(), tmp_path / "g.vcf.gz", fields="grpmax")


def test_faf95_from_lake_equals_aggregate(sample_lake: SampleLake, tmp_path: Path) -> None:
    from genolake.compute.aggregate import aggregate

    a = tmp_path / "lake.vcf.gz"
    annotate_vcf(sample_lake.path, hail_vcf(), a, fields="ac,an,faf95")
    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    aggregate(lake, workers=0)
    b = tmp_path / "af.vcf.gz"
    assert annotate_vcf(lake, hail_vcf(), b, fields="ac,an,faf95").source == "allele_frequencies"
    fa = [r["GL_faf95"] for r in _query(a, ["GL_faf95"])]
    fb = [r["GL_faf95"] for r in _query(b, ["GL_faf95"])]
    assert fa == fb and any(x not in ("0", ".") for x in fa)


def test_chunks_do_not_change_the_output(sample_lake: SampleLake, annotated: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.vcf.gz"
    annotate_vcf(sample_lake.path, hail_vcf(), out, fields=FIELDS, scopes=["all"], strata=["sex=female"],
                 chunk_records=7)
    assert _body(out) == _body(annotated)


def test_bcf_and_plain_vcf_inputs_give_the_same_values(sample_lake: SampleLake, annotated: Path,
                                                        tmp_path: Path) -> None:
    bcf = tmp_path / "in.bcf"
    sh("bcftools", "view", "-Ob", "-o", bcf, hail_vcf())
    plain = tmp_path / "in.vcf"
    sh("bcftools", "view", "-Ov", "-o", plain, hail_vcf())
    keys = ["GL_AC", "GL_AN", "GL_AC_east", "GL_AN_sex_female"]
    want = _query(annotated, keys)
    for src in (bcf, plain):
        out = tmp_path / (src.name + ".gl.vcf.gz")
        annotate_vcf(sample_lake.path, src, out, fields=FIELDS, scopes=["all"], strata=["sex=female"])
        assert _query(out, keys) == want


def test_left_alignment_with_reference(tmp_path: Path) -> None:
    """An insertion in a homopolymer written at its right end matches the lake's left-aligned allele."""
    from genolake.ingest.pipeline import ingest

    seq = "GATTACA" * 3 + "C" + "A" * 10 + "G" + "TTGACC" * 5
    fa = tmp_path / "ref.fa"
    fa.write_text(">20\n" + seq + "\n")
    import pysam

    pysam.faidx(str(fa))
    a_start = seq.index("CAAAA") + 1  # 1-based position of the C before the As
    lake_vcf = _hand_vcf(tmp_path / "lake.vcf", [f"20\t{a_start}\t.\tC\tCA\t.\t.\t.\tGT\t0/1\t1/1"],
                         samples=["s1", "s2"])
    lake = tmp_path / "lake"
    ingest(lake, "north", [lake_vcf], build="GRCh37", reference=fa, workers=0)
    right = a_start + 10  # the last A of the run: the same insertion written right-aligned
    patient = _hand_vcf(tmp_path / "p.vcf", [f"20\t{right}\t.\tA\tAA\t.\t.\t.\tGT\t0/1"], samples=["p"])
    out = tmp_path / "p.gl.vcf.gz"
    rep = annotate_vcf(lake, patient, out, reference=fa)
    assert rep.n_found == 1
    assert _query(out, ["GL_AC", "GL_AN"])[0]["GL_AC"] == "3"
    rep = annotate_vcf(lake, patient, tmp_path / "noref.vcf.gz")  # without --reference it is not the same key
    assert rep.n_found == 0
    bad = _hand_vcf(tmp_path / "bad.vcf", [f"20\t{right}\t.\tG\tGA\t.\t.\t.\tGT\t0/1"], samples=["p"])
    with pytest.raises(BadInputFileError, match=r"record 1 \(20:\d+\): REF G does not match the reference FASTA"):
        annotate_vcf(lake, bad, tmp_path / "bad.vcf.gz", reference=fa)
    assert not (tmp_path / "bad.vcf.gz").exists()


def test_bad_input(sample_lake: SampleLake, tmp_path: Path) -> None:
    out = tmp_path / "o.vcf.gz"
    other = _hand_vcf(tmp_path / "b38.vcf", ["20\t100\t.\tA\tG\t.\t.\t."], contig_line="##contig=<ID=20,length=64444167>")
    with pytest.raises(BuildMismatchError, match=r"the VCF is GRCh38 .* but the lake is GRCh37"):
        annotate_vcf(sample_lake.path, other, out)
    malformed = _hand_vcf(tmp_path / "bad.vcf", ["20\t100\t.\tA\tG\t.\t.\t.", "20\tabc\t.\tA\tG\t.\t.\t."])
    with pytest.raises(BadInputFileError, match=r"bad\.vcf: record 2"):
        annotate_vcf(sample_lake.path, malformed, out)
    unsorted = _hand_vcf(tmp_path / "uns.vcf", ["20\t100\t.\tA\tG\t.\t.\t.", "21\t5\t.\tA\tG\t.\t.\t.",
                                                "20\t200\t.\tA\tG\t.\t.\t."])
    with pytest.raises(BadInputFileError, match="not contiguous"):
        annotate_vcf(sample_lake.path, unsorted, out)
    ok = _hand_vcf(tmp_path / "ok.vcf", ["20\t100\t.\tA\tG\t.\t.\t."])
    with pytest.raises(UserInputError, match="unknown field 'acc'"):
        annotate_vcf(sample_lake.path, ok, out, fields="ac,acc")
    with pytest.raises(UserInputError, match="unknown institution 'west'"):
        annotate_vcf(sample_lake.path, ok, out, scopes=["west"])
    with pytest.raises(UserInputError, match="no sample has sex = 'femal'"):
        annotate_vcf(sample_lake.path, ok, out, strata=["sex=femal"])
    with pytest.raises(UserInputError, match="'age' is not a categorical phenotype"):
        annotate_vcf(sample_lake.path, ok, out, strata=["age=50"])
    with pytest.raises(UserInputError, match=r"must end in OUT\.vcf\.gz"):
        annotate_vcf(sample_lake.path, ok, tmp_path / "o.bcf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b38.vcf", "bad.vcf", "ok.vcf", "uns.vcf"]


def test_cli(sample_lake: SampleLake, tmp_path: Path) -> None:
    out = tmp_path / "c.vcf.gz"
    r = run_cli("annotate-vcf", "--lake", str(sample_lake.path), str(hail_vcf()), "-o", str(out), "--fields",
                "ac,an,af", "--scope", "joint", "--scope", "south", "--prefix", "KR_")
    assert r.returncode == 0, r.stderr
    assert "346 records" in r.stderr
    assert sh("bcftools", "query", "-f", "%KR_AF\\t%KR_AF_south\\n", out).count("\n") == 346
    bad = _hand_vcf(tmp_path / "bad.vcf", ["20\tabc\t.\tA\tG\t.\t.\t."])
    r = run_cli("annotate-vcf", "--lake", str(sample_lake.path), str(bad), "-o", str(tmp_path / "x.vcf.gz"))
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "bad.vcf: record 1" in r.stderr
    assert not (tmp_path / "x.vcf.gz").exists()
    r = run_cli("annotate-vcf", "--lake", str(sample_lake.path), str(bad), "-o", str(tmp_path / "x.vcf.gz"),
                "--fields", "ac,xx")
    assert r.returncode == 2 and "unknown field 'xx'" in r.stderr


def test_failure_after_writing_leaves_nothing(sample_lake: SampleLake, tmp_path: Path) -> None:
    """Chunks already written to the temporary file are removed with it when a later record is bad."""
    vcf = _hand_vcf(tmp_path / "late.vcf", ["20\t100\t.\tA\tG\t.\t.\t.", "20\t200\t.\tA\tG\t.\t.\t.",
                                            "20\t300\t.\tA\tG\t.\t.\t.", "20\t400\t.\tA\tQ\t.\t.\t."])
    with pytest.raises(BadInputFileError, match=r"record 4 \(20:400\): invalid ALT allele 'Q'"):
        annotate_vcf(sample_lake.path, vcf, tmp_path / "late.gl.vcf.gz", chunk_records=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.vcf"]
