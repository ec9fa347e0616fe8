"""Sites VCFs (dbSNP, gnomAD and other frequency files) and the generic VCF source reader.

:func:`read_vcf_source` reads a VCF source (one region through its index, or the whole file as a stream of
blocks parsed by Arrow's CSV reader), splits each record per ALT allele, normalises every allele exactly as
the ingest does (trim to the minimal representation; left-align with a reference if given) and joins the
alleles to the lake's variant keys. Only matched records reach the extractor, which turns the INFO keys
it asks for into that source's values per allele. SNVs are normalised and joined column-wise; other
records (indels, multi-allelic, symbolic) go through :func:`genolake.annotation.source.split_alleles`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from genolake.annotation.source import Region, SourceFile, lake_contig, split_alleles, vcf_lines
from genolake.errors import BadInputFileError

KEY_FIELDS = (("contig", pa.string()), ("pos", pa.int32()), ("ref", pa.string()), ("alt", pa.string()))
KEY_NAMES = [k for k, _ in KEY_FIELDS]
_VCF_COLS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
_USE = ["CHROM", "POS", "ID", "REF", "ALT", "INFO"]
_BASES = pa.array(list("ACGTN"))
BLOCK_BYTES = 1 << 24


class Extractor(Protocol):
    """Turns the INFO of a matched record into per-allele values for the source's columns."""

    columns: tuple[tuple[str, pa.DataType], ...]
    info_keys: tuple[str, ...]  # the INFO keys `values` reads (only these are extracted)

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        """Values of ``columns`` for ALT ``alt_index`` (1-based), or None to skip the allele.

        ``cols``: CHROM, POS, ID, REF, ALT of the record; ``info``: the present ``info_keys``. An extractor may
        also define ``columns_batch(ids, info_columns, alt_index, n_alts) -> (kept rows, column lists)`` to do
        many records at once.
        """
        ...

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        """Two records normalise to the same variant: combine their values."""
        ...


def _text_batches(src: SourceFile, region: Region | None, style: str) -> Iterator[tuple[int, pa.Table]]:
    """(line number of the block's first record or 0, CHROM..INFO as strings) blocks of the source."""
    if region is not None and src.index is not None:
        yield from _region_batches(src, region, style)
        return
    try:
        yield from _arrow_batches(src)
    except _NotUtf8:
        yield from _python_batches(src, style)


def _csv_options(names: list[str]) -> tuple[Any, Any]:
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, double_quote=False)
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), include_columns=_USE)
    return parse, convert


def _column_names(src: SourceFile) -> list[str]:
    names = src.header_lines[-1].lstrip("#").split("\t")
    return [*_VCF_COLS, *(f"sample{i}" for i in range(len(names) - 8))]


def _region_batches(src: SourceFile, region: Region, style: str) -> Iterator[tuple[int, pa.Table]]:
    """The records of one region through the tabix index, parsed column-wise by Arrow."""
    import io

    import pyarrow.csv as pacsv

    tbx = _tabix(src)
    lines: list[str] = []
    for name in (c for c in tbx.contigs if lake_contig(c, style) == region.contig):
        lines.extend(tbx.fetch(name, region.start - 1, region.end))
    if not lines:
        return
    names = _column_names(src)
    parse, convert = _csv_options(names)
    blob = ("\n".join(lines) + "\n").encode("latin-1")  # the file's own bytes (latin-1 decoding is lossless)
    try:
        table = pacsv.read_csv(io.BytesIO(blob), read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
                               parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        msg = str(exc).strip().splitlines()[0]
        if "UTF8" in msg or "UTF-8" in msg:
            table = _rows_table([_utf8_cols(line) for line in lines])
        else:
            raise BadInputFileError(src.path, f"a record has a wrong number of tab-separated columns ({msg})",
                                    record=f"region {region.contig}:{region.start}-{region.end}") from None
    yield 0, table


_OPEN = threading.local()


def _tabix(src: SourceFile) -> Any:
    """An open TabixFile per source and thread: loading a large index takes longer than a region query."""
    import pysam

    cache: dict[tuple[str, str, str], Any] = getattr(_OPEN, "tabix", None) or {}
    _OPEN.tabix = cache
    key = (src.path, str(src.index), src.sha256)
    tbx = cache.get(key)
    if tbx is None:
        if len(cache) > 8:
            for old in cache.values():
                old.close()
            cache.clear()
        tbx = cache[key] = pysam.TabixFile(src.path, index=src.index, encoding="latin-1")
    return tbx


def _utf8_cols(line: str) -> list[str]:
    cols = line.encode("latin-1").decode("utf-8", "replace").split("\t", 8)
    return (cols + [""] * 8)[:8]


class _NotUtf8(Exception):
    pass


def _arrow_batches(src: SourceFile) -> Iterator[tuple[int, pa.Table]]:
    import pyarrow.csv as pacsv

    n_header = len(src.header_lines)
    names = _column_names(src)
    parse, convert = _csv_options(names)
    comp = "gzip" if src.compression in ("gzip", "bgzf") else None
    first = n_header + 1
    try:
        reader = pacsv.open_csv(
            pa.input_stream(src.path, compression=comp),
            read_options=pacsv.ReadOptions(skip_rows=n_header, column_names=names, block_size=BLOCK_BYTES),
            parse_options=parse, convert_options=convert,
        )
        for batch in reader:
            yield first, pa.Table.from_batches([batch])
            first += batch.num_rows
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "UTF8" in msg or "UTF-8" in msg:
            if first == n_header + 1:
                raise _NotUtf8() from None
            raise BadInputFileError(src.path, f"not UTF-8 text after line {first}") from None
        if "Expected" in msg and "columns" in msg:
            raise BadInputFileError(src.path, f"a record has a wrong number of tab-separated columns ({msg})",
                                    record=f"after line {first - 1}") from None
        raise BadInputFileError(src.path, f"truncated or corrupt data after line {first - 1} ({msg})") from None


def _python_batches(src: SourceFile, style: str, size: int = 200_000) -> Iterator[tuple[int, pa.Table]]:
    rows: list[list[str]] = []
    first = 0
    for n, _c, cols in vcf_lines(src, None, style):
        if not rows:
            first = n
        rows.append(cols)
        if len(rows) >= size:
            yield first, _rows_table(rows)
            rows = []
    if rows:
        yield first, _rows_table(rows)


def _rows_table(rows: list[list[str]]) -> pa.Table:
    return pa.table({name: pa.array([r[i] for r in rows], pa.string())
                     for i, name in enumerate(_VCF_COLS) if name in _USE})


def _positions(col: pa.ChunkedArray, src: SourceFile, first_line: int) -> np.ndarray:
    try:
        return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    except (pa.ArrowInvalid, TypeError, ValueError):
        for i, v in enumerate(col.to_pylist()):
            if v is None or not v.isdigit():
                where = f"line {first_line + i}" if first_line else f"record {i + 1} of the region"
                raise BadInputFileError(src.path, f"POS {v!r} is not an integer", record=where) from None
        raise


def _candidates(batch: pa.Table, contig: pa.Array, pos: np.ndarray,
                fetch: Callable[[str], Callable[[int, int], str] | None] | None) -> pa.Table:
    """(contig, pos, ref, alt, row, alt_index, n_alts) of every normalised ALT allele of the block."""
    ref_u = pc.utf8_upper(batch["REF"])
    alt_u = pc.utf8_upper(batch["ALT"])
    simple = pc.and_(
        pc.and_(pc.equal(pc.utf8_length(ref_u), 1), pc.equal(pc.utf8_length(alt_u), 1)),
        pc.and_(pc.and_(pc.is_in(ref_u, value_set=_BASES), pc.is_in(alt_u, value_set=_BASES)),
                pc.not_equal(ref_u, alt_u)),
    )
    mask = np.asarray(simple.to_numpy(zero_copy_only=False), dtype=bool)
    idx = np.flatnonzero(mask)
    parts = []
    if idx.size:
        take = pa.array(idx)
        parts.append(pa.table({
            "contig": contig.take(take), "pos": pa.array(pos[idx].astype(np.int32)),
            "ref": ref_u.take(take), "alt": alt_u.take(take), "row": take,
            "alt_index": pa.array(np.ones(idx.size, np.int16)), "n_alts": pa.array(np.ones(idx.size, np.int16)),
        }))
    other = np.flatnonzero(~mask)
    if other.size:
        take = pa.array(other)
        refs = batch["REF"].take(take).to_pylist()
        alts = batch["ALT"].take(take).to_pylist()
        contigs = contig.take(take).to_pylist()
        out: dict[str, list[Any]] = {k: [] for k in ("contig", "pos", "ref", "alt", "row", "alt_index", "n_alts")}
        for j, row in enumerate(other.tolist()):
            c = contigs[j]
            ref_fetch = fetch(c) if fetch is not None else None
            n_alts = alts[j].count(",") + 1
            for alt_index, p, r, a in split_alleles(int(pos[row]), refs[j], alts[j], ref_fetch):
                out["contig"].append(c)
                out["pos"].append(p)
                out["ref"].append(r)
                out["alt"].append(a)
                out["row"].append(row)
                out["alt_index"].append(alt_index)
                out["n_alts"].append(n_alts)
        if out["row"]:
            parts.append(pa.table({
                "contig": pa.array(out["contig"], pa.string()), "pos": pa.array(out["pos"], pa.int32()),
                "ref": pa.array(out["ref"], pa.string()), "alt": pa.array(out["alt"], pa.string()),
                "row": pa.array(out["row"], pa.int64()), "alt_index": pa.array(out["alt_index"], pa.int16()),
                "n_alts": pa.array(out["n_alts"], pa.int16()),
            }))
    if not parts:
        return pa.schema([*(pa.field(k, t) for k, t in KEY_FIELDS), pa.field("row", pa.int64()),
                          pa.field("alt_index", pa.int16()), pa.field("n_alts", pa.int16())]).empty_table()
    return pa.concat_tables(parts)


def info_columns(info: pa.ChunkedArray | pa.Array, keys: tuple[str, ...]) -> dict[str, list[str | None]]:
    """The values of the given INFO keys in each record (None where absent), extracted column-wise: the INFO
    strings are split into `key=value` items once, then each key's items are scattered back to their rows."""
    if isinstance(info, pa.ChunkedArray):
        info = info.combine_chunks()
    n = len(info)
    out: dict[str, list[str | None]] = {}
    if not keys or not n:
        return {k: [None] * n for k in keys}
    items = pc.split_pattern(info, ";")
    parent = pc.list_parent_indices(items).to_numpy()
    flat = pc.list_flatten(items)
    names = pc.list_element(pc.split_pattern(flat, "=", max_splits=1), 0)
    for key in keys:
        hit = pc.indices_nonzero(pc.equal(names, key))
        if not len(hit):
            out[key] = [None] * n
            continue
        values = pc.utf8_slice_codeunits(flat.take(hit), start=len(key) + 1)
        where = np.full(n, -1, dtype=np.int64)
        where[parent[hit.to_numpy()]] = np.arange(len(hit), dtype=np.int64)
        out[key] = values.take(pa.array(where, mask=where < 0)).to_pylist()
    return out


def info_values(info: pa.ChunkedArray | pa.Array, key: str) -> list[str | None]:
    """The value of one INFO key in each record (None where absent)."""
    return info_columns(info, (key,))[key]


def read_vcf_source(
    src: SourceFile,
    extractor: Extractor,
    *,
    style: str,
    region: Region | None = None,
    keys: pa.Table | None = None,
    fetch: Callable[[str], Callable[[int, int], str] | None] | None = None,
) -> tuple[pa.Table, int]:
    """Normalised rows (key + extractor columns) of a VCF source that match ``keys``, and the records read.

    ``keys``: the lake variant keys (contig, pos, ref, alt; unique) to keep; all alleles if None.
    ``fetch(contig)``: a reference fetcher for left-alignment, or None.
    """
    parts: list[pa.Table] = []
    n_records = 0
    names: dict[str, str] = {}
    if keys is not None:
        keys = keys.select(KEY_NAMES).cast(pa.schema([pa.field(k, t) for k, t in KEY_FIELDS]))
    for first_line, batch in _text_batches(src, region, style):
        n_records += batch.num_rows
        chrom = batch["CHROM"].combine_chunks().dictionary_encode()
        mapped = pa.array([names.setdefault(c, lake_contig(c, style)) for c in chrom.dictionary.to_pylist()],
                          pa.string())
        contig = mapped.take(chrom.indices)
        pos = _positions(batch["POS"], src, first_line)
        cand = _candidates(batch, contig, pos, fetch)
        if region is not None:
            cand = cand.filter(pc.and_(pc.greater_equal(cand["pos"], region.start),
                                       pc.less_equal(cand["pos"], region.end)))
        if keys is not None and cand.num_rows:
            cand = cand.join(keys, keys=KEY_NAMES, join_type="inner")
        if not cand.num_rows:
            continue
        take = cand["row"]
        sub = batch.select(["CHROM", "POS", "ID", "REF", "ALT", "INFO"]).take(take)
        info = sub["INFO"]
        extracted = info_columns(info, tuple(extractor.info_keys))
        ids = sub["ID"].to_pylist()
        alt_index = cand["alt_index"].to_pylist()
        n_alts = cand["n_alts"].to_pylist()
        columns_batch = getattr(extractor, "columns_batch", None)
        if columns_batch is not None:
            keep, value_cols = columns_batch(ids, extracted, alt_index, n_alts)
        else:
            fixed = [sub[c].to_pylist() for c in ("CHROM", "POS", "ID", "REF", "ALT")]
            keep, rows_values = [], []
            for i in range(cand.num_rows):
                rec_info: dict[str, str] = {}
                for k, v in extracted.items():
                    value = v[i]
                    if value is not None:
                        rec_info[k] = value
                vals = extractor.values([f[i] for f in fixed], rec_info, alt_index[i], n_alts[i])
                if vals is not None:
                    keep.append(i)
                    rows_values.append(vals)
            value_cols = [list(c) for c in zip(*rows_values, strict=True)] if rows_values else \
                [[] for _ in extractor.columns]
        if not keep:
            continue
        part = cand.select(KEY_NAMES).take(pa.array(keep, pa.int64()))
        for (name, typ), col in zip(extractor.columns, value_cols, strict=True):
            part = part.append_column(name, pa.array(col, typ))
        parts.append(part)
    schema = pa.schema([pa.field(n, t) for n, t in (*KEY_FIELDS, *extractor.columns)])
    if not parts:
        return schema.empty_table(), n_records
    table = pa.concat_tables(parts).cast(schema)
    return _merge_duplicates(table, extractor), n_records


def _merge_duplicates(table: pa.Table, extractor: Extractor) -> pa.Table:
    """Records that normalise to the same variant (rare): one row, values combined by the extractor."""
    counts = table.group_by(KEY_NAMES).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if not dup.num_rows:
        return table
    dup_keys = set(zip(*(dup[c].to_pylist() for c in KEY_NAMES), strict=True))
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    order: list[int] = []
    names = [n for n, _ in extractor.columns]
    cols = [table[c].to_pylist() for c in (*KEY_NAMES, *names)]
    for i in range(table.num_rows):
        key = (cols[0][i], cols[1][i], cols[2][i], cols[3][i])
        vals = tuple(c[i] for c in cols[4:])
        if key not in dup_keys:
            order.append(i)
            continue
        old = rows.get(key)
        rows[key] = vals if old is None else extractor.merge(old, vals)
    single = table.take(pa.array(order, pa.int64()))
    merged = _to_table(rows, extractor.columns).cast(table.schema)
    return pa.concat_tables([single, merged]).sort_by([(k, "ascending") for k in KEY_NAMES])


def _to_table(rows: dict[tuple[Any, ...], tuple[Any, ...]], columns: tuple[tuple[str, pa.DataType], ...]) -> pa.Table:
    fields = [*KEY_FIELDS, *columns]
    keys = list(rows)
    vals = list(rows.values())
    data: dict[str, pa.Array] = {}
    for i, (name, typ) in enumerate(KEY_FIELDS):
        data[name] = pa.array([k[i] for k in keys], typ)
    for j, (name, typ) in enumerate(columns):
        data[name] = pa.array([v[j] for v in vals], typ)
    return pa.table(data, schema=pa.schema([pa.field(n, t) for n, t in fields]))


def per_allele(value: str | None, alt_index: int, n_alts: int) -> str | None:
    """The value of a Number=A INFO field for one allele (`.` is missing)."""
    if value is None or value == "":
        return None
    parts = value.split(",")
    if len(parts) == n_alts:
        v = parts[alt_index - 1]
    elif len(parts) == 1:
        v = parts[0]
    else:
        return None
    return None if v in (".", "") else v


def _num(v: str | None, kind: type) -> Any:
    """An int or float from INFO text; None if missing, not a number, NaN or infinite."""
    if v is None:
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    if not math.isfinite(x):
        return None
    return int(x) if kind is int else x


class RsidExtractor:
    """dbSNP (or any sites VCF): the ID column; for dbSNP's own VCF also INFO/RS when ID is not an rsID."""

    columns = (("rsid", pa.string()),)
    info_keys = ("RS",)

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        vid = cols[2]
        if vid in (".", ""):
            rs = info.get("RS")
            if not rs:
                return None
            vid = ";".join("rs" + x if not x.startswith("rs") else x for x in rs.split("|") if x)
        return (vid,)

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        ids = list(dict.fromkeys([*str(old[0]).split(";"), *str(new[0]).split(";")]))
        return (";".join(ids),)


# INFO keys tried in order for each frequency column (gnomAD v2/v3/v4, ExAC, 1000 Genomes, TOPMed style).
FREQ_KEYS = {
    "af": ("AF",),
    "ac": ("AC",),
    "an": ("AN",),
    "nhomalt": ("nhomalt", "AC_Hom", "Hom"),
    "popmax": ("popmax", "grpmax", "POPMAX"),
    "popmax_af": ("AF_popmax", "AF_grpmax", "POPMAX_AF"),
}


class FrequencyExtractor:
    """External allele frequencies: AF, AC, AN, nhomalt and the popmax population and AF, per allele.

    AF is taken from INFO/AF; when a file has AC and AN but no AF, AF = AC / AN.
    """

    columns = (
        ("af", pa.float64()), ("ac", pa.int64()), ("an", pa.int64()), ("nhomalt", pa.int64()),
        ("popmax", pa.string()), ("popmax_af", pa.float64()),
    )

    def __init__(self, keys: dict[str, tuple[str, ...]] | None = None) -> None:
        self.keys = keys or FREQ_KEYS
        self.info_keys = tuple(dict.fromkeys(k for ks in self.keys.values() for k in ks))

    def _get(self, info: dict[str, str], col: str) -> str | None:
        for k in self.keys[col]:
            if k in info:
                return info[k]
        return None

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        af = _num(per_allele(self._get(info, "af"), alt_index, n_alts), float)
        ac = _num(per_allele(self._get(info, "ac"), alt_index, n_alts), int)
        an_raw = self._get(info, "an")
        an = _num(an_raw.split(",")[0] if an_raw else None, int)
        if af is None and ac is not None and an:
            af = ac / an
        nhom = _num(per_allele(self._get(info, "nhomalt"), alt_index, n_alts), int)
        popmax = per_allele(self._get(info, "popmax"), alt_index, n_alts)
        popmax_af = _num(per_allele(self._get(info, "popmax_af"), alt_index, n_alts), float)
        if af is None and ac is None and an is None and popmax_af is None:
            return None
        return (af, ac, an, nhom, popmax, popmax_af)

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        return old  # duplicate records of one site in a frequency file: keep the first


def frequency_keys(spec: str) -> dict[str, tuple[str, ...]]:
    """Parse ``af=AF_nfe,ac=AC_nfe,an=AN_nfe`` into the INFO keys to use (others keep their defaults)."""
    keys = dict(FREQ_KEYS)
    for item in filter(None, (x.strip() for x in spec.split(","))):
        col, sep, key = item.partition("=")
        if not sep or col not in FREQ_KEYS or not key:
            from genolake.errors import UserInputError

            raise UserInputError(f"--freq-fields: {item!r} must be COLUMN=INFO_KEY with COLUMN one of "
                                 f"{', '.join(FREQ_KEYS)}")
        keys[col] = (key,)
    return keys
