-- name: carriers_by_phenotype
-- answers: How many carriers of a variant (and hom-alt carriers) have each value of a categorical phenotype?
-- params: contig (contig), pos (int), ref (text), alt (text), phenotype (text) = case_status
SELECT coalesce(l.value_str, '(no value)') AS value,
       count(*) AS carriers,
       count(*) FILTER (WHERE c.ploidy = 2 AND c.alt_count = 2) AS hom_alt
FROM calls c
LEFT JOIN phenotypes_long l
  ON l.institution = c.institution AND l.sample_id = c.sample_id AND l.name = lower($phenotype)
WHERE c.contig = $contig AND c.pos = $pos AND c.ref = upper($ref) AND c.alt = upper($alt) AND c.alt_count > 0
GROUP BY ALL
ORDER BY value
