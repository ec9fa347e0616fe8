#!/usr/bin/env bash
# Ingest a batch: MANIFEST.tsv has lines "institution<TAB>path/to/file.vcf.gz"; extra args go to genolake ingest.
# Usage: ingest/ingest_manifest.sh MANIFEST.tsv LAKE [--workers 2 ...]
set -euo pipefail
manifest="$1"; lake="$2"; shift 2
cut -f1 "$manifest" | sort -u | while read -r inst; do
    mapfile -t files < <(awk -F'\t' -v i="$inst" '$1 == i {print $2}' "$manifest")
    genolake ingest --lake "$lake" --institution "$inst" "$@" "${files[@]}"
done
