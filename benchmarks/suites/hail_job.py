"""The Hail peer of the aggregate suite, run in its own process (the JVM stays out of the harness).

``python -m benchmarks.suites.hail_job SPEC.json`` where the spec names the VCFs, their institutions, the
contig recoding per file, the phenotype tables and the `--by` column; prints one JSON line of timings.
The job: ``import_vcf`` of every file, ``split_multi_hts``, ``union_cols`` (outer join of rows), then
``call_stats`` for the joint cohort, per institution and per ``--by`` group, written as a Hail Table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(spec_path: str) -> None:
    import hail as hl

    spec: dict[str, Any] = json.loads(Path(spec_path).read_text())
    t0 = time.perf_counter()
    hl.init(master="local[2]", quiet=True, log=spec["log"], tmp_dir=spec["tmp"], default_reference="GRCh38")
    t_init = time.perf_counter() - t0
    t1 = time.perf_counter()
    mts = []
    for vcf, inst, recode, pheno in zip(spec["vcfs"], spec["institutions"], spec["recode"], spec["phenotypes"],
                                        strict=True):
        mt = hl.import_vcf(vcf, force_bgz=True, reference_genome="GRCh38", contig_recoding=recode or None)
        mt = hl.split_multi_hts(mt)
        mt = mt.select_entries("GT").select_rows().annotate_cols(inst=inst)
        if pheno and spec["by"]:
            table = hl.import_table(pheno, key="sample_id", impute=False)
            mt = mt.annotate_cols(grp=table[mt.s][spec["by"]])
        else:
            mt = mt.annotate_cols(grp=hl.missing(hl.tstr))
        mts.append(mt)
    union = mts[0]
    for mt in mts[1:]:
        try:
            union = union.union_cols(mt, row_join_type="outer")
        except TypeError:  # older Hail: inner join only
            union = union.union_cols(mt)
    stats = union.annotate_rows(
        joint=hl.agg.call_stats(union.GT, union.alleles),
        by_institution=hl.agg.group_by(union.inst, hl.agg.call_stats(union.GT, union.alleles)),
        by_group=hl.agg.group_by(union.grp, hl.agg.call_stats(union.GT, union.alleles)),
    )
    stats.rows().write(spec["out"], overwrite=True)
    t_job = time.perf_counter() - t1
    n = hl.read_table(spec["out"]).count()
    print(json.dumps({"init_seconds": t_init, "job_seconds": t_job, "rows": n, "hail": hl.__version__}))
    hl.stop()


if __name__ == "__main__":
    main(sys.argv[1])
