"""VCF -> lake: reader, normalisation, planning, conversion, commit and verification."""
