"""Seeded cohort generator for benchmarks and tests (msprime: realistic allele frequency spectrum and LD).

Writes, for each institution, a bgzipped and tabix-indexed VCF with the awkward parts of real data:
multi-allelic sites (finite-sites JC69 mutation model), ~1% missing calls, a chrX region where males
have haploid calls, the last institution naming contigs without ``chr``, FORMAT GT:GQ:DP:AD with
plausible values (or GT only, ``--gt-only``: the same sites, genotypes and phenotypes for the same seed);
plus a phenotype table per institution with a planted case/control signal.

    python -m benchmarks.simulate --out DIR --samples 1000 --institutions 3 --mb 20 --seed 42
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CHR20_LEN = 64_444_167
CHRX_LEN = 156_040_895
OFFSET = 60_000
BASES = np.array(list("ACGT"))


@dataclass
class CohortPaths:
    out: str
    vcfs: list[str] = field(default_factory=list)
    phenotypes: list[str] = field(default_factory=list)
    causal: str = ""
    sites: int = 0
    multiallelic_sites: int = 0
    genotypes: int = 0
    seconds: float = 0.0


def _ancestry(n: int, mb: float, seed: int):  # type: ignore[no-untyped-def]
    import msprime

    ts = msprime.sim_ancestry(
        samples=n, population_size=10_000, recombination_rate=1e-8, sequence_length=max(1, int(mb * 1e6)),
        random_seed=seed,
    )
    # JC69 on a discrete genome gives recurrent mutations, hence multi-allelic sites
    return msprime.sim_mutations(ts, rate=0.9e-8, random_seed=seed + 1, model=msprime.JC69())


def _entries(rng: np.random.Generator) -> tuple[dict[tuple[int, int], np.ndarray], int]:
    """Pre-formatted FORMAT strings per (allele a, allele b) with a few seeded depth variants each."""
    variants = 256  # distinct GQ/DP/AD draws per genotype: real depths vary from sample to sample
    table: dict[tuple[int, int], np.ndarray] = {}
    for a in range(-1, 4):
        for b in range(-2, 4):
            opts = []
            for _ in range(variants):
                dp = int(rng.poisson(30))
                gq = int(rng.integers(5, 99))
                if a == -1:
                    opts.append("./." if b != -2 else ".")
                    continue
                alleles = [a] if b == -2 else [a, b]
                gt = "/".join(str(x) for x in alleles)
                # AD over REF + up to 3 ALTs, written later with the record's allele count
                depth = np.zeros(4, dtype=int)
                for x in alleles:
                    depth[x] += dp // len(alleles)
                noise = int(rng.integers(0, 3))
                if depth[0] >= noise:
                    depth[0] -= noise
                    depth[(alleles[-1] + 1) % 4 if alleles[-1] == 0 else alleles[-1]] += noise
                opts.append(f"{gt}:{gq}:{dp}:" + ",".join(str(int(d)) for d in depth))
            table[(a, b)] = np.array(opts, dtype=object)
    return table, variants


def _format_ad(entry: str, n_alleles: int) -> str:
    if entry.startswith("."):
        return entry
    head, ad = entry.rsplit(":", 1)
    return head + ":" + ",".join(ad.split(",")[:n_alleles])


def simulate_cohort(
    out: Path | str, *, samples: int, institutions: int, mb: float, seed: int, chrx_mb: float = 2.0,
    drop_monomorphic: bool = False, gt_only: bool = False,
) -> CohortPaths:
    """Simulate ``institutions`` x ``samples`` diploid samples and write their VCFs and phenotype tables.

    ``gt_only`` writes FORMAT GT alone; every random draw is made either way, so the same seed gives the
    same sites, genotypes, missing calls and phenotypes as the GT:GQ:DP:AD cohort.
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = samples * institutions
    auto = _ancestry(total, mb, seed)
    chrx = _ancestry(total, chrx_mb, seed + 7) if chrx_mb > 0 else None
    male = rng.random(total) < 0.5
    population = rng.choice(np.array(["AFR", "EUR", "EAS"]), total)
    table, nvar = _entries(rng)
    # one flat lookup per allele count: index ((a + 1) * 6 + (b + 2)) * nvar + variant
    flat: dict[int, np.ndarray] = {}
    for n_alleles in (2, 3, 4):
        arr = np.empty(5 * 6 * nvar, dtype=object)
        arr[:] = "./."
        for (x, y), opts in table.items():
            for v, e in enumerate(opts.tolist()):
                entry = e.split(":", 1)[0] if gt_only else _format_ad(e, n_alleles)
                arr[((x + 1) * 6 + (y + 2)) * nvar + v] = entry
        flat[n_alleles] = arr
    res = CohortPaths(out=str(out))
    # collect genotypes per site: (contig, pos, ref, alts, allele matrix (total, 2))
    sites: list[tuple[str, int, str, list[str], np.ndarray]] = []
    for contig, ts, haploid_males in (("20", auto, False), ("X", chrx, True)):
        if ts is None:
            continue
        last = 0
        for var in ts.variants():
            pos = int(var.site.position) + 1 + OFFSET
            if pos <= last:
                continue
            last = pos
            alleles = [a for a in var.alleles if a is not None]
            if len(alleles) < 2 or len(alleles) > 4:
                continue
            g = var.genotypes.reshape(total, 2).astype(np.int8)
            alts = alleles[1:]
            if len(alts) == 1 and rng.random() < 0.01:
                # a second ALT at ~1% of sites: some carriers of the first alt get the new allele
                extra = next(b for b in "ACGT" if b not in alleles)
                g = g.copy()
                g[(g == 1) & (rng.random(g.shape) < 0.3)] = 2
                alts = [*alts, extra]
            g = np.sort(g, axis=1)  # unphased genotypes written as callers do: 0/1, not 1/0
            if haploid_males:
                g = g.copy()
                g[male, 1] = -2
                g[male, 0] = var.genotypes.reshape(total, 2)[male, 0]
            sites.append((contig, pos, alleles[0], alts, g))
    res.sites = len(sites)
    res.multiallelic_sites = sum(1 for s in sites if len(s[3]) > 1)
    # causal variant: a biallelic chr20 site with AF 5-20% in the whole cohort
    cands = [i for i, s in enumerate(sites) if s[0] == "20" and len(s[3]) == 1
             and 0.05 <= (s[4] == 1).sum() / (2 * total) <= 0.20]
    causal = sites[cands[len(cands) // 2]] if cands else sites[0]
    dosage = (causal[4] == 1).sum(axis=1)
    logit = -1.0 + np.log(3.0) * dosage
    case = rng.random(total) < 1 / (1 + np.exp(-logit))
    res.causal = f"chr20-{causal[1]}-{causal[2]}-{causal[3][0]}"
    missing = rng.random((len(sites), total)) < 0.01
    fmt = "GT" if gt_only else "GT:GQ:DP:AD"
    for inst in range(institutions):
        lo, hi = inst * samples, (inst + 1) * samples
        plain = inst == institutions - 1
        name = f"inst{inst}"
        c20, cx = ("20", "X") if plain else ("chr20", "chrX")
        path = out / f"{name}.vcf"
        with open(path, "w") as fh:
            fh.write("##fileformat=VCFv4.2\n##reference=GRCh38\n")
            fh.write(f"##contig=<ID={c20},length={CHR20_LEN}>\n##contig=<ID={cx},length={CHRX_LEN}>\n")
            fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
            if not gt_only:
                fh.write('##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n')
                fh.write('##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">\n')
                fh.write('##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n')
            fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t")
            fh.write("\t".join(f"I{inst}_S{j:05d}" for j in range(samples)) + "\n")
            for k, (contig, pos, ref, alts, g) in enumerate(sites):
                sub = g[lo:hi]
                if drop_monomorphic and not (sub > 0).any():
                    continue
                a = sub[:, 0].astype(int)
                b = sub[:, 1].astype(int)
                a = np.where(missing[k, lo:hi], -1, a)
                pick = rng.integers(0, nvar, samples)
                code = ((a + 1) * 6 + (b + 2)) * nvar + pick
                cols = flat[len(alts) + 1][code]
                chrom = c20 if contig == "20" else cx
                fh.write(f"{chrom}\t{pos}\t.\t{ref}\t{','.join(alts)}\t50\tPASS\t.\t{fmt}\t")
                fh.write("\t".join(cols.tolist()))
                fh.write("\n")
        subprocess.run(["bgzip", "-f", str(path)], check=True)
        subprocess.run(["tabix", "-f", "-p", "vcf", f"{path}.gz"], check=True)
        res.vcfs.append(f"{path}.gz")
        ph = out / f"{name}.phenotypes.tsv"
        with open(ph, "w") as fh:
            fh.write("sample_id\tsex\tpopulation\tcase_status\tage\tbmi\n")
            for j in range(lo, hi):
                fh.write(f"I{inst}_S{j - lo:05d}\t{'male' if male[j] else 'female'}\t{population[j]}\t"
                         f"{'case' if case[j] else 'control'}\t{int(rng.integers(18, 90))}\t"
                         f"{rng.normal(26, 4):.1f}\n")
        res.phenotypes.append(str(ph))
    res.genotypes = res.sites * total
    res.seconds = round(time.perf_counter() - t0, 2)
    (out / "cohort.json").write_text(json.dumps(asdict(res), indent=2) + "\n")
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--samples", type=int, default=1000, help="samples per institution")
    p.add_argument("--institutions", type=int, default=3)
    p.add_argument("--mb", type=float, default=20.0, help="Mb of chr20 to simulate")
    p.add_argument("--chrx-mb", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--drop-monomorphic", action="store_true")
    p.add_argument("--gt-only", action="store_true", help="FORMAT GT only (same sites and genotypes)")
    a = p.parse_args()
    res = simulate_cohort(a.out, samples=a.samples, institutions=a.institutions, mb=a.mb, seed=a.seed,
                          chrx_mb=a.chrx_mb, drop_monomorphic=a.drop_monomorphic, gt_only=a.gt_only)
    print(f"{res.sites:,} sites ({res.multiallelic_sites:,} multi-allelic), {res.genotypes:,} genotypes, "
          f"causal {res.causal}, {res.seconds} s -> {res.out}")


if __name__ == "__main__":
    main()
