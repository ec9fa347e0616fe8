"""Annotate: `genolake annotate --clinvar --genes` vs `bcftools annotate` with the same sources.

Sources are generated (seeded) so the benchmark needs no download: a ClinVar-like VCF with as many records
as the lake has variants (half of them the lake's own alleles, half elsewhere; CLNSIG, CLNREVSTAT, CLNDN,
ALLELEID), and a whole-genome gene list of 20,000 genes on GRCh38's chromosomes (``chrom start end symbol``).
genolake runs as a whole command (2 workers); bcftools annotates each institution's VCF with the ClinVar VCF
and then the gene list (`-c CHROM,FROM,TO,GENE`), piped, and - as context - the same on sites only
(`view -G` first), the fairest plain-tool equivalent of annotating a variant table. Sources in the other
contig naming (for the institution that writes `20` rather than `chr20`) are prepared untimed.
"""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.suites.cohort import Cohort
from benchmarks.suites.common import Measure, have_tool, run_shell_timed, run_timed
from benchmarks.suites.context import Context

log = logging.getLogger("benchmarks")

# GRCh38 primary assembly lengths (for the whole-genome gene list)
GRCH38 = {
    "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259, "6": 170805979,
    "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422, "11": 135086622, "12": 133275309,
    "13": 114364328, "14": 107043718, "15": 101991189, "16": 90338345, "17": 83257441, "18": 80373285,
    "19": 58617616, "20": 64444167, "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
}
SIGNIFICANCE = ("Pathogenic", "Likely_pathogenic", "Uncertain_significance", "Likely_benign", "Benign",
                "Conflicting_interpretations_of_pathogenicity")
REVIEW = ("criteria_provided,_single_submitter", "criteria_provided,_multiple_submitters,_no_conflicts",
          "reviewed_by_expert_panel", "no_assertion_criteria_provided")


def annotate_cli() -> list[str] | None:
    """The `genolake annotate` command if it exists and takes --clinvar and --genes."""
    exe = shutil.which("genolake")
    if not exe:
        return None
    proc = subprocess.run([exe, "annotate", "--help"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or "--clinvar" not in proc.stdout or "--genes" not in proc.stdout:
        return None
    return [exe, "annotate"] + (["--workers", "2"] if "--workers" in proc.stdout else [])


def _style(contig: str, chr_style: bool) -> str:
    bare = contig.removeprefix("chr")
    return "chr" + bare if chr_style else bare


def write_clinvar(sites: list[tuple[str, int, str, str]], lengths: dict[str, int], path: Path, *,
                  chr_style: bool, seed: int) -> None:
    """A ClinVar-like VCF (bgzipped + tabix): half the lake's alleles, half new sites; same count as ``sites``."""
    rng = random.Random(seed)
    n = len(sites)
    chosen = rng.sample(sites, n // 2)
    contigs = sorted({s[0] for s in sites})
    records = [(c, p, r, a) for c, p, r, a in chosen]
    bases = "ACGT"
    while len(records) < n:
        c = rng.choice(contigs)
        r = rng.choice(bases)
        records.append((c, rng.randint(1, lengths[c]), r, rng.choice([b for b in bases if b != r])))
    records = sorted(set(records), key=lambda x: (x[0], x[1], x[2], x[3]))
    lines = ["##fileformat=VCFv4.1", "##source=genolake-benchmark-clinvar-like", "##reference=GRCh38"]
    lines += [f"##contig=<ID={_style(c, chr_style)},length={lengths[c]},assembly=GRCh38>" for c in contigs]
    lines += [
        '##INFO=<ID=ALLELEID,Number=1,Type=Integer,Description="the ClinVar Allele ID">',
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance for this single variant">',
        '##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status for the Variation ID">',
        '##INFO=<ID=CLNDN,Number=.,Type=String,Description="ClinVar preferred disease name">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for k, (c, p, r, a) in enumerate(records, start=1):
        info = (f"ALLELEID={100000 + k};CLNSIG={rng.choice(SIGNIFICANCE)};CLNREVSTAT={rng.choice(REVIEW)};"
                f"CLNDN=Disease_{rng.randint(1, 5000)}")
        lines.append(f"{_style(c, chr_style)}\t{p}\t{k}\t{r}\t{a}\t.\t.\t{info}")
    raw = path.with_suffix("")  # .vcf
    raw.write_text("\n".join(lines) + "\n")
    subprocess.run(["bgzip", "-f", str(raw)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)


def write_genes(path: Path, *, chr_style: bool, seed: int, n_genes: int = 20_000) -> list[tuple[str, int, int, str]]:
    """A whole-genome gene list: ``n_genes`` seeded genes spread over GRCh38 by length; BED (0-based)."""
    rng = random.Random(seed)
    total = sum(GRCH38.values())
    genes: list[tuple[str, int, int, str]] = []
    k = 0
    for contig, length in GRCH38.items():
        for _ in range(round(n_genes * length / total)):
            k += 1
            size = min(int(rng.lognormvariate(10.0, 1.0)) + 500, 500_000)
            start = rng.randint(0, max(1, length - size))
            genes.append((_style(contig, chr_style), start, start + size, f"GENE{k:05d}"))
    genes.sort(key=lambda g: (g[0], g[1]))
    raw = path.with_suffix("")  # .bed
    raw.write_text("".join(f"{c}\t{s}\t{e}\t{g}\n" for c, s, e, g in genes))
    subprocess.run(["bgzip", "-f", "-k", str(raw)], check=True)
    subprocess.run(["tabix", "-f", "-p", "bed", str(path)], check=True)
    return genes


def contig_lengths(vcf: Path) -> dict[str, int]:
    import pysam

    with pysam.VariantFile(str(vcf)) as f:
        return {str(c): int(f.header.contigs[c].length or 0) for c in f.header.contigs}


def uses_chr(vcf: Path) -> bool:
    return any(c.startswith("chr") for c in contig_lengths(vcf))


def prepare(ctx: Context, cohort: Cohort, lake: Any, scratch: Path) -> dict[bool, tuple[Path, Path]]:
    """ClinVar-like VCF and gene list in both contig namings: {chr_style: (clinvar.vcf.gz, genes.bed.gz)}."""
    t = lake.sql("SELECT DISTINCT contig, pos, ref, alt FROM variants ORDER BY ALL")
    sites = list(zip(*(t[c].to_pylist() for c in ("contig", "pos", "ref", "alt")), strict=True))
    lengths: dict[str, int] = {}
    for vcf in cohort.vcfs:
        for c, n in contig_lengths(vcf).items():
            lengths.setdefault(_style(c, True), n)
    sites = [(_style(c, True), p, r, a) for c, p, r, a in sites]
    out: dict[bool, tuple[Path, Path]] = {}
    for chr_style in (True, False):
        tag = "chr" if chr_style else "nochr"
        clin, genes = scratch / f"clinvar_like.{tag}.vcf.gz", scratch / f"genes.{tag}.bed.gz"
        write_clinvar(sites, lengths, clin, chr_style=chr_style, seed=ctx.config.seed)
        write_genes(genes, chr_style=chr_style, seed=ctx.config.seed)
        out[chr_style] = (clin, genes)
    return out


def run(ctx: Context) -> None:
    import genolake

    res = ctx.results
    cmd = annotate_cli()
    if cmd is None:
        res.skip("annotate.genolake", "`genolake annotate --clinvar --genes` is not implemented yet")
        return
    if not have_tool("bcftools") or not have_tool("bgzip") or not have_tool("tabix"):
        res.skip("annotate.genolake", "bcftools, bgzip and tabix are needed to build the sources")
        return
    cohort = ctx.cohort()
    lake_path = ctx.lake()
    scratch = ctx.work / "annotate-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with genolake.open(lake_path) as lake:
        n_variants = int(lake.sql("SELECT count(*) AS n FROM (SELECT DISTINCT contig, pos, ref, alt FROM variants)")
                         ["n"][0].as_py())
        sources = prepare(ctx, cohort, lake, scratch)
    lake_chr = uses_chr(cohort.vcfs[0])
    clin, genes = sources[lake_chr]
    seconds = run_timed([*cmd, "--lake", str(lake_path), "--clinvar", str(clin), "--genes", str(genes)])
    res.add(Measure("annotate.genolake", "genolake", "genolake annotate --clinvar --genes (whole command)", "s",
                    seconds, note=f"{n_variants:,} variants, {n_variants / seconds:,.0f} variants/s"))
    hdr = scratch / "gene.hdr"
    hdr.write_text('##INFO=<ID=GENE,Number=.,Type=String,Description="Overlapping gene">\n')
    cols = "ID,INFO/ALLELEID,INFO/CLNSIG,INFO/CLNREVSTAT,INFO/CLNDN"
    full = sites = 0.0
    records = 0
    for i, vcf in enumerate(cohort.vcfs):
        c, g = sources[uses_chr(vcf)]
        # bcftools annotate -a needs an indexed input (it cannot read a pipe), so each step writes a file
        step2 = f"bcftools annotate -a {g} -c CHROM,FROM,TO,INFO/GENE -h {hdr}"
        full += run_shell_timed(
            f"bcftools annotate -a {c} -c {cols} -Ob -o {scratch}/a{i}.bcf {vcf} && bcftools index -f {scratch}/a{i}.bcf"
            f" && {step2} -Ob -o {scratch}/full{i}.bcf {scratch}/a{i}.bcf")
        sites += run_shell_timed(
            f"bcftools view -G -Ob -o {scratch}/g{i}.bcf {vcf} && bcftools index -f {scratch}/g{i}.bcf && "
            f"bcftools annotate -a {c} -c {cols} -Ob -o {scratch}/ga{i}.bcf {scratch}/g{i}.bcf && "
            f"bcftools index -f {scratch}/ga{i}.bcf && {step2} -Ob -o {scratch}/s{i}.bcf {scratch}/ga{i}.bcf")
        records += int(subprocess.run(["bcftools", "index", "-n", str(vcf)], capture_output=True, text=True,
                                      check=True).stdout.strip() or 0)
    res.add(Measure("annotate.bcftools", "bcftools", "bcftools annotate (ClinVar VCF, then genes) of every VCF", "s",
                    full, note=f"{records:,} records, {records / full:,.0f} records/s"))
    res.add(Measure("annotate.bcftools_sites", "bcftools", "the same on sites only (view -G first; context)", "s",
                    sites, note=f"{records / sites:,.0f} records/s"))
    res.compare("annotate.vs_bcftools", "annotate.genolake", "annotate.bcftools", "time",
                "annotate vs bcftools annotate of the VCFs")
    res.compare("annotate.vs_bcftools_sites", "annotate.genolake", "annotate.bcftools_sites", "time",
                "annotate vs bcftools annotate, sites only")
    contig, lo, hi = _main_range(lake_path)
    names = {_style(contig, True)}
    ctx.genes = [sym for c, s, e, sym in write_genes(scratch / "genes.list.bed.gz", chr_style=True,
                                                      seed=ctx.config.seed)
                 if c in names and s + 1 <= hi and e >= lo]
    res.extra["annotate"] = {"variants": n_variants, "bcftools_records": records, "genes_in_data": len(ctx.genes)}
    shutil.rmtree(scratch, ignore_errors=True)


def _main_range(lake_path: Path) -> tuple[str, int, int]:
    import genolake
    from benchmarks.suites.common import main_contig

    with genolake.open(lake_path) as lake:
        return main_contig(lake)
