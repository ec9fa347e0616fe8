"""`genolake export vcf`: round trip of real multi-sample VCFs against `bcftools norm -m-` of the original,
genotype by genotype (phase, haploid calls, multi-allelic splits, GQ/DP/AD), the absent-site rules against the
bcftools-merged oracle of the sample lake, and bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from ingest_helpers import run_cli
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake, need_bcftools, sh

from genolake.contigs import to_style
from genolake.errors import BadInputFileError, UserInputError
from genolake.ingest.normalise import is_symbolic, trim
from genolake.vcfout.export_vcf import export_vcf

DATA = Path(__file__).resolve().parent / "data"

ROUND_TRIP = [
    # (file, build): phased 1000G phase 1; 2,535 samples with GQ/DP/AD; mixed phase, multi-allelic, GQ/DP/AD;
    # chr-named GRCh38 multi-allelic; haploid chrM with multi-allelic records; a phased 4-allele split
    ("va_1kg_phase1_chr22_5s.vcf.gz", "GRCh37"),
    ("1kg_phase3_broad_chr20_2535s.vcf.gz", "GRCh37"),
    ("va_hapmap_exome_chr22_22s.vcf.gz", "GRCh37"),
    ("b2z_1kg_nygc_chr22_100s.vcf.gz", "GRCh38"),
    ("b2z_1kg_2020_chrM_3s.vcf.gz", "GRCh38"),
    ("edge/bcftools__norm.phased-split.vcf", "GRCh37"),
]


def _table(vcf: Path | str, fmt: str, samples: list[str] | None = None,
           norm: bool = False) -> dict[tuple[str, int, str, str], list[str]]:
    """Per split allele key (trimmed as the lake keys them) the per-sample values of ``fmt`` (bcftools query)."""
    src: Path | str = vcf
    if norm:
        text = sh("bcftools", "norm", "-m-", "--no-version", str(vcf))
        src = "-"
        proc = subprocess.run(["bcftools", "query", "-f", f"%CHROM\\t%POS\\t%REF\\t%ALT[\\t{fmt}]\\n"]
                              + (["-s", ",".join(samples)] if samples else []) + [src],
                              input=text, capture_output=True, text=True, check=True)
        out_text = proc.stdout
    else:
        out_text = sh("bcftools", "query", "-f", f"%CHROM\\t%POS\\t%REF\\t%ALT[\\t{fmt}]\\n",
                      *(["-s", ",".join(samples)] if samples else []), src)
    out: dict[tuple[str, int, str, str], list[str]] = {}
    for line in out_text.splitlines():
        f = line.split("\t")
        ref, alt = f[2].upper(), f[3].upper()
        if alt == ".":
            continue
        pos = int(f[1])
        if not is_symbolic(alt):
            pos, ref, alt = trim(pos, ref, alt)
        key = (f[0], pos, ref, alt)
        assert key not in out, f"duplicate split allele {key}"
        out[key] = f[4:]
    return out


def _same_gt(lake_gt: str, orig: str) -> bool:
    """Equal genotypes; hom-ref calls are not stored, so a phased 0|0 comes back as 0/0 (the only difference)."""
    if lake_gt == orig:
        return True
    return lake_gt == "0/0" and orig == "0|0"


@pytest.mark.parametrize(("name", "build"), ROUND_TRIP)
def test_round_trip_matches_bcftools_norm(tmp_path: Path, name: str, build: str) -> None:
    need_bcftools()
    from genolake.ingest.pipeline import ingest

    src = DATA / name
    lake = tmp_path / "lake"
    ingest(lake, "north", [src], build=build, workers=0)
    out = tmp_path / "north.vcf.gz"
    rep = export_vcf(lake, out, institution="north", reveal=src)
    samples = sh("bcftools", "query", "-l", src).split()
    assert rep.n_revealed == len(samples) == rep.n_samples
    assert sh("bcftools", "query", "-l", out).split() == samples  # raw IDs back, in the file's order
    assert Path(str(out) + ".tbi").exists()
    from genolake.store import LakeStore

    style = LakeStore.open(lake).contig_style
    orig = {(to_style(k[0], style), *k[1:]): v for k, v in _table(src, "%GT", samples, norm=True).items()}
    got = _table(out, "%GT", samples)
    assert set(got) == set(orig)
    bad = [(k, i, g, o) for k in orig for i, (g, o) in enumerate(zip(got[k], orig[k], strict=True))
           if not _same_gt(g, o)]
    assert not bad, f"{len(bad)} genotypes differ, first: {bad[:3]}"
    assert rep.n_records == len(orig)
    if name.startswith(("1kg_phase3", "va_hapmap")):  # stored calls keep GQ, DP and AD (ref, this alt)
        for fmt in ("%GQ", "%DP", "%AD"):
            o = {(to_style(k[0], style), *k[1:]): v for k, v in _table(src, fmt, samples, norm=True).items()}
            g = _table(out, fmt, samples)
            checked = 0
            for k, gts in got.items():
                for i, gt in enumerate(gts):
                    if gt not in ("0/0", "0|0"):
                        if fmt == "%AD" and o[k][i].count(",") > 1:
                            continue  # AD declared Number=. in this file: bcftools norm leaves it unsplit
                        assert g[k][i] == o[k][i], (fmt, k, samples[i], gt)
                        checked += 1
            assert checked > 0


def test_bcf_output_and_region(tmp_path: Path) -> None:
    need_bcftools()
    from genolake.ingest.pipeline import ingest

    src = DATA / "va_1kg_phase1_chr22_5s.vcf.gz"
    lake = tmp_path / "lake"
    ingest(lake, "north", [src], build="GRCh37", workers=0)
    out = tmp_path / "part.bcf"
    rep = export_vcf(lake, out, regions=["chr22:50500000-50600000"], cells_per_window=500)  # many windows
    assert Path(str(out) + ".csi").exists()
    expected = sh("bcftools", "view", "-H", "-r", "22:50500000-50600000", src).splitlines()
    lines = sh("bcftools", "view", "-H", out).splitlines()
    assert len(lines) == rep.n_records == len({(r.split("\t")[1], r.split("\t")[4]) for r in expected})
    assert all(50_500_000 <= int(x.split("\t")[1]) <= 50_600_000 for x in lines)
    header = sh("bcftools", "view", "-h", out)
    assert "biallelic records as stored" in header
    # -R BED and --samples (pseudonyms) pick the same records and columns
    (tmp_path / "r.bed").write_text("22\t50499999\t50550000\n22\t50549000\t50600000\n")
    names = sh("bcftools", "query", "-l", out).split()
    (tmp_path / "s.txt").write_text(f"{names[3]}\n{names[1]}\n")
    out2 = tmp_path / "part2.vcf.gz"
    export_vcf(lake, out2, regions_file=tmp_path / "r.bed", samples_file=tmp_path / "s.txt")
    assert sh("bcftools", "query", "-l", out2).split() == [names[3], names[1]]
    a = sh("bcftools", "query", "-s", f"{names[3]},{names[1]}", "-f", "%POS %REF %ALT [%GT ]\\n", out)
    assert sh("bcftools", "query", "-f", "%POS %REF %ALT [%GT ]\\n", out2) == a


def test_absent_site_rules_match_merged_oracle(sample_lake: SampleLake, tmp_path: Path) -> None:
    """north lists every site; south (absent-as-ref) is 0/0 where its file lacks a site; east (callable regions)
    0/0 inside its BED and ./. outside: exactly what the bcftools-merged oracle of the fixture holds."""
    assert sample_lake.oracle is not None
    out = tmp_path / "all.vcf.gz"
    export_vcf(sample_lake.path, out)
    from genolake.store import LakeStore

    pseudo = LakeStore.open(sample_lake.path).pseudonymiser()
    raw = [s for inst in ("north", "south", "east") for s in sample_lake.institutions[inst]]
    names = [pseudo(sample_lake.institution_of(s), s) for s in raw]
    got = _table(out, "%GT", names)
    oracle = _table(sample_lake.oracle, "%GT", raw, norm=True)
    assert set(got) == set(oracle)
    diff = [(k, i) for k in oracle for i, (g, o) in enumerate(zip(got[k], oracle[k], strict=True)) if g != o]
    assert not diff, f"{len(diff)} genotypes differ, first {diff[:3]}"
    n_missing = sum(g == "./." for v in got.values() for g in v)
    assert n_missing > 0  # east outside its callable regions


def test_reveal_needs_key_holders_institution(sample_lake: SampleLake, tmp_path: Path) -> None:
    out = tmp_path / "x.vcf.gz"
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(sample_lake.institutions["south"]) + "\n")
    with pytest.raises(UserInputError, match="--reveal needs --institution"):
        export_vcf(sample_lake.path, out, reveal=ids)
    with pytest.raises(UserInputError, match="none of its 30 IDs is a sample of institution north"):
        export_vcf(sample_lake.path, out, institution="north", reveal=ids)
    rep = export_vcf(sample_lake.path, out, institution="south", reveal=ids, regions=["20:10000000-11000000"])
    assert rep.n_revealed == 30
    assert sh("bcftools", "query", "-l", out).split() == sample_lake.institutions["south"]
    assert not list(tmp_path.glob(".*partial*"))


def test_bad_input_one_line_and_no_output(sample_lake: SampleLake, tmp_path: Path) -> None:
    out = tmp_path / "x.vcf.gz"
    with pytest.raises(UserInputError, match="unknown institution 'nowhere'"):
        export_vcf(sample_lake.path, out, institution="nowhere")
    with pytest.raises(UserInputError, match="region contig 7 has no data"):
        export_vcf(sample_lake.path, out, regions=["7:1-100"])
    with pytest.raises(UserInputError, match="malformed region"):
        export_vcf(sample_lake.path, out, regions=["20:9-1"])
    bed = tmp_path / "bad.bed"
    bed.write_text("20\t100\n")
    with pytest.raises(BadInputFileError, match="line 1"):
        export_vcf(sample_lake.path, out, regions_file=bed)
    s = tmp_path / "s.txt"
    s.write_text("0123456789abcdef0123456789abcdef\n")
    with pytest.raises(UserInputError, match="1 ID\\(s\\) are not samples of the lake \\(first at line 1\\)"):
        export_vcf(sample_lake.path, out, samples_file=s)
    with pytest.raises(UserInputError, match="must end in"):
        export_vcf(sample_lake.path, tmp_path / "x.vcf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bed", "s.txt"]
    r = run_cli("export", "vcf", "--lake", str(sample_lake.path), "-o", str(out), "-r", "chrQ:1-2")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "region contig Q has no data" in r.stderr
    assert not out.exists()


def test_cli_export(sample_lake: SampleLake, tmp_path: Path) -> None:
    out = tmp_path / "east.bcf"
    r = run_cli("export", "vcf", "--lake", str(sample_lake.path), "-i", "east", "-r", "20:15000000-16000000",
                "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "x 30 samples" in r.stderr
    body = sh("bcftools", "view", "-H", out).splitlines()
    assert body and all(len(x.split("\t")) == 9 + 30 for x in body)


def test_fill_tags_on_the_export_give_the_lakes_counts(sample_lake: SampleLake, tmp_path: Path) -> None:
    """The two commands agree: bcftools' AC/AN over the exported genotypes = annotate-vcf's lake AC/AN."""
    from query_fixtures import fill_tags

    from genolake.vcfout.annotate_vcf import annotate_vcf

    out = tmp_path / "all.vcf.gz"
    export_vcf(sample_lake.path, out)
    counts = fill_tags(out, None, tmp_path)
    ann = tmp_path / "ann.vcf.gz"
    annotate_vcf(sample_lake.path, out, ann, fields="ac,an,nhomalt")
    rows = sh("bcftools", "query", "-f", "%CHROM\\t%POS\\t%REF\\t%ALT\\t%GL_AC\\t%GL_AN\\t%GL_nhomalt\\n", ann)
    n = 0
    for line in rows.splitlines():
        c, p, r, a, ac, an, nh = line.split("\t")
        k = (c, int(p), r, a)
        assert (int(ac), int(an), 2 * int(nh)) == (counts[k]["AC"], counts[k]["AN"], counts[k]["AC_Hom"]), k
        n += 1
    assert n == len(counts) > 300


def test_failure_after_writing_leaves_nothing(sample_lake: SampleLake, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import genolake.vcfout.export_vcf as ev

    real = ev._window
    calls = []

    def failing(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "_window", failing)
    for name in ("x.vcf.gz", "x.bcf"):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            export_vcf(sample_lake.path, tmp_path / name, cells_per_window=2000)
        assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []
