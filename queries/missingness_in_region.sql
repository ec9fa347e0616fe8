-- name: missingness_in_region
-- answers: Per institution, how many sites of a region does it list and what fraction of its genotypes there are missing?
-- params: contig (contig), start (int), end (int)
SELECT institution,
       count(*) AS sites,
       CAST(sum(n_missing) AS BIGINT) AS missing_genotypes,
       CAST(sum(n_samples) AS BIGINT) AS genotypes,
       sum(n_missing) / sum(n_samples) AS missing_fraction
FROM variants
WHERE contig = $contig AND pos BETWEEN $start AND $end
GROUP BY institution
ORDER BY institution
