"""Regenerate data/sample_vcfs/ from the 1000 Genomes files in ../shared/data (seeded, reproducible).

Usage: python data/sample_vcfs/make_sample_data.py [SHARED_DATA_DIR]

Needs bcftools, bgzip and tabix on the PATH. See SOURCES.md for provenance and licences.
"""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data"
SOURCE = SHARED / "vcf" / "shapeit4_1kg_chr20_300s_phased.vcf.gz"
PANEL = SHARED / "meta" / "integrated_call_samples_v3.20130502.ALL.panel"
REGION = "20:1000000-1600000"
CHR20_GRCH37 = 63025520
SEED = 20261128
# the planted association: cases are enriched for carriers of this variant (chosen below, fixed by the seed)
HPO_CASE_TERMS = ["HP:0001250", "HP:0001263", "HP:0000729", "HP:0001249", "HP:0002069"]


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)  # type: ignore[call-overload]


def panel() -> dict[str, tuple[str, str, str]]:
    out = {}
    for line in PANEL.read_text().splitlines()[1:]:
        parts = line.split()
        out[parts[0]] = (parts[1], parts[2], parts[3])  # pop, super_pop, gender
    return out


def fix_header(text: str, contig: str) -> str:
    lines = text.split("\n")
    out = []
    for line in lines:
        if line.startswith("##contig=<ID=20"):
            out.append(f"##contig=<ID={contig},length={CHR20_GRCH37},assembly=GRCh37>")
            out.append("##reference=GRCh37")
            continue
        if contig == "chr20" and line and not line.startswith("#"):
            line = "chr" + line
        out.append(line)
    return "\n".join(out)


def main() -> None:
    rng = random.Random(SEED)
    meta = panel()
    samples = run(["bcftools", "query", "-l", str(SOURCE)]).stdout.split()
    samples.sort(key=lambda s: (meta[s][1], meta[s][0], s))
    groups = {"north": samples[0::3], "south": samples[1::3], "east": samples[2::3]}
    # the planted variant: a common SNP in the region, AF 0.15-0.35 in the 300 samples
    sites = run(["bcftools", "query", "-r", REGION, "-f", "%POS\t%REF\t%ALT\t%AC\t%AN\n", str(SOURCE)]).stdout
    cands = [s.split("\t") for s in sites.splitlines()]
    cands = [c for c in cands if len(c[1]) == 1 and len(c[2]) == 1 and 0.15 <= int(c[3]) / int(c[4]) <= 0.35]
    planted = cands[len(cands) // 2]
    pos = planted[0]
    dosage_txt = run(["bcftools", "query", "-r", f"20:{pos}", "-i", f'REF="{planted[1]}" && ALT="{planted[2]}"',
                      "-f", "[%SAMPLE=%GT\t]\n", str(SOURCE)]).stdout.split()
    dosage = {kv.split("=")[0]: sum(int(a) for a in kv.split("=")[1].replace("|", "/").split("/") if a.isdigit())
              for kv in dosage_txt}
    for inst, members in groups.items():
        text = run(["bcftools", "view", "-r", REGION, "-s", ",".join(members), str(SOURCE)]).stdout
        if inst == "north":
            (HERE / "north.vcf").write_text(fix_header(text, "20"))
            run(["bgzip", "-f", str(HERE / "north.vcf")])
            run(["tabix", "-f", "-p", "vcf", str(HERE / "north.vcf.gz")])
        elif inst == "south":
            (HERE / "south.vcf").write_text(fix_header(text, "chr20"))
        else:
            tmp = HERE / "east.tmp.vcf"
            tmp.write_text(fix_header(text, "20"))
            # merge records at the same position into multi-allelic records, as many callers write them
            run(["bcftools", "norm", "-m", "+any", "-Ob", "-o", str(HERE / "east.bcf"), str(tmp)])
            run(["bcftools", "index", "-f", "--csi", str(HERE / "east.bcf")])
            tmp.unlink()
        rows = ["sample_id\tsex\tpopulation\tsuper_population\tcase_status\tage\thpo_terms"]
        for s in members:
            pop, spop, sex = meta[s]
            logit = -1.2 + 1.4 * dosage.get(s, 0)
            p_case = 1 / (1 + 2.718281828 ** -logit)
            case = rng.random() < p_case
            age = rng.randint(18, 85)
            hpo = ";".join(sorted(rng.sample(HPO_CASE_TERMS, rng.randint(1, 3)))) if case else ""
            rows.append(f"{s}\t{sex}\t{pop}\t{spop}\t{'case' if case else 'control'}\t{age}\t{hpo}")
        (HERE / f"{inst}.phenotypes.tsv").write_text("\n".join(rows) + "\n")
    (HERE / "planted_variant.txt").write_text(f"20-{pos}-{planted[1]}-{planted[2]}\n")
    print(f"planted association variant: 20-{pos}-{planted[1]}-{planted[2]}")
    with gzip.open(HERE / "north.vcf.gz", "rt") as fh:
        n = sum(1 for line in fh if not line.startswith("#"))
    print(f"{n} records per institution in {REGION}")


if __name__ == "__main__":
    main()
