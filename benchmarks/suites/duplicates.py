"""Duplicates: `genolake samples duplicates` over every pair of the main cohort plus planted copies, vs bcftools.

The main cohort's lake is copied and 20 people of the first institution are ingested again as an institution
`resent` (`bcftools view -s`): the planted duplicates. genolake (library call, in process) selects the sites,
builds the dosage matrix from the lake and computes KING-robust kinship and discordance for all pairs.

Peer: `bcftools gtcheck -u GT -e 0` (multi-sample cross-check: the discordance of every pair of samples) on a
merged BCF of the same sites from the institutions' VCFs; preparing that BCF (`view -R`, contig renaming,
`merge`) is not timed, as the lake's ingest is not. plink2 / KING are not installed here. Both report how many
pairs they find with at most 5% discordant genotypes (the planted 20 are the right answer).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.suites.common import Measure, have_tool, run_shell_timed
from benchmarks.suites.context import Context

log = logging.getLogger("benchmarks")
PLANTED = 20


def _contigs(vcf: Path) -> list[str]:
    return subprocess.run(["tabix", "-l", str(vcf)], capture_output=True, text=True, check=True).stdout.split()


def _peer_input(vcfs: list[Path], sites: list[tuple[str, int]], scratch: Path) -> Path:
    """A merged BCF of ``sites`` (lake contig names) from every VCF, contigs renamed to the first file's style."""
    style_chr = _contigs(vcfs[0])[0].startswith("chr")
    parts = []
    for i, vcf in enumerate(vcfs):
        has_chr = _contigs(vcf)[0].startswith("chr")
        regions = scratch / f"sites{i}.tsv"
        regions.write_text("".join(f"{c if has_chr else c.removeprefix('chr')}\t{p}\n" for c, p in sites))
        out = scratch / f"part{i}.bcf"
        cmd = f"bcftools view -R {regions} -Ou {vcf}"
        if has_chr != style_chr:
            mapping = scratch / f"map{i}.txt"
            mapping.write_text("".join(f"{c}\t{'chr' + c if style_chr else c.removeprefix('chr')}\n"
                                       for c in _contigs(vcf)))
            cmd += f" | bcftools annotate --rename-chrs {mapping} -Ou"
        subprocess.run(f"{cmd} | bcftools sort -Ob -o {out} && bcftools index -f {out}", shell=True, check=True,
                       capture_output=True)
        parts.append(out)
    merged = scratch / "merged.bcf"
    subprocess.run(["bcftools", "merge", "--force-samples", "-Ob", "-o", str(merged), *map(str, parts)], check=True,
                   capture_output=True)
    subprocess.run(["bcftools", "index", "-f", str(merged)], check=True)
    return merged


def _gtcheck_pairs(out: Path, max_discordance: float) -> int:
    """Pairs of a gtcheck output whose discordant share of compared sites is at most ``max_discordance``."""
    n = 0
    with open(out) as fh:
        for line in fh:
            if not line.startswith("DC\t"):
                continue
            f = line.rstrip("\n").split("\t")
            disc, sites = float(f[3]), float(f[5])
            if sites > 0 and disc / sites <= max_discordance:
                n += 1
    return n


def run(ctx: Context) -> None:
    from genolake.ingest.pipeline import ingest
    from genolake.samples.duplicates import DUPLICATE_MAX_DISCORDANCE, dosage_matrix, find_duplicates

    res = ctx.results
    cohort = ctx.cohort()
    base = ctx.lake()
    scratch = ctx.work / "duplicates-scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    first = cohort.vcfs[0]
    names = subprocess.run(["bcftools", "query", "-l", str(first)], capture_output=True, text=True,
                           check=True).stdout.split()[:PLANTED]
    resent = scratch / "resent.vcf.gz"
    subprocess.run(["bcftools", "view", "-s", ",".join(names), "-Oz", "-o", str(resent), str(first)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(resent)], check=True)
    lake = scratch / "lake"
    shutil.copytree(base, lake)
    ingest(lake, "resent", [resent], workers=0)
    what = (f"all pairs of {len(cohort.vcfs)} x {ctx.config.samples:,} + {PLANTED} re-sent samples: sites, dosage "
            "matrix from the lake, KING-robust kinship + discordance")
    try:
        t0 = time.perf_counter()
        # min_sites only decides which pairs are compared (every pair shares > 100 sites here) and lets the
        # minuscule test cohort run; the timed work is the same as with the default
        rep = find_duplicates(lake, min_sites=100)
        seconds = time.perf_counter() - t0
    except Exception as exc:  # a genolake failure fails the run
        res.fail("duplicates.genolake", f"{type(exc).__name__}: {exc}")
        return
    found = sum(1 for r in rep.pairs["relationship"].to_pylist() if r == "duplicate")
    breakdown = ", ".join(f"{k} {v:.2f} s" for k, v in rep.seconds.items())
    res.add(Measure("duplicates.genolake", "genolake", what, "s", seconds,
                    note=f"{found} duplicate pairs found ({PLANTED} planted) among {rep.people:,} people on "
                         f"{rep.sites:,} sites; {breakdown}"))
    res.extra["duplicates"] = {"people": rep.people, "sites": rep.sites, "found": found, "planted": PLANTED,
                               "seconds": rep.seconds}
    if not have_tool("bcftools"):
        res.skip("duplicates.bcftools", "bcftools not on the PATH")
        return
    dm = dosage_matrix(lake)
    sites = list(zip(dm.sites["contig"].to_pylist(), dm.sites["pos"].to_pylist(), strict=True))
    merged = _peer_input([*cohort.vcfs, resent], sites, scratch)
    out = scratch / "gtcheck.txt"
    peer = run_shell_timed(f"bcftools gtcheck -u GT -e 0 --no-HWE-prob {merged} > {out}")
    pairs = _gtcheck_pairs(out, DUPLICATE_MAX_DISCORDANCE)
    res.add(Measure("duplicates.bcftools", "bcftools",
                    f"bcftools gtcheck -u GT -e 0 (every pair's discordance) on a merged BCF of the same {len(sites):,} "
                    "sites (merge not timed)", "s", peer,
                    note=f"{pairs} pairs with <= {DUPLICATE_MAX_DISCORDANCE:.0%} discordant genotypes"))
    res.compare("duplicates.vs_bcftools", "duplicates.genolake", "duplicates.bcftools", "time",
                "samples duplicates vs bcftools gtcheck, all pairs")
    shutil.rmtree(scratch, ignore_errors=True)
