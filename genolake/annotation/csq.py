"""Consequence strings: VEP `CSQ`, SnpEff `ANN` and bcftools/csq `BCSQ`, parsed per allele.

A record's annotation lists entries (comma-separated) of `|`-separated fields in the order the header's
INFO Description gives (``Format: Allele|Consequence|...`` for VEP, ``'Allele | Annotation | ...'`` for
SnpEff). The lake stores the raw value of each ingested record (``variant_files.csq`` / ``.ann``) but not
the header, so the field order comes from ``--csq-header VCF`` (the original VCFs; each one applies to the
ingested file with the same checksum, a VCF that is not in the lake applies to every file) or else from
the defaults below: SnpEff's ANN order is fixed by its specification; for VEP the default is VEP's
default ``--vcf`` field list (:data:`VEP_DEFAULT_FIELDS`). A default that does not fit the data (the
`Consequence` column holds no known consequence terms) is refused rather than guessed.

Entries are assigned to ALT alleles by ``ALLELE_NUM`` when present, else by ``Allele``: VEP writes an
indel allele without the first base when every allele of the record (REF and ALTs, ignoring `*`) shares
it, and a deletion's allele as `-` (:func:`vep_allele_strings`); SnpEff writes the ALT as it is. Without
either field every entry applies to every allele of the record.

The most severe consequence uses VEP's order (:data:`SEVERITY`, most severe first: the `rank` of each term in
ensembl-variation's ``Bio::EnsEMBL::Variation::Utils::Constants``, newer splice terms placed as on
https://www.ensembl.org/info/genome/variation/prediction/predicted_data.html), with VEP's IMPACT per term. SnpEff and bcftools/csq
terms are ranked by their Ensembl equivalent; compound terms (`a&b`) rank by their most severe part.
Ties go to the entry flagged CANONICAL=YES, then to the first entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SEVERITY: tuple[tuple[str, str], ...] = (
    ("transcript_ablation", "HIGH"),
    ("splice_acceptor_variant", "HIGH"),
    ("splice_donor_variant", "HIGH"),
    ("stop_gained", "HIGH"),
    ("frameshift_variant", "HIGH"),
    ("stop_lost", "HIGH"),
    ("start_lost", "HIGH"),
    ("transcript_amplification", "HIGH"),
    ("inframe_insertion", "MODERATE"),
    ("inframe_deletion", "MODERATE"),
    ("missense_variant", "MODERATE"),
    ("protein_altering_variant", "MODERATE"),
    ("splice_donor_5th_base_variant", "LOW"),
    ("splice_region_variant", "LOW"),
    ("splice_donor_region_variant", "LOW"),
    ("splice_polypyrimidine_tract_variant", "LOW"),
    ("incomplete_terminal_codon_variant", "LOW"),
    ("start_retained_variant", "LOW"),
    ("stop_retained_variant", "LOW"),
    ("synonymous_variant", "LOW"),
    ("coding_sequence_variant", "MODIFIER"),
    ("mature_miRNA_variant", "MODIFIER"),
    ("5_prime_UTR_variant", "MODIFIER"),
    ("3_prime_UTR_variant", "MODIFIER"),
    ("non_coding_transcript_exon_variant", "MODIFIER"),
    ("intron_variant", "MODIFIER"),
    ("NMD_transcript_variant", "MODIFIER"),
    ("non_coding_transcript_variant", "MODIFIER"),
    ("coding_transcript_variant", "MODIFIER"),
    ("upstream_gene_variant", "MODIFIER"),
    ("downstream_gene_variant", "MODIFIER"),
    ("TFBS_ablation", "MODERATE"),
    ("TFBS_amplification", "MODIFIER"),
    ("TF_binding_site_variant", "MODIFIER"),
    ("regulatory_region_ablation", "MODERATE"),
    ("regulatory_region_amplification", "MODIFIER"),
    ("regulatory_region_variant", "MODIFIER"),
    ("feature_elongation", "MODIFIER"),
    ("feature_truncation", "MODIFIER"),
    ("intergenic_variant", "MODIFIER"),
    ("sequence_variant", "MODIFIER"),
)
_RANK = {term.lower(): i for i, (term, _) in enumerate(SEVERITY)}
_IMPACT = {term.lower(): imp for term, imp in SEVERITY}
IMPACTS = ("HIGH", "MODERATE", "LOW", "MODIFIER")

# SnpEff and bcftools/csq terms -> the Ensembl term of the same severity.
ALIASES = {
    # SnpEff
    "exon_loss_variant": "frameshift_variant",
    "gene_fusion": "transcript_ablation",
    "bidirectional_gene_fusion": "transcript_ablation",
    "chromosome_number_variation": "transcript_ablation",
    "rare_amino_acid_variant": "missense_variant",
    "conservative_inframe_insertion": "inframe_insertion",
    "disruptive_inframe_insertion": "inframe_insertion",
    "conservative_inframe_deletion": "inframe_deletion",
    "disruptive_inframe_deletion": "inframe_deletion",
    "splice_branch_variant": "splice_region_variant",
    "initiator_codon_variant": "start_retained_variant",
    "non_canonical_start_codon": "start_retained_variant",
    "5_prime_utr_premature_start_codon_gain_variant": "5_prime_UTR_variant",
    "5_prime_utr_truncation": "5_prime_UTR_variant",
    "3_prime_utr_truncation": "3_prime_UTR_variant",
    "exon_variant": "non_coding_transcript_exon_variant",
    "non_coding_exon_variant": "non_coding_transcript_exon_variant",
    "mirna": "mature_miRNA_variant",
    "intragenic_variant": "non_coding_transcript_variant",
    "transcript_variant": "coding_transcript_variant",
    "structural_interaction_variant": "coding_sequence_variant",
    "protein_protein_contact": "coding_sequence_variant",
    "sequence_feature": "sequence_variant",
    "intergenic_region": "intergenic_variant",
    # older VEP releases
    "nc_transcript_variant": "non_coding_transcript_variant",
    "within_non_coding_gene": "non_coding_transcript_variant",
    "within_mature_mirna": "mature_miRNA_variant",
    "non_coding_transcript_exon": "non_coding_transcript_exon_variant",
    "conserved_intergenic_variant": "intergenic_variant",
    "conserved_intron_variant": "intron_variant",
    # bcftools/csq
    "missense": "missense_variant",
    "synonymous": "synonymous_variant",
    "stop_gained": "stop_gained",
    "frameshift": "frameshift_variant",
    "inframe_altering": "protein_altering_variant",
    "splice_acceptor": "splice_acceptor_variant",
    "splice_donor": "splice_donor_variant",
    "splice_region": "splice_region_variant",
    "start_retained": "start_retained_variant",
    "stop_retained": "stop_retained_variant",
    "coding_sequence": "coding_sequence_variant",
    "non_coding": "non_coding_transcript_variant",
    "intron": "intron_variant",
    "5_prime_utr": "5_prime_UTR_variant",
    "3_prime_utr": "3_prime_UTR_variant",
    "nmd_transcript": "NMD_transcript_variant",
    "intergenic": "intergenic_variant",
    "upstream": "upstream_gene_variant",
    "downstream": "downstream_gene_variant",
}
_UNKNOWN_RANK = len(SEVERITY)

# The field list VEP writes with `--vcf` and no field options (used when no header is available).
VEP_DEFAULT_FIELDS = (
    "Allele", "Consequence", "IMPACT", "SYMBOL", "Gene", "Feature_type", "Feature", "BIOTYPE", "EXON", "INTRON",
    "HGVSc", "HGVSp", "cDNA_position", "CDS_position", "Protein_position", "Amino_acids", "Codons",
    "Existing_variation", "DISTANCE", "STRAND", "FLAGS", "SYMBOL_SOURCE", "HGNC_ID",
)
# SnpEff's ANN fields (fixed by the VCF annotation format specification).
ANN_FIELDS = (
    "Allele", "Annotation", "Annotation_Impact", "Gene_Name", "Gene_ID", "Feature_Type", "Feature_ID",
    "Transcript_BioType", "Rank", "HGVS.c", "HGVS.p", "cDNA.pos / cDNA.length", "CDS.pos / CDS.length",
    "AA.pos / AA.length", "Distance", "ERRORS / WARNINGS / INFO",
)
BCSQ_FIELDS = ("Consequence", "gene", "transcript", "biotype", "strand", "amino_acid_change", "dna_change")

# Output roles -> field names that fill them, first found wins (VEP, SnpEff, bcftools/csq).
ROLES = {
    "allele": ("Allele",),
    "allele_num": ("ALLELE_NUM",),
    "consequence": ("Consequence", "Annotation"),
    "impact": ("IMPACT", "Annotation_Impact"),
    "gene": ("SYMBOL", "Gene_Name", "gene", "HGNC", "Gene"),
    "gene_id": ("Gene", "Gene_ID"),
    "transcript": ("Feature", "Feature_ID", "transcript"),
    "biotype": ("BIOTYPE", "Transcript_BioType", "biotype"),
    "hgvsc": ("HGVSc", "HGVS.c"),
    "hgvsp": ("HGVSp", "HGVS.p"),
    "canonical": ("CANONICAL",),
}


def term_rank(term: str) -> int:
    """Severity rank of one consequence term (0 = most severe; unknown terms rank last)."""
    t = term.strip().lower()
    if t in _RANK:
        return _RANK[t]
    alias = ALIASES.get(t)
    if alias is not None:
        return _RANK[alias.lower()]
    for key, target in ALIASES.items():  # bcftools-style substring fallback (e.g. `*missense`)
        if len(key) > 4 and key in t:
            return _RANK[target.lower()]
    return _UNKNOWN_RANK


def term_impact(term: str) -> str | None:
    r = term_rank(term)
    return SEVERITY[r][1] if r < _UNKNOWN_RANK else None


def is_known_term(term: str) -> bool:
    return all(term_rank(t) < _UNKNOWN_RANK for t in term.split("&") if t)


_FORMAT = re.compile(r"Format:\s*'?([^'\"]+)'?", re.I)
_SNPEFF = re.compile(r"'([^']+)'")


def fields_from_header(line: str) -> tuple[str, ...] | None:
    """Field names of a `##INFO=<ID=CSQ|ANN|BCSQ,...,Description="...">` line, or None."""
    m = re.search(r'Description="([^"]*)"', line)
    if not m:
        return None
    desc = m.group(1)
    f = _FORMAT.search(desc)
    text = f.group(1) if f else None
    if text is None:
        s = _SNPEFF.search(desc)
        text = s.group(1) if s else None
    if text is None or "|" not in text:
        return None
    return tuple(x.strip() for x in text.strip().strip("'").split("|"))


def header_fields(header_lines: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """{INFO key: field names} for the consequence annotations a VCF header declares."""
    out: dict[str, tuple[str, ...]] = {}
    for line in header_lines:
        for key in ("CSQ", "ANN", "BCSQ"):
            if line.startswith(f"##INFO=<ID={key},"):
                fields = fields_from_header(line)
                if fields:
                    out[key] = fields
    return out


def vep_allele_strings(ref: str, alts: list[str]) -> list[str]:
    """The `Allele` VEP writes for each ALT of a record (VEP's VCF parser, Bio::EnsEMBL::VEP::Parser::VCF).

    An indel record (some allele differs in length from REF) loses its first base when REF and all ALTs
    other than `*` share it; an allele left empty is written `-`. A biallelic record is trimmed when its
    two alleles share the first base. SNVs and MNVs are written as they are.
    """
    is_indel = any(len(a) != len(ref) or a[:1] in ("D", "I") for a in alts)
    if not is_indel:
        return list(alts)
    if len(alts) > 1:
        firsts = {a[:1] for a in [ref, *alts] if "*" not in a}
        if len(firsts) != 1:
            return list(alts)
        return [a if "*" in a else (a[1:] or "-") for a in alts]
    a = alts[0]
    if ref[:1] == a[:1]:
        return [a[1:] or "-"]
    return [a]


def minimal_allele(ref: str, alt: str) -> str:
    """VEP `--minimal` style allele: common prefix and suffix removed entirely (`-` if nothing is left)."""
    if alt.startswith("<") or alt == "*":
        return alt
    i = 0
    while i < len(ref) and i < len(alt) and ref[i] == alt[i]:
        i += 1
    r, a = ref[i:], alt[i:]
    while r and a and r[-1] == a[-1]:
        r, a = r[:-1], a[:-1]
    return a or "-"


@dataclass(frozen=True)
class Layout:
    """Where the roles are in one annotation's fields."""

    key: str  # CSQ, ANN or BCSQ
    fields: tuple[str, ...]
    index: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, key: str, fields: tuple[str, ...]) -> Layout:
        pos = {name: i for i, name in enumerate(fields)}
        idx = []
        for role, names in ROLES.items():
            for name in names:
                if name in pos:
                    idx.append((role, pos[name]))
                    break
        return cls(key, fields, tuple(idx))

    def role(self, role: str) -> int | None:
        for r, i in self.index:
            if r == role:
                return i
        return None


def split_entries(value: str) -> list[list[str]]:
    return [e.split("|") for e in value.split(",") if e]


def parse_entries(value: str, layout: Layout) -> list[dict[str, str]]:
    """Every entry as {field name: value} (missing trailing fields are empty), as split-vep prints them."""
    out = []
    n = len(layout.fields)
    for parts in split_entries(value):
        parts = parts + [""] * (n - len(parts))
        out.append(dict(zip(layout.fields, parts[:n], strict=True)))
    return out


def entries_by_allele(value: str, layout: Layout, ref: str, alts: list[str]) -> dict[int, list[list[str]]]:
    """Entries of one record assigned to 1-based ALT indexes (see the module doc for the rules)."""
    entries = split_entries(value)
    n_alt = len(alts)
    out: dict[int, list[list[str]]] = {i: [] for i in range(1, n_alt + 1)}
    i_num, i_allele = layout.role("allele_num"), layout.role("allele")
    if i_num is None and i_allele is None:
        for i in out:
            out[i] = list(entries)
        return out
    ref_u = ref.upper()
    alts_u = [a.upper() for a in alts]
    raw = {a: k for k, a in enumerate(alts_u, start=1)}
    vep = {a: k for k, a in enumerate(vep_allele_strings(ref_u, alts_u), start=1)}
    mini = {minimal_allele(ref_u, a): k for k, a in enumerate(alts_u, start=1)}
    order = (raw, vep, mini) if layout.key == "ANN" else (vep, raw, mini)
    for e in entries:
        k: int | None = None
        if i_num is not None and i_num < len(e) and e[i_num].isdigit():
            k = int(e[i_num])
        elif i_allele is not None and i_allele < len(e):
            a = e[i_allele].upper()
            if layout.key == "ANN" and "-" in a and a not in raw and a.split("-")[0] in raw:
                a = a.split("-")[0]  # SnpEff cancer mode: ALT-REF
            for table in order:
                if a in table:
                    k = table[a]
                    break
        if k is not None and k in out:
            out[k].append(e)
    return out


def _get(e: list[str], i: int | None) -> str | None:
    if i is None or i >= len(e):
        return None
    v = e[i]
    return v if v not in ("", ".") else None


def entry_rank(e: list[str], layout: Layout) -> tuple[int, str]:
    """(rank, most severe term) of one entry."""
    cons = _get(e, layout.role("consequence")) or ""
    best = (_UNKNOWN_RANK, cons)
    for t in cons.split("&"):
        if t:
            r = term_rank(t)
            if r < best[0]:
                best = (r, t)
    return best


SUMMARY_FIELDS = ("consequence", "consequence_terms", "impact", "csq_gene", "csq_gene_id", "csq_transcript",
                  "csq_biotype", "hgvsc", "hgvsp")


def summarise(entries: list[list[str]], layout: Layout) -> dict[str, Any] | None:
    """The most severe consequence of an allele's entries and its gene, transcript, HGVS and impact."""
    if not entries:
        return None
    i_canon = layout.role("canonical")
    best: tuple[int, int, int] | None = None
    best_e: list[str] = []
    best_term = ""
    terms: dict[str, int] = {}
    for n, e in enumerate(entries):
        rank, term = entry_rank(e, layout)
        for t in (_get(e, layout.role("consequence")) or "").split("&"):
            if t and t not in terms:
                terms[t] = term_rank(t)
        canon = 0 if (_get(e, i_canon) or "").upper() == "YES" else 1
        key = (rank, canon, n)
        if best is None or key < best:
            best, best_e, best_term = key, e, term
    impact = _get(best_e, layout.role("impact")) or (term_impact(best_term) if best_term else None)
    return {
        "consequence": best_term or None,
        "consequence_terms": sorted(terms, key=lambda t: (terms[t], t)),
        "impact": impact,
        "csq_gene": _get(best_e, layout.role("gene")),
        "csq_gene_id": _get(best_e, layout.role("gene_id")),
        "csq_transcript": _get(best_e, layout.role("transcript")),
        "csq_biotype": _get(best_e, layout.role("biotype")),
        "hgvsc": _get(best_e, layout.role("hgvsc")),
        "hgvsp": _get(best_e, layout.role("hgvsp")),
    }


_ALLELE = re.compile(r"^([ACGTNacgtn]+|-|\*|<[^>]+>|.*[\[\]].*)$")


def check_layout(samples: list[str], layout: Layout) -> float:
    """Share of sampled entries that fit the layout: a known consequence term in the consequence field and,
    if the layout has one, an allele in the Allele field (used to refuse a default that does not fit)."""
    i = layout.role("consequence")
    if i is None:
        return 0.0
    j = layout.role("allele")
    n = ok = 0
    for value in samples:
        for e in split_entries(value):
            n += 1
            v = _get(e, i)
            if v is None or not is_known_term(v):
                continue
            if j is not None and not _ALLELE.match(e[j] if j < len(e) else ""):
                continue
            ok += 1
    return ok / n if n else 1.0
