"""ClinVar VCFs: NCBI's format (CLNSIG, CLNREVSTAT, CLNDN, ALLELEID; ID = VariationID; old releases with
CLNALLE and numeric CLNSIG codes) and the MacArthur-lab tab-derived format (CLINICAL_SIGNIFICANCE,
REVIEW_STATUS, ALL_TRAITS, GOLD_STARS, MEASURESET_ID; text with `..` for `, ` and `_` for spaces).

Values are read from the raw INFO text, so keys the header does not declare work. Stars follow ClinVar's
documented review-status mapping (https://www.ncbi.nlm.nih.gov/clinvar/docs/review_status/):
practice guideline 4; reviewed by expert panel 3; criteria provided, multiple submitters, no conflicts 2;
criteria provided, single submitter 1; criteria provided, conflicting classifications (interpretations) 1;
no assertion criteria provided, no classification provided, no classification for the single variant,
no classifications from unflagged records 0.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa

STARS = {
    "practice guideline": 4,
    "reviewed by expert panel": 3,
    "criteria provided, multiple submitters, no conflicts": 2,
    "criteria provided, multiple submitters": 2,
    "criteria provided, single submitter": 1,
    "criteria provided, conflicting classifications": 1,
    "criteria provided, conflicting interpretations": 1,
    "no assertion criteria provided": 0,
    "no assertion provided": 0,
    "no classification provided": 0,
    "no assertion for the individual variant": 0,
    "no classification for the single variant": 0,
    "no classification for the individual variant": 0,
    "no classifications from unflagged records": 0,
}
# Old NCBI ClinVar VCFs (before 2017): numeric CLNSIG codes and short CLNREVSTAT words.
_OLD_SIG = {
    "0": "Uncertain significance", "1": "not provided", "2": "Benign", "3": "Likely benign",
    "4": "Likely pathogenic", "5": "Pathogenic", "6": "drug response", "7": "histocompatibility", "255": "other",
}
_OLD_REVSTAT = {
    "guideline": "practice guideline", "exp": "reviewed by expert panel",
    "mult": "criteria provided, multiple submitters, no conflicts", "single": "criteria provided, single submitter",
    "conf": "criteria provided, conflicting interpretations", "no_criteria": "no assertion criteria provided",
    "not": "no assertion provided",
}

COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("clinvar_significance", pa.string()),
    ("clinvar_class", pa.list_(pa.string())),
    ("clinvar_review_status", pa.string()),
    ("clinvar_stars", pa.int8()),
    ("clinvar_conditions", pa.list_(pa.string())),
    ("clinvar_variation_id", pa.string()),
    ("clinvar_allele_id", pa.string()),
)


@lru_cache(maxsize=65536)
def _text(v: str, macarthur: bool) -> str:
    if macarthur:
        v = v.replace("..", ", ")
    return v.replace("_", " ").replace(" ,", ",").strip()


@lru_cache(maxsize=4096)
def review_status(raw: str | None, macarthur: bool = False) -> str | None:
    """ClinVar review status in ClinVar's words (`criteria provided, single submitter`)."""
    if not raw or raw == ".":
        return None
    if raw in _OLD_REVSTAT:
        return _OLD_REVSTAT[raw]
    text = _text(raw.replace(",_", ", ").replace(",", ", "), macarthur)
    return " ".join(text.replace(" ,", ",").split()).replace(",,", ",")


def stars(status: str | None) -> int | None:
    if status is None:
        return None
    return STARS.get(status.lower())


def significance_classes(sig: str | None) -> list[str]:
    """Normalised classes of a significance text, for filtering: `Pathogenic/Likely pathogenic` ->
    [pathogenic, likely_pathogenic]; `Conflicting classifications of pathogenicity` -> [conflicting];
    `Uncertain significance` -> [uncertain]; others lower case with `_` (risk_factor, drug_response, ...)."""
    return list(_classes(sig))


@lru_cache(maxsize=4096)
def _classes(sig: str | None) -> tuple[str, ...]:
    if not sig:
        return ()
    out: list[str] = []
    for part in sig.replace("|", "/").replace(";", "/").split("/"):
        for tok in part.split(","):
            t = " ".join(tok.strip().lower().split())
            if not t:
                continue
            if t.startswith("conflicting"):
                t = "conflicting"
            elif t == "uncertain significance":
                t = "uncertain"
            t = t.replace(" ", "_")
            if t not in out:
                out.append(t)
    return tuple(out)


def conditions(raw: str | None, macarthur: bool) -> list[str] | None:
    """Distinct condition names (case-insensitive), `_` shown as spaces; None if there are none."""
    found = _conditions(raw, macarthur)
    return list(found) if found else None


@lru_cache(maxsize=65536)
def _conditions(raw: str | None, macarthur: bool) -> tuple[str, ...]:
    if not raw or raw == ".":
        return ()
    out: list[str] = []
    seen: set[str] = set()
    for item in raw.split("|"):
        t = _text(item, macarthur)
        if t and t != "." and t.lower() not in seen:
            seen.add(t.lower())
            out.append(t)
    return tuple(out)


def _pick(value: str | None, slot: int | None) -> str | None:
    """One allele's entry of a comma-separated per-allele list (old CLNALLE-style records)."""
    if value is None:
        return None
    if slot is None:
        return value
    parts = value.split(",")
    return parts[slot] if slot < len(parts) else None


@lru_cache(maxsize=65536)
def _ncbi_core(raw_sig: str | None, raw_rev: str | None, raw_cond: str | None) -> tuple[Any, ...]:
    if raw_sig and all(p.isdigit() for p in raw_sig.replace("|", ",").split(",")):
        sig: str | None = "|".join(_OLD_SIG.get(p, p) for p in raw_sig.split("|"))
    else:
        sig = _text(raw_sig, False) if raw_sig else None
    status = review_status(raw_rev)
    return (sig, _classes(sig), status, stars(status), _conditions(raw_cond, False))


@lru_cache(maxsize=65536)
def _macarthur_core(raw_sig: str | None, raw_rev: str | None, raw_cond: str | None,
                    gold: str | None) -> tuple[Any, ...]:
    sig = _text(raw_sig, True) if raw_sig else None
    status = review_status(raw_rev, macarthur=True)
    n_stars = int(gold) if gold and gold.isdigit() else stars(status)
    return (sig, _classes(sig), status, n_stars, _conditions(raw_cond, True))


class ClinvarExtractor:
    """Per-allele ClinVar values from one record's INFO (NCBI or MacArthur format, detected per record)."""

    columns = COLUMNS
    info_keys = ("CLNSIG", "CLNREVSTAT", "CLNDN", "CLNDBN", "CLNALLE", "ALLELEID", "CLINICAL_SIGNIFICANCE",
                 "REVIEW_STATUS", "ALL_TRAITS", "GOLD_STARS", "MEASURESET_ID", "ALLELE_ID")

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        if "CLINICAL_SIGNIFICANCE" in info or "MEASURESET_ID" in info:
            return self._macarthur(info)
        slot: int | None = None
        if "CLNALLE" in info:  # old NCBI format: values listed per allele index named in CLNALLE
            idx = info["CLNALLE"].split(",")
            if str(alt_index) not in idx:
                return None
            slot = idx.index(str(alt_index))
        elif n_alts > 1 and len(info.get("CLNSIG", "").split(",")) == n_alts:
            slot = alt_index - 1
        raw_sig = _pick(info.get("CLNSIG"), slot)  # absent for records with only somatic classifications
        core = _ncbi_core(raw_sig, _pick(info.get("CLNREVSTAT"), slot),
                          _pick(info.get("CLNDN") or info.get("CLNDBN"), slot))
        vid = cols[2] if cols[2].isdigit() else None
        return (core[0], list(core[1]), core[2], core[3], list(core[4]) or None, vid, info.get("ALLELEID"))

    def columns_batch(self, ids: list[str | None], info: dict[str, list[str | None]], alt_index: list[int],
                      n_alts: list[int]) -> tuple[list[int], list[list[Any]]]:
        """`values` for many matched alleles at once, as (kept row numbers, one list per column): records with
        one ALT share cached text transforms (ClinVar repeats the same texts on thousands of records)."""
        g = info.get
        none: list[str | None] = [None] * len(ids)
        sig, rev, dn, dbn, alle = (g(k) or none for k in ("CLNSIG", "CLNREVSTAT", "CLNDN", "CLNDBN", "CLNALLE"))
        aid, csig, rstat, traits, gold, msid, aid2 = (g(k) or none for k in (
            "ALLELEID", "CLINICAL_SIGNIFICANCE", "REVIEW_STATUS", "ALL_TRAITS", "GOLD_STARS", "MEASURESET_ID",
            "ALLELE_ID"))
        rows: list[int] = []
        cols: list[list[Any]] = [[] for _ in COLUMNS]
        c_sig, c_cls, c_rev, c_stars, c_cond, c_vid, c_aid = cols
        for i, vid in enumerate(ids):
            if csig[i] is not None or msid[i] is not None:
                core = _macarthur_core(csig[i], rstat[i], traits[i], gold[i])
                v, a = msid[i], aid2[i]
            elif alle[i] is None and n_alts[i] == 1:
                core = _ncbi_core(sig[i], rev[i], dn[i] or dbn[i])
                v, a = (vid if vid is not None and vid.isdigit() else None), aid[i]
            else:  # old multi-allelic NCBI records: per-allele lists
                rec: dict[str, str] = {}
                for k, col in info.items():
                    value = col[i]
                    if value is not None:
                        rec[k] = value
                full = self.values(["", "", vid or "."], rec, alt_index[i], n_alts[i])
                if full is None:
                    continue
                rows.append(i)
                for j, x in enumerate(full):
                    cols[j].append(x)
                continue
            rows.append(i)
            c_sig.append(core[0])
            c_cls.append(core[1])
            c_rev.append(core[2])
            c_stars.append(core[3])
            c_cond.append(core[4] or None)
            c_vid.append(v)
            c_aid.append(a)
        return rows, cols

    def _macarthur(self, info: dict[str, str]) -> tuple[Any, ...]:
        core = _macarthur_core(info.get("CLINICAL_SIGNIFICANCE"), info.get("REVIEW_STATUS"), info.get("ALL_TRAITS"),
                               info.get("GOLD_STARS"))
        return (core[0], list(core[1]), core[2], core[3], list(core[4]) or None, info.get("MEASURESET_ID"),
                info.get("ALLELE_ID"))

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        """Two ClinVar records normalise to one variant: join their texts, keep the higher star count."""

        def join(a: Any, b: Any) -> Any:
            if a is None or a == b:
                return b if a is None else a
            return "|".join(dict.fromkeys([*str(a).split("|"), *str(b).split("|")]))

        sig = join(old[0], new[0])
        conds = list(dict.fromkeys([*(old[4] or []), *(new[4] or [])])) or None
        best = old if (old[3] or -1) >= (new[3] or -1) else new
        return (sig, significance_classes(sig), best[2], best[3], conds, join(old[5], new[5]), join(old[6], new[6]))
