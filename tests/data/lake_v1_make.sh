#!/usr/bin/env bash
# Rebuild the format-1 fixture lake tests/data/lake_v1 (see tests/data/SOURCES.md) with the release that wrote
# format 1 (commit 9f829e9 of main). Run from the repository root:  bash tests/data/lake_v1_make.sh
# It needs bcftools, bgzip and tabix; it leaves no worktree behind.
set -euo pipefail
ROOT=$(pwd)
DATA=$ROOT/tests/data
SRC=$DATA/lake_v1_src
TMPD=$(mktemp -d)
V1=$TMPD/v1
git worktree add -q "$V1" 9f829e9
trap 'git worktree remove --force "$V1"; rm -rf "$TMPD"' EXIT
rm -rf "$DATA/lake_v1" "$DATA/lake_v1_key"
mkdir -p "$SRC" "$DATA/lake_v1_key"
# the VCFs: two institutions' files derived from the tests' three-contig cohort (tests/layouts.py)
PYTHONPATH=$ROOT/tests python - "$SRC" "$TMPD" <<'PY'
import sys, tempfile
from pathlib import Path
import layouts

src = Path(sys.argv[1])
# one person of north withdraws consent after ingest (a format-1 lake with rewritten parts)
withdrawn = Path(sys.argv[2]) / "withdrawn.txt"
with tempfile.TemporaryDirectory() as tmp:
    cohort = layouts.make_cohort(Path(tmp) / "cohort.vcf.gz")
    samples = layouts.run("bcftools", "query", "-l", cohort).split()
    north = layouts.institution_file(cohort, samples[0:20], Path(tmp) / "north.vcf.gz", variant_sites_only=False)
    # north ships one file per chromosome (20, 21, X); south one file of its variant sites only
    layouts.split(north, layouts.Layout([["20"], ["21"], ["X"]], 1), src)
    layouts.institution_file(cohort, samples[20:40], src / "south.vcf.gz", variant_sites_only=True)
    # phenotypes of both institutions: sex from the 1000 Genomes panel, a made-up case status and age
    withdrawn.write_text(samples[3] + "\n")
    sexes = layouts.panel_sex()
    for inst, group in (("north", samples[0:20]), ("south", samples[20:40])):
        lines = ["sample_id\tsex\tcase_status\tage"]
        lines += [f"{s}\t{sexes.get(s, 'unknown')}\t{'case' if k % 3 == 0 else 'control'}\t{30 + k}"
                  for k, s in enumerate(group)]
        (src / f"{inst}_phenotypes.tsv").write_text("\n".join(lines) + "\n")
PY
cp "$DATA/edge/bio2zarr__mixed_ploidy.vcf.gz" "$SRC/south_mixed_ploidy.vcf.gz"
export GENOLAKE_KEY_DIR=$DATA/lake_v1_key PYTHONPATH=$V1
cd "$V1"
python -m genolake ingest --lake "$DATA/lake_v1" -i north --workers 0 --quiet "$SRC"/north_g*_b0.vcf.gz
python -m genolake ingest --lake "$DATA/lake_v1" -i south --workers 0 --quiet --build GRCh37 \
    "$SRC/south.vcf.gz" "$SRC/south_mixed_ploidy.vcf.gz"
for inst in north south; do
    python -m genolake phenotypes load --lake "$DATA/lake_v1" -i "$inst" "$SRC/${inst}_phenotypes.tsv" >/dev/null
done
python -m genolake samples remove --lake "$DATA/lake_v1" -i north "$TMPD/withdrawn.txt"
python -m genolake aggregate --lake "$DATA/lake_v1" --workers 0 --by case_status --quiet
# the answers of the release that wrote the lake, for tests/test_migrate.py to compare with after migrating
python - "$DATA/lake_v1" "$DATA/lake_v1_expected.json.gz" <<'PY'
import gzip, json, sys
import genolake

lake = genolake.open(sys.argv[1])
ids = lake.sql(
    "SELECT id FROM (SELECT DISTINCT contig, pos, contig || '-' || pos || '-' || ref || '-' || alt AS id "
    "FROM variants) ORDER BY contig, pos, id")["id"].to_pylist()
# every 20th site, every site of a multi-allelic record, every chrX site with a haploid call, contig 1 (other ploidies)
multi = set(lake.sql("SELECT contig || '-' || pos || '-' || ref || '-' || alt AS id FROM variants WHERE contig = '1' "
                     "OR (institution, contig, pos) IN (SELECT (institution, contig, pos) FROM variants GROUP BY ALL "
                     "HAVING count(*) > 1)"
                     )["id"].to_pylist())
hemi = set(lake.sql("SELECT DISTINCT contig || '-' || pos || '-' || ref || '-' || alt AS id FROM calls "
                    "WHERE contig = 'X' AND ploidy = 1 AND alt_count = 1")["id"].to_pylist())
hemi = set(sorted(hemi)[::10])
ids = [i for k, i in enumerate(ids) if k % 20 == 0 or i in multi or i in hemi]
out = {
    "variants": {i: lake.variant(i) for i in ids},
    "carriers": {i: lake.carriers(i).to_pylist() for i in ids},
    "regions": {r: lake.region(r).to_pylist() for r in ("20", "21", "X", "1")},
}
with gzip.open(sys.argv[2], "wt") as fh:
    json.dump(out, fh, indent=0, sort_keys=True, default=str)
PY
rm -rf "$DATA/lake_v1/_staging" "$DATA/lake_v1/_lock" "$DATA/lake_v1/_txn"
