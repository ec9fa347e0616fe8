"""VEP CSQ / SnpEff ANN / bcftools BCSQ parsing: hand-built truths for the allele conventions, and
`bcftools +split-vep` as the oracle on real annotated files (the bcftools split-vep test file, gnomAD's
VEP annotations, and a real VCF with VEP CSQ and SnpEff ANN ingested into a lake)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from genolake.annotation import csq as C
from genolake.annotation.source import parse_info

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
BCSQ_VCF = DATA / "edge" / "bcftools__split-vep.4.vcf"
GNOMAD = DATA / "gnomad_exomes_r2.1.1_sites_chr1_100.vcf.gz"
EXOME = DATA / "annot" / "cyvcf2_exome_189s.vcf.gz"


def sh(*args: str | Path, stdin: str | None = None) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, input=stdin).stdout


def need_bcftools() -> None:
    if shutil.which("bcftools") is None:
        pytest.skip("bcftools not on PATH")


def _records(path: Path) -> Iterator[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        for line in fh:
            if not line.startswith("#"):
                yield line.rstrip("\n").split("\t")


def _header(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt") as fh:  # type: ignore[operator]
        for line in fh:
            if not line.startswith("#"):
                break
            out.append(line.rstrip("\n"))
    return out


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """genolake's severity order as a `bcftools +split-vep -S` scale: least severe first, one rank a line (a term
    and the SnpEff / bcftools / older VEP terms ranked with it), so both tools rank every term alike."""
    path = tmp_path_factory.mktemp("scale") / "scale.txt"
    lines = []
    for term, _ in reversed(C.SEVERITY):
        same = [a for a, target in C.ALIASES.items() if target == term and a != term]
        lines.append(" ".join([term, *same]))
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------- hand-built truths
@pytest.mark.parametrize(("ref", "alts", "want"), [
    ("A", ["G"], ["G"]),  # SNV
    ("AC", ["GT"], ["GT"]),  # MNV: as is
    ("GT", ["G"], ["-"]),  # deletion: first base removed, nothing left
    ("G", ["GTT"], ["TT"]),  # insertion
    ("GT", ["GTT", "G"], ["TT", "-"]),  # multi-allelic, all share the first base
    ("A", ["AT", "T"], ["AT", "T"]),  # multi-allelic, first bases differ: as is
    ("ACG", ["A", "*"], ["-", "*"]),  # `*` is ignored when looking for a shared first base
    ("TATA", ["*", "T", "CATA"], ["*", "T", "CATA"]),
    ("A", ["*", "C"], ["*", "C"]),  # no indel: as is
    ("C", ["T", "CA"], ["T", "CA"]),  # SNV + insertion with different first bases
])
def test_vep_allele_strings(ref: str, alts: list[str], want: list[str]) -> None:
    assert C.vep_allele_strings(ref, alts) == want


def test_entries_assigned_to_alleles() -> None:
    lay = C.Layout.of("CSQ", ("Allele", "Consequence", "SYMBOL"))
    value = "TT|inframe_insertion|G1,-|frameshift_variant|G1,TT|intron_variant|G2"
    got = C.entries_by_allele(value, lay, "GT", ["GTT", "G"])
    assert [e[1] for e in got[1]] == ["inframe_insertion", "intron_variant"]
    assert [e[1] for e in got[2]] == ["frameshift_variant"]
    # ALLELE_NUM wins over Allele
    lay2 = C.Layout.of("CSQ", ("Allele", "Consequence", "ALLELE_NUM"))
    got2 = C.entries_by_allele("X|missense_variant|2,Y|stop_gained|1", lay2, "A", ["C", "G"])
    assert [e[1] for e in got2[1]] == ["stop_gained"] and [e[1] for e in got2[2]] == ["missense_variant"]
    # SnpEff writes the ALT as it is (and ALT-REF in cancer mode)
    ann = C.Layout.of("ANN", C.ANN_FIELDS)
    got3 = C.entries_by_allele("GTT|inframe_insertion|MODERATE|G1,G|frameshift_variant|HIGH|G1,GTT-GT|x|LOW|G1",
                               ann, "GT", ["GTT", "G"])
    assert [e[1] for e in got3[1]] == ["inframe_insertion", "x"] and [e[1] for e in got3[2]] == ["frameshift_variant"]
    # no Allele field: every entry applies to every allele
    lay4 = C.Layout.of("CSQ", ("Consequence", "SYMBOL"))
    got4 = C.entries_by_allele("missense_variant|A,intron_variant|B", lay4, "A", ["C", "G"])
    assert len(got4[1]) == len(got4[2]) == 2


def test_severity_and_summary() -> None:
    assert C.term_rank("stop_gained") < C.term_rank("missense_variant") < C.term_rank("synonymous_variant")
    assert C.term_rank("missense_variant") < C.term_rank("splice_region_variant") < C.term_rank("intron_variant")
    assert C.term_rank("intron_variant") < C.term_rank("feature_elongation") < C.term_rank("intergenic_variant")
    assert C.term_rank("missense") == C.term_rank("missense_variant")  # bcftools/csq
    assert C.term_rank("disruptive_inframe_deletion") == C.term_rank("inframe_deletion")  # SnpEff
    assert C.term_rank("no_such_term") == len(C.SEVERITY)
    lay = C.Layout.of("CSQ", ("Allele", "Consequence", "IMPACT", "SYMBOL", "Feature", "CANONICAL"))
    entries = [e.split("|") for e in (
        "T|intron_variant|MODIFIER|G1|TX1|", "T|splice_region_variant&intron_variant|LOW|G1|TX2|",
        "T|missense_variant|MODERATE|G2|TX3|", "T|missense_variant|MODERATE|G2|TX4|YES")]
    s = C.summarise(entries, lay)
    assert s is not None
    assert s["consequence"] == "missense_variant" and s["csq_transcript"] == "TX4"  # canonical breaks the tie
    assert s["impact"] == "MODERATE" and s["csq_gene"] == "G2"
    assert s["consequence_terms"] == ["missense_variant", "splice_region_variant", "intron_variant"]
    assert C.summarise([], lay) is None


def test_header_field_lists() -> None:
    vep = '##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. Format: Allele|Consequence|IMPACT">'
    ann = ("##INFO=<ID=ANN,Number=.,Type=String,Description=\"Functional annotations: 'Allele | Annotation | "
           "Annotation_Impact | Gene_Name'\">")
    assert C.fields_from_header(vep) == ("Allele", "Consequence", "IMPACT")
    assert C.fields_from_header(ann) == ("Allele", "Annotation", "Annotation_Impact", "Gene_Name")
    assert C.header_fields(_header(BCSQ_VCF))["BCSQ"] == C.BCSQ_FIELDS


# ----------------------------------------------------------------------------------------- split-vep oracles
def test_bcsq_entries_equal_split_vep() -> None:
    """Every entry of every record of bcftools' split-vep test file, field by field."""
    need_bcftools()
    lay = C.Layout.of("BCSQ", C.header_fields(_header(BCSQ_VCF))["BCSQ"])
    want = [line.split("\t") for line in sh(
        "bcftools", "+split-vep", "-a", "BCSQ", "-d", "-A", "tab", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%BCSQ\n",
        BCSQ_VCF).splitlines()]
    got = []
    for rec in _records(BCSQ_VCF):
        value = parse_info(rec[7]).get("BCSQ")
        if not value:
            continue
        for entry in C.parse_entries(value, lay):
            got.append([rec[0], rec[1], rec[3], rec[4], *[entry[f] or "." for f in lay.fields]])
    assert len(got) == len(want) > 100
    assert got == want


def test_bcsq_most_severe_equals_split_vep(scale: Path) -> None:
    need_bcftools()
    lay = C.Layout.of("BCSQ", C.BCSQ_FIELDS)
    want = {}
    for line in sh("bcftools", "+split-vep", "-a", "BCSQ", "-s", "worst", "-S", scale, "-f",
                   "%POS\t%ALT\t%Consequence\n", BCSQ_VCF).splitlines():
        pos, alt, cons = line.split("\t")
        want[(pos, alt)] = cons
    got = {}
    for rec in _records(BCSQ_VCF):
        value = parse_info(rec[7]).get("BCSQ")
        if value:
            s = C.summarise(C.split_entries(value), lay)
            assert s is not None
            got[(rec[1], rec[4])] = s["consequence"]
    assert set(got) == set(want)
    for key, cons in want.items():
        parts = cons.split("&")
        assert got[key] in parts and C.term_rank(got[key]) == min(C.term_rank(p) for p in parts), key


def test_gnomad_vep_alleles_and_most_severe(scale: Path) -> None:
    """Real VEP output: assigning entries by the Allele convention reproduces ALLELE_NUM, and the most severe
    consequence per record equals split-vep's with the same severity order."""
    need_bcftools()
    fields = C.header_fields([line.replace("ID=vep,", "ID=CSQ,") for line in _header(GNOMAD)])["CSQ"]
    inum = fields.index("ALLELE_NUM")
    by_allele = C.Layout.of("CSQ", tuple("x_ALLELE_NUM" if f == "ALLELE_NUM" else f for f in fields))
    lay = C.Layout.of("CSQ", fields)
    got = {}
    n_indel = 0
    for rec in _records(GNOMAD):
        value = parse_info(rec[7]).get("vep")
        if not value:
            continue
        alts = rec[4].split(",")
        assigned = C.entries_by_allele(value, by_allele, rec[3], alts)
        assert sum(len(v) for v in assigned.values()) == len(C.split_entries(value))
        for k, entries in assigned.items():
            assert all(e[inum] == str(k) for e in entries)
        n_indel += any(len(a) != len(rec[3]) for a in alts)
        s = C.summarise(C.entries_by_allele(value, lay, rec[3], alts)[1], lay)
        assert s is not None
        got[rec[1]] = (s["consequence"], s["impact"])
    assert n_indel >= 10
    want = {}
    for line in sh("bcftools", "+split-vep", "-a", "vep", "-s", "worst", "-S", scale, "-f",
                   "%POS\t%Consequence\t%IMPACT\n", GNOMAD).splitlines():
        pos, cons, impact = line.split("\t")
        want[pos] = (cons, impact)
    assert set(got) == set(want)
    for pos, (cons, impact) in want.items():
        parts = cons.split("&")
        assert got[pos][0] in parts and C.term_rank(got[pos][0]) == min(C.term_rank(p) for p in parts), pos
        assert got[pos][1] == impact


# ----------------------------------------------------------------------------------------- through the lake
@pytest.fixture(scope="module")
def exome_lakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The real exome VCF (VEP CSQ without an Allele field + SnpEff ANN) in one lake; an ANN-only copy in
    another; and a hand-built VCF of multi-allelic indels with VEP-default CSQ in a third."""
    need_bcftools()
    if not EXOME.exists():
        pytest.skip(f"{EXOME.name} not in tests/data/annot")
    tmp = tmp_path_factory.mktemp("csq")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(tmp / "keys")
    try:
        from genolake.ingest.pipeline import ingest

        ann_only = tmp / "ann_only.vcf.gz"
        sh("bcftools", "annotate", "--no-version", "-x", "INFO/CSQ", "-Oz", "-o", ann_only, EXOME)
        multi = tmp / "multi.vcf"
        multi.write_text(_MULTI_VCF)
        ingest(tmp / "lake", "east", [EXOME], workers=0)
        ingest(tmp / "lake_ann", "east", [ann_only], workers=0)
        ingest(tmp / "lake_multi", "east", [multi], workers=0)
        yield {"tmp": tmp, "lake": tmp / "lake", "lake_ann": tmp / "lake_ann", "ann_only": ann_only,
               "lake_multi": tmp / "lake_multi"}
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


def _vep_fields(*pairs: tuple[str, str]) -> str:
    """One VEP-default CSQ entry with the given allele and consequence (other fields empty or fixed)."""
    out = []
    for allele, cons in pairs:
        f = dict.fromkeys(C.VEP_DEFAULT_FIELDS, "")
        f.update(Allele=allele, Consequence=cons, SYMBOL="GENE1", Feature=f"TX_{cons}", Feature_type="Transcript")
        out.append("|".join(f[k] for k in C.VEP_DEFAULT_FIELDS))
    return ",".join(out)


_MULTI_VCF = "\n".join([
    "##fileformat=VCFv4.2",
    "##contig=<ID=1,length=249250621>",
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from Ensembl VEP. Format: '
    + "|".join(C.VEP_DEFAULT_FIELDS) + '">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2",
    "1\t1000\t.\tGT\tGTT,G\t.\tPASS\tCSQ=" + _vep_fields(("TT", "inframe_insertion"), ("-", "frameshift_variant"),
                                                          ("TT", "intron_variant")) + "\tGT\t0/1\t1/2",
    "1\t2000\t.\tA\tAT,T\t.\tPASS\tCSQ=" + _vep_fields(("AT", "missense_variant"), ("T", "stop_gained")) + "\tGT\t1/2\t0/0",
    "1\t3000\t.\tACG\tA,*\t.\tPASS\tCSQ=" + _vep_fields(("-", "frameshift_variant"), ("*", "intergenic_variant"))
    + "\tGT\t0/1\t2/2",
    "1\t4000\t.\tC\tT\t.\tPASS\tCSQ=" + _vep_fields(("T", "synonymous_variant"), ("T", "splice_region_variant"))
    + "\tGT\t0/1\t0/0",
    # a second record at the same position (its rows must not be mixed up with the first record's)
    "1\t4000\t.\tC\tG\t.\tPASS\tCSQ=" + _vep_fields(("G", "missense_variant")) + "\tGT\t0/0\t0/1",
    "1\t5000\t.\tCAGAG\tC\t.\tPASS\tCSQ=" + _vep_fields(("-", "inframe_deletion")) + "\tGT\t0/1\t0/0",
]) + "\n"


def _annotations(lake: Path) -> dict[tuple[str, int, str, str], dict[str, object]]:
    from genolake.query.lake import Lake

    with Lake(lake) as lk:
        return {(r["contig"], r["pos"], r["ref"], r["alt"]): r
                for r in lk.sql("SELECT * FROM annotations").to_pylist()}


def test_multiallelic_indels_per_allele_in_lake(exome_lakes: dict[str, Path]) -> None:
    from genolake.compute.annotate import annotate

    annotate(exome_lakes["lake_multi"], csq=True, workers=0)  # VEP's default field order: no header needed
    got = {k: v["consequence"] for k, v in _annotations(exome_lakes["lake_multi"]).items()}
    assert got == {
        ("1", 1000, "G", "GT"): "inframe_insertion",  # GT>GTT trimmed
        ("1", 1000, "GT", "G"): "frameshift_variant",
        ("1", 2000, "A", "AT"): "missense_variant",
        ("1", 2000, "A", "T"): "stop_gained",
        ("1", 3000, "ACG", "A"): "frameshift_variant",
        ("1", 3000, "ACG", "*"): "intergenic_variant",
        ("1", 4000, "C", "T"): "splice_region_variant",
        ("1", 4000, "C", "G"): "missense_variant",
        ("1", 5000, "CAGAG", "C"): "inframe_deletion",
    }


def _split_vep_worst(vcf: Path, key: str, scale: Path, fmt: str) -> dict[tuple[int, str], list[str]]:
    out = {}
    for line in sh("bcftools", "+split-vep", "-a", key, "-s", "worst", "-S", scale, "-f",
                   "%POS\t%ALT\t" + fmt + "\n", vcf).splitlines():
        pos, alt, *rest = line.split("\t")
        out[(int(pos), alt)] = rest
    return out


def _lake_keys(lake: Path) -> dict[tuple[int, str], tuple[str, int, str, str]]:
    from genolake.query.lake import Lake

    with Lake(lake) as lk:
        rows = lk.sql("SELECT contig, pos, ref, alt, orig_pos, orig_alt FROM variant_files").to_pylist()
    return {(r["orig_pos"], r["orig_alt"]): (r["contig"], r["pos"], r["ref"], r["alt"]) for r in rows}


def test_exome_csq_through_lake_equals_split_vep(exome_lakes: dict[str, Path], scale: Path) -> None:
    from genolake.compute.annotate import annotate
    from genolake.errors import UserInputError

    with pytest.raises(UserInputError, match="--csq-header"):  # its CSQ is not in VEP's default order
        annotate(exome_lakes["lake"], csq=True, workers=0)
    annotate(exome_lakes["lake"], csq_headers=[EXOME], workers=0)
    got = _annotations(exome_lakes["lake"])
    keys = _lake_keys(exome_lakes["lake"])
    want = _split_vep_worst(EXOME, "CSQ", scale, "%Consequence\t%SYMBOL\t%BIOTYPE")
    assert len(want) == len(keys) > 100
    for (pos, alt), (cons, _symbol, _biotype) in want.items():
        row = got[keys[(pos, alt)]]
        parts = cons.split("&")
        assert row["csq_field"] == "CSQ"
        assert row["consequence"] in parts and C.term_rank(str(row["consequence"])) == min(
            C.term_rank(p) for p in parts), (pos, alt)


def test_exome_ann_through_lake_equals_split_vep(exome_lakes: dict[str, Path], scale: Path) -> None:
    """SnpEff ANN (default field list), oracle: split-vep on a copy whose header says `Format: ...` (with the
    Annotation field named Consequence, which split-vep needs for -s worst)."""
    from genolake.compute.annotate import annotate

    annotate(exome_lakes["lake_ann"], csq=True, workers=0)
    got = _annotations(exome_lakes["lake_ann"])
    keys = _lake_keys(exome_lakes["lake_ann"])
    tmp = exome_lakes["tmp"]
    header = sh("bcftools", "view", "-h", exome_lakes["ann_only"])
    fixed = "\n".join(
        '##INFO=<ID=ANN,Number=.,Type=String,Description="Format: ' + "|".join(
            "Consequence" if f == "Annotation" else f.replace(" ", "").replace("/", "_").replace(".", "_")
            for f in C.ANN_FIELDS) + '">'
        if line.startswith("##INFO=<ID=ANN,") else line for line in header.splitlines()) + "\n"
    (tmp / "hdr.txt").write_text(fixed)
    reheaded = tmp / "ann_reheaded.vcf.gz"
    sh("bcftools", "reheader", "-h", tmp / "hdr.txt", "-o", reheaded, exome_lakes["ann_only"])
    want = _split_vep_worst(reheaded, "ANN", scale, "%Consequence\t%Gene_Name\t%Annotation_Impact\t%Feature_ID")
    assert len(want) == len(keys) > 100
    n_diff_transcript = 0
    for (pos, alt), (cons, _gene, impact, feature) in want.items():
        row = got[keys[(pos, alt)]]
        parts = cons.split("&")
        assert row["csq_field"] == "ANN"
        assert row["consequence"] in parts and C.term_rank(str(row["consequence"])) == min(
            C.term_rank(p) for p in parts), (pos, alt)
        assert row["impact"] == impact
        n_diff_transcript += row["csq_transcript"] != (None if feature == "." else feature)
    assert n_diff_transcript <= len(want) // 10  # ties between transcripts may be broken differently
