"""Seeded cohorts for the `genolake samples` tests: unrelated people (msprime), a planted parent-child trio.

msprime simulates many short independent regions (replicates of 20 kb, placed 100 kb apart), so the sites are
about as independent as in a whole genome and unrelated people have KING kinship near 0 (one short region of
ordinary recombination shares long genealogies and makes everybody look related). A child is built from two of the people by transmitting one allele of
each parent at every site, so its kinship with each parent is 1/4 and it never is 0/0 where a parent is 1/1.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

CONTIG_LENGTH = 63025520  # chr20 of GRCh37: the lake detects the build from it


def simulate_haplotypes(n: int, *, seed: int, regions: int = 300) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(positions, genotypes (sites x n x 2) of biallelic sites, ref/alt pairs) of ``n`` unrelated people."""
    import msprime

    pos, gts, alleles = [], [], []
    reps = msprime.sim_ancestry(samples=n, population_size=10_000, recombination_rate=1e-8,
                                sequence_length=20_000, random_seed=seed, num_replicates=regions)
    for r, ts in enumerate(reps):
        ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed + 1 + r)
        last = 0
        for v in ts.variants():
            p = int(v.site.position) + 1
            if p <= last or len(v.alleles) != 2 or v.alleles[1] is None:
                continue
            last = p
            pos.append(1_000_000 + r * 100_000 + p)
            gts.append(v.genotypes.reshape(n, 2))
            alleles.append(f"{v.alleles[0]}\t{v.alleles[1]}")
    return np.asarray(pos), np.stack(gts).astype(np.int8), alleles


def child_of(gts: np.ndarray, mother: int, father: int, *, seed: int) -> np.ndarray:
    """Genotypes (sites x 2) of a child: one allele of each parent at every site."""
    rng = np.random.default_rng(seed)
    s = gts.shape[0]
    a = gts[np.arange(s), mother, rng.integers(0, 2, s)]
    b = gts[np.arange(s), father, rng.integers(0, 2, s)]
    return np.stack([a, b], axis=1)


def write_vcf(path: Path, pos: np.ndarray, alleles: list[str], gts: np.ndarray, names: list[str], *,
              missing: float = 0.005, seed: int = 0) -> Path:
    """A bgzipped, tabix-indexed VCF (GT only) of ``gts`` (sites x samples x 2); a few calls set missing."""
    rng = np.random.default_rng(seed)
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID=20,length={CONTIG_LENGTH}>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names)]
    for i, p in enumerate(pos):
        g = gts[i]
        cells = [f"{x}/{y}" for x, y in g.tolist()]
        for k in np.flatnonzero(rng.random(len(cells)) < missing):
            cells[k] = "./."
        lines.append(f"20\t{int(p)}\t.\t{alleles[i]}\t.\tPASS\t.\tGT\t" + "\t".join(cells))
    plain = path.with_suffix("")
    plain.write_text("\n".join(lines) + "\n")
    subprocess.run(["bgzip", "-f", str(plain)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    return path


def subset(src: Path, dst: Path, samples: list[str], *, exclude: bool = False) -> Path:
    """``bcftools view -s`` (or ``-s ^...`` with ``exclude``) of ``src`` into an indexed ``dst``."""
    spec = ("^" if exclude else "") + ",".join(samples)
    subprocess.run(["bcftools", "view", "-s", spec, "-Oz", "-o", str(dst), str(src)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(dst)], check=True)
    return dst
