"""`genolake demo`: build a lake from the bundled 1000 Genomes sample data and ask it a few questions."""

from __future__ import annotations

import sys
from pathlib import Path

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


def run_demo(lake: Path, *, workers: int | None = None) -> None:
    from genolake.ingest.pipeline import ingest
    from genolake.output import emit_object, emit_table
    from genolake.query.lake import Lake

    data = sample_data_dir()
    out = sys.stdout
    out.write(f"genolake demo: building {lake} from {data}\n")
    for institution, name in INSTITUTIONS:
        report = ingest(lake, institution, [data / name], workers=workers)
        for f in report.files:
            out.write(f"  {institution:6s} {name:14s} {f.status:9s} {f.n_records:6,d} records "
                      f"{f.n_samples:4d} samples {f.n_calls:9,d} calls\n")
        pheno = data / f"{institution}.phenotypes.tsv"
        if pheno.exists():
            try:
                from genolake.phenotypes import load_phenotypes
            except ImportError:
                continue
            load_phenotypes(lake, institution, pheno)
    try:
        from genolake.compute.frequencies import aggregate
    except ImportError:
        aggregate = None  # type: ignore[assignment]
    if aggregate is not None:
        out.write("\naggregating joint allele frequencies (Dask) ...\n")
        try:
            aggregate(lake, by=["sex", "super_population", "case_status"], workers=workers)
        except TypeError:
            aggregate(lake, by=["sex", "super_population", "case_status"])
    lk = Lake(lake)
    out.write("\n1. What is in the lake?\n")
    emit_table(lk.sql("SELECT institution, count(DISTINCT sample_id) AS samples FROM samples GROUP BY 1 ORDER BY 1"),
               "table")
    out.write("\n2. The most common variants across the three institutions:\n")
    top = lk.sql(
        "SELECT contig, pos, ref, alt, sum(ac) AS ac, sum(an) AS an, round(sum(ac) / sum(an), 4) AS af "
        "FROM variants GROUP BY ALL ORDER BY af DESC, pos LIMIT 5"
    )
    emit_table(top, "table")
    if hasattr(lk, "variant") and top.num_rows:
        r = top.slice(0, 1).to_pylist()[0]
        vid = f"{r['contig']}-{r['pos']}-{r['ref']}-{r['alt']}"
        out.write(f"\n3. genolake query variant {vid}:\n")
        emit_object(lk.variant(vid), "table")
    out.write(f"\nTry: genolake query sql --lake {lake} \"SELECT * FROM variants LIMIT 10\"\n")
