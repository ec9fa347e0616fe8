"""VCF out: `genolake annotate-vcf` vs `bcftools annotate -a SITES`, `genolake export vcf` vs `bcftools view`.

annotate-vcf: a seeded single-sample "patient" VCF of 100,000 variants on the lake's main contig (up to half of them
the lake's own alleles, the rest new SNVs at unused positions), annotated with the joint AC, AN, AF and nhomalt.
The peer is `bcftools annotate -a SITES.vcf.gz -c INFO/GL_AC,...` where SITES is a sites VCF written (untimed) from
the lake's `allele_frequencies` (joint, stratum `all`; `genolake aggregate` is run first when it is not current).
Both write bgzipped output and index it (tabix); both run as whole processes, interleaved, best of the runs. The
alleles both annotate are compared (the note says how many agree). bcftools does less: it leaves alleles absent
from SITES empty where genolake applies the absent-site rules.

export vcf: the first institution's genotypes (`genolake export vcf -i INST -o OUT.vcf.gz`) vs `bcftools view -Oz`
of the institution's source VCF plus tabix, whole processes.
"""

from __future__ import annotations

import logging
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.suites.common import Measure, have_tool, run_shell_timed, run_timed
from benchmarks.suites.context import Context

log = logging.getLogger("benchmarks")

N_VARIANTS = 100_000
FIELDS = ("AC", "AN", "AF", "nhomalt")


def _genolake() -> list[str]:
    exe = shutil.which("genolake")
    return [exe] if exe else [sys.executable, "-m", "genolake"]


def write_patient(sites: list[tuple[str, int, str, str]], contig: str, lo: int, hi: int, path: Path, *,
                  seed: int, n: int = N_VARIANTS) -> int:
    """A bgzipped, indexed single-sample VCF of ``n`` variants: up to n/2 lake alleles, the rest new SNVs."""
    rng = random.Random(seed)
    own = rng.sample(sites, min(len(sites), n // 2))
    used = {p for _c, p, _r, _a in sites}
    records = {(p, r, a) for _c, p, r, a in own}
    bases = "ACGT"
    while len(records) < n:
        p = rng.randint(lo, hi + n)
        if p in used:
            continue
        used.add(p)
        r = rng.choice(bases)
        records.add((p, r, rng.choice([b for b in bases if b != r])))
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={contig}>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tpatient"]
    for p, r, a in sorted(records):
        lines.append(f"{contig}\t{p}\t.\t{r}\t{a}\t50\tPASS\t.\tGT\t{rng.choice(('0/1', '0/1', '1/1'))}")
    raw = path.with_suffix("")
    raw.write_text("\n".join(lines) + "\n")
    subprocess.run(["bgzip", "-f", str(raw)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    return len(records)


def write_sites(lake: Any, path: Path) -> int:
    """The lake's joint frequencies as a sites VCF (what a frequency release holds), bgzipped and indexed."""
    t = lake.sql("SELECT contig, pos, ref, alt, ac, an, af, nhomalt FROM allele_frequencies "
                 "WHERE scope = 'joint' AND stratum = 'all' ORDER BY contig, pos, ref, alt")
    contigs = sorted(set(t["contig"].to_pylist()))
    types = {"AC": "Integer", "AN": "Integer", "AF": "Float", "nhomalt": "Integer"}
    lines = ["##fileformat=VCFv4.2", *(f"##contig=<ID={c}>" for c in contigs)]
    lines += [f'##INFO=<ID=GL_{k},Number=A,Type={v},Description="joint {k} of the lake">' for k, v in types.items()]
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    cols = [t[c].to_pylist() for c in ("contig", "pos", "ref", "alt", "ac", "an", "af", "nhomalt")]
    for c, p, r, a, ac, an, af, nh in zip(*cols, strict=True):
        afs = "." if af is None else f"{af:.6g}"
        lines.append(f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\tGL_AC={ac};GL_AN={an};GL_AF={afs};GL_nhomalt={nh}")
    raw = path.with_suffix("")
    raw.write_text("\n".join(lines) + "\n")
    subprocess.run(["bgzip", "-f", str(raw)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(path)], check=True)
    return t.num_rows


def _values(vcf: Path) -> dict[tuple[int, str, str], tuple[str, str]]:
    text = subprocess.run(["bcftools", "query", "-f", "%POS\\t%REF\\t%ALT\\t%GL_AC\\t%GL_AN\\n", str(vcf)],
                          capture_output=True, text=True, check=True).stdout
    out = {}
    for line in text.splitlines():
        p, r, a, ac, an = line.split("\t")
        out[(int(p), r, a)] = (ac, an)
    return out


def run(ctx: Context) -> None:
    import genolake

    res = ctx.results
    if not have_tool("bcftools") or not have_tool("bgzip") or not have_tool("tabix"):
        res.skip("vcfout.annotate", "bcftools, bgzip and tabix are needed")
        return
    cohort = ctx.cohort()
    lake_path = ctx.lake()
    scratch = ctx.work / "vcfout-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    with genolake.open(lake_path) as lake:
        if not lake.engine.catalog.frequencies_current:
            from genolake.compute.aggregate import aggregate

            log.info("  running genolake aggregate first (allele_frequencies is not current)")
            aggregate(lake_path, workers=0)
            lake.refresh()
        from benchmarks.suites.common import main_contig

        contig, lo, hi = main_contig(lake)
        t = lake.sql("SELECT DISTINCT contig, pos, ref, alt FROM variants WHERE contig = $c AND length(ref) = 1 "
                     "AND length(alt) = 1 ORDER BY pos", {"c": contig})
        sites = list(zip(*(t[c].to_pylist() for c in ("contig", "pos", "ref", "alt")), strict=True))
        patient = scratch / "patient.vcf.gz"
        n = write_patient(sites, contig, lo, hi, patient, seed=ctx.config.seed)
        sites_vcf = scratch / "sites.vcf.gz"
        n_sites = write_sites(lake, sites_vcf)
    gl_out, bc_out = scratch / "gl.vcf.gz", scratch / "bc.vcf.gz"
    gl_cmd = [*_genolake(), "annotate-vcf", "--lake", str(lake_path), str(patient), "-o", str(gl_out),
              "--fields", "ac,an,af,nhomalt", "-q"]
    cols = ",".join(f"INFO/GL_{k}" for k in FIELDS)
    bc_script = f"bcftools annotate -a {sites_vcf} -c {cols} -Oz -o {bc_out} {patient} && tabix -f -p vcf {bc_out}"
    runs = 2 if ctx.config.tier == "full" else 3
    gl_times, bc_times, lib_times = [], [], []
    from genolake.vcfout.annotate_vcf import annotate_vcf

    for _ in range(runs):  # interleaved, so a burst of load hits both
        bc_times.append(run_shell_timed(bc_script))
        gl_times.append(run_timed(gl_cmd))
        import time

        t0 = time.perf_counter()
        annotate_vcf(lake_path, patient, scratch / "lib.vcf.gz", fields="ac,an,af,nhomalt")
        lib_times.append(time.perf_counter() - t0)
    got, peer = _values(gl_out), _values(bc_out)
    both = [k for k, v in peer.items() if v[0] != "."]
    agree = sum(1 for k in both if got.get(k) == peer[k])
    res.add(Measure("vcfout.annotate_genolake", "genolake", f"genolake annotate-vcf, {n:,}-variant 1-sample VCF "
                    "(whole command)", "s", min(gl_times), n=runs,
                    note=f"{n / min(gl_times):,.0f} records/s; {agree:,}/{len(both):,} alleles agree with bcftools"))
    res.add(Measure("vcfout.annotate_library", "genolake", "the same, library call in process (context)", "s",
                    min(lib_times), n=runs, note=f"{n / min(lib_times):,.0f} records/s"))
    res.add(Measure("vcfout.annotate_bcftools", "bcftools", f"bcftools annotate -a SITES ({n_sites:,} sites) "
                    "-Oz + tabix", "s", min(bc_times), n=runs, note=f"{n / min(bc_times):,.0f} records/s"))
    res.compare("vcfout.annotate_vs_bcftools", "vcfout.annotate_genolake", "vcfout.annotate_bcftools", "time",
                "annotate-vcf vs bcftools annotate -a SITES")
    if agree != len(both):
        res.fail("vcfout.annotate_genolake", f"{len(both) - agree} alleles differ from bcftools annotate")

    inst, src = cohort.institutions[0], cohort.vcfs[0]
    ex_gl, ex_bc = scratch / "export.vcf.gz", scratch / "view.vcf.gz"
    ex_cmd = [*_genolake(), "export", "vcf", "--lake", str(lake_path), "-i", inst, "-o", str(ex_gl), "-q"]
    view = f"bcftools view -Oz -o {ex_bc} {src} && tabix -f -p vcf {ex_bc}"
    ex_times, view_times = [], []
    for _ in range(runs):
        view_times.append(run_shell_timed(view))
        ex_times.append(run_timed(ex_cmd))
    n_rec = int(subprocess.run(["bcftools", "index", "-n", str(ex_gl)], capture_output=True, text=True,
                               check=True).stdout.strip() or 0)
    res.add(Measure("vcfout.export_genolake", "genolake", f"genolake export vcf -i {inst} (whole command)", "s",
                    min(ex_times), n=runs, note=f"{n_rec:,} records x {cohort.samples:,} samples"))
    res.add(Measure("vcfout.export_bcftools", "bcftools", "bcftools view -Oz of the source VCF + tabix", "s",
                    min(view_times), n=runs))
    res.compare("vcfout.export_vs_bcftools", "vcfout.export_genolake", "vcfout.export_bcftools", "time",
                "export vcf vs bcftools view of the source")
    res.extra["vcfout"] = {"patient_variants": n, "sites": n_sites, "agree": agree, "compared": len(both),
                           "annotate_times": {"genolake": gl_times, "library": lib_times, "bcftools": bc_times},
                           "export_times": {"genolake": ex_times, "bcftools": view_times}}
    shutil.rmtree(scratch, ignore_errors=True)
