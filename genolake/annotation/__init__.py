"""Annotation sources: parsers for gene models (GTF/GFF3, gene lists), ClinVar, dbSNP and frequency VCFs,
and VEP/SnpEff consequence strings. Each parser turns a source into normalised, lake-keyed rows; the job
that joins them to the lake's variants is :mod:`genolake.compute.annotate`.
"""
