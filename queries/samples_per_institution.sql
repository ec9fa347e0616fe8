-- name: samples_per_institution
-- answers: How many samples, files and samples with phenotypes does each institution have?
-- params: none
SELECT s.institution,
       count(DISTINCT s.sample_id) AS samples,
       count(DISTINCT s.file_id) AS files,
       (SELECT count(DISTINCT p.sample_id) FROM phenotypes_long p WHERE p.institution = s.institution)
         AS samples_with_phenotypes
FROM samples s
GROUP BY s.institution
ORDER BY s.institution
