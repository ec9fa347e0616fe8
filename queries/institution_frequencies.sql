-- name: institution_frequencies
-- answers: What are AC, AN, AF, nhomalt and nhemi of one variant per institution and in the joint cohort?
-- params: contig (contig), pos (int), ref (text), alt (text)
SELECT scope, ac, an, af, nhomalt, nhemi
FROM site_frequencies
WHERE contig = $contig AND pos = $pos AND ref = upper($ref) AND alt = upper($alt)
ORDER BY scope = 'joint' DESC, scope
