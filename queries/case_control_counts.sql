-- name: case_control_counts
-- answers: At one variant, per value of a phenotype (e.g. case / control): samples counted, carriers, AC and AN, following the lake's absent-site rules?
-- params: contig (contig), pos (int), ref (text), alt (text), phenotype (text) = case_status
WITH site AS (
    SELECT file_id FROM variant_files
    WHERE contig = $contig AND pos = $pos AND ref = upper($ref) AND alt = upper($alt)
),
counted AS (
    -- samples of files that list the site: 2 alleles unless a call is stored
    SELECT s.institution, s.sample_id, s.file_id, 2 AS base
    FROM samples s WHERE s.file_id IN (SELECT file_id FROM site)
    UNION ALL
    -- samples of absent-as-ref files, or of callable-region files covering the site: their ploidy
    SELECT p.institution, p.sample_id, p.file_id, p.ploidy AS base
    FROM ploidy p JOIN files f USING (file_id)
    WHERE p.contig = $contig AND p.file_id NOT IN (SELECT file_id FROM site)
      AND (f.absent_mode = 'ref'
           OR (f.absent_mode = 'callable' AND EXISTS (
               SELECT 1 FROM callable cb
               WHERE cb.file_id = f.file_id AND cb.contig = $contig AND $pos BETWEEN cb.start AND cb."end")))
),
c AS (
    SELECT file_id, sample_id, called, alt_count FROM calls
    WHERE contig = $contig AND pos = $pos AND ref = upper($ref) AND alt = upper($alt)
)
SELECT l.value_str AS value,
       count(*) AS samples,
       count(*) FILTER (WHERE c.alt_count > 0) AS carriers,
       CAST(coalesce(sum(c.alt_count), 0) AS BIGINT) AS ac,
       CAST(sum(coalesce(c.called, counted.base)) AS BIGINT) AS an
FROM counted
JOIN phenotypes_long l
  ON l.institution = counted.institution AND l.sample_id = counted.sample_id AND l.name = lower($phenotype)
LEFT JOIN c ON c.file_id = counted.file_id AND c.sample_id = counted.sample_id
WHERE l.value_str IS NOT NULL
GROUP BY ALL
ORDER BY value
