"""`genolake info`: what is in a lake (for data stewards: nothing here names a sample or a file path)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genolake.query.lake import Lake


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def lake_info(lake: Lake) -> dict[str, Any]:
    q = lake.engine.query
    files = q(
        """SELECT institution, file_id, sha256, format, build, n_records, n_variants, n_samples, n_calls,
                  absent_mode, left_aligned, CAST(ingested_at AS VARCHAR) AS ingested_at, size_bytes, contigs
           FROM files ORDER BY institution, ingested_at, file_id"""
    ).to_pylist()
    institutions = q(
        """SELECT f.institution,
                  count(DISTINCT f.file_id) AS files,
                  (SELECT count(DISTINCT sample_id) FROM samples s WHERE s.institution = f.institution) AS samples,
                  (SELECT count(*) FROM variants v WHERE v.institution = f.institution) AS variants,
                  sum(f.n_calls) AS calls
           FROM files f GROUP BY f.institution ORDER BY f.institution"""
    ).to_pylist()
    totals = q(
        """SELECT (SELECT count(DISTINCT (institution, sample_id)) FROM samples) AS samples,
                  (SELECT count(*) FROM (SELECT DISTINCT contig, pos, ref, alt FROM variant_files)) AS variants,
                  (SELECT coalesce(sum(n_calls), 0) FROM files) AS calls"""
    ).to_pylist()[0]
    return {
        "lake": str(lake.path),
        "lake_id": lake.store.config["lake_id"],
        "build": lake.build,
        "contig_style": lake.store.contig_style,
        "institutions": institutions,
        "files": files,
        "samples": totals["samples"],
        "variants": totals["variants"],
        "calls": totals["calls"],
        "tables": lake.engine.views,
        "bytes_on_disk": _dir_bytes(str(lake.path)),
    }
