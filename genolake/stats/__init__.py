"""Statistics over arrays of variants: exact tests, regressions, principal components (numpy/scipy only)."""
