"""`lake.carriers` by the point reader (codes read as Python values and expanded once, FORMAT lists decoded up to
the site's row in the carrier files only) equals the DuckDB `calls` view (``point_reads=False``) at every site
of a cohort with what hospitals' files have: haploid chrX males, a multi-allelic record every 40 records (AD
missing there), missing calls, an institution that writes only its variant sites (-c1), several files of one
institution (split by contig), row groups of 64 rows (the FORMAT heads stop at every offset), and people
withdrawn by `samples remove` (their calls are gone from both readers).
"""

from __future__ import annotations

from pathlib import Path

import layouts
import pytest
from layouts import Layout

import genolake
from genolake.query.lake import Lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Path:
    from genolake import store
    from genolake.ingest.pipeline import ingest
    from genolake.samples.remove import remove_samples

    d = tmp_path_factory.mktemp("carriers_oracle")
    cohort = layouts.make_cohort(d / "cohort.vcf.gz")
    samples = layouts.run("bcftools", "query", "-l", cohort).split()
    north = layouts.institution_file(cohort, samples[:50], d / "north.vcf.gz", variant_sites_only=False)
    south = layouts.institution_file(cohort, samples[50:], d / "south.vcf.gz", variant_sites_only=True)
    (d / "south").mkdir()
    south_files = layouts.split(south, Layout([["20", "21"], ["X"]], 1), d / "south")
    old = store.GENOTYPE_GROUP_CODES_WITH_FORMAT
    store.GENOTYPE_GROUP_CODES_WITH_FORMAT = 64 * 50  # 64-row groups at 50 samples, as the full tier's at 1,000
    try:
        path = d / "lake"
        ingest(path, "north", [north], workers=0)
        ingest(path, "south", south_files, workers=0)
    finally:
        store.GENOTYPE_GROUP_CODES_WITH_FORMAT = old
    from genolake.phenotypes import load_phenotypes

    sexes = layouts.panel_sex()
    for inst, people in (("north", samples[:40]), ("south", samples[50:])):  # north's last 10: no phenotypes
        tsv = d / f"{inst}.tsv"
        tsv.write_text("sample_id\tsex\tage\n" + "".join(f"{x}\t{sexes.get(x, '')}\t{20 + i}\n"
                                                          for i, x in enumerate(people)))
        load_phenotypes(path, inst, tsv)
    withdrawn = d / "withdrawn.txt"
    withdrawn.write_text("".join(f"{s}\n" for s in samples[3:50:7]))  # 7 people of north
    remove_samples(path, institution="north", path=withdrawn)
    return path


def test_carriers_equal_the_calls_view_at_every_site(lake: Path) -> None:
    fast, slow = genolake.open(lake), Lake(lake, point_reads=False)
    try:
        assert fast.engine.point_reads and not slow.engine.point_reads
        sites = fast.sql("SELECT DISTINCT contig, pos, ref, alt FROM variants ORDER BY ALL").to_pylist()
        multi = {(s["contig"], s["pos"]) for s in sites}
        multi = {k for k in multi if sum(1 for s in sites if (s["contig"], s["pos"]) == k) > 1}
        carriers_north: set[str] = set()
        seen = {"haploid": 0, "multi": 0, "null_ad": 0, "rows": 0, "south_only": 0, "no_pheno": 0}
        for s in sites:
            vid = f"{s['contig']}-{s['pos']}-{s['ref']}-{s['alt']}"
            want = slow.carriers(vid)
            got = fast.carriers(vid)
            assert got.schema == want.schema, vid
            assert got.equals(want), vid
            seen["rows"] += got.num_rows
            seen["haploid"] += sum(1 for p in got.column("ploidy").to_pylist() if p == 1)
            seen["multi"] += got.num_rows if (s["contig"], s["pos"]) in multi else 0
            seen["null_ad"] += got.column("ad_alt").null_count
            seen["no_pheno"] += got.column("age").null_count
            seen["south_only"] += int(set(got.column("institution").to_pylist()) == {"south"})
            carriers_north.update(r["sample_id"] for r in got.select(["institution", "sample_id"]).to_pylist()
                                  if r["institution"] == "north")
        # what was compared: chrX haploid carriers, carriers at multi-allelic sites, missing AD, sites carried
        # only in the institution that writes variant sites only (files without a carrier are not read)
        assert seen["rows"] > 1000 and seen["haploid"] > 20 and seen["multi"] > 20 and seen["null_ad"] > 20, seen
        assert seen["south_only"] > 5, seen
        # carriers come with their phenotypes (north's last 10 people have none: nulls)
        assert 20 < seen["no_pheno"] < seen["rows"] - 20, seen
        # the withdrawn people are in no answer: north has 43 people left, and every carrier is one of them
        left = fast.sql("SELECT DISTINCT sample_id FROM samples WHERE institution = 'north'").column(0).to_pylist()
        assert len(left) == 43 and carriers_north and carriers_north <= set(left)
    finally:
        fast.close()
        slow.close()


def test_carriers_with_a_condition_equal_the_calls_view(lake: Path) -> None:
    """The ``where`` path hands the point reader's calls to DuckDB: the same answer as the SQL join."""
    fast, slow = genolake.open(lake), Lake(lake, point_reads=False)
    try:
        sites = fast.sql("SELECT contig, pos, ref, alt FROM variants WHERE ac > 3 ORDER BY ALL LIMIT 40").to_pylist()
        assert sites
        for s in sites:
            vid = f"{s['contig']}-{s['pos']}-{s['ref']}-{s['alt']}"
            for where in ("institution = 'south'", "institution = 'north'"):
                want = slow.carriers(vid, where=where)
                got = fast.carriers(vid, where=where)
                assert got.equals(want), (vid, where)
    finally:
        fast.close()
        slow.close()
