-- name: rare_variants_in_region
-- answers: Which variants of a region are rare in the joint cohort (joint AF at most max_af), with their counts?
-- params: contig (contig), start (int), end (int), max_af (float) = 0.01
SELECT contig, pos, ref, alt, ac, an, af, nhomalt, nhemi
FROM site_frequencies
WHERE scope = 'joint' AND contig = $contig AND pos BETWEEN $start AND $end AND ac > 0 AND af <= $max_af
ORDER BY pos, ref, alt
