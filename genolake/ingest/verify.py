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


WINDOW_BP = 100_000  # first window of VCF positions whose lake rows are read together
WINDOW_ROWS = 100_000  # windows grow or shrink to hold about this many calls (memory bound: ~100 MB of rows)
_MISSING_MAX = -2147483647  # htslib's int32 missing and vector-end markers are <= this


def _fmt(v: Any) -> int | None:
    """A FORMAT integer as the lake stores it: missing, vector-end and negative values are NULL (issue 15.7)."""
    if v != v:  # NaN (a float field)
        return None
    x = int(v)
    return None if x < 0 else x


class _LakeWindow:
    """The lake rows of one file for a window of positions on one contig, read when the VCF reaches it.

    A record at POS p has its lake key at p - shift .. p + longest REF (trimming moves right, left-alignment
    moves left by at most ``shift``, the file's largest), so each window is read with those margins."""

    def __init__(self, lk: Any, fid: str, institution: str, *, shift: int, ref_len: int) -> None:
        self.lk, self.fid, self.institution = lk, fid, institution
        self.shift, self.ref_len = shift, ref_len
        self.contig: str | None = None
        self.start = self.end = -1  # VCF positions covered
        self.width = WINDOW_BP
        self.sites: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        self.by_orig: dict[tuple[str, int, str, str], tuple[str, int, str, str]] = {}
        self.calls: dict[tuple[str, int, str, str], dict[str, dict[str, Any]]] = {}

    def covers(self, contig: str, pos: int) -> bool:
        return contig == self.contig and self.start <= pos < self.end

    def load(self, contig: str, pos: int, path: Any) -> None:
        eng = self.lk.engine
        self.contig, self.start, self.end = contig, pos, pos + self.width
        lo, hi = pos - self.shift, self.end + self.ref_len
        self.sites, self.by_orig, self.calls = {}, {}, {}
        src = eng.scan("variants", contig=contig, institution=self.institution, start=lo, end=hi)
        for r in eng.query(f"SELECT * FROM {src} AS v WHERE file_id = $f AND contig = $c "
                           "AND (pos BETWEEN $lo AND $hi OR orig_pos BETWEEN $lo AND $hi)",
                           {"f": self.fid, "c": contig, "lo": lo, "hi": hi}).to_pylist():
            key = (r["contig"], r["pos"], r["ref"], r["alt"])
            if key in self.sites:
                raise VerificationError(f"{path}: {key} is stored twice")
            self.sites[key] = r
            self.by_orig[(r["contig"], r["orig_pos"], r["orig_ref"], r["orig_alt"])] = key
        src = eng.scan("calls", contig=contig, institution=self.institution, start=lo, end=hi,
                       columns=["file_id", "contig", "pos", "ref", "alt", "sample_id", "gt", "ploidy", "called",
                                "alt_count", "gq", "dp", "ad_ref", "ad_alt"])
        for c in eng.query(f"SELECT * FROM {src} AS c WHERE file_id = $f AND contig = $c AND pos BETWEEN $lo AND $hi",
                           {"f": self.fid, "c": contig, "lo": lo, "hi": hi}).to_pylist():
            per_site = self.calls.setdefault((c["contig"], c["pos"], c["ref"], c["alt"]), {})
            if c["sample_id"] in per_site:  # a doubled row would collapse in the dict: refuse it here
                raise VerificationError(f"{path}: {c['contig']}:{c['pos']} {c['ref']}>{c['alt']}: a call is stored twice")
            per_site[c["sample_id"]] = c
        rows = sum(len(v) for v in self.calls.values())
        if rows < WINDOW_ROWS // 4:
            self.width = min(self.width * 4, 64_000_000)
        elif rows > WINDOW_ROWS:
            self.width = max(self.width // 4, 1_000)


def verify_files(lake: Path | str, institution: str, paths: list[Path | str]) -> int:
    """Raise VerificationError at the first difference; return the number of split records checked.

    Streams: the VCF is read record by record and the lake's rows of the file are read per window of
    :data:`WINDOW_BP` positions, so memory is bounded by one window, not the file."""
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
        owner = lk.engine.query("SELECT institution, left_aligned FROM files WHERE file_id = ?", [fid]).to_pylist()
        if not owner:
            raise VerificationError(f"{path}: not in the lake (file {fid})")
        if owner[0]["institution"] != institution:
            raise VerificationError(f"{path}: in the lake as institution {owner[0]['institution']!r}, not {institution!r}")
        src_v = lk.engine.scan("variants", institution=institution)
        n_sites, shift, ref_len = lk.engine.rows(
            f"SELECT count(*), coalesce(max(orig_pos - pos), 0), coalesce(max(length(orig_ref)), 1) "
            f"FROM {src_v} AS v WHERE file_id = ?", [fid])[0]
        window = _LakeWindow(lk, fid, institution, shift=max(0, int(shift)), ref_len=int(ref_len))
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
            contig = to_style(rec.CHROM, style)
            if not window.covers(contig, rec.POS):
                window.load(contig, rec.POS, path)
            gts = rec.genotypes
            gq = rec.format("GQ") if "GQ" in fmt_fields else None
            dp = rec.format("DP") if "DP" in fmt_fields else None
            ad = rec.format("AD") if "AD" in fmt_fields else None
            if ad is not None and ad.shape[1] != len(alts) + 1:
                ad = None  # the wrong number of values for the record: not stored (issue 15.7)
            for i, alt in enumerate(alts, start=1):
                ref = rec.REF.upper()
                pos, r, a = (rec.POS, ref, alt) if is_symbolic(alt) else trim(rec.POS, ref, alt)
                key = (contig, pos, r, a)
                if left_aligned and len(r) != len(a):
                    moved = window.by_orig.get((contig, rec.POS, rec.REF, rec.ALT[i - 1]))
                    if moved is not None and moved[1] <= pos and len(moved[2]) - len(moved[3]) == len(r) - len(a):
                        key = moved
                site = window.sites.get(key)
                if site is None:
                    raise VerificationError(f"{path}: {rec.CHROM}:{rec.POS} alt {alt} missing from the lake as {key}")
                stored = window.calls.get(key, {})
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
                    for name, arr in (("GQ", gq), ("DP", dp)):
                        if arr is not None:
                            v = _fmt(arr[s][0])
                            if got[name.lower()] != v:
                                raise VerificationError(f"{path}: {key} sample #{s + 1}: {name} {v} != {got[name.lower()]}")
                    want_ad = (_fmt(ad[s][0]), _fmt(ad[s][i])) if ad is not None else (None, None)
                    if (got["ad_ref"], got["ad_alt"]) != want_ad:
                        raise VerificationError(f"{path}: {key} sample #{s + 1}: AD differs")
                if len(stored) != n_expected:  # every expected call was found: the rest are calls the VCF lacks
                    raise VerificationError(f"{path}: {key}: lake has {len(stored)} calls, VCF {n_expected} "
                                            "(the others are diploid 0/0 in the VCF)")
                if (site["ac"], site["an"]) != (ac, an):
                    raise VerificationError(f"{path}: {key}: AC/AN lake {site['ac']}/{site['an']}, VCF {ac}/{an}")
                seen += 1
        vcf.close()
        if seen != n_sites:
            raise VerificationError(f"{path}: lake has {n_sites} variants for the file, VCF {seen}")
        checked += seen
    return checked
