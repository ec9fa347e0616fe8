"""The one documented schema of the lake.

Every table the lake stores, every column, its Arrow type and a one-line definition.
``docs/SCHEMA.md`` is generated from this module (``python -m genolake.schema``) and a test
checks that the two agree and that written files carry exactly these schemas.

Coordinates are 1-based and inclusive everywhere, as in VCF.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# Version of the on-disk layout, recorded in genolake.json. 1: long `calls` table (one row per stored call);
# 2: dense `genotypes` table (one row per file and split allele). `genolake migrate` upgrades a lake.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


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
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

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

def people(samples: pa.Table) -> pa.Table:
    """The distinct people (``institution``, ``sample_id``) of rows of ``samples``, sorted: within an institution a
    pseudonym is one person, however many files (one per contig, sample batches) hold it."""
    return samples.select(["institution", "sample_id"]).group_by(["institution", "sample_id"]).aggregate([]) \
        .sort_by([("institution", "ascending"), ("sample_id", "ascending")])


TABLES: dict[str, Table] = {t.name: t for t in (GENOTYPES, VARIANTS, SAMPLES, PLOIDY, CALLABLE, FILES)}
# Views computed from stored tables (documented with the tables; never written).
VIEWS: dict[str, Table] = {CALLS.name: CALLS}
# Tables whose rows belong to one ingested file (committed before `files`, filtered by file_id).
FILE_TABLES = ("genotypes", "variants", "samples", "ploidy", "callable")


def extra_tables() -> dict[str, Table]:
    """Tables defined by later stages (phenotypes, frequencies, annotations), registered on import."""
    return {k: v for k, v in TABLES.items() if k not in FILE_TABLES and k != "files"}


def register(table: Table) -> Table:
    """Add a table to the schema registry (used by the phenotype, aggregate and annotate modules)."""
    TABLES[table.name] = table
    return table


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


def _load_all() -> None:
    """Import modules that register extra tables so the rendered schema is complete."""
    import importlib

    for mod in ("genolake.phenotypes", "genolake.compute.frequencies", "genolake.compute.annotate"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # pragma: no cover - modules of later stages
            if exc.name != mod:
                raise


if __name__ == "__main__":
    # run as a script this file is `__main__`; later stages register their tables in `genolake.schema`
    import genolake.schema as registry

    registry._load_all()
    print(registry.render_markdown())
