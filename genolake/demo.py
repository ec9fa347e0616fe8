"""`genolake demo`: build a lake from the bundled 1000 Genomes sample data and ask it a few questions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from genolake.errors import GenolakeError

INSTITUTIONS = (("north", "north.vcf.gz"), ("south", "south.vcf"), ("east", "east.bcf"))


def sample_data_dir() -> Path:
    """The repository's data/sample_vcfs (the demo runs from an editable install or a source checkout)."""
    here = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"
    if here.is_dir():
        return here
    raise GenolakeError(
        "bundled sample data not found next to the package; run the demo from a source checkout "
        "(git clone ... && pip install -e .)"
    )


DEMO_STRATA = ("sex", "super_population", "population", "case_status")


def build_demo_lake(lake: Path | str, *, workers: int | None = 0, log: Any = None) -> Path:
    """Ingest the bundled sample VCFs as three institutions, load their phenotypes and aggregate (by
    :data:`DEMO_STRATA`): the lake of `genolake demo` and of the notebooks in examples/. ``log(text)`` gets one line
    per file. Returns the lake's path."""
    from genolake.compute.aggregate import aggregate
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    lake = Path(lake)
    data = sample_data_dir()
    for institution, name in INSTITUTIONS:
        report = ingest(lake, institution, [data / name], workers=workers)
        for f in report.files:
            if log:
                log(f"  {institution:6s} {name:14s} {f.status:9s} {f.n_records:6,d} records "
                    f"{f.n_samples:4d} samples {f.n_calls:9,d} calls\n")
        pheno = data / f"{institution}.phenotypes.tsv"
        if pheno.exists():
            load_phenotypes(lake, institution, pheno)
    if log:
        log("\naggregating joint allele frequencies ...\n")
    aggregate(lake, by=list(DEMO_STRATA), workers=workers)
    return lake


def run_demo(lake: Path, *, workers: int | None = None) -> None:
    from genolake.output import emit_object, emit_table
    from genolake.query.lake import Lake

    data = sample_data_dir()
    out = sys.stdout
    out.write(f"genolake demo: building {lake} from {data}\n")
    build_demo_lake(lake, workers=workers, log=out.write)
    lk = Lake(lake)
    out.write(f"\nThe pseudonymisation key of this lake is {lk.store.key_path()} (outside the lake folder, mode 0600).\n"
              "Every sample ID was replaced by HMAC(key, institution + ID): whoever has the key can link a pseudonym\n"
              "back to a known ID, and without it new files of the same people get pseudonyms that do not match.\n"
              "Keep it at the hospital and back it up; sharing the lake folder does not share the key.\n")
    out.write(f"\n{lk!r}\n")
    out.write("\n1. Samples per institution (pseudonymised; the raw IDs never entered the lake):\n")
    emit_table(lk.sql("SELECT institution, count(DISTINCT sample_id) AS samples FROM samples GROUP BY 1 ORDER BY 1"),
               "table")
    planted_file = data / "planted_variant.txt"
    vid = planted_file.read_text().strip() if planted_file.exists() else None
    if vid:
        out.write(f"\n2. genolake query variant {vid}  (frequencies per institution, carriers by phenotype):\n")
        emit_object(lk.variant(vid), "table")
        out.write("\n3. genolake query assoc --phenotype case_status --case case --region 20:1000000-1600000"
                  " --min-ac 20  (top 5 by Fisher's exact p):\n")
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = lk.assoc("case_status", case="case", region="20:1000000-1600000", min_ac=20)
        cols = [c for c in ("contig", "pos", "ref", "alt", "case_ac", "case_an", "control_ac", "control_an", "or",
                            "or_ci_low", "or_ci_high", "p") if c in res.column_names]
        emit_table(res.select(cols).slice(0, 5), "table")
    out.write("\n4. Rare variants (joint AF < 1%) in 20:1,200,000-1,250,000:\n")
    emit_table(lk.region("20:1200000-1250000", max_af=0.01, min_ac=1).slice(0, 10), "table")
    out.write(f"\nTry: genolake query sql --lake {lake} \"SELECT * FROM variants LIMIT 10\"\n")
