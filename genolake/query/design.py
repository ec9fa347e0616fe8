"""The phenotype vector and covariate matrix of a regression, from the lake's phenotypes.

- The response: for ``logistic``, a categorical phenotype split into cases (1) and controls (0) as in
  :func:`genolake.query.assoc.case_control_values`, or a numeric phenotype whose values are all 0 or 1; for
  ``linear``, a numeric phenotype.
- Covariates: any numeric phenotype as is; a categorical one one-hot encoded: one 0/1 column per value except
  the reference level, the most frequent value among the analysed people (ties: the first in sort order),
  named ``name=value``. List phenotypes (HPO, ICD codes) cannot be covariates.
- The people analysed are those of the lake (with a sample row) that have the response and every covariate;
  those with the response but a missing covariate are dropped and counted (``dropped_missing_covariate``).
- The matrix ``C`` has an intercept first. A covariate that is constant among the analysed people, or a set of
  them that is collinear, is an error naming them (the fit would not be identifiable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from genolake.errors import UserInputError
from genolake.query.dosage import People

if TYPE_CHECKING:
    from genolake.query.lake import Lake


@dataclass
class Design:
    people: People
    y: np.ndarray
    C: np.ndarray
    names: list[str]  # columns of C
    dropped_missing_covariate: int = 0
    cases: int | None = None
    controls: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


def parse_covariates(covariates: str | list[str] | None) -> list[str]:
    if covariates is None:
        return []
    items = covariates.split(",") if isinstance(covariates, str) else list(covariates)
    out: list[str] = []
    for c in items:
        c = c.strip().lower()
        if c and c not in out:
            out.append(c)
    return out


def build_design(lake: Lake, phenotype: str, *, test: str, covariates: list[str], case: str | None = None,
                 control: str | None = None) -> Design:
    from genolake.query.assoc import case_control_values
    from genolake.query.engine import quote_ident

    eng = lake.engine
    kinds = eng.catalog.phenotypes
    name = phenotype.strip().lower()
    if name not in kinds:
        raise UserInputError(f"unknown phenotype {phenotype!r}; phenotypes: "
                             + (", ".join(sorted(kinds)) or "none (load phenotypes with `genolake phenotypes load`)"))
    for c in covariates:
        if c not in kinds:
            raise UserInputError(f"--covariates: unknown phenotype {c!r}; phenotypes: {', '.join(sorted(kinds))} "
                                 "(principal components: run `genolake pca` first)")
        if kinds[c] == "list":
            raise UserInputError(f"--covariates: {c} is a list phenotype (codes); use a numeric or categorical one")
        if c == name:
            raise UserInputError(f"--covariates: {c} is the phenotype itself")
    values: list[str] = []
    if test == "linear":
        if kinds[name] != "numeric":
            raise UserInputError(f"--test linear needs a numeric phenotype; {name} is {kinds[name]} "
                                 "(use --test logistic or fisher for a case-control phenotype)")
    elif kinds[name] == "categorical":
        name, values = case_control_values(lake, name, case, control)
    elif kinds[name] != "numeric":
        raise UserInputError(f"--test logistic needs a case-control phenotype; {name} is {kinds[name]}")
    cols = ", ".join(f"p.{quote_ident(c)}" for c in [name, *covariates])
    rows = eng.rows(f"""SELECT p.institution, p.sample_id, {cols}
                        FROM phenotypes p
                        WHERE EXISTS (SELECT 1 FROM samples s WHERE s.institution = p.institution AND s.sample_id = p.sample_id)
                          AND p.{quote_ident(name)} IS NOT NULL
                        ORDER BY p.institution, p.sample_id""")
    if values:
        rows = [r for r in rows if r[2] in values]
        yv = [1.0 if r[2] == values[0] else 0.0 for r in rows]
    else:
        yv = [float(r[2]) for r in rows]
        if test == "logistic" and not set(yv) <= {0.0, 1.0}:
            raise UserInputError(f"--test logistic: {name} is numeric with values other than 0 and 1; "
                                 "use --test linear, or a categorical case-control phenotype")
    complete = [all(v is not None for v in r[3:]) for r in rows]
    dropped = sum(1 for ok in complete if not ok)
    rows = [r for r, ok in zip(rows, complete, strict=True) if ok]
    y = np.asarray([v for v, ok in zip(yv, complete, strict=True) if ok], dtype=np.float64)
    n = len(rows)
    columns: list[np.ndarray] = [np.ones(n)]
    names = ["intercept"]
    for k, c in enumerate(covariates):
        vals = [r[3 + k] for r in rows]
        if kinds[c] == "numeric":
            columns.append(np.asarray(vals, dtype=np.float64))
            names.append(c)
        else:
            levels, counts = np.unique(np.asarray(vals, dtype=object).astype(str), return_counts=True)
            ref = levels[int(np.argmax(counts))] if len(levels) else None
            for lev in levels:
                if lev != ref:
                    columns.append(np.asarray([1.0 if v == lev else 0.0 for v in vals]))
                    names.append(f"{c}={lev}")
    C = np.column_stack(columns) if n else np.zeros((0, len(columns)))
    design = Design(People([r[0] for r in rows], [r[1] for r in rows]), y, C, names, dropped)
    if test == "logistic":
        design.cases, design.controls = int(y.sum()), int(n - y.sum())
        if not design.cases or not design.controls:
            raise UserInputError(f"{name}: {design.cases} cases and {design.controls} controls with every covariate; "
                                 "logistic regression needs both")
    if n <= C.shape[1] + 1:
        raise UserInputError(f"only {n} people have {name} and every covariate ({dropped} dropped for a missing "
                             "covariate): too few for the model")
    _check_rank(C, names)
    return design


def _check_rank(C: np.ndarray, names: list[str]) -> None:
    if np.linalg.matrix_rank(C) == C.shape[1]:
        return
    for k in range(1, C.shape[1]):
        if np.ptp(C[:, k]) == 0:
            raise UserInputError(f"covariate {names[k]} is constant among the people analysed; drop it")
    raise UserInputError("the covariates are collinear (" + ", ".join(names[1:]) + "); drop one of them")
