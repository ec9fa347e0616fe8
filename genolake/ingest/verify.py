"""Verify an ingested file against the lake, record by record (as bio2zarr's verifier does).

The check re-reads the VCF with cyvcf2's per-sample Python genotype lists (``Variant.genotypes``), a code path
independent of the vectorised converter, recodes each genotype per alt allele, and compares every stored
call (genotype string, GQ, DP, AD) and every site count with the lake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genolake.contigs import to_style
from genolake.errors import GenolakeError
from genolake.ingest.normalise import is_symbolic, trim
from genolake.ingest.reader import inspect_source


class VerificationError(GenolakeError):
    """The lake and the VCF disagree."""


def _expected_gt(call: list[Any], i: int) -> tuple[str, int, int, int] | None:
    """(gt string, ploidy, called, alt_count) for alt ``i``; None for a diploid hom-ref (implied)."""
    *alleles, phased = call
    alleles = [a for a in alleles if a != -2] if isinstance(phased, bool) else alleles
    rec = ["." if a < 0 else ("1" if a == i else "0") for a in alleles]
    ploidy = len(rec)
    called = sum(1 for a in rec if a != ".")
    alt_count = sum(1 for a in rec if a == "1")
    if ploidy == 2 and called == 2 and alt_count == 0:
        return None
    sep = "|" if phased and ploidy > 1 else "/"
    return sep.join(rec), ploidy, called, alt_count


def verify_files(lake: Path | str, institution: str, paths: list[Path | str]) -> int:
    """Raise VerificationError at the first difference; return the number of split records checked."""
    from cyvcf2 import VCF

    from genolake.query.lake import Lake

    lk = Lake(lake)
    pseudo = lk.store.pseudonymiser()
    style = lk.store.contig_style
    checked = 0
    for path in paths:
        src = inspect_source(path)
        fid = src.file_id
        names = pseudo.many(institution, src.samples)
        calls = lk.engine.query(
            "SELECT contig, pos, ref, alt, sample_id, gt, ploidy, called, alt_count, gq, dp, ad_ref, ad_alt "
            "FROM calls WHERE file_id = ?", [fid]
        ).to_pylist()
        owner = lk.engine.query("SELECT institution, left_aligned FROM files WHERE file_id = ?", [fid]).to_pylist()
        if not owner:
            raise VerificationError(f"{path}: not in the lake (file {fid})")
        if owner[0]["institution"] != institution:
            raise VerificationError(f"{path}: in the lake as institution {owner[0]['institution']!r}, not {institution!r}")
        by_key: dict[tuple[str, int, str, str], dict[str, dict[str, Any]]] = {}
        for c in calls:  # a doubled row would collapse in the dicts: refuse it here
            per_site = by_key.setdefault((c["contig"], c["pos"], c["ref"], c["alt"]), {})
            if c["sample_id"] in per_site:
                raise VerificationError(f"{path}: {c['contig']}:{c['pos']} {c['ref']}>{c['alt']}: a call is stored twice")
            per_site[c["sample_id"]] = c
        sites: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        by_orig: dict[tuple[str, int, str, str], tuple[str, int, str, str]] = {}
        for r in lk.engine.query("SELECT * FROM variant_files WHERE file_id = ?", [fid]).to_pylist():
            key = (r["contig"], r["pos"], r["ref"], r["alt"])
            if key in sites:
                raise VerificationError(f"{path}: {key} is stored twice")
            sites[key] = r
            by_orig[(r["contig"], r["orig_pos"], r["orig_ref"], r["orig_alt"])] = key
        # left-aligned with --reference: an indel's key may lie left of the record; find it by the record as
        # written and check what left-alignment may change (position, padding base), not where it moved to
        left_aligned = bool(owner[0]["left_aligned"])
        vcf = VCF(str(path))
        fmt_fields = set(src.has_fields)
        seen = 0
        for rec in vcf:
            alts = [a.upper() for a in rec.ALT]
            if not alts:
                continue
            gts = rec.genotypes
            gq = rec.format("GQ") if "GQ" in fmt_fields else None
            dp = rec.format("DP") if "DP" in fmt_fields else None
            ad = rec.format("AD") if "AD" in fmt_fields else None
            contig = to_style(rec.CHROM, style)
            for i, alt in enumerate(alts, start=1):
                ref = rec.REF.upper()
                pos, r, a = (rec.POS, ref, alt) if is_symbolic(alt) else trim(rec.POS, ref, alt)
                key = (contig, pos, r, a)
                if left_aligned and len(r) != len(a):
                    moved = by_orig.get((contig, rec.POS, rec.REF, rec.ALT[i - 1]))
                    if moved is not None and moved[1] <= pos and len(moved[2]) - len(moved[3]) == len(r) - len(a):
                        key = moved
                site = sites.get(key)
                if site is None:
                    raise VerificationError(f"{path}: {rec.CHROM}:{rec.POS} alt {alt} missing from the lake as {key}")
                stored = by_key.get(key, {})
                ac = an = 0
                n_expected = 0
                for s, call in enumerate(gts):
                    if len(call) == 3 and call[0] == 0 and call[1] == 0:
                        an += 2  # diploid 0/0, the common case: implied, so nothing is stored (checked below)
                        continue
                    exp = _expected_gt(call, i)
                    alleles = [x for x in call[:-1] if x != -2]
                    an += sum(1 for x in alleles if x >= 0)
                    ac += sum(1 for x in alleles if x == i)
                    got = stored.get(names[s])
                    if exp is None:
                        if got is not None:
                            raise VerificationError(f"{path}: {key} sample #{s + 1}: lake has {got['gt']}, VCF 0/0")
                        continue
                    n_expected += 1
                    if got is None or (got["gt"], got["ploidy"], got["called"], got["alt_count"]) != exp:
                        raise VerificationError(
                            f"{path}: {key} sample #{s + 1}: VCF {exp[0]}, lake {got['gt'] if got else 'nothing'}"
                        )
                    for name, arr, col in (("GQ", gq, 0), ("DP", dp, 0)):
                        if arr is not None:
                            v = int(arr[s][col]) if arr[s][col] == arr[s][col] else None
                            v = None if v is not None and v < -2147483646 else v
                            if got[name.lower()] != v:
                                raise VerificationError(f"{path}: {key} sample #{s + 1}: {name} {v} != {got[name.lower()]}")
                    if ad is not None and ad.shape[1] > i:
                        vr, va = int(ad[s][0]), int(ad[s][i])
                        vr2 = None if vr < -2147483646 else vr
                        va2 = None if va < -2147483646 else va
                        if (got["ad_ref"], got["ad_alt"]) != (vr2, va2):
                            raise VerificationError(f"{path}: {key} sample #{s + 1}: AD differs")
                if len(stored) != n_expected:  # every expected call was found: the rest are calls the VCF lacks
                    raise VerificationError(f"{path}: {key}: lake has {len(stored)} calls, VCF {n_expected} "
                                            "(the others are diploid 0/0 in the VCF)")
                if (site["ac"], site["an"]) != (ac, an):
                    raise VerificationError(f"{path}: {key}: AC/AN lake {site['ac']}/{site['an']}, VCF {ac}/{an}")
                seen += 1
        vcf.close()
        if seen != len(sites):
            raise VerificationError(f"{path}: lake has {len(sites)} variants for the file, VCF {seen}")
        checked += seen
    return checked
