"""Phenotypes: load a sample table (TSV/CSV or PED/FAM) of one institution into the lake.

Sample IDs are pseudonymised with the lake's key exactly as at ingest, so phenotypes join to ``calls`` and
``samples``. PED/FAM family, father and mother IDs are pseudonymised too. Raw IDs never reach the lake, the
report or an error message (errors name line numbers).

Storage is one Delta table, ``phenotypes``, in *long* form (one row per sample and phenotype), so adding a
phenotype never changes the schema. The query engine shows it *wide* as the DuckDB view ``phenotypes``
(institution, sample_id, one typed column per phenotype) and long as ``phenotypes_long``.

Phenotype names are lower-cased and made SQL identifiers (``BMI`` -> ``bmi``, ``hair colour`` -> ``hair_colour``).
Kinds are inferred per column and can be given with ``types={"age": "numeric"}``:

- ``numeric``: every non-missing value parses as a number (ints and floats; stored as float64);
- ``list``: a value holds several codes separated by ``;`` or ``,`` (HPO, ICD-10, ...), or values are HPO terms;
  stored as a list of strings;
- ``categorical``: anything else (stored as text).

Missing values (empty, ``NA``, ``N/A``, ``NaN``, ``.``, ``null``, ``None``) store no row.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.errors import BadInputFileError, UserInputError
from genolake.schema import PHENOTYPES, valid_phenotype_name

log = logging.getLogger(__name__)

KINDS = ("categorical", "numeric", "list")

MISSING = frozenset({"", "na", "n/a", "nan", ".", "null", "none", "-"})
RESERVED = frozenset({"institution", "sample_id"})
_HPO = re.compile(r"^HP:\d{7}$")
LIST_SEPARATORS = ";|,"  # a list cell is split on any of these (spaces around codes are dropped)
MAX_CELL = 128 * 1024  # bytes: a longer cell is refused (phenotype values are codes, numbers and short text)
_PED_MISSING_PARENT = frozenset({"0", "-9", *MISSING})
_PED_SEX = {"1": "male", "2": "female", "m": "male", "f": "female", "male": "male", "female": "female"}
_PED_AFFECTED = {"1": "control", "2": "case"}
_PED_AFFECTED_MISSING = frozenset({"0", "-9", *MISSING})


def _is_missing(v: str | None) -> bool:
    return v is None or v.strip().lower() in MISSING


def phenotype_name(raw: str) -> str:
    """A column header as a phenotype name: lower case, non-identifier characters -> `_`."""
    name = re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_")
    if name and name[0].isdigit():
        name = "_" + name
    return name


@dataclass
class _Column:
    name: str
    values: list[str | None]  # per row, None = missing
    kind: str = "categorical"
    pseudonymise: bool = False


@dataclass
class _Parsed:
    sample_ids: list[str]
    lines: list[int]
    columns: list[_Column] = field(default_factory=list)
    fmt: str = "tsv"


# ---------------------------------------------------------------------------------------------- reading
def _read_lines(path: Path) -> list[str]:
    import gzip

    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8-sig") as fh:
                return fh.read().splitlines()
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputFileError(str(path), f"cannot read: {exc}") from None


def _is_ped(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith((".ped", ".fam"))


def _parse_ped(path: Path, lines: list[str]) -> _Parsed:
    """PED/FAM: family, sample, father, mother, sex, affected[, more columns named by a `#` header]."""
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            if header is None and not rows:
                header = line.lstrip("#").split()
            continue
        parts = line.split()
        if any(len(c) > MAX_CELL for c in parts):
            raise BadInputFileError(str(path), f"a cell is longer than {MAX_CELL // 1024} KiB (phenotype values are "
                                    "codes, numbers and short text)", record=f"line {n}")
        if len(parts) < 6:
            raise BadInputFileError(str(path), "a PED/FAM line needs at least 6 columns (family, sample, father, "
                                    "mother, sex, affected), separated by spaces or tabs", record=f"line {n}")
        rows.append((n, parts))
    if not rows:
        raise BadInputFileError(str(path), "no samples in the PED/FAM file")
    width = max(len(p) for _, p in rows)
    extra_names = [phenotype_name(h) for h in (header or [])[6:width]]
    extra_names += [f"ped_column_{k + 1}" for k in range(len(extra_names) + 6, width)]
    parsed = _Parsed(sample_ids=[p[1] for _, p in rows], lines=[n for n, _ in rows], fmt="ped")

    def col(i: int) -> list[str | None]:
        return [p[i] if i < len(p) else None for _, p in rows]

    def parent(v: str | None) -> str | None:
        return None if v is None or v.strip().lower() in _PED_MISSING_PARENT else v

    parsed.columns.append(_Column("family_id", [parent(v) for v in col(0)], "categorical", pseudonymise=True))
    parsed.columns.append(_Column("paternal_id", [parent(v) for v in col(2)], "categorical", pseudonymise=True))
    parsed.columns.append(_Column("maternal_id", [parent(v) for v in col(3)], "categorical", pseudonymise=True))
    parsed.columns.append(_Column("sex", [_PED_SEX.get((v or "").strip().lower(), "unknown") for v in col(4)]))
    affected = col(5)
    tokens = {(v or "").strip().lower() for v in affected}
    if tokens <= set(_PED_AFFECTED) | _PED_AFFECTED_MISSING:
        parsed.columns.append(_Column("affected", [
            None if v is None or v.strip().lower() in _PED_AFFECTED_MISSING else _PED_AFFECTED[v.strip()]
            for v in affected
        ]))
    else:  # PLINK: a quantitative trait in column 6 (-9 = missing)
        parsed.columns.append(_Column("phenotype", [None if v is None or v.strip() == "-9" or _is_missing(v) else v
                                                    for v in affected], "numeric"))
    for k, name in enumerate(extra_names):
        parsed.columns.append(_Column(name, [None if _is_missing(v) else v for v in col(6 + k)], ""))
    return parsed


def _parse_table(path: Path, lines: list[str], sample_column: str) -> _Parsed:
    """TSV/CSV with a header line; the delimiter is the file's (tab if the header has one, else comma)."""
    lines = [ln for ln in lines if ln.strip() and not ln.startswith("##")]
    if not lines:
        raise BadInputFileError(str(path), "empty file: expected a header line with a sample ID column")
    head = lines[0].lstrip("#")
    delim = "\t" if "\t" in head else ("," if "," in head else None)
    if delim is None:
        delim = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    reader = csv.reader([head, *lines[1:]], delimiter=delim)
    header = [h.strip() for h in next(reader)]
    want = sample_column.strip()
    idx = next((i for i, h in enumerate(header) if h == want), None)
    if idx is None:
        idx = next((i for i, h in enumerate(header) if h.lower() == want.lower()), None)
    if idx is None:
        raise BadInputFileError(
            str(path), f"no sample ID column {sample_column!r}; the columns are: {', '.join(header)} "
            "(name the sample ID column with --sample-column)")
    try:
        rows = list(reader)
    except csv.Error as exc:  # e.g. "field larger than field limit (131072)"
        raise BadInputFileError(str(path), f"cannot parse this line ({exc}); a cell may hold at most "
                                f"{MAX_CELL // 1024} KiB", record=f"line {reader.line_num}") from None
    ids: list[str] = []
    line_nos: list[int] = []
    data: list[list[str]] = []
    for n, r in enumerate(rows, start=2):
        if not any(c.strip() for c in r):
            continue
        if len(r) != len(header):
            raise BadInputFileError(str(path), f"{len(r)} fields but the header has {len(header)}", record=f"line {n}")
        if any(len(c) > MAX_CELL for c in r):
            raise BadInputFileError(str(path), f"a cell is longer than {MAX_CELL // 1024} KiB (phenotype values are "
                                    "codes, numbers and short text)", record=f"line {n}")
        sid = r[idx].strip()
        if _is_missing(sid):
            raise BadInputFileError(str(path), "empty sample ID", record=f"line {n}")
        ids.append(sid)
        line_nos.append(n)
        data.append(r)
    if not ids:
        raise BadInputFileError(str(path), "no samples (only a header line)")
    parsed = _Parsed(sample_ids=ids, lines=line_nos, fmt="csv" if delim == "," else "tsv")
    for i, h in enumerate(header):
        if i == idx:
            continue
        parsed.columns.append(_Column(h, [None if _is_missing(r[i]) else r[i].strip() for r in data], ""))
    return parsed


# ---------------------------------------------------------------------------------------------- typing
def _split_codes(v: str) -> list[str]:
    out: list[str] = []
    for part in re.split(r"[;,|]", v):
        p = part.strip()
        if p and p not in out:
            out.append(p)
    return out


def _as_float(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def infer_kind(values: list[str | None]) -> str:
    """`numeric`, `list` or `categorical` for a column's raw values (missing ones are None).

    A column is a list only when *every* value is one or more HPO terms (``HP:0001250;HP:0004322``): nothing
    else is split unless the user says so (``--list-columns`` or ``--type NAME=list``), so free text with a
    comma, ``;`` or ``|`` is stored as written."""
    present = [v for v in values if v is not None]
    if not present:
        return "categorical"
    if all(_as_float(v) is not None for v in present):
        return "numeric"
    if all(codes and all(_HPO.match(c) for c in codes) for codes in map(_split_codes, present)):
        return "list"
    return "categorical"


def _check_kind(path: Path, col: _Column, lines: list[int]) -> None:
    if col.kind == "numeric":
        for v, n in zip(col.values, lines, strict=True):
            if v is not None and _as_float(v) is None:
                raise BadInputFileError(str(path), f"column {col.name!r} is numeric but holds a non-number",
                                        record=f"line {n}")


# ---------------------------------------------------------------------------------------------- loading
def load_phenotypes(
    lake: Path | str,
    institution: str,
    path: Path | str,
    *,
    types: dict[str, str] | None = None,
    sample_column: str = "sample_id",
    keep_unmatched: bool = False,
) -> dict[str, Any]:
    """Load (or replace) the phenotypes of ``institution`` from a TSV/CSV or PED/FAM file.

    Parameters
    ----------
    lake
        The lake folder; it must exist and hold samples of ``institution``.
    path
        ``.ped``/``.fam`` (whitespace-separated; a ``#`` header names extra columns) or a delimited table with a
        header line (tab or comma) that has a ``sample_column``.
    types
        Kinds by column name (as in the file or as the phenotype name): ``categorical``, ``numeric``, ``list``.
        Without one a column is numeric if every value is a number, a list if every value is HPO terms, else
        categorical (text stored as written). A ``list`` cell is split on ``;``, ``|`` or ``,``.
    keep_unmatched
        Also store the rows of samples that are not in the institution's ingested files (by default they are
        only counted, in ``in_table_not_in_lake``); a later ingest of those samples then finds them.

    Returns
    -------
    dict
        ``institution``, ``format``, ``loaded`` (samples in the file), ``in_table_not_in_lake``,
        ``in_lake_not_in_table`` (counts only, never IDs), ``stored_samples`` (samples whose rows were stored),
        ``values`` (rows stored) and ``phenotypes`` (name -> kind).

    Examples
    --------
    >>> load_phenotypes("lake", "north", "data/sample_vcfs/north.phenotypes.tsv")  # doctest: +SKIP
    {'institution': 'north', 'loaded': 100, 'in_table_not_in_lake': 0, 'in_lake_not_in_table': 0, ...}
    """
    from genolake.store import Commit, LakeStore, partition_dir, write_parquet

    path = Path(path)
    store = LakeStore.open(lake)
    lines = _read_lines(path)
    parsed = _parse_ped(path, lines) if _is_ped(path) else _parse_table(path, lines, sample_column)
    _apply_names_and_types(path, parsed, types or {})
    _check_duplicate_samples(path, parsed)

    pseudo = store.pseudonymiser()
    pids = pseudo.many(institution, parsed.sample_ids)
    lake_samples = _lake_samples(store, institution)
    existing = _kinds_elsewhere(store, institution)
    for col in parsed.columns:
        other = existing.get(col.name)
        if other and other != col.kind:
            if types and (col.name in types or _raw_type_key(types, col.name)):
                raise UserInputError(
                    f"phenotype {col.name!r} is {other} in other institutions but {col.kind} here; "
                    "one phenotype has one kind across the lake (rename the column or use the same type)")
            if other == "numeric" and all(v is None or _as_float(v) is not None for v in col.values):
                col.kind = "numeric"
            elif other in ("categorical", "list"):
                col.kind = other
            else:
                raise UserInputError(
                    f"phenotype {col.name!r} is {other} in other institutions but its values here are not; "
                    f"fix the values or give --type {col.name}=categorical (which then must hold everywhere)")
        _check_kind(path, col, parsed.lines)

    table = _long_table(institution, pids, parsed, pseudo)
    loaded = len(pids)
    pid_set = set(pids)
    if not keep_unmatched:  # people not in the lake are counted, not stored
        import pyarrow.compute as pc

        table = table.filter(pc.is_in(table["sample_id"], pa.array(sorted(lake_samples), pa.string())))
    report = {
        "institution": institution,
        "format": parsed.fmt,
        "loaded": loaded,
        "in_table_not_in_lake": len(pid_set - lake_samples),
        "in_lake_not_in_table": len(lake_samples - pid_set),
        "stored_samples": len(pid_set) if keep_unmatched else len(pid_set & lake_samples),
        "values": table.num_rows,
        "phenotypes": {c.name: c.kind for c in parsed.columns},
    }
    with store.staging() as (txn, staged):
        rel = f"{partition_dir(PHENOTYPES, {'institution': institution})}/{txn}.parquet"
        write_parquet(PHENOTYPES, table, staged / "phenotypes" / rel)
        commit = Commit(txn=txn)
        commit.add("phenotypes", rel)
        with store.lock():
            for old in store.data_files("phenotypes", institution=institution):
                commit.remove("phenotypes", old.relpath)
            store.commit(commit, staged, order=("phenotypes",))
    log.info("loaded %d phenotype values of %d samples for %s", table.num_rows, loaded, institution)
    return report


def _raw_type_key(types: dict[str, str], name: str) -> bool:
    return any(phenotype_name(k) == name for k in types)


def _apply_names_and_types(path: Path, parsed: _Parsed, types: dict[str, str]) -> None:
    wanted: dict[str, str] = {}
    for k, v in types.items():
        kind = v.strip().lower()
        if kind not in KINDS:
            raise UserInputError(f"unknown phenotype type {v!r} for {k!r}; use one of {', '.join(KINDS)}")
        wanted[phenotype_name(k)] = kind
    seen: dict[str, str] = {}
    for col in parsed.columns:
        raw = col.name
        col.name = phenotype_name(raw)
        if not valid_phenotype_name(col.name):
            raise BadInputFileError(str(path), f"column {raw!r} does not make a phenotype name (use letters, digits "
                                    "and '_', at most 63 characters)")
        if col.name in RESERVED:
            raise BadInputFileError(str(path), f"column {raw!r} is reserved (the institution is given with "
                                    "--institution; sample IDs come from the sample ID column); rename or drop it")
        if col.name in seen:
            raise BadInputFileError(str(path), f"columns {seen[col.name]!r} and {raw!r} both become phenotype "
                                    f"{col.name!r}; rename one")
        seen[col.name] = raw
        if col.name in wanted:
            if col.pseudonymise and wanted[col.name] != "categorical":
                raise UserInputError(f"{col.name} holds pseudonymised IDs and must stay categorical")
            col.kind = wanted[col.name]
        elif not col.kind:
            col.kind = infer_kind(col.values)
    unknown = sorted(set(wanted) - set(seen))
    if unknown:
        raise UserInputError(f"--type names unknown column(s) {', '.join(unknown)}; the columns are: "
                             + ", ".join(seen))


def _check_duplicate_samples(path: Path, parsed: _Parsed) -> None:
    first: dict[str, int] = {}
    for sid, n in zip(parsed.sample_ids, parsed.lines, strict=True):
        if sid in first:
            raise BadInputFileError(str(path), f"the sample on this line already appears on line {first[sid]}; "
                                    "one row per sample", record=f"line {n}")
        first[sid] = n


def _lake_samples(store: Any, institution: str) -> set[str]:
    import pyarrow.compute as pc

    t = store.read_table("samples", columns=["institution", "sample_id", "file_id"])
    inst = t["institution"].to_pylist()
    known = sorted(set(inst))
    if institution not in known:
        raise UserInputError(
            f"institution {institution!r} has no samples in the lake; known institutions: "
            + (", ".join(known) if known else "none (ingest VCFs first)"))
    t = t.filter(pc.equal(t["institution"], institution))
    return set(t["sample_id"].to_pylist())


def _kinds_elsewhere(store: Any, institution: str) -> dict[str, str]:
    import pyarrow.compute as pc

    if not store.has_table("phenotypes"):
        return {}
    t = store.read_table("phenotypes", columns=["institution", "name", "kind"])
    t = t.filter(pc.not_equal(t["institution"], institution))
    out: dict[str, str] = {}
    for name, kind in zip(t["name"].to_pylist(), t["kind"].to_pylist(), strict=True):
        out.setdefault(name, kind)
    return out


def _long_table(institution: str, pids: list[str], parsed: _Parsed, pseudo: Any) -> pa.Table:
    cols: dict[str, list[Any]] = {c.name: [] for c in PHENOTYPES.columns}
    order = sorted(range(len(pids)), key=lambda i: pids[i])
    for col in sorted(parsed.columns, key=lambda c: c.name):
        for i in order:
            v = col.values[i]
            if v is None:
                continue
            s: str | None = None
            num: float | None = None
            lst: list[str] | None = None
            if col.pseudonymise:
                s = pseudo(institution, ("family\x1f" + v) if col.name == "family_id" else v)
            elif col.kind == "numeric":
                num = float(v)
            elif col.kind == "list":
                lst = _split_codes(v)
            else:
                s = v
            cols["institution"].append(institution)
            cols["sample_id"].append(pids[i])
            cols["name"].append(col.name)
            cols["kind"].append(col.kind)
            cols["value_str"].append(s)
            cols["value_num"].append(num)
            cols["value_list"].append(lst)
    return pa.table(cols, schema=PHENOTYPES.arrow_schema)


def phenotype_summary(lake: Path | str) -> pa.Table:
    """Per phenotype and institution: kind, samples with a value, distinct values (no sample IDs)."""
    from genolake.query.lake import Lake

    with Lake(lake) as lk:
        return lk.engine.query(
            """SELECT name AS phenotype, kind, institution, count(*) AS samples,
                      count(DISTINCT coalesce(value_str, CAST(value_num AS VARCHAR), CAST(value_list AS VARCHAR)))
                        AS distinct_values
               FROM phenotypes_long GROUP BY ALL ORDER BY phenotype, institution"""
        )


def replace_numeric_phenotypes(lake: Path | str, values: dict[str, dict[tuple[str, str], float]], *,
                               drop: re.Pattern[str] | None = None) -> dict[str, Any]:
    """Store computed numeric phenotypes (e.g. principal components) for samples already in the lake.

    ``values`` maps a phenotype name to ``{(institution, pseudonymised sample_id): value}``. Every stored row of
    those names (and of names matching ``drop``, e.g. ``pc11`` left by an earlier run with more components) is
    replaced, in every institution, in one commit; the other phenotypes stay as loaded. Names must be valid
    phenotype names not used by a non-numeric phenotype.

    Returns
    -------
    dict
        ``phenotypes`` (names written), ``samples`` (samples with a value) and ``institutions``.
    """
    from genolake.store import Commit, LakeStore

    store = LakeStore.open(lake)
    for name in values:
        if not valid_phenotype_name(name) or name in RESERVED:
            raise UserInputError(f"{name!r} is not a valid phenotype name")
    with store.staging() as (txn, staged), store.lock():  # read, rewrite and commit under the lake's lock
        commit = Commit(txn=txn)
        institutions = _rewrite_with(store, values, drop, txn, staged, commit)
        store.commit(commit, staged, order=("phenotypes",))
    samples = {k for v in values.values() for k in v}
    log.info("stored %d numeric phenotype(s) for %d samples", len(values), len(samples))
    return {"phenotypes": sorted(values), "samples": len(samples), "institutions": institutions}


def _rewrite_with(store: Any, values: dict[str, dict[tuple[str, str], float]], drop: re.Pattern[str] | None,
                  txn: str, staged: Path, commit: Any) -> list[str]:
    import pyarrow.compute as pc

    from genolake.store import partition_dir, write_parquet

    old = (store.read_table("phenotypes") if store.has_table("phenotypes")
           else PHENOTYPES.arrow_schema.empty_table())
    clash = {n: k for n, k in zip(old["name"].to_pylist(), old["kind"].to_pylist(), strict=True)
             if n in values and k != "numeric"}
    if clash:
        raise UserInputError("phenotype(s) " + ", ".join(f"{n} ({k})" for n, k in sorted(clash.items()))
                             + " already exist with another kind; rename them before writing numeric values")
    gone = [n in values or (drop is not None and bool(drop.fullmatch(n))) for n in old["name"].to_pylist()]
    kept = old.filter(pa.array([not g for g in gone], type=pa.bool_()))
    rows: dict[str, list[Any]] = {c.name: [] for c in PHENOTYPES.columns}
    for name in sorted(values):
        for (inst, sid), v in sorted(values[name].items()):
            rows["institution"].append(inst)
            rows["sample_id"].append(sid)
            rows["name"].append(name)
            rows["kind"].append("numeric")
            rows["value_str"].append(None)
            rows["value_num"].append(float(v))
            rows["value_list"].append(None)
    new = pa.concat_tables([kept.select(PHENOTYPES.names).cast(PHENOTYPES.arrow_schema),
                            pa.table(rows, schema=PHENOTYPES.arrow_schema)])
    institutions = sorted(set(new["institution"].to_pylist()) | set(old["institution"].to_pylist()))
    for inst in institutions:
        part = new.filter(pc.equal(new["institution"], inst))
        if part.num_rows == 0:
            continue
        part = part.sort_by([("name", "ascending"), ("sample_id", "ascending")])
        rel = f"{partition_dir(PHENOTYPES, {'institution': inst})}/{txn}.parquet"
        write_parquet(PHENOTYPES, part, staged / "phenotypes" / rel)
        commit.add("phenotypes", rel)
    for old in store.data_files("phenotypes"):
        commit.remove("phenotypes", old.relpath)
    return institutions

