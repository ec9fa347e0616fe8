"""Distributed jobs (Dask, optionally Hail): ingest conversion, allele frequencies, annotation."""
