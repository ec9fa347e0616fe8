-- name: samples_with_code
-- answers: How many samples per institution carry a given HPO / ICD-10 code in a list phenotype?
-- params: code (text), phenotype (text) = hpo
SELECT institution, count(*) AS samples
FROM phenotypes_long
WHERE name = lower($phenotype) AND kind = 'list' AND list_contains(value_list, $code)
GROUP BY institution
ORDER BY institution
