"""The one documented schema of the lake.

Every table the lake stores, every column, its Arrow type and a one-line definition.
``docs/SCHEMA.md`` is generated from this module (``python -m genolake.schema``) and a test
checks that the two agree and that written files carry exactly these schemas.

Coordinates are 1-based and inclusive everywhere, as in VCF.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genolake.lazy import resolve_type

if TYPE_CHECKING:
    import pyarrow as pa
else:  # column types are declared as `pa.int32()` and built on first use (Column.type): see genolake.lazy
    from genolake.lazy import arrow_types as pa

# Version of the on-disk layout, recorded in genolake.json. 1: long `calls` table (one row per stored call);
# 2: dense `genotypes` table (one row per file and split allele). `genolake migrate` upgrades a lake.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Column:
    name: str
    declared: pa.DataType  # as declared below (a deferred type until pyarrow is needed): read `type`
    doc: str
    nullable: bool = False

    @property
    def type(self) -> pa.DataType:
        """The column's pyarrow type."""
        return resolve_type(self.declared)


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    # directory levels under the table folder, hive style (name=value)
    layout: tuple[str, ...] = ()
    sort_by: tuple[str, ...] = ()
    view: bool = False  # a DuckDB view computed from stored tables (documented here, never written)

    @property
    def arrow_schema(self) -> pa.Schema:
        import pyarrow

        return pyarrow.schema([pyarrow.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: pa.DataType, doc: str, nullable: bool = False) -> Column:
    return Column(name, type_, doc, nullable)


_STR = pa.string()
_KEY = (
    _c("contig", _STR, "Contig, harmonised to the lake's naming (e.g. `chr20` in a GRCh38 lake, `20` in GRCh37)."),
    _c("pos", pa.int32(), "1-based position of the normalised (split, trimmed, optionally left-aligned) allele."),
    _c("ref", _STR, "Reference allele after normalisation (upper case)."),
    _c("alt", _STR, "The one alternate allele of this row after splitting and normalisation."),
)
_INST = _c("institution", _STR, "Institution that contributed the data (`--institution`).")
_FILE = _c("file_id", _STR, "Ingested file the row came from (see `files`); a row is visible only once its file is committed.")
_SAMPLE = _c("sample_id", _STR, "Keyed pseudonym of the sample: HMAC-SHA256(lake key, institution + sample ID), 32 hex digits. Raw IDs are never stored.")

CALLS = Table(
    name="calls",
    doc=(
        "A view (not stored): one row per stored genotype of a split allele, expanded from `genotypes`. Every "
        "call that is not a diploid homozygous-reference call (het, hom-alt, haploid calls including haploid "
        "reference, missing and partly missing calls, other ploidies). Diploid 0/0 calls are implied by "
        "`samples` and `ploidy`, so allele numbers stay exact for any subset of samples. Genotypes are recoded "
        "per alt allele as `bcftools norm -m-` and Hail's `split_multi_hts` do: the row's alt is 1, every other "
        "allele is 0."
    ),
    columns=(
        _INST,
        *_KEY,
        _SAMPLE,
        _c("gt", _STR, "Recoded genotype in VCF notation for this alt (`0/1`, `1|1`, `1`, `0`, `./.`, `0/1/1`, ...)."),
        _c("ploidy", pa.int8(), "Number of alleles in the call (1 haploid, 2 diploid, ...)."),
        _c("called", pa.int8(), "Number of non-missing alleles in the call; the call's contribution to AN."),
        _c("alt_count", pa.int8(), "Copies of this alt allele in the call; the call's contribution to AC."),
        _c("phased", pa.bool_(), "True if the genotype was phased (`|`)."),
        _c("gq", pa.int32(), "FORMAT/GQ, null if absent.", True),
        _c("dp", pa.int32(), "FORMAT/DP, null if absent.", True),
        _c("ad_ref", pa.int32(), "FORMAT/AD depth of the reference allele, null if absent.", True),
        _c("ad_alt", pa.int32(), "FORMAT/AD depth of this row's alt allele, null if absent.", True),
        _FILE,
    ),
    layout=("institution", "contig"),
    sort_by=("pos", "ref", "alt", "sample_id"),
    view=True,
)

_FMT_DOC = (" of each stored call (one value per nonzero symbol of `gt`, in sample order; a value is null where the "
            "call has none; the list is null when the file has no such FORMAT field).")
GENOTYPES = Table(
    name="genotypes",
    doc=(
        "The genotype store: one row per ingested file and split allele, with a dense code per sample of the "
        "file (docs/STORAGE.md). `gt` holds one character per sample, in the file's sample-column order "
        "(`samples.column_index`): `0` is a diploid homozygous-reference call (implied: not a stored call); "
        "every other character is a stored call, see `genolake/genotypes.py` for the table of codes. Read it "
        "through the `calls` view (long, one row per stored call) or `genolake.genotypes.expand`."
    ),
    columns=(
        _INST,
        *_KEY,
        _c("gt", pa.binary(), "One 4-bit symbol per sample of the file, two per byte (first sample in the high "
           "nibble: `hex(gt)` lists the samples in order): 0 is diploid 0/0, s > 0 the code `gt_symbols[s]`."),
        _c("gt_symbols", _STR, "The codes of symbols 1, 2, ... of `gt` (one character `chr(48 + code)` each, the "
           "codes of `genolake/genotypes.py`: 1-18 diploid `./.` ... `1|1`, 19-21 haploid `.`, `0`, `1`, 22 other "
           "(text in `other_gt`))."),
        _c("other_gt", pa.list_(_STR), "Genotype texts of the `F`-coded calls, in sample order; null if none.", True),
        _c("gq", pa.list_(pa.int32()), "FORMAT/GQ" + _FMT_DOC, True),
        _c("dp", pa.list_(pa.int32()), "FORMAT/DP" + _FMT_DOC, True),
        _c("ad_ref", pa.list_(pa.int32()), "FORMAT/AD depth of the reference allele" + _FMT_DOC, True),
        _c("ad_alt", pa.list_(pa.int32()), "FORMAT/AD depth of this row's alt allele" + _FMT_DOC, True),
        _FILE,
    ),
    layout=("institution", "contig"),
    sort_by=("pos", "ref", "alt"),
)

VARIANTS = Table(
    name="variants",
    doc=(
        "Per (institution, file, split allele) site counts, computed at ingest from every sample of the file "
        "(implied 0/0 included). Sum over files for an institution; AF = AC / AN is derived, never stored."
    ),
    columns=(
        _INST,
        *_KEY,
        _c("id", _STR, "VCF ID column (rsID), null if `.`.", True),
        _c("qual", pa.float32(), "VCF QUAL, null if missing.", True),
        _c("filters", _STR, "VCF FILTER, `;`-joined (`PASS` when passed), null if `.`.", True),
        _c("ac", pa.int32(), "Alternate allele count among called alleles (haploid calls count once)."),
        _c("an", pa.int32(), "Number of called alleles (diploid 2, haploid 1, missing 0)."),
        _c("nhomalt", pa.int32(), "Diploid samples homozygous for this alt."),
        _c("nhemi", pa.int32(), "Haploid samples carrying this alt (hemizygous)."),
        _c("n_called", pa.int32(), "Samples with no missing allele."),
        _c("n_missing", pa.int32(), "Samples with at least one missing allele."),
        _c("n_samples", pa.int32(), "Samples in the file."),
        _c("orig_pos", pa.int32(), "POS of the VCF record before normalisation."),
        _c("orig_ref", _STR, "REF of the VCF record before normalisation."),
        _c("orig_alt", _STR, "This alt as written in the VCF record, before trimming/left-alignment."),
        _c("alt_index", pa.int16(), "1-based index of this alt in the record's ALT list."),
        _c("n_alleles", pa.int16(), "Alleles in the original record (REF + ALTs); > 2 means it was multi-allelic."),
        _c("csq", _STR, "Raw INFO/CSQ (VEP) of the record, null if absent.", True),
        _c("ann", _STR, "Raw INFO/ANN (SnpEff) of the record, null if absent.", True),
        _FILE,
    ),
    layout=("institution", "contig"),
    sort_by=("pos", "ref", "alt"),
)

SAMPLES = Table(
    name="samples",
    doc="One row per sample and ingested file.",
    columns=(
        _INST,
        _SAMPLE,
        _c("column_index", pa.int32(), "0-based position of the sample among the file's sample columns. Whoever holds "
           "the original file (recognised by `files.sha256`) can map these pseudonyms to its raw IDs with it (as by "
           "matching genotypes without it): see docs/SECURITY.md."),
        _FILE,
    ),
    layout=("institution",),
    sort_by=("sample_id",),
)

PLOIDY = Table(
    name="ploidy",
    doc=(
        "The ploidy each sample had on each contig of a file (the most frequent one), used to count absent "
        "sites as homozygous reference with the right ploidy (haploid chrX in males)."
    ),
    columns=(
        _INST,
        _SAMPLE,
        _c("contig", _STR, "Contig, harmonised."),
        _c("ploidy", pa.int8(), "Most frequent ploidy of the sample's calls on the contig in this file."),
        _FILE,
    ),
    layout=("institution",),
    sort_by=("contig", "sample_id"),
)

CALLABLE = Table(
    name="callable",
    doc=(
        "Callable regions of files ingested with `--callable-regions BED`: inside them a site absent from the "
        "file counts as homozygous reference for its samples."
    ),
    columns=(
        _INST,
        _c("contig", _STR, "Contig, harmonised."),
        _c("start", pa.int32(), "1-based first position of the region (BED start + 1)."),
        _c("end", pa.int32(), "1-based last position of the region, inclusive (BED end)."),
        _FILE,
    ),
    layout=("institution",),
    sort_by=("contig", "start"),
)

FILES = Table(
    name="files",
    doc=(
        "One row per ingested file: the commit record. Rows of other tables whose `file_id` is not here are "
        "invisible. The file's path and name are not stored (file names often carry sample IDs)."
    ),
    columns=(
        _c("file_id", _STR, "`f` + the first 24 hex digits of the file's SHA-256."),
        _INST,
        _c("sha256", _STR, "SHA-256 of the file's bytes."),
        _c("size_bytes", pa.int64(), "Size of the file in bytes."),
        _c("format", _STR, "`vcf`, `vcf.gz` (bgzip), `vcf.gzip` (plain gzip) or `bcf`."),
        _c("build", _STR, "Reference build (GRCh37 or GRCh38) from the header or `--build`."),
        _c("source_contig_style", _STR, "`chr` if the file named contigs with a chr prefix, else `plain`."),
        _c("contigs", pa.list_(_STR), "Harmonised contigs with at least one record."),
        _c("n_records", pa.int64(), "VCF records read."),
        _c("n_variants", pa.int64(), "Split, normalised allele rows written to `variants`."),
        _c("n_skipped", pa.int64(), "Records without an alternate allele (ALT `.`), skipped."),
        _c("n_samples", pa.int32(), "Samples in the file."),
        _c("n_calls", pa.int64(), "Rows written to `calls`."),
        _c("absent_mode", _STR, "How a site absent from this file counts: `no_call`, `ref` (`--absent-as-ref`) or `callable` (`--callable-regions`)."),
        _c("left_aligned", pa.bool_(), "True if indels were left-aligned against `--reference`."),
        _c("reference_md5", _STR, "MD5 of the FASTA index used for left-alignment, null without `--reference`.", True),
        _c("ingested_at", pa.timestamp("us", tz="UTC"), "When the file was committed."),
        _c("genolake_version", _STR, "genolake version that wrote the file."),
    ),
    layout=("institution",),
)


# ------------------------------------------------------------------------------ tables of later stages
# Declared here with the ingest tables (one registry, whatever modules a process imports); each is written only
# by its stage (`genolake phenotypes load`, `genolake aggregate`, `genolake annotate`) and a lake has it only
# after that stage's first commit.

PHENOTYPES = Table(
    name="phenotypes",
    doc=(
        "Sample phenotypes in long form: one row per sample and phenotype with a value (missing values "
        "have no row). Loaded per institution by `genolake phenotypes load`; loading again replaces the "
        "institution's rows atomically. The DuckDB view `phenotypes` shows them wide (one typed column per "
        "phenotype: VARCHAR, DOUBLE or VARCHAR[]); `phenotypes_long` shows this table."
    ),
    columns=(
        Column("institution", pa.string(), "Institution whose samples these are (`--institution`)."),
        Column("sample_id", pa.string(), "Keyed pseudonym of the sample, as in `samples` and `calls`."),
        Column("name", pa.string(), "Phenotype name: a lower-case SQL identifier (`sex`, `case_status`, `bmi`, `hpo`)."),
        Column("kind", pa.string(), "`categorical`, `numeric` or `list`; one kind per name across the lake."),
        Column("value_str", pa.string(), "Value of a categorical phenotype, else null.", True),
        Column("value_num", pa.float64(), "Value of a numeric phenotype, else null.", True),
        Column("value_list", pa.list_(pa.string()), "Codes of a list phenotype (HPO, ICD-10, ...), else null.", True),
    ),
    layout=("institution",),
    sort_by=("name", "sample_id"),
)
_PHENOTYPE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def valid_phenotype_name(name: str) -> bool:
    """True if ``name`` can be a phenotype (a column of the wide `phenotypes` view): a lower-case SQL identifier
    of at most 63 characters."""
    return bool(_PHENOTYPE_NAME.match(name))


#: The stored `phenotypes` column holding each kind's values; a wide `phenotypes` column keeps one of these kinds
#: as stored, and a name stored with several kinds (older data) is shown as text.
PHENOTYPE_VALUE_COLUMN = {"categorical": "value_str", "numeric": "value_num", "list": "value_list"}


#: Phenotype columns a variant report never breaks down by (identifiers, not traits), and the most values a
#: categorical phenotype may have to be broken down by (`query variant`, the library and the cold CLI alike).
ID_PHENOTYPES = frozenset({"family_id", "paternal_id", "maternal_id"})
MAX_BREAKDOWN_VALUES = 30


def phenotype_columns(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """The wide `phenotypes` view's columns from the stored (name, kind) pairs: ``(kinds, mixed)``.

    This is the one definition of the view's columns (the query engine's view and the aggregate's ``--by``
    reading both use it): a column per valid phenotype name (not ``institution`` or ``sample_id``), of its
    stored kind, or ``categorical`` text for a name in ``mixed`` (stored with several kinds). A person's value
    in a column is the maximum of their rows' values (of the text form for a mixed name)."""
    found: dict[str, set[str]] = {}
    for name, kind in pairs:
        if name not in ("institution", "sample_id") and valid_phenotype_name(name):
            found.setdefault(name, set()).add(kind)
    kinds: dict[str, str] = {}
    mixed: set[str] = set()
    for name in sorted(found):
        ks = found[name]
        if len(ks) == 1 and next(iter(ks)) in PHENOTYPE_VALUE_COLUMN:
            kinds[name] = next(iter(ks))
        else:
            kinds[name] = "categorical"
            mixed.add(name)
    return kinds, mixed

# gnomAD's adj genotype filter (`genolake aggregate --adj`): the Dask and Hail engines both apply these values.
ADJ_GQ, ADJ_DP, ADJ_DP_HAPLOID, ADJ_AB = 20, 10, 5, 0.2
ADJ_RULE = (
    "GQ >= 20; DP >= 10 (DP >= 5 for haploid calls, as gnomAD's `haploid_adj_dp`); for heterozygous diploid "
    "calls of the row's alt (0/1 after per-alt recoding) AD[alt] / DP >= 0.2. Each condition applies only where "
    "its fields are stored (a VCF without GQ filters nothing on GQ)."
)

_I64 = pa.int64()
_F64 = pa.float64()

ALLELE_FREQUENCIES = Table(
    name="allele_frequencies",
    doc=(
        "Allele frequencies written by `genolake aggregate`: one row per split allele, `scope` (`joint` or an "
        "institution) and `stratum` (`all`, or `COLUMN=value` for each `--by` phenotype column; with `--adj` "
        "also the same strata prefixed `adj:`, counting only genotypes passing gnomAD's adj filter: "
        + ADJ_RULE + " Implied 0/0 and absent-as-reference genotypes have no stored GQ/DP and always pass). "
        "Rows of stratum `all` / `adj:all` exist for every variant, the joint scope and every institution "
        "(AN 0 and AF null where the institution has no counting sample); a `COLUMN=value` row exists where at "
        "least one sample of the stratum and scope counts at the site. Counts follow the lake's rule (stored "
        "calls, implied 0/0 where the sample's file lists the site, absent sites only for `--absent-as-ref` "
        "files or inside `--callable-regions`, each sample adding its ploidy). Replaced as a whole by each run."
    ),
    columns=(
        Column("contig", _STR, "Contig, harmonised as in `variants`."),
        Column("pos", pa.int32(), "1-based position of the normalised allele."),
        Column("ref", _STR, "Reference allele (normalised)."),
        Column("alt", _STR, "Alternate allele (normalised, split)."),
        Column("scope", _STR, "`joint` (every institution) or an institution name."),
        Column("stratum", _STR, "`all`, `COLUMN=value` of a `--by` phenotype, or either prefixed `adj:` (`--adj`)."),
        Column("ac", _I64, "Alternate allele count: copies of this alt among counted alleles (haploid calls count once)."),
        Column("an", _I64, "Allele number: counted non-missing alleles (diploid 2, haploid 1, `./1` 1, missing 0)."),
        Column("af", _F64, "AC / AN; null if AN is 0.", True),
        Column("nhomalt", _I64, "Diploid samples homozygous for this alt."),
        Column("nhemi", _I64, "Haploid samples carrying this alt (hemizygous, e.g. chrX of males)."),
        Column("n_called", _I64, "Counted samples with no missing allele."),
        Column("faf95", _F64,
               "Joint scope only: filtering allele frequency (Whiffin et al. 2017, gnomAD's faf95), the AF at "
               "which P(X >= AC) = 0.05 for X ~ Poisson(AN * AF); 0 if AC is 0, null if AN is 0. On the "
               "`all`/`adj:all` rows with `--faf-groups`: the maximum over the strata of those columns "
               "(gnomAD's fafmax); otherwise the stratum's own.", True),
        Column("grpmax", _STR,
               "Joint `all`/`adj:all` rows with `--faf-groups`: the `COLUMN=value` stratum of those columns "
               "with the highest AF among strata with AC > 0 (ties: the first by name); else null.", True),
        Column("grpmax_af", _F64, "AF of `grpmax`; null when `grpmax` is.", True),
        Column("het_p", _F64,
               "Joint scope only: p-value of Pearson's chi-square test (no continuity correction) of equal AF "
               "across institutions on the 2 x k table of alt and ref allele counts of the k institutions with "
               "AN > 0 in the stratum; 1 when AC is 0 or AC = AN; null when k < 2.", True),
    ),
    layout=("contig",),
    sort_by=("pos", "ref", "alt", "scope", "stratum"),
)
AGGREGATE_RUNS = Table(
    name="aggregate_runs",
    doc=(
        "The `genolake aggregate` run that wrote the current `allele_frequencies` (one row, replaced with it in "
        "the same commit): its options, and with `--dedupe` how many duplicate copies of a person were left "
        "out (`genolake samples duplicates`; the copy of the institution ingested first is kept)."
    ),
    columns=(
        Column("run_at", pa.timestamp("us", tz="UTC"), "When the run committed."),
        Column("engine", _STR, "`dask` or `hail`."),
        Column("strata", pa.list_(_STR), "Strata counted (`all`, `COLUMN=value` of `--by`)."),
        Column("adj", pa.bool_(), "True with `--adj`."),
        Column("deduplicated", pa.bool_(), "True with `--dedupe`: each duplicated person counted once."),
        Column("dropped", pa.int32(), "People (institution, pseudonym) left out as duplicate copies; 0 without "
                                      "`--dedupe`."),
        Column("duplicate_groups", pa.int32(), "Persons found in more than one copy (`--dedupe`), else 0."),
        Column("genolake_version", _STR, "genolake version of the run."),
    ),
)

# `genolake annotate`
_S = _STR
_LS = pa.list_(_STR)


def _n(name: str, type_: pa.DataType, doc: str) -> Column:
    """A nullable column (every annotation may be missing)."""
    return Column(name, type_, doc, True)


GENES_COLUMNS = (
    _n("gene_symbols", _LS, "Symbols of the genes the variant overlaps (1-based inclusive: a variant on a gene's first "
       "or last base is in it), in order of gene start; parallel to `gene_ids` and `biotypes` (null where the source "
       "has no symbol). Empty list: no gene. Null: never annotated with a gene source."),
    _n("gene_ids", _LS, "IDs of the overlapped genes (GTF `gene_id`, GFF3 `gene_id`/`ID`; Ensembl IDs of a gene list)."),
    _n("biotypes", _LS, "Gene biotypes (GTF `gene_type`/`gene_biotype`, GFF3 `biotype`); null entries for gene lists."),
    _n("region_class", _S, "Coarse class from a GTF/GFF3: `coding_exon` (CDS or start/stop codon), `utr`, "
       "`noncoding_exon`, `intron`, `genic` (in a gene without transcript features), `intergenic`; from a gene "
       "list only `genic` or `intergenic`. The first that applies, in this order."),
    _n("genes_source", _S, "`source_id` (see `annotation_sources`) of the gene source this row was annotated with."),
)
CLINVAR_COLUMNS = (
    _n("clinvar_significance", _S, "ClinVar germline classification as written by ClinVar (`_` shown as spaces), e.g. "
       "`Pathogenic/Likely pathogenic`; `|` joins several values. Null: no ClinVar record for this allele, or a record "
       "without a germline classification (then `clinvar_variation_id` is set)."),
    _n("clinvar_class", _LS, "Normalised significance classes for filtering: pathogenic, likely_pathogenic, "
       "uncertain, likely_benign, benign, conflicting, risk_factor, drug_response, not_provided, other, ..."),
    _n("clinvar_review_status", _S, "ClinVar review status in ClinVar's words (`criteria provided, single submitter`)."),
    _n("clinvar_stars", pa.int8(), "Review stars 0-4 from the review status (ClinVar's mapping), or GOLD_STARS."),
    _n("clinvar_conditions", _LS, "Condition names (NCBI CLNDN, MacArthur ALL_TRAITS), distinct, in file order."),
    _n("clinvar_variation_id", _S, "ClinVar VariationID (NCBI: the ID column; MacArthur: MEASURESET_ID)."),
    _n("clinvar_allele_id", _S, "ClinVar AlleleID (NCBI INFO/ALLELEID), when given."),
    _n("clinvar_source", _S, "`source_id` of the ClinVar file this row was looked up in (set even when no record "
       "matched: null significance with a source means 'not in that ClinVar release')."),
)
DBSNP_COLUMNS = (
    _n("rsid", _S, "rsID(s) from the ID column of the dbSNP/sites VCF (`;`-joined if several)."),
    _n("dbsnp_source", _S, "`source_id` of the sites VCF this row was looked up in."),
)
CSQ_COLUMNS = (
    _n("consequence", _S, "Most severe consequence term of this allele over all transcripts (Ensembl severity "
       "order) from VEP CSQ, else SnpEff ANN, of the ingested records."),
    _n("consequence_terms", _LS, "Every consequence term of this allele over all transcripts, most severe first."),
    _n("impact", _S, "IMPACT (HIGH, MODERATE, LOW, MODIFIER) of the most severe entry."),
    _n("csq_gene", _S, "Gene symbol (VEP SYMBOL, SnpEff Gene_Name) of the most severe entry."),
    _n("csq_gene_id", _S, "Gene ID (VEP Gene, SnpEff Gene_ID) of the most severe entry."),
    _n("csq_transcript", _S, "Transcript (VEP Feature, SnpEff Feature_ID) of the most severe entry."),
    _n("csq_biotype", _S, "Transcript biotype of the most severe entry."),
    _n("hgvsc", _S, "HGVS coding notation of the most severe entry."),
    _n("hgvsp", _S, "HGVS protein notation of the most severe entry."),
    _n("csq_field", _S, "`CSQ` or `ANN`: which INFO field the consequence came from."),
    _n("csq_source", _S, "`source_id` of the consequence parsing run (field lists used; see `annotation_sources`)."),
)
FREQ_SUMMARY = (
    _n("max_external_af", pa.float64(), "Greatest AF of this allele over all external frequency sources "
       "(`external_frequencies`); null if no source lists it."),
)

ANNOTATIONS = Table(
    name="annotations",
    doc=(
        "One row per distinct variant key of the lake (`contig, pos, ref, alt` as in `variants`) with its "
        "annotations, written by `genolake annotate`. Each group of columns carries the `source_id` of the source "
        "version it came from (`genes_source`, `clinvar_source`, `dbsnp_source`, `csq_source`); a new run with a "
        "source replaces that group's columns for every variant and keeps the others, in one atomic commit. "
        "Variants ingested after the last run have no row until `genolake annotate` runs again. External "
        "frequencies have per-source prefixes, so they are stored long in `external_frequencies` (one row per "
        "variant and source); `genolake query gene` shows them pivoted as `<prefix>_af`, `<prefix>_ac`, "
        "`<prefix>_an`, `<prefix>_nhomalt`, `<prefix>_popmax`, `<prefix>_popmax_af`."
    ),
    columns=(*_KEY, *GENES_COLUMNS, *CLINVAR_COLUMNS, *DBSNP_COLUMNS, *CSQ_COLUMNS, *FREQ_SUMMARY),
    layout=("contig",),
    sort_by=("pos", "ref", "alt"),
)

EXTERNAL_FREQUENCIES = Table(
    name="external_frequencies",
    doc=(
        "External population frequencies (`genolake annotate --frequencies VCF --prefix NAME`): one row per lake "
        "variant found in the source. `source` is the prefix; a run with a prefix replaces that prefix's rows. "
        "Join to `annotations` / `variants` on `contig, pos, ref, alt`; pivot with e.g. "
        "`max(af) FILTER (WHERE source = 'gnomad') AS gnomad_af`."
    ),
    columns=(
        *_KEY,
        Column("source", _S, "The `--prefix` of the frequency source (lower-case identifier, e.g. `gnomad`)."),
        _n("af", pa.float64(), "INFO/AF of this allele (AC / AN when the file has no AF)."),
        _n("ac", pa.int64(), "INFO/AC of this allele."),
        _n("an", pa.int64(), "INFO/AN of the site."),
        _n("nhomalt", pa.int64(), "Homozygous-alt count (INFO/nhomalt), when given."),
        _n("popmax", _S, "Population with the maximum AF (INFO/popmax or grpmax), when given."),
        _n("popmax_af", pa.float64(), "AF in that population (INFO/AF_popmax or AF_grpmax), when given."),
        Column("source_id", _S, "`source_id` of the file (see `annotation_sources`)."),
    ),
    layout=("source", "contig"),
    sort_by=("pos", "ref", "alt"),
)

ANNOTATION_SOURCES = Table(
    name="annotation_sources",
    doc=(
        "Every annotation source used by `genolake annotate`, one row per source and run (append-only history). "
        "The `*_source` columns of `annotations` and `source_id` of `external_frequencies` point here, so an "
        "answer can always be traced to the exact file (checksum) and release (file date)."
    ),
    columns=(
        Column("source_id", _S, "First 16 hex digits of the file's SHA-256 (for `csq`: of the field lists used)."),
        Column("kind", _S, "`genes`, `clinvar`, `dbsnp`, `frequencies` or `csq`."),
        _n("prefix", _S, "Column prefix of a frequency source."),
        Column("file_name", _S, "Base name of the source file (public annotation files; no sample data)."),
        _n("sha256", _S, "SHA-256 of the file's bytes."),
        _n("size_bytes", pa.int64(), "Size of the file in bytes."),
        Column("build", _S, "Reference build of the source (always the lake's: other builds are refused)."),
        Column("build_from", _S, "How the build was known: `header`, `--source-build`, `file name` or `assumed`."),
        _n("file_date", _S, "Release date from the header (`##fileDate`, GTF `##date`), when given."),
        Column("format", _S, "`vcf`, `gtf`, `gff3`, `list` (gene list) or `lake` (CSQ/ANN stored at ingest)."),
        Column("read_mode", _S, "`index` (per region through its tabix index) or `sequential`."),
        Column("n_records", pa.int64(), "Records (VCF lines, genes) read from the source."),
        Column("n_annotated", pa.int64(), "Lake variants that got a value from this source."),
        Column("options", _S, "Options of the run as JSON (coordinates of a gene list, field lists, ...)."),
        Column("txn", _S, "Commit id of the run."),
        Column("annotated_at", pa.timestamp("us", tz="UTC"), "When the run committed."),
        Column("genolake_version", _S, "genolake version that ran it."),
    ),
)

ANNOTATION_GENES = Table(
    name="annotation_genes",
    doc=(
        "The genes of the current gene source (`genolake annotate --genes`), 1-based inclusive, used to find a "
        "gene's coordinates (`query gene`, `query assoc --gene`). Replaced by each run with a gene source."
    ),
    columns=(
        Column("contig", _S, "Contig, harmonised to the lake's naming."),
        Column("start", pa.int64(), "First base of the gene (1-based)."),
        Column("end", pa.int64(), "Last base of the gene (1-based, inclusive)."),
        _n("gene_symbol", _S, "Gene symbol."),
        _n("gene_id", _S, "Gene ID."),
        _n("biotype", _S, "Gene biotype."),
        _n("strand", _S, "`+` or `-`, when given."),
        Column("source_id", _S, "`source_id` of the gene source."),
    ),
    sort_by=("contig", "start"),
)


def people(samples: pa.Table) -> pa.Table:
    """The distinct people (``institution``, ``sample_id``) of rows of ``samples``, sorted: within an institution a
    pseudonym is one person, however many files (one per contig, sample batches) hold it."""
    return samples.select(["institution", "sample_id"]).group_by(["institution", "sample_id"]).aggregate([]) \
        .sort_by([("institution", "ascending"), ("sample_id", "ascending")])


TABLES: dict[str, Table] = {t.name: t for t in (
    GENOTYPES, VARIANTS, SAMPLES, PLOIDY, CALLABLE, FILES, PHENOTYPES, ALLELE_FREQUENCIES, AGGREGATE_RUNS,
    ANNOTATIONS, EXTERNAL_FREQUENCIES, ANNOTATION_SOURCES, ANNOTATION_GENES)}
# Views computed from stored tables (documented with the tables; never written).
VIEWS: dict[str, Table] = {CALLS.name: CALLS}
# Tables whose rows belong to one ingested file (committed before `files`, filtered by file_id).
FILE_TABLES = ("genotypes", "variants", "samples", "ploidy", "callable")


def extra_tables() -> dict[str, Table]:
    """Tables written by later stages (phenotypes, frequencies, annotations), not by ingest."""
    return {k: v for k, v in TABLES.items() if k not in FILE_TABLES and k != "files"}


def _type_name(t: pa.DataType) -> str:
    return str(t).replace("timestamp[us, tz=UTC]", "timestamp(us, UTC)")


def render_markdown() -> str:
    """Render docs/SCHEMA.md from the registry."""
    lines = [
        "# genolake lake schema",
        "",
        "Generated from `genolake/schema.py` by `python -m genolake.schema > docs/SCHEMA.md`; a test checks "
        "that this file is current. Coordinates are 1-based and inclusive. Each table is a Delta Lake table "
        f"in its own folder under the lake (format version {FORMAT_VERSION}); the DuckDB views of the same "
        "names show only committed rows.",
        "",
    ]
    for table in [TABLES["genotypes"], VIEWS["calls"], *(t for n, t in TABLES.items() if n != "genotypes")]:
        lines += [f"## `{table.name}`" + (" (view)" if table.view else ""), "", table.doc, ""]
        if table.layout:
            lines += ["Folders: " + "/".join(f"`{k}=...`" for k in table.layout) + ". "
                      + (f"Rows sorted by {', '.join(table.sort_by)}." if table.sort_by else ""), ""]
        lines += ["| column | type | null | meaning |", "|---|---|---|---|"]
        for c in table.columns:
            lines.append(f"| `{c.name}` | {_type_name(c.type)} | {'yes' if c.nullable else 'no'} | {c.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
