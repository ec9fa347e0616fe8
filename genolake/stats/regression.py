"""Per-variant regressions of a phenotype on genotype dosage plus covariates, for many variants at once.

For every variant ``v`` the model is ``y ~ C + g_v``: ``C`` (samples x k) holds the intercept and the covariates
(the same for every variant), ``g_v`` the variant's additive dosage. Nothing is fitted one variant at a time:

- :func:`linear`: ordinary least squares by the Frisch-Waugh-Lovell theorem. ``y`` and every ``g_v`` are
  residualised on ``C`` once (one QR of ``C``); then beta, its standard error (residual variance on
  ``n - k - 1`` degrees of freedom) and the t test are row operations over the dosage matrix. Identical to
  an OLS fit of each variant (``statsmodels.OLS``).
- :func:`logistic`: maximum likelihood by Newton-Raphson (IRLS) on all variants of a block together. The
  covariate-only model is fitted once and is every variant's starting point; each iteration builds all the
  (k+1) x (k+1) information matrices with three matrix products (``w @ [C_i C_j]``, ``(w g) @ C``,
  ``sum(w g^2)``) and solves them as one batched ``numpy.linalg.solve``. Wald z and p as ``statsmodels.Logit``.
- :func:`firth_logistic`: Firth's penalised likelihood (Jeffreys prior; Firth 1993, Heinze and Schemper 2002)
  on the same batched machinery, with the penalised likelihood ratio test of ``beta_g = 0`` (the constrained
  fit keeps the full model's penalty, as R's ``logistf``). Used for rare variants, where the Wald test of an
  ordinary fit is badly calibrated and a fit may not exist at all (complete or quasi-complete separation: a
  variant seen only in cases drives the ordinary estimate to infinity); Firth estimates are always finite and
  the penalised LRT keeps the type I error near nominal for low allele counts (Ma et al. 2013, Genet Epidemiol
  37:539; the choice of regenie and plink2's ``--glm firth-fallback``).

Dosage matrices must hold no missing values (callers mean-impute, as Hail and plink2 do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread: the products here are skinny (variants x samples times samples x k) and bound by
    memory, where OpenBLAS's threads only add synchronisation (measured 2-5x slower with two threads on a
    loaded 2-core machine). Uses threadpoolctl when installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass
class Fit:
    """Per-variant results (arrays over the variants of a block); NaN where the fit is undefined."""

    beta: F64
    se: F64
    stat: F64  # t (linear) or z (logistic Wald) or signed sqrt of the LR statistic (Firth)
    p: F64
    converged: NDArray[np.bool_]
    iterations: NDArray[np.int64]


def linear(G: F64, y: F64, C: F64) -> Fit:
    """OLS of ``y`` on ``C`` plus each row of ``G`` (variants x samples); t test of the dosage coefficient.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> C = np.column_stack([np.ones(50), rng.normal(size=50)])
    >>> G = rng.integers(0, 3, (2, 50)).astype(float)
    >>> y = 0.5 * G[0] + C[:, 1] + rng.normal(size=50)
    >>> fit = linear(G, y, C)
    >>> bool(fit.p[0] < fit.p[1])
    True
    """
    from scipy.stats import t as t_dist

    n, k = C.shape
    Q, _ = np.linalg.qr(C)
    yr = y - Q @ (Q.T @ y)
    Gr = G - (G @ Q) @ Q.T
    gg = np.einsum("vn,vn->v", Gr, Gr)
    gy = Gr @ yr
    df = n - k - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = gg > 1e-10 * np.maximum(1.0, np.einsum("vn,vn->v", G, G))
        beta = np.where(ok, gy / gg, np.nan)
        rss = yr @ yr - beta * gy
        se = np.sqrt(rss / df / gg)
        stat = beta / se
    p = 2 * t_dist.sf(np.abs(stat), df)
    nv = G.shape[0]
    return Fit(beta, np.where(ok, se, np.nan), stat, p, ok, np.ones(nv, np.int64))


def _pairs(C: F64) -> F64:
    """``C_i * C_j`` for the pairs ``i <= j`` of columns: samples x k(k+1)/2."""
    iu, ju = np.triu_indices(C.shape[1])
    return C[:, iu] * C[:, ju]  # type: ignore[no-any-return]


def _loglik(y: F64, eta: F64) -> F64:
    # log L = sum y*eta - log(1 + exp(eta)), stable for large |eta|
    return (y * eta - np.logaddexp(0.0, eta)).sum(axis=-1)


def _expit(eta: F64) -> F64:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-eta))  # type: ignore[no-any-return]


def _information(C: F64, P: F64, G: F64, w: F64) -> F64:
    """Per variant, the (k+1)x(k+1) matrix ``X' W X`` with ``X = [C, g_v]`` (batched; ``P`` from :func:`_pairs`)."""
    v = G.shape[0]
    k = C.shape[1]
    iu, ju = np.triu_indices(k)
    info = np.empty((v, k + 1, k + 1))
    cc = w @ P
    info[:, iu, ju] = cc
    info[:, ju, iu] = cc
    wg = w * G
    cg = wg @ C
    info[:, :k, k] = cg
    info[:, k, :k] = cg
    info[:, k, k] = np.einsum("vn,vn->v", wg, G)
    return info


def null_logistic(y: F64, C: F64, *, max_iter: int = 50, tol: float = 1e-10) -> F64:
    """Coefficients of the covariate-only logistic model (Newton-Raphson)."""
    b = np.zeros(C.shape[1])
    mean = y.mean()
    if 0 < mean < 1:
        b[0] = np.log(mean / (1 - mean)) if np.allclose(C[:, 0], 1) else 0.0
    for _ in range(max_iter):
        mu = _expit(C @ b)
        w = mu * (1 - mu)
        step = np.linalg.lstsq((C * w[:, None]).T @ C, C.T @ (y - mu), rcond=None)[0]
        b = b + step
        if np.max(np.abs(step)) < tol:
            break
    return b


def logistic(G: F64, y: F64, C: F64, *, b0: F64 | None = None, max_iter: int = 30, tol: float = 1e-7,
             block: int = 512) -> Fit:
    """Logistic regression of ``y`` (0/1) on ``C`` plus each row of ``G``; Wald test of the dosage coefficient.

    ``b0``: the covariate-only fit (:func:`null_logistic`), computed if not given. Newton-Raphson from the
    one-step (score) estimate, in blocks of ``block`` variants with preallocated buffers; a variant has
    converged when its Newton step is below ``tol`` (the estimate after that step is then accurate to about
    ``tol^2``, Newton converging quadratically); its standard error comes from the information at the estimate
    before that step (statsmodels takes it at the final one: a difference of order ``tol``, relative). A variant that does not converge within ``max_iter`` steps
    (separation, a monomorphic variant) has ``converged`` False and NaN statistics.
    """
    from scipy.stats import norm

    nv = G.shape[0]
    if b0 is None:
        b0 = null_logistic(y, C)
    P = _pairs(C)
    beta = np.full(nv, np.nan)
    se = np.full(nv, np.nan)
    converged = np.zeros(nv, bool)
    iters = np.zeros(nv, np.int64)
    for s in range(0, nv, block):
        e = min(nv, s + block)
        beta[s:e], se[s:e], converged[s:e], iters[s:e] = _logistic_block(np.ascontiguousarray(G[s:e]), y, C, P,
                                                                         b0, max_iter, tol)
    z = beta / se
    p = 2 * norm.sf(np.abs(z))
    return Fit(beta, se, z, p, converged, iters)


def _logistic_block(G: F64, y: F64, C: F64, P: F64, b0: F64, max_iter: int,
                    tol: float) -> tuple[F64, F64, NDArray[np.bool_], NDArray[np.int64]]:
    v, n = G.shape
    k = C.shape[1]
    B = np.zeros((v, k + 1))
    B[:, :k] = b0
    B[:, k] = np.clip(np.nan_to_num(score_test(G, y, C, b0).beta), -5, 5)
    yC = y @ C
    gy = G @ y
    centred_ss = np.einsum("vn,vn->v", G, G) - G.sum(axis=1) ** 2 / n
    live = centred_ss > 1e-12 * np.maximum(1.0, np.einsum("vn,vn->v", G, G))
    done = ~live
    converged = np.zeros(v, bool)
    iters = np.zeros(v, np.int64)
    eta = np.empty((v, n))
    tmp = np.empty((v, n))
    ct = np.ascontiguousarray(C.T)

    def information() -> tuple[F64, F64]:
        """(mu, information) at B; tmp holds w*G afterwards."""
        np.matmul(B[:, :k], ct, out=eta)
        np.multiply(G, B[:, k:k + 1], out=tmp)
        np.add(eta, tmp, out=eta)
        np.negative(eta, out=eta)
        np.exp(eta, out=eta)
        np.add(eta, 1.0, out=eta)
        np.reciprocal(eta, out=eta)  # eta now holds mu
        mu_c = eta @ C
        mu_g = np.einsum("vn,vn->v", eta, G)
        np.multiply(eta, eta, out=tmp)
        np.subtract(eta, tmp, out=tmp)  # w = mu (1 - mu)
        info = np.empty((v, k + 1, k + 1))
        iu, ju = np.triu_indices(k)
        cc = tmp @ P
        info[:, iu, ju] = cc
        info[:, ju, iu] = cc
        np.multiply(tmp, G, out=tmp)  # w g
        cg = tmp @ C
        info[:, :k, k] = cg
        info[:, k, :k] = cg
        info[:, k, k] = np.einsum("vn,vn->v", tmp, G)
        score = np.empty((v, k + 1))
        score[:, :k] = yC - mu_c
        score[:, k] = gy - mu_g
        return score, info

    cov = np.full(v, np.nan)
    for it in range(1, max_iter + 1):
        if done.all():
            break
        score, info = information()
        info[done] = np.eye(k + 1)  # finished rows: keep them where they are
        score[done] = 0.0
        try:
            inv = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            inv = np.linalg.pinv(info)
        step = np.einsum("vij,vj->vi", inv, score)
        bad = ~np.isfinite(step).all(axis=1)
        step[bad] = 0.0
        B += step
        iters[~done] = it
        # the covariance is taken at the estimate before the last step (below tol): it differs from the one at
        # the final estimate by O(tol) relative, and saves one more pass over the dosages
        cov[~done] = inv[~done, k, k]
        small = np.max(np.abs(step), axis=1) < tol
        diverged = bad | (np.abs(B[:, k]) > 30)
        converged |= small & ~done & ~diverged
        done |= small | diverged
    with np.errstate(invalid="ignore"):
        se = np.where(converged, np.sqrt(cov), np.nan)
    return np.where(converged, B[:, k], np.nan), se, converged, iters


def score_test(G: F64, y: F64, C: F64, b0: F64) -> Fit:
    """Score (Rao) test of ``beta_g = 0`` for every variant under the covariate-only model ``b0``, fitted once.

    ``beta`` is the one-step estimate ``U / V`` and ``se`` = ``1 / sqrt(V)``, where ``U = g'(y - mu0)`` and ``V``
    the efficient information of ``g`` given the covariates; ``stat = U / sqrt(V)``. One pass over ``G``.
    """
    from scipy.stats import norm

    mu = _expit(C @ b0)
    w = mu * (1 - mu)
    inv = np.linalg.inv((C * w[:, None]).T @ C)
    A = (G * w) @ C
    V = (G * G) @ w - np.einsum("vi,ij,vj->v", A, inv, A)
    U = G @ (y - mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = V > 1e-12
        z = np.where(ok, U / np.sqrt(V), np.nan)
        beta = np.where(ok, U / V, np.nan)
        se = np.where(ok, 1 / np.sqrt(V), np.nan)
    return Fit(beta, se, z, 2 * norm.sf(np.abs(z)), ok, np.zeros(G.shape[0], np.int64))


def _firth_fit(G: F64, y: F64, C: F64, P: F64, B: F64, *, fit_g: bool, max_iter: int, tol: float,
               ltol: float = 1e-11, max_step: float = 5.0, max_halvings: int = 15) -> tuple[F64, F64, NDArray[np.bool_], NDArray[np.int64]]:
    """Batched Firth iterations (modified score, Fisher information, step halving on the penalised likelihood,
    steps capped at ``max_step`` as logistf) from ``B`` (variants x k+1). With ``fit_g`` False, ``beta_g`` stays
    at its value (0) and only the covariates are fitted, under the full model's penalty (logistf's profile).
    Converged: a step below ``tol``, or a full step that changes the penalised log-likelihood by less than
    ``ltol`` (the estimate then moves by about its square root, far below the standard error)."""
    nv = G.shape[0]
    k = C.shape[1]
    B = B.copy()
    conv = np.zeros(nv, bool)
    iters = np.zeros(nv, np.int64)
    pl = _penalised_loglik(G, y, C, P, B)
    active = np.arange(nv)
    npar = k + 1 if fit_g else k
    for it in range(1, max_iter + 1):
        if not active.size:
            break
        Ga, Ba = G[active], B[active]
        eta = Ba[:, :k] @ C.T + Ba[:, k:k + 1] * Ga
        mu = _expit(eta)
        w = mu * (1 - mu)
        Ia = _information(C, P, Ga, w)
        inv = np.linalg.inv(Ia)
        # hat diagonal h_vi = w_vi x_vi' I_v^-1 x_vi, x_vi = [C_i, g_vi]
        iu, ju = np.triu_indices(k)
        quad = (inv[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)) @ P.T
        quad += 2 * Ga * (inv[:, :k, k] @ C.T) + inv[:, k, k][:, None] * Ga * Ga
        h = w * quad
        r = y[None, :] - mu + h * (0.5 - mu)
        score = np.empty((active.size, k + 1))
        score[:, :k] = r @ C
        score[:, k] = np.einsum("vn,vn->v", r, Ga)
        step = np.zeros((active.size, k + 1))
        step[:, :npar] = np.linalg.solve(Ia[:, :npar, :npar], score[:, :npar, None])[:, :, 0]
        big = np.max(np.abs(step), axis=1)
        step *= np.where(big > max_step, max_step / np.maximum(big, 1e-300), 1.0)[:, None]
        cand = Ba + step
        pl_new = _penalised_loglik(Ga, y, C, P, cand)
        # step halving while the penalised likelihood falls
        worse = ~(pl_new >= pl[active] - 1e-12)
        h_count = 0
        while worse.any() and h_count < max_halvings:
            step[worse] /= 2
            cand[worse] = Ba[worse] + step[worse]
            pl_new[worse] = _penalised_loglik(Ga[worse], y, C, P, cand[worse])
            worse = ~(pl_new >= pl[active] - 1e-12)
            h_count += 1
        B[active] = cand
        pl_old = pl[active]
        pl[active] = pl_new
        iters[active] = it
        gain = pl_new - pl_old
        done = (np.max(np.abs(step), axis=1) < tol) | ((np.abs(gain) < ltol) & (h_count == 0))
        conv[active[done]] = True
        active = active[~done]
    return B, pl, conv, iters


def _penalised_loglik(G: F64, y: F64, C: F64, P: F64, B: F64) -> F64:
    k = C.shape[1]
    eta = B[:, :k] @ C.T + B[:, k:k + 1] * G
    mu = _expit(eta)
    sign, logdet = np.linalg.slogdet(_information(C, P, G, mu * (1 - mu)))
    return _loglik(y[None, :], eta) + 0.5 * np.where(sign > 0, logdet, -np.inf)


def firth_logistic(G: F64, y: F64, C: F64, *, b0: F64 | None = None, max_iter: int = 100,
                   tol: float = 1e-8) -> Fit:
    """Firth-penalised logistic regression of ``y`` on ``C`` plus each row of ``G``, batched.

    ``beta`` is the penalised estimate, ``se`` the square root of the inverse information at it (as logistf),
    ``p`` the penalised likelihood ratio test of ``beta_g = 0`` (chi-square, 1 df) and ``stat`` the signed
    square root of its statistic.
    """
    from scipy.stats import chi2

    nv = G.shape[0]
    k = C.shape[1]
    if b0 is None:
        b0 = null_logistic(y, C)
    P = _pairs(C)
    start = np.zeros((nv, k + 1))
    start[:, :k] = b0
    b_null, pl_null, conv0, _ = _firth_fit(G, y, C, P, start, fit_g=False, max_iter=max_iter, tol=tol)
    b_full, pl_full, conv1, iters = _firth_fit(G, y, C, P, b_null, fit_g=True, max_iter=max_iter, tol=tol)
    eta = b_full[:, :k] @ C.T + b_full[:, k:k + 1] * G
    mu = _expit(eta)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.linalg.inv(_information(C, P, G, mu * (1 - mu)))[:, k, k])
    lr = np.maximum(2 * (pl_full - pl_null), 0.0)
    conv = conv0 & conv1
    beta = np.where(conv, b_full[:, k], np.nan)
    p = np.where(conv, chi2.sf(lr, 1), np.nan)
    stat = np.sign(beta) * np.sqrt(lr)
    return Fit(beta, np.where(conv, se, np.nan), stat, p, conv, iters)
