"""The Parquet writer options of the lake's tables (docs/STORAGE.md, "Writer options"): options that name
columns reach the nested ones (pyarrow takes leaf paths such as ``gq.list.element``; a top-level name alone
is silently ignored, which left the FORMAT lists PLAIN), and what each reader relies on is still written
(``pos`` statistics for point reads and row-group pruning). Values read back unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake

from genolake import store
from genolake.schema import ANNOTATIONS, GENOTYPES, TABLES, VARIANTS
from genolake.store import FORMAT_LISTS, GENOTYPES_STATISTICS, parquet_options, write_parquet


def _chunks(path: Path) -> dict[str, pq.ColumnChunkMetaData]:
    md = pq.read_metadata(path)
    assert md.num_row_groups >= 1
    rg = md.row_group(0)
    return {rg.column(i).path_in_schema: rg.column(i) for i in range(rg.num_columns)}


def _stored(lake: Path, table: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted((lake / table).rglob("*.parquet"))])


def test_option_paths_are_the_files_column_paths(tmp_path: Path) -> None:
    """Every column path an option names is a column of the written file, for every stored table."""
    for table in TABLES.values():
        if table.view:
            continue
        path = tmp_path / f"{table.name}.parquet"
        pq.write_table(table.arrow_schema.empty_table(), path, store_schema=False)
        paths = {pq.read_metadata(path).schema.column(i).path for i in range(len(pq.read_metadata(path).schema))}
        opts = parquet_options(table, table.arrow_schema)
        named: set[str] = set()
        for key in ("use_dictionary", "write_statistics", "compression_level", "column_encoding"):
            if isinstance(opts.get(key), list | dict):
                named |= set(opts[key])
        assert named <= paths, (table.name, named - paths)


def test_genotypes_format_lists_are_dictionary_encoded(sample_lake: SampleLake, tmp_path: Path) -> None:
    data = _stored(sample_lake.path, "genotypes")
    assert any(data[c].null_count < data.num_rows for c in FORMAT_LISTS), "the fixture has no GQ/DP/AD"
    path = tmp_path / "genotypes.parquet"
    write_parquet(GENOTYPES, data, path)
    chunks = _chunks(path)
    for name in FORMAT_LISTS:
        leaf = chunks[f"{name}.list.element"]
        assert leaf.has_dictionary_page and "RLE_DICTIONARY" in leaf.encodings, name
        assert leaf.statistics is None or not leaf.statistics.has_min_max, name
    assert "DELTA_LENGTH_BYTE_ARRAY" in chunks["gt"].encodings and not chunks["gt"].has_dictionary_page
    assert "DELTA_BINARY_PACKED" in chunks["pos"].encodings
    for name, chunk in chunks.items():
        kept = name.split(".")[0] in GENOTYPES_STATISTICS
        assert (chunk.statistics is not None and chunk.statistics.has_min_max) == kept, name
    assert pq.read_table(path).equals(data.select(GENOTYPES.names))


def test_variants_and_annotations_keep_their_options(sample_lake: SampleLake, tmp_path: Path) -> None:
    data = _stored(sample_lake.path, "variants")
    path = tmp_path / "variants.parquet"
    write_parquet(VARIANTS, data, path)
    chunks = _chunks(path)
    assert "DELTA_BINARY_PACKED" in chunks["pos"].encodings and "DELTA_BINARY_PACKED" in chunks["orig_pos"].encodings
    assert chunks["ref"].has_dictionary_page
    assert all(c.statistics is not None and c.statistics.has_min_max for n, c in chunks.items()
               if data[n].null_count < data.num_rows)
    assert pq.read_table(path).equals(data.select(VARIANTS.names))
    # a table with positions and list columns: the lists are dictionary-encoded too (they were not)
    lists = [f.name for f in ANNOTATIONS.arrow_schema if pa.types.is_list(f.type)]
    opts = parquet_options(ANNOTATIONS, ANNOTATIONS.arrow_schema)
    assert {f"{c}.list.element" for c in lists} <= set(opts["use_dictionary"])
    assert "pos" not in opts["use_dictionary"]


def test_gt_level_depends_on_format_values(sample_lake: SampleLake, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The codes of a GT-only file get the higher zstd level; a file with any GQ/DP/AD value keeps the lower one."""
    seen: list[int] = []
    real = store.parquet_options

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any]:
        opts = real(*args, **kwargs)
        seen.append(opts["compression_level"]["gt"])
        return opts

    monkeypatch.setattr(store, "parquet_options", spy)
    data = _stored(sample_lake.path, "genotypes")
    write_parquet(GENOTYPES, data, tmp_path / "with.parquet")
    only_gt = data
    for name in FORMAT_LISTS:
        i = only_gt.schema.get_field_index(name)
        only_gt = only_gt.set_column(i, only_gt.schema.field(i), pa.nulls(data.num_rows, data.schema.field(i).type))
    write_parquet(GENOTYPES, only_gt, tmp_path / "gt.parquet")
    assert seen == [store.GT_ZSTD_LEVEL_WITH_FORMAT, store.GT_ZSTD_LEVEL]
    assert store.GT_ZSTD_LEVEL > store.GT_ZSTD_LEVEL_WITH_FORMAT
    assert pq.read_table(tmp_path / "gt.parquet").equals(only_gt.select(GENOTYPES.names))
    # a column without a value in the file gets no (empty) dictionary page
    chunks = _chunks(tmp_path / "gt.parquet")
    assert not any(chunks[f"{name}.list.element"].has_dictionary_page for name in FORMAT_LISTS)
    assert chunks["ref"].has_dictionary_page
