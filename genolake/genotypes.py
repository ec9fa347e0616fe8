"""The genotype store's codec: one dense code per sample per split allele, and its expansion to calls.

The `genotypes` table (docs/SCHEMA.md, docs/STORAGE.md) keeps one row per ingested file and split allele.
Its ``gt`` column holds one 4-bit symbol per sample of the file (column order of the VCF; two samples per
byte, the first in the high nibble, so ``hex(gt)`` lists the samples in order), which zstd squeezes to well
under a bit per genotype: the dense layout of VCF-Zarr and Hail's MatrixTable, measured smaller than the
``.vcf.gz`` it replaces (docs/STORAGE.md). Symbol 0 is a diploid homozygous-reference call (phased or
not): exactly the calls the long ``calls`` view leaves out, implied by ``samples`` and ``ploidy``. Every other
symbol is a *stored call*, and the FORMAT lists (``gq``, ``dp``, ``ad_ref``, ``ad_alt``) hold one value per
stored call, in sample order.

A symbol s in 1..15 stands for the genotype code ``k = ord(gt_symbols[s - 1]) - 48`` of the row (each written
part of a file has one alphabet of the codes it uses, most frequent first). Codes:

===========  ================================================================================
k            genotype (recoded for the row's alt: the alt is 1, every other allele 0)
===========  ================================================================================
0            diploid 0/0 or 0|0 (implied; not a stored call; always symbol 0)
1..18        diploid ``a/b`` (k = 1 + 3(a+1) + (b+1)) and ``a|b`` (the same + 9), a, b in {., 0, 1}
19, 20, 21   haploid ``.``, ``0``, ``1``
22           anything else (other ploidies; or a code that did not fit the part's 15 symbols): its text is
             in ``other_gt``, in sample order
===========  ================================================================================

This module is the one place that knows the codes: the ingest writer encodes with :func:`diploid_codes` and
:func:`pack`, and every reader of calls goes through :func:`expand` / :func:`call_values` (numpy, for the
library's point reads and jobs) or :func:`calls_sql` (DuckDB, the ``calls`` view and SQL scans); both give
the columns of the ``calls`` view. It imports nothing from the rest of genolake.
"""

from __future__ import annotations

import functools
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")


class _Numpy(types.ModuleType):
    """numpy, imported when this module first uses it: the SQL codec (:func:`calls_sql`, the cold `genolake query
    variant`) needs none. The first attribute read binds the module's global ``np`` to numpy itself, so the
    numpy readers pay nothing after it."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        import numpy

        globals()["np"] = numpy
        return getattr(numpy, attr)


if not TYPE_CHECKING:
    np = _Numpy("numpy")

BASE = 48  # ASCII '0'
OTHER = 22
HOM_REF = 0
_ALLELE = (".", "0", "1")


def _texts() -> list[str]:
    out = ["0/0"]
    for sep in ("/", "|"):
        for a in _ALLELE:
            for b in _ALLELE:
                out.append(f"{a}{sep}{b}")
    out += [".", "0", "1", ""]
    return out


TEXT: tuple[str, ...] = tuple(_texts())  # k -> genotype text (k = 22: see other_gt)


def _lut(fn: Callable[[str], int]) -> tuple[int, ...]:
    return tuple(fn(t) if k not in (HOM_REF, OTHER) else 0 for k, t in enumerate(TEXT))


def _alleles(text: str) -> list[str]:
    return [a for a in text.replace("|", "/").split("/") if a != ""] if text else []


# k -> ploidy, called alleles, alt alleles, phased (0 for OTHER: its text decides); as int8/bool numpy arrays
# PLOIDY, CALLED, ALT_COUNT, PHASED (made on first use, see __getattr__)
_PLOIDY = (2, *_lut(lambda t: len(_alleles(t)))[1:])
_CALLED = (2, *_lut(lambda t: sum(a != "." for a in _alleles(t)))[1:])
_ALT_COUNT = _lut(lambda t: sum(a == "1" for a in _alleles(t)))
_PHASED = tuple("|" in t for t in TEXT)
_LUTS: dict[str, Any] = {}


def _lut_array(name: str) -> np.ndarray:
    """The lookup table ``name`` (PLOIDY, CALLED, ALT_COUNT or PHASED) as a numpy array (a copy of the shared
    one is never needed: callers index it, which copies)."""
    got = _LUTS.get(name)
    if got is None:
        values = {"PLOIDY": _PLOIDY, "CALLED": _CALLED, "ALT_COUNT": _ALT_COUNT, "PHASED": _PHASED}[name]
        got = _LUTS[name] = np.array(values, dtype=bool if name == "PHASED" else np.int8)
    return got


def __getattr__(name: str) -> Any:
    """``PLOIDY``, ``CALLED``, ``ALT_COUNT`` (int8) and ``PHASED`` (bool): numpy lookup tables by code k."""
    if name in ("PLOIDY", "CALLED", "ALT_COUNT", "PHASED"):
        return _lut_array(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

COUNT_FIELDS = ("ac", "an", "missing", "nhomalt", "nhemi")


def call_counts(ploidy: np.ndarray, called: np.ndarray, alt_count: np.ndarray) -> np.ndarray:
    """**The lake's counting rule per call**, the one definition every count is summed from (ingest's
    ``variants`` counts, ``genolake aggregate``, ``samples remove``; the Hail engine builds calls that Hail counts
    the same way, checked by its tests). Each call, given its ploidy, its called (non-missing) alleles and how
    many of them are the split row's alt allele, adds, in the columns :data:`COUNT_FIELDS` of an (n, 5) int64
    matrix:

    - ``ac``: its alt alleles; ``an``: its called alleles (``./1`` adds 1 to AN and its alt to AC);
    - ``missing``: 1 when any allele is missing or the call has no allele at all (ploidy 0); a person counts in
      ``n_called`` when this is 0;
    - ``nhomalt``: 1 for a diploid call with both alleles alt; ``nhemi``: 1 for a haploid alt call.

    A person without a stored call is a diploid ``0/0``: ``(0, 2, 0, 0, 0)``."""
    ploidy = np.asarray(ploidy, dtype=np.int64)
    called = np.asarray(called, dtype=np.int64)
    alt_count = np.asarray(alt_count, dtype=np.int64)
    return np.stack([alt_count, called, (called < ploidy) | (ploidy == 0), (ploidy == 2) & (alt_count == 2),
                     (ploidy == 1) & (alt_count == 1)], axis=1).astype(np.int64)


HOM_REF_COUNTS = (0, 2, 0, 0, 0)  # :func:`call_counts` of an implied diploid 0/0


def carries(alt_count: np.ndarray) -> np.ndarray:
    """**The lake's carrier rule**, the one definition every carrier count and list uses: a person carries a
    split row's alt allele when their call holds at least one copy of it (``alt_count > 0``: a het, a hom-alt,
    a hemizygous alt, and a partly missing ``./1``). A person without a stored call (an implied ``0/0``) does
    not. A *non-carrier* is a person fully called without it (``alt_count == 0`` and ``missing`` 0 in
    :func:`call_counts`). Boolean, one per call; :func:`carries_sql` is the same in DuckDB."""
    return np.asarray(alt_count) > 0


def carries_sql(c: str) -> str:
    """:func:`carries` as a DuckDB BOOLEAN expression over the stored calls of the relation alias ``c`` (``""``:
    the columns unqualified)."""
    return f"{c + '.' if c else ''}alt_count > 0"


def call_counts_sql(c: str) -> dict[str, str]:
    """:func:`call_counts` as DuckDB expressions over the stored calls of the relation alias ``c`` (columns
    ``ploidy``, ``called``, ``alt_count``, as in the ``calls`` view), one INTEGER per call, keyed by
    :data:`COUNT_FIELDS`; sum them per group. Tested equal to :func:`call_counts` on every combination."""
    return {"ac": f"CAST({c}.alt_count AS INTEGER)", "an": f"CAST({c}.called AS INTEGER)",
            "missing": f"CAST(({c}.called < {c}.ploidy OR {c}.ploidy = 0) AS INTEGER)",
            "nhomalt": f"CAST(({c}.ploidy = 2 AND {c}.alt_count = 2) AS INTEGER)",
            "nhemi": f"CAST(({c}.ploidy = 1 AND {c}.alt_count = 1) AS INTEGER)"}
FORMAT_FIELDS = ("gq", "dp", "ad_ref", "ad_alt")
CALL_COLUMNS = ("institution", "contig", "pos", "ref", "alt", "sample_id", "gt", "ploidy", "called", "alt_count",
                "phased", "gq", "dp", "ad_ref", "ad_alt", "file_id")


def diploid_codes(a0: np.ndarray, a1: np.ndarray, phased: np.ndarray) -> np.ndarray:
    """Codes k (uint8) of calls given as recoded allele pairs: -1 missing, 0, 1; ``a1`` -2 for a haploid call.

    A call with no allele at all (``a0`` -2) gets :data:`OTHER`; its text is ``""``."""
    a0 = np.asarray(a0)
    a1 = np.asarray(a1)
    dip = 1 + (a0 + 1) * 3 + (a1 + 1) + np.asarray(phased, dtype=np.int64) * 9
    k = np.where(a1 == -2, 19 + (a0 + 1), dip)
    k = np.where((a1 != -2) & (a0 == 0) & (a1 == 0), HOM_REF, k)
    k = np.where(a0 == -2, OTHER, k)
    return k.astype(np.uint8)


def code_text(text: str) -> int:
    """The code of a genotype text (:data:`OTHER` if it has none)."""
    if text in ("0/0", "0|0"):
        return HOM_REF
    try:
        k = TEXT.index(text)
    except ValueError:
        return OTHER
    return k if 0 < k < OTHER else OTHER


MAX_SYMBOLS = 15
HEX = "0123456789ABCDEF"


def alphabet(codes: np.ndarray, counts: np.ndarray | None = None) -> tuple[str, np.ndarray]:
    """The symbol alphabet of a (rows, samples) code matrix: its nonzero codes by frequency (at most 15), as
    the ``gt_symbols`` string, and the codes that did not fit (to be written as :data:`OTHER` with their text).
    ``counts``: the matrix's code histogram (``OTHER + 1`` values) when the caller has it already (ingest
    counts its batches as it codes them), which saves a pass over the matrix."""
    if counts is None:
        counts = np.bincount(np.asarray(codes, dtype=np.uint8).ravel(), minlength=OTHER + 1)
    else:
        counts = np.array(counts, dtype=np.int64)
    counts[HOM_REF] = 0
    present = [int(k) for k in np.argsort(-counts, kind="stable") if counts[k] > 0]
    keep = present[:MAX_SYMBOLS]
    if len(present) > MAX_SYMBOLS and OTHER not in keep:
        keep = [*keep[:MAX_SYMBOLS - 1], OTHER]
    overflow = np.array([k for k in present if k not in keep], dtype=np.uint8)
    return "".join(chr(BASE + k) for k in keep), overflow


def pack(codes: np.ndarray, symbols: str) -> pa.Array:
    """A (rows, samples) code matrix as the ``gt`` binary column under the alphabet ``symbols`` (every nonzero
    code of the matrix must be in it): two samples per byte, the first in the high nibble."""
    lut = np.zeros(OTHER + 1, dtype=np.uint8)
    for s, ch in enumerate(symbols, start=1):
        lut[ord(ch) - BASE] = s
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n_rows, n = codes.shape
    if codes.size and int(codes.max()) > OTHER:
        raise IndexError(f"genotype code {int(codes.max())} is not a code (0-{OTHER})")
    if n % 2:
        codes = np.concatenate([codes, np.zeros((n_rows, 1), dtype=np.uint8)], axis=1)
    # each pair of samples' codes, read as one little-endian 16-bit number, gives its byte by one look-up
    # (one gather over half the cells instead of a gather, two strided shifts and an or over all of them)
    first, second, ok = _code_pairs()
    pair_lut = np.zeros(1 << 16, dtype=np.uint8)
    pair_lut[ok] = (lut[first] << 4) | lut[second]
    data = pair_lut[codes.view("<u2")]
    width = data.shape[1]
    offsets = np.arange(n_rows + 1, dtype=np.int64) * width
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.binary(), n_rows, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                             pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.large_binary(), n_rows, [None, pa.py_buffer(offsets),
                                                              pa.py_buffer(data)]).cast(pa.binary())


@functools.cache
def _code_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For :func:`pack`'s look-up by pairs: the first and second code of every 16-bit value whose two bytes are
    both codes (0-OTHER), and where those values are (made once: they depend on nothing)."""
    pair = np.arange(1 << 16, dtype=np.uint16)
    first, second = (pair & 0xFF).astype(np.intp), (pair >> 8).astype(np.intp)
    ok = (first <= OTHER) & (second <= OTHER)
    return first[ok], second[ok], ok


def encode(codes: np.ndarray, other: dict[int, list[str]], *,
           counts: np.ndarray | None = None) -> tuple[pa.Array, str, pa.Array]:
    """The ``gt``, ``gt_symbols`` and ``other_gt`` of a written part from its (rows, samples) code matrix and the
    texts of its :data:`OTHER` calls (row -> texts in sample order): the one encoder (ingest and migrate). Codes
    beyond the part's 15 symbols (never seen on real data) are written as :data:`OTHER` with their text.
    ``codes`` is changed in place where that happens. ``counts``: the code histogram, if known (:func:`alphabet`)."""
    symbols, overflow = alphabet(codes, counts)
    other = dict(other)
    if overflow.size:
        hit = np.isin(codes, overflow)
        for r in np.flatnonzero(hit.any(axis=1)).tolist():
            texts = iter(other.get(r, []))
            other[r] = [next(texts) if k == OTHER else TEXT[k]
                        for k in codes[r][(codes[r] == OTHER) | hit[r]].tolist()]
        codes[hit] = OTHER
    other_gt = pa.array([other.get(r) for r in range(codes.shape[0])], pa.list_(pa.string()))
    return pack(codes, symbols), symbols, other_gt


def unpack(rows: pa.Table, n_samples: int) -> np.ndarray:
    """The (rows, n_samples) code matrix of ``genotypes`` rows of one file (the inverse of :func:`pack`)."""
    gt = _combined(rows.column("gt"))
    offsets, data = string_buffers(gt)
    width = (n_samples + 1) // 2
    raw = data[int(offsets[0]):int(offsets[-1])].reshape(rows.num_rows, width)
    sym = np.empty((rows.num_rows, width * 2), dtype=np.uint8)
    sym[:, 0::2] = raw >> 4
    sym[:, 1::2] = raw & 15
    luts = _luts(rows)
    return np.take_along_axis(luts, sym[:, :n_samples].astype(np.int64), axis=1) if rows.num_rows else \
        np.zeros((0, n_samples), dtype=np.uint8)


def _combined(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _luts(rows: pa.Table) -> np.ndarray:
    """Per row, its symbol -> code table (rows, 16)."""
    return _symbol_luts(_combined(rows.column("gt_symbols")).to_pylist())


def _symbol_luts(names: Sequence[str | None]) -> np.ndarray:
    """Per row alphabet ``names[i]`` (``gt_symbols``), its symbol -> code table (rows, 16)."""
    cache: dict[str | None, np.ndarray] = {}
    out = np.zeros((len(names), 16), dtype=np.uint8)
    for i, name in enumerate(names):
        lut = cache.get(name)
        if lut is None:
            lut = np.zeros(16, dtype=np.uint8)
            for s, ch in enumerate(name or "", start=1):
                lut[s] = ord(ch) - BASE
            cache[name] = lut
        out[i] = lut
    return out


def list_column(counts: np.ndarray, values: np.ndarray, missing: int) -> pa.Array:
    """A list<int32> column: row i holds the next ``counts[i]`` of ``values``; ``missing`` or less -> null."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    vals = np.asarray(values)
    if vals.dtype == np.int32:  # ingest's values: no widening copy (the column is tens of millions of values)
        mask = vals <= missing
    else:
        vals = np.asarray(values, dtype=np.int64)
        mask = vals <= missing
        vals = vals.astype(np.int32)
    flat = pa.array(vals, type=pa.int32(), mask=mask)
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


def valid_mask(arr: pa.Array) -> np.ndarray:
    """True where ``arr`` is not null (from its validity bitmap: no pyarrow.compute, no pandas)."""
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[arr.offset:arr.offset + len(arr)].astype(bool)


def string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes as uint8) of a string/binary array (chunk), sliced to its own rows."""
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        odt: type = np.int64
    else:
        odt = np.int32
    bufs = arr.buffers()
    offsets: np.ndarray = np.frombuffer(bufs[1], dtype=odt, count=len(arr) + 1 + arr.offset)[arr.offset:]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


def _stored_calls(offsets: np.ndarray, data: np.ndarray, symbols: Sequence[str | None]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column_index, code k) of rows whose ``gt`` bytes are ``data[offsets[i]:offsets[i + 1]]`` and whose
    alphabets are ``symbols``: the codec of :func:`stored_calls` and :func:`call_values_of`."""
    lo, hi = int(offsets[0]), int(offsets[-1])
    window = data[lo:hi]
    nib = np.empty(window.size * 2, dtype=np.uint8)
    nib[0::2] = window >> 4
    nib[1::2] = window & 15
    nz = np.flatnonzero(nib)
    row = np.searchsorted(offsets[1:] - lo, nz // 2, side="right")
    col = nz - 2 * (offsets[row] - lo)
    k = _symbol_luts(symbols)[row, nib[nz]] if nz.size else np.zeros(0, dtype=np.uint8)
    return row, col, k


def stored_calls(rows: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored calls of ``genotypes`` rows (columns ``gt``, ``gt_symbols``): (row, column_index, code k),
    row-major (rows, then samples in order)."""
    gt = _combined(rows.column("gt"))
    if gt.null_count:
        raise ValueError("genotype codes must not be null")
    offsets, data = string_buffers(gt)
    row, col, k = _stored_calls(offsets, data, _combined(rows.column("gt_symbols")).to_pylist())
    return row.astype(np.int64), col.astype(np.int64), k.astype(np.int8)


def _fixed_width(rows: pa.Table) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(offsets, bytes, width) of the ``gt`` column when every row has the same width (rows of one file), else
    None."""
    gt = _combined(rows.column("gt"))
    if gt.null_count:
        raise ValueError("genotype codes must not be null")
    offsets, data = string_buffers(gt)
    widths = np.diff(offsets)
    width = int(widths[0]) if len(gt) else 0
    if len(gt) == 0 or width == 0 or not bool((widths == width).all()):
        return None
    return offsets, data, width


def _one_alphabet(rows: pa.Table) -> np.ndarray | None:
    """The symbol -> code table (16,) shared by every row, or None when the rows have several alphabets."""
    import pyarrow.compute as pc

    names = pc.unique(_combined(rows.column("gt_symbols")))
    if len(names) != 1:
        return None
    lut = np.zeros(16, dtype=np.int8)
    for s, ch in enumerate(names[0].as_py() or "", start=1):
        lut[s] = ord(ch) - BASE
    return lut


def _nonzero_nibbles(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero 4-bit symbols of packed ``gt`` bytes ``raw``, in order: the byte each is in, whether it is the
    byte's second (low, odd) sample, and the symbol."""
    nzb = np.flatnonzero(raw != 0)  # (on a bool array: 3x faster than on the bytes)
    byte = raw[nzb]
    nib = np.empty((nzb.size, 2), dtype=np.uint8)  # (high, low) = (even, odd) sample of each nonzero byte
    nib[:, 0] = byte >> 4
    nib[:, 1] = byte & 15
    flat = nib.ravel()
    hit = np.flatnonzero(flat)
    return nzb[hit >> 1], hit & 1, flat[hit]


def stored_calls_fixed(rows: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`stored_calls` for rows of one width (the rows of one file: every row has a symbol per sample), found
    from the nonzero bytes of the ``gt`` matrix: no per-genotype symbol array and no row search, so it costs about
    one pass over the bytes. The same (row, column_index, code k), row-major; rows of unequal widths fall back to
    :func:`stored_calls`."""
    fixed = _fixed_width(rows)
    if fixed is None:
        return stored_calls(rows)
    offsets, data, width = fixed
    at, odd, sym = _nonzero_nibbles(data[int(offsets[0]):int(offsets[-1])])
    row = at // width
    col = (at - row * width) * 2 + odd
    lut = _one_alphabet(rows)
    k = lut[sym] if lut is not None else _luts(rows)[row, sym].astype(np.int8)
    return row.astype(np.int64), col.astype(np.int64), k


@dataclass
class NonzeroPairs:
    """The nonzero bytes of ``genotypes`` rows of one width and one alphabet, row-major: row r has the entries
    ``starts[r]:starts[r + 1]``; byte ``pair[i]`` of its row holds sample ``2 * pair[i]`` with symbol ``high[i]``
    and sample ``2 * pair[i] + 1`` with symbol ``low[i]`` (either may be 0, the implied 0/0); symbol s stands for
    code ``lut[s]``."""

    lut: np.ndarray  # (16,) symbol -> code
    width: int  # bytes per row
    starts: np.ndarray  # (rows + 1,) int64
    pair: np.ndarray  # int32
    high: np.ndarray
    low: np.ndarray


def nonzero_pairs(rows: pa.Table) -> NonzeroPairs | None:
    """The stored calls of ``genotypes`` rows as :class:`NonzeroPairs`, for counting by sample pair without
    splitting every byte (one pass over the codes); None when the rows have several widths or alphabets (use
    :func:`stored_calls_fixed`)."""
    fixed = _fixed_width(rows)
    lut = _one_alphabet(rows) if fixed is not None else None
    if fixed is None or lut is None:
        return None
    offsets, data, width = fixed
    n = len(offsets) - 1
    raw = data[int(offsets[0]):int(offsets[-1])]
    at = np.flatnonzero(raw != 0)
    byte = raw[at]
    starts = np.searchsorted(at, np.arange(n + 1, dtype=np.int64) * width)
    pair = (at % width).astype(np.int32)
    return NonzeroPairs(lut, width, starts, pair, byte >> 4, byte & 15)


def flat_values(col: pa.Array | pa.ChunkedArray, counts: np.ndarray) -> pa.Array:
    """The values of a list column, one per stored call (null lists stand for as many nulls as the row has)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count == 0:
        return arr.flatten()
    if arr.null_count == len(arr):  # a FORMAT field the file does not have
        return pa.nulls(int(np.sum(counts)), arr.type.value_type)
    import pyarrow.compute as pc

    filled = pc.if_else(pc.is_null(arr), pa.array([None] * len(arr), arr.type), arr)
    parts = []
    flat = filled.flatten()
    lens = np.asarray(pc.fill_null(pc.list_value_length(filled), 0))
    pos = 0
    for i, c in enumerate(counts.tolist()):
        if arr[i].is_valid:
            parts.append(flat.slice(pos, lens[i]))
            pos += int(lens[i])
        else:
            parts.append(pa.nulls(c, flat.type))
    return pa.concat_arrays(parts) if parts else pa.array([], flat.type)


@dataclass
class CallValues:
    """The stored calls of `genotypes` rows: row, column index, code, and each call's ploidy, called alleles and
    alt count (other-ploidy calls parsed from ``other_gt``), row-major."""

    row: np.ndarray
    col: np.ndarray
    k: np.ndarray
    ploidy: np.ndarray
    called: np.ndarray
    alt_count: np.ndarray
    other_idx: np.ndarray  # positions (in the calls) of the other-ploidy calls
    other_text: list[str]


def _values_of_rows(rows: pa.Table, row: np.ndarray, col: np.ndarray, k: np.ndarray) -> CallValues:
    """The :class:`CallValues` of the stored calls (row, column index, code k) of ``rows``, other-ploidy texts
    read from ``other_gt``."""
    other_idx = np.flatnonzero(k == OTHER)
    other_text: list[str] = []
    if other_idx.size:
        other_text = [str(x) for x in flat_values(rows.column("other_gt"), np.bincount(
            row[other_idx], minlength=rows.num_rows)).to_pylist()]
    return _with_values(row, col, k, other_idx, other_text)


def calls_of_rows(calls: CallValues, rows: np.ndarray) -> CallValues:
    """The calls of the rows ``rows`` (ascending row numbers) of ``calls``, numbered by their place in ``rows``:
    the :class:`CallValues` of ``table.take(rows)`` when ``calls`` are those of ``table``."""
    keep = np.isin(calls.row, rows)
    renumber = np.full(int(rows[-1]) + 1 if len(rows) else 0, -1, dtype=np.int64)
    renumber[rows] = np.arange(len(rows), dtype=np.int64)
    at = np.flatnonzero(keep)
    other = keep[calls.other_idx]
    return CallValues(renumber[calls.row[at]], calls.col[at], calls.k[at], calls.ploidy[at], calls.called[at],
                      calls.alt_count[at], np.searchsorted(at, calls.other_idx[other]),
                      [t for t, o in zip(calls.other_text, other.tolist(), strict=True) if o])


def call_values(rows: pa.Table) -> CallValues:
    """The stored calls of ``rows`` (columns ``gt``, and ``other_gt`` where a row has other-ploidy calls)."""
    row, col, k = stored_calls(rows)
    return _values_of_rows(rows, row, col, k)


def _sparse_calls(offsets: np.ndarray, data: np.ndarray, symbols: Sequence[str | None]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_stored_calls` found from the nonzero bytes (the few rows of a point query: work per stored call,
    not per sample); (row, column_index, code k) as int64, int64, int8."""
    lo, hi = int(offsets[0]), int(offsets[-1])
    at, odd, sym = _nonzero_nibbles(data[lo:hi])  # at: byte of each stored call in the window
    row = np.searchsorted(offsets[1:] - lo, at, side="right")
    col = (at - (offsets[row] - lo)) * 2 + odd
    k = _symbol_luts(symbols)[row, sym] if at.size else np.zeros(0, dtype=np.uint8)
    return row.astype(np.int64), col.astype(np.int64), k.astype(np.int8)


def nonzero_bytes(value: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A packed ``gt`` value (bytes or any buffer) as its bytes (uint8, not copied) and the sorted positions of its
    nonzero bytes (the bytes holding a stored call); None for None. The scan a reader without an index makes."""
    if value is None:
        return None
    v = np.frombuffer(value, np.uint8)
    return v, np.flatnonzero(v != 0)  # (on a bool array: 3x faster than on the bytes)


@functools.lru_cache(maxsize=256)
def byte_codes(symbols: str | None) -> tuple[np.ndarray, np.ndarray]:
    """For the alphabet ``symbols`` (a row's ``gt_symbols``): the code k of each packed ``gt`` byte's high nibble
    (the even sample) and of its low nibble (the odd sample), as two (256,) int64 arrays (symbol 0 is
    :data:`HOM_REF`). Lets a reader of few rows go from bytes to codes in one look-up per byte, with no nibble
    arrays; made once per alphabet."""
    lut = _symbol_luts([symbols])[0].astype(np.int64)
    b = np.arange(256)
    return lut[b >> 4], lut[b & 15]


def call_values_of(gt: Sequence[bytes], gt_symbols: Sequence[str | None],
                   other_gt: Sequence[Sequence[str] | None]) -> CallValues:
    """:func:`call_values` of ``genotypes`` rows given as Python values (DuckDB's ``fetchall``), one list per
    column: the same codec without building Arrow arrays (pyarrow imports pandas, 0.2-0.5 s, the first time
    it converts Python or numpy values: the cold command line's point query reads calls this way)."""
    if any(g is None for g in gt):
        raise ValueError("genotype codes must not be null")
    lens = np.fromiter((len(g) for g in gt), dtype=np.int64, count=len(gt))
    offsets = np.zeros(len(gt) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    data = np.frombuffer(gt[0] if len(gt) == 1 else b"".join(gt), dtype=np.uint8)  # one row: not copied
    row, col, k = _sparse_calls(offsets, data, gt_symbols)
    other_idx = np.flatnonzero(k == OTHER)
    other_text: list[str] = []
    if other_idx.size:  # a null list stands for as many nulls as the row has other-ploidy calls (flat_values)
        per_row = np.bincount(row[other_idx], minlength=len(gt)).tolist()
        for r, n in enumerate(per_row):
            if n:
                texts = other_gt[r]
                other_text += [str(x) for x in texts] if texts is not None else ["None"] * n
    return _with_values(row, col, k, other_idx, other_text)


def _with_values(row: np.ndarray, col: np.ndarray, k: np.ndarray, other_idx: np.ndarray,
                 other_text: list[str]) -> CallValues:
    ploidy, called, altc = _lut_array("PLOIDY")[k], _lut_array("CALLED")[k], _lut_array("ALT_COUNT")[k]
    for j, i in enumerate(other_idx.tolist()):
        al = _alleles(other_text[j])
        ploidy[i] = len(al)
        called[i] = sum(a != "." for a in al)
        altc[i] = sum(a == "1" for a in al)
    return CallValues(row, col, k, ploidy, called, altc, other_idx, other_text)


def expand(rows: pa.Table, pseudonyms: Callable[[str], pa.Array], columns: Sequence[str] = CALL_COLUMNS,
           *, carriers_only: bool = False, calls: CallValues | None = None, by_sample: bool = False,
           column_index: bool = False) -> pa.Table:
    """The stored calls of ``genotypes`` rows as the long ``calls`` columns (``columns`` only).

    ``pseudonyms(file_id)`` gives the file's pseudonyms by column index (null where a person was withdrawn:
    their calls are left out). With ``carriers_only`` only calls holding the alt are returned. ``calls``: the
    rows' :func:`call_values` (or :func:`call_values_of`) when the caller has them already. With
    ``by_sample`` the calls come sorted by institution, then sample_id (code point order, as DuckDB's ORDER BY;
    ties in row-major order), not row-major: carriers are listed so (``rows`` needs ``institution``). With
    ``column_index`` a last column ``column_index`` (int32) gives each call's sample column in its file."""
    import pyarrow as pa  # the module's ``pa`` is lazy (each attribute read costs ~1 us): bound once here

    n = rows.num_rows
    if n == 0:
        return _empty(columns)
    if calls is None:
        calls = call_values(rows)
    row, col, k, ploidy, called, altc, other_idx, other_text = (
        calls.row, calls.col, calls.k, calls.ploidy, calls.called, calls.alt_count, calls.other_idx, calls.other_text)
    need = set(columns)
    fids = _combined(rows.column("file_id")).to_pylist()
    # sample pseudonyms: one dictionary over the files of these rows, indexed per file by column index
    names = _pseudonym_dictionary(pseudonyms, list(dict.fromkeys(fids)))
    dictionary, valid, base = names.dictionary, names.valid, names.base
    row_base = np.array([base[f] for f in fids], dtype=np.int64)
    sidx = row_base[row] + col
    present = valid[sidx] if len(valid) else np.zeros(len(sidx), bool)
    keep = present & carries(altc) if carriers_only else present
    take = None if bool(keep.all()) else np.flatnonzero(keep)
    if by_sample:
        inst = _combined(rows.column("institution")).to_pylist()
        inst_rank = {v: i for i, v in enumerate(sorted(set(inst)))}
        row_rank = np.array([inst_rank[v] for v in inst], dtype=np.int64)
        at = np.arange(len(row)) if take is None else take
        take = at[np.lexsort((names.rank()[sidx[at]], row_rank[row[at]]))]  # stable: ties stay row-major

    def sel(a: np.ndarray) -> np.ndarray:
        return a if take is None else a[take]

    out: dict[str, pa.Array] = {}
    take_rows = pa.array(sel(row))
    for name in ("institution", "contig", "pos", "ref", "alt", "file_id"):
        if name in need:
            out[name] = _combined(rows.column(name)).take(take_rows)
    if "sample_id" in need:
        out["sample_id"] = dictionary.take(pa.array(sel(sidx)))
    if "gt" in need:
        kk = sel(k).astype(np.int32)
        if other_idx.size:
            ot = np.full(len(k), -1, dtype=np.int32)
            ot[other_idx] = np.arange(other_idx.size, dtype=np.int32) + len(TEXT)
            kk = np.where(sel(k) == OTHER, sel(ot), kk)
            texts = pa.array(list(TEXT) + other_text, pa.string())
        else:
            texts = _text_array()
        out["gt"] = texts.take(pa.array(kk))
    if "ploidy" in need:
        out["ploidy"] = pa.array(sel(ploidy), pa.int8())
    if "called" in need:
        out["called"] = pa.array(sel(called), pa.int8())
    if "alt_count" in need:
        out["alt_count"] = pa.array(sel(altc), pa.int8())
    if "phased" in need:
        ph = _lut_array("PHASED")[k]
        if other_idx.size:
            ph[other_idx] = ["|" in t for t in other_text]
        out["phased"] = pa.array(sel(ph & (ploidy > 1)), pa.bool_())
    fmt = [name for name in FORMAT_FIELDS if name in need]
    if fmt:
        counts = np.bincount(row, minlength=n)
        take_calls = None if take is None else pa.array(take)
        for name in fmt:
            vals = flat_values(rows.column(name), counts) if name in rows.column_names else \
                pa.nulls(len(k), pa.int32())
            out[name] = vals if take_calls is None else vals.take(take_calls)
    names_out = list(columns)
    if column_index:
        out["column_index"] = pa.array(sel(col).astype(np.int32))
        names_out.append("column_index")
    return pa.Table.from_arrays([out[c] for c in names_out], names=names_out)


@functools.cache
def _text_array() -> pa.Array:
    """:data:`TEXT` as an Arrow string array (made once)."""
    return pa.array(list(TEXT), pa.string())


@dataclass
class _Names:
    """The pseudonyms of some files as one string array (see :func:`_pseudonym_dictionary`)."""

    dicts: list[pa.Array]  # each file's array, kept so that its id is not reused while this is cached
    dictionary: pa.Array
    valid: np.ndarray  # False: nobody (a withdrawn person)
    base: dict[str, int]  # file -> its first index in ``dictionary``
    _rank: np.ndarray | None = None

    def rank(self) -> np.ndarray:
        """Each pseudonym's place in code point order (computed once)."""
        if self._rank is None:
            import pyarrow.compute as pc

            order = np.asarray(pc.array_sort_indices(self.dictionary), dtype=np.int64)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order), dtype=np.int64)
            self._rank = rank
        return self._rank


# (id of each file's pseudonym array, ...) -> their _Names: a point query's few files come back query after query
# (concatenating three files' pseudonyms cost more than the rest of expanding a carriers query's calls; on the
# full-tier lake 300 random carriers queries use 7 sets of files). At most _DICTIONARIES_KEPT sets and about
# _DICTIONARIES_BYTES of concatenations, validity and ranks (~1.6 MB a file of 50,000 samples), least recently
# used first out.
_DICTIONARIES: OrderedDict[tuple[int, ...], _Names] = OrderedDict()
_DICTIONARIES_KEPT = 32
_DICTIONARIES_BYTES = 64 << 20
_DICTIONARIES_LOCK = threading.Lock()


def _names_bytes(names: _Names) -> int:
    """Memory a cached :class:`_Names` holds beyond the files' own arrays (its rank counted before it is made)."""
    return int(names.dictionary.nbytes) + 9 * len(names.dictionary)


def _pseudonym_dictionary(pseudonyms: Callable[[str], pa.Array], files: list[str]) -> _Names:
    """The pseudonyms of ``files`` as one string array, its validity, and each file's first index in it (a
    file's sample at column index c is at first + c); cached for the same arrays of the same files."""
    import pyarrow as pa

    dicts = [pseudonyms(f) for f in files]
    key = tuple(id(d) for d in dicts)
    with _DICTIONARIES_LOCK:
        got = _DICTIONARIES.get(key)
        if got is not None and list(got.base) == files:
            _DICTIONARIES.move_to_end(key)
            return got
    base: dict[str, int] = {}
    at = 0
    for f, d in zip(files, dicts, strict=True):
        base[f] = at
        at += len(d)
    dictionary = pa.concat_arrays([d.cast(pa.string()) for d in dicts]) if dicts else pa.array([], pa.string())
    names = _Names(dicts, dictionary, valid_mask(dictionary), base)
    with _DICTIONARIES_LOCK:
        _DICTIONARIES[key] = names
        used = sum(_names_bytes(n) for n in _DICTIONARIES.values())
        while len(_DICTIONARIES) > 1 and (len(_DICTIONARIES) > _DICTIONARIES_KEPT or used > _DICTIONARIES_BYTES):
            _k, gone = _DICTIONARIES.popitem(last=False)
            used -= _names_bytes(gone)
    return names


_TYPES = {"institution": "string", "contig": "string", "pos": "int32", "ref": "string", "alt": "string",  # pa.X()
          "sample_id": "string", "gt": "string", "ploidy": "int8", "called": "int8", "alt_count": "int8",
          "phased": "bool_", "gq": "int32", "dp": "int32", "ad_ref": "int32", "ad_alt": "int32", "file_id": "string"}


def pseudonyms_by_file(file_ids: Sequence[str], column_index: Sequence[int], sample_ids: Sequence[str],
                       widths: dict[str, int] | None = None) -> dict[str, pa.Array]:
    """``samples`` rows as the ``pseudonyms`` argument of :func:`expand`: per file, its pseudonyms by column
    index, null where nobody is (a withdrawn person). ``widths`` gives each file's samples (default: its
    highest column index + 1)."""
    got: dict[str, list[str | None]] = {f: [None] * n for f, n in (widths or {}).items()}
    if widths is None:
        for fid, idx in zip(file_ids, column_index, strict=True):
            lst = got.setdefault(fid, [])
            lst.extend([None] * (int(idx) + 1 - len(lst)))
    for fid, idx, sid in zip(file_ids, column_index, sample_ids, strict=True):
        slots = got.get(fid)
        if slots is not None and 0 <= idx < len(slots):
            slots[int(idx)] = sid
    return {f: pa.array(v, pa.string()) for f, v in got.items()}


def _empty(columns: Sequence[str]) -> pa.Table:
    return pa.table({c: pa.array([], getattr(pa, _TYPES[c])()) for c in columns})


def _sql_list(items: Sequence[object]) -> str:
    out = []
    for x in items:
        if isinstance(x, str):
            out.append("'" + x.replace("'", "''") + "'")
        else:
            out.append(str(x))
    return "[" + ", ".join(out) + "]"


def stored_calls_sql(src: str) -> str:
    """DuckDB SQL giving, for ``genotypes`` rows ``src`` (a FROM-clause source), one row per stored call with the
    ``calls`` columns except ``sample_id`` and with ``column_index`` instead: the same calls as :func:`expand`.
    ``hex(gt)`` gives one character per sample; its symbol names the code in the row's ``gt_symbols``."""
    texts = _sql_list(list(TEXT))
    ploidy, called, altc = (_sql_list(list(lut)) for lut in (_PLOIDY, _CALLED, _ALT_COUNT))
    phased = "[" + ", ".join("true" if p and _PLOIDY[k] > 1 else "false" for k, p in enumerate(_PHASED)) + "]"

    def code(ch: str) -> str:
        return f"(ascii(substr(gt_symbols, instr('{HEX}', {ch}) - 1, 1)) - {BASE})"

    return f"""(WITH _g AS (SELECT *, string_split(hex(gt), '') AS _ch FROM {src}),
_i AS (SELECT *, list_filter(range(len(_ch)), lambda i: _ch[i + 1] <> '0') AS _idx FROM _g),
_c AS (SELECT institution, contig, pos, ref, alt, file_id, gt_symbols, _ch, _idx, other_gt,
              unnest(_idx) AS column_index, unnest(gq) AS gq, unnest(dp) AS dp,
              unnest(ad_ref) AS ad_ref, unnest(ad_alt) AS ad_alt FROM _i),
_k AS (SELECT *, {code('_ch[column_index + 1]')} AS _kk FROM _c),
_o AS (SELECT *, CASE WHEN _kk = {OTHER} THEN other_gt[list_position(
                  list_filter(_idx, lambda i: {code('_ch[i + 1]')} = {OTHER}), column_index)] END AS _other FROM _k),
_t AS (SELECT *, coalesce(_other, {texts}[_kk + 1]) AS _gt,
              CASE WHEN _kk = {OTHER} THEN string_split_regex(_other, '[/|]') END AS _al FROM _o)
SELECT institution, contig, pos, ref, alt, column_index, _gt AS gt,
       CAST(CASE WHEN _kk <> {OTHER} THEN {ploidy}[_kk + 1] WHEN _gt = '' THEN 0 ELSE len(_al) END
            AS TINYINT) AS ploidy,
       CAST(CASE WHEN _kk <> {OTHER} THEN {called}[_kk + 1]
                 ELSE len(list_filter(_al, lambda a: a <> '.' AND a <> '')) END AS TINYINT) AS called,
       CAST(CASE WHEN _kk <> {OTHER} THEN {altc}[_kk + 1] ELSE len(list_filter(_al, lambda a: a = '1')) END
            AS TINYINT) AS alt_count,
       CASE WHEN _kk <> {OTHER} THEN {phased}[_kk + 1] ELSE contains(_gt, '|') AND len(_al) > 1 END AS phased,
       gq, dp, ad_ref, ad_alt, file_id
FROM _t)"""


def calls_sql(src: str, samples: str) -> str:
    """DuckDB SQL giving the ``calls`` columns from ``genotypes`` rows ``src`` (a FROM-clause source) and the
    ``samples`` rows ``samples`` (file_id, column_index, sample_id): the same result as :func:`expand`."""
    return f"""(SELECT _t.institution, _t.contig, _t.pos, _t.ref, _t.alt, _s.sample_id, _t.gt, _t.ploidy, _t.called,
       _t.alt_count, _t.phased, _t.gq, _t.dp, _t.ad_ref, _t.ad_alt, _t.file_id
FROM {stored_calls_sql(src)} AS _t JOIN {samples} AS _s ON _s.file_id = _t.file_id AND _s.column_index = _t.column_index)"""


def drop_samples(rows: pa.Table, drop: Sequence[int], n_samples: int) -> pa.Table:
    """``genotypes`` rows of one file of ``n_samples`` samples without the samples at column indices ``drop``
    (withdrawn people): their codes, FORMAT values and other-ploidy texts are gone, and later samples move down
    (as ``samples``' column_index is renumbered)."""
    if not rows.num_rows or not len(drop):
        return rows
    mat = unpack(rows, n_samples)
    row, col, k = stored_calls(rows)
    counts = np.bincount(row, minlength=rows.num_rows)
    gone = np.zeros(n_samples, dtype=bool)
    gone[np.asarray(drop, dtype=np.int64)] = True
    keep = ~gone[col]
    new_counts = np.bincount(row[keep], minlength=rows.num_rows)
    symbols = _combined(rows.column("gt_symbols")).to_pylist()
    kept = mat[:, ~gone]
    parts = []
    start = 0
    for i in range(1, len(symbols) + 1):  # rows of one alphabet are packed together
        if i == len(symbols) or symbols[i] != symbols[start]:
            parts.append(pack(kept[start:i], symbols[start] or ""))
            start = i
    out = rows.set_column(rows.schema.get_field_index("gt"), "gt", pa.concat_arrays(parts))
    for name in FORMAT_FIELDS:
        if name not in rows.column_names:
            continue
        vals = flat_values(rows.column(name), counts).filter(pa.array(keep))
        offs = np.zeros(rows.num_rows + 1, dtype=np.int32)
        np.cumsum(new_counts, out=offs[1:])
        out = out.set_column(out.schema.get_field_index(name), name, pa.ListArray.from_arrays(pa.array(offs), vals))
    if "other_gt" in rows.column_names:
        is_other = k == OTHER
        if is_other.any():
            texts = flat_values(rows.column("other_gt"), np.bincount(row[is_other], minlength=rows.num_rows))
            kept_texts = texts.filter(pa.array(keep[is_other])).to_pylist()
            per_row: list[list[str] | None] = [None] * rows.num_rows
            for r, t in zip(row[is_other & keep].tolist(), kept_texts, strict=True):
                lst = per_row[r]
                if lst is None:
                    per_row[r] = [t]
                else:
                    lst.append(t)
            out = out.set_column(out.schema.get_field_index("other_gt"), "other_gt",
                                 pa.array(per_row, pa.list_(pa.string())))
    return out
