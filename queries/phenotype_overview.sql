-- name: phenotype_overview
-- answers: Which phenotypes are loaded, of which kind, for how many samples per institution?
-- params: none
SELECT name AS phenotype, kind, institution, count(*) AS samples,
       count(DISTINCT coalesce(value_str, CAST(value_num AS VARCHAR), CAST(value_list AS VARCHAR))) AS distinct_values,
       min(value_num) AS min, max(value_num) AS max
FROM phenotypes_long
GROUP BY ALL
ORDER BY phenotype, institution
