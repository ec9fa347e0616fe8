"""VCF out of the lake: `genolake annotate-vcf` (a VCF annotated with the lake's frequencies) and
`genolake export vcf` (the lake's genotypes back to VCF/BCF)."""
