"""Layouts hospitals really ship, made from one real cohort, and a brute-force counter over the VCF text.

The cohort is ``tests/data/hail_sample_1kg_chr20_100s.vcf.gz`` (100 1000 Genomes samples, chr20, GRCh37, with
missing calls; see tests/data/SOURCES.md) rewritten so that it has what a hospital's files have and the source has
not: three contigs (records 1-140 stay on 20, 141-240 move to 21, the rest to X), haploid chrX calls for the
males of the 1000 Genomes panel (their first allele), and a multi-allelic record every 40 records (a second SNP
allele given to the carriers of the first allele among every third sample). PL is dropped (its length would not
fit the haploid and tri-allelic rewrites); GT, AD (missing on the multi-allelic records), DP and GQ are kept.

Each institution's *unsplit* file is ``bcftools view -s`` of its samples, optionally with ``-c1`` (only the sites
where its samples carry an alternate allele, as most hospital pipelines write them). Its *layouts* are derived
from that file without changing what it says: split by contig (the same samples in several files), by sample
batch (disjoint samples, the same records) or both.
"""

from __future__ import annotations

import gzip
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).parent / "data"
SOURCE = DATA / "hail_sample_1kg_chr20_100s.vcf.gz"
PANEL = DATA / "integrated_call_samples_v3.20130502.ALL.panel"
LENGTHS = {"20": 63025520, "21": 48129895, "X": 155270560}
CONTIGS = ("20", "21", "X")


def run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def panel_sex() -> dict[str, str]:
    """Raw sample ID of the cohort (``C1046::HG02024``, ``HG00146_A1``) -> sex in the 1000 Genomes panel; samples
    the panel does not list (HG00312, HG00377, NA12891) are absent (unknown sex, diploid chrX)."""
    panel = {}
    for line in PANEL.read_text().splitlines()[1:]:
        parts = line.split("\t")
        panel[parts[0]] = parts[3]
    out = {}
    for sample in run("bcftools", "query", "-l", SOURCE).split():
        person = sample.split("::")[-1].removesuffix("_A1")
        if person in panel:
            out[sample] = panel[person]
    return out


def _haploid(gt: str) -> str:
    return gt.replace("|", "/").split("/")[0]


def make_cohort(dest: Path) -> Path:
    """Write the three-contig cohort (bgzipped, tabix-indexed) to ``dest`` and return its path."""
    sexes = panel_sex()
    header: list[str] = []
    records: list[list[str]] = []
    with gzip.open(SOURCE, "rt") as fh:
        for line in fh:
            if line.startswith("##"):
                if line.startswith(("##contig", "##FORMAT=<ID=PL", "##reference")):
                    continue
                header.append(line.rstrip("\n"))
            elif line.startswith("#CHROM"):
                cols = line.rstrip("\n").split("\t")
            else:
                records.append(line.rstrip("\n").split("\t"))
    samples = cols[9:]
    male = [sexes.get(s) == "male" for s in samples]
    header += [f"##contig=<ID={c},length={n}>" for c, n in LENGTHS.items()] + ["##reference=GRCh37"]
    out = [*header, "\t".join(cols)]
    for i, rec in enumerate(records):
        contig = "20" if i < 140 else "21" if i < 240 else "X"
        fmt = rec[8].split(":")
        keep = [k for k, f in enumerate(fmt) if f != "PL"]
        multi = i % 40 == 17 and len(rec[3]) == 1 and len(rec[4]) == 1
        second = next(b for b in "ACGT" if b not in (rec[3], rec[4]))
        cells = []
        for j, cell in enumerate(rec[9:]):
            parts = cell.split(":")
            parts = [parts[k] if k < len(parts) else "." for k in keep]
            gt = parts[0]
            if multi and j % 3 == 0:
                gt = gt.replace("1", "2")
            if multi and "AD" in fmt:
                parts[[fmt[k] for k in keep].index("AD")] = "."
            if contig == "X" and male[j]:
                gt = _haploid(gt)
            parts[0] = gt
            cells.append(":".join(parts))
        alt = f"{rec[4]},{second}" if multi else rec[4]
        out.append("\t".join([contig, rec[1], rec[2], rec[3], alt, rec[5], rec[6], ".",
                              ":".join(fmt[k] for k in keep), *cells]))
    plain = dest.with_suffix("")
    plain.write_text("\n".join(out) + "\n")
    run("bgzip", "-f", plain)
    run("tabix", "-f", "-p", "vcf", dest)
    return dest


def institution_file(cohort: Path, samples: list[str], dest: Path, *, variant_sites_only: bool) -> Path:
    """``bcftools view -s`` of ``samples`` (``-c1`` keeps the sites where they carry an alt)."""
    args = ["bcftools", "view", "--no-version", "-s", ",".join(samples), "-Oz", "-o", dest, cohort]
    if variant_sites_only:
        args[3:3] = ["-c1"]
    run(*args)
    run("tabix", "-f", "-p", "vcf", dest)
    return dest


@dataclass
class Layout:
    """How one institution ships its unsplit file: contig groups x sample batches."""

    contig_groups: list[list[str]]
    batches: int
    files: list[Path] = field(default_factory=list)


def split(unsplit: Path, layout: Layout, dest: Path) -> list[Path]:
    """Files of ``layout`` derived from ``unsplit`` (every record of a contig group, every sample of a batch)."""
    samples = run("bcftools", "query", "-l", unsplit).split()
    present = set(run("bcftools", "query", "-f", "%CHROM\n", unsplit).split())
    batches = [samples[k::layout.batches] for k in range(layout.batches)]
    files = []
    for gi, group in enumerate(layout.contig_groups):
        contigs = [c for c in group if c in present]
        if not contigs:
            continue
        for bi, batch in enumerate(batches):
            out = dest / f"{unsplit.name.split('.')[0]}_g{gi}_b{bi}.vcf.gz"
            run("bcftools", "view", "--no-version", "-r", ",".join(contigs), "-s", ",".join(batch), "-Oz",
                "-o", out, unsplit)
            run("tabix", "-f", "-p", "vcf", out)
            files.append(out)
    layout.files = files
    return files


# ---------------------------------------------------------------------------------------------- brute force
Key = tuple[str, int, str, str]


@dataclass
class Counts:
    ac: int = 0
    an: int = 0
    nhomalt: int = 0
    nhemi: int = 0

    def add(self, other: Counts) -> None:
        self.ac += other.ac
        self.an += other.an
        self.nhomalt += other.nhomalt
        self.nhemi += other.nhemi

    def tuple(self) -> tuple[int, int, int, int]:
        return (self.ac, self.an, self.nhomalt, self.nhemi)


def _records(path: Path) -> Iterable[list[str]]:
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if not line.startswith("#"):
                yield line.rstrip("\n").split("\t")


def brute_counts(path: Path) -> tuple[dict[Key, Counts], dict[str, list[int]]]:
    """Per split allele of a file of SNVs: AC, AN, nhomalt, nhemi straight from the GT text; and per contig the
    ploidy of every sample (its most frequent number of alleles on the contig), for absent-as-reference counting.

    The rule, written out independently of genolake: a call adds its non-missing alleles to AN, its copies of the
    alt to AC; a diploid call with two copies is hom-alt, a haploid call with one copy is hemizygous.
    """
    out: dict[Key, Counts] = {}
    ploidies: dict[str, list[Counter[int]]] = {}
    for rec in _records(path):
        contig, pos, ref, alts = rec[0], int(rec[1]), rec[3], rec[4].split(",")
        gts = [cell.split(":")[0] for cell in rec[9:]]
        alleles = [gt.replace("|", "/").split("/") for gt in gts]
        per = ploidies.setdefault(contig, [Counter() for _ in gts])
        for k, a in enumerate(alleles):
            per[k][len(a)] += 1
        for ai, alt in enumerate(alts, start=1):
            c = out.setdefault((contig, pos, ref, alt), Counts())
            for a in alleles:
                copies = sum(1 for x in a if x == str(ai))
                c.ac += copies
                c.an += sum(1 for x in a if x != ".")
                c.nhomalt += int(len(a) == 2 and copies == 2)
                c.nhemi += int(len(a) == 1 and copies == 1)
    return out, {c: [p.most_common(1)[0][0] for p in per] for c, per in ploidies.items()}


def brute_frequencies(files: dict[str, Path], modes: dict[str, str],
                      callable_bed: dict[str, list[tuple[str, int, int]]]) -> dict[tuple[Key, str], tuple[int, ...]]:
    """(site, scope) -> (ac, an, nhomalt, nhemi) for each institution's unsplit file and the joint cohort.

    ``modes[inst]`` is ``no_call`` (an absent site does not count), ``ref`` (each sample adds its ploidy on the
    contig, if the file has records there) or ``callable`` (as ``ref`` inside the BED regions, 0-based half-open).
    """
    per: dict[str, tuple[dict[Key, Counts], dict[str, list[int]]]] = {i: brute_counts(p) for i, p in files.items()}
    sites = sorted({k for counts, _p in per.values() for k in counts})
    out: dict[tuple[Key, str], tuple[int, ...]] = {}
    for site in sites:
        joint = Counts()
        for inst, (counts, ploidy) in sorted(per.items()):
            if site in counts:
                c = counts[site]
            else:
                c = Counts()
                contig, pos = site[0], site[1]
                inside = modes[inst] == "ref" or (
                    modes[inst] == "callable"
                    and any(cc == contig and s < pos <= e for cc, s, e in callable_bed.get(inst, [])))
                if inside and contig in ploidy:
                    c.an = sum(ploidy[contig])
            out[(site, inst)] = c.tuple()
            joint.add(c)
        out[(site, "joint")] = joint.tuple()
    return out
