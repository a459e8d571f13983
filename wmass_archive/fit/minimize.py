"""The fast minimiser: Newton steps with the exact (structured) Hessian, damped
Levenberg-Marquardt style with a trust-region ratio test.

Each iteration factorises the exact Hessian H on the free parameters. Where H is positive
definite the Newton step p = -H^-1 g is taken, halved (backtracking) until the nll decreases by at
least 1e-4 of the quadratic model's prediction (the asymmetric log-normal interpolation makes the
nll quartic near 0 in directions with large halfdiff, so full steps may overshoot). Where H is
not positive definite, or that search fails, a trust-region step on the exact Hessian shifted
along its diagonal, (H + mu diag|H|) p = -g, is taken (near a minimum H is often only slightly
indefinite); where that fails too (far from the minimum, as happens with thousands of
nuisances), a Levenberg-Marquardt step on the Gauss-Newton matrix G = J^T diag(phi'') J + C:
(G + lambda I) p = -g. Both are accepted when rho = actual / predicted reduction > 1e-4, the
damping shrinking after good steps (rho > 0.75) and growing after poor or rejected ones (the
trust region of More 1978).

Bounds (format 1.2 parameter ranges, ``Model.bounds``, or ``bounds=``) make it a projected
Newton method with an active set (Bertsekas 1982): a parameter at its bound whose gradient
points out of the range is held there for the step; the step of the others is projected onto
the box and backtracked until the nll decreases (Armijo on the projected step). The
criteria below are then taken on the parameters off their bounds, and ``at_bound`` names those
that end on one.

Converged means: H positive definite on the free parameters, and

    edm = g^T H^-1 g / 2 < edm_tol           (default 1e-8)
    max_i |g_i| / sqrt(H_ii) < gtol          (default 1e-3)

otherwise the status says why not, and the message gives the numbers (edm, gradient norm,
largest scaled gradient components with their names) and, from
:func:`~wmass_archive.fit.diagnostics.hessian_eigen`, the smallest eigenvalues of the
unit-diagonal Hessian with their directions and the parameters without curvature:

* ``max_iterations``: ``max_iter`` iterations without meeting the criteria;
* ``not_positive_definite``: H is not positive definite at the end, either after
  ``max_iter`` iterations or at a stationary point (gradient below ``gtol`` and no
  Levenberg-Marquardt step predicting a decrease of ``edm_tol``: a flat or concave direction,
  e.g. two unconstrained parameters with identical effects, or one without any effect);
* ``no_progress``: no step reduces the nll;
* ``invalid``: the nll, its gradient or its Hessian is not finite; the message names the
  parameters, bins or processes where it happens (``diagnostics.locate_nonfinite``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from ..jax_config import jnp
from ..model.build import Model
from . import diagnostics, engine
from .likelihood import Observation

Status = Literal["converged", "max_iterations", "not_positive_definite", "no_progress", "invalid"]


class MinimizeInfo(BaseModel):
    """How the minimisation went (values at the last point)."""

    status: Status
    converged: bool
    edm: float = Field(description="g^T H^-1 g / 2 at the end (nan if H is not positive definite)")
    nll: float
    max_scaled_gradient: float = Field(description="max_i |g_i| / sqrt(H_ii) on free parameters")
    n_iterations: int
    n_evaluations: int
    worst_gradients: list[tuple[str, float]] = Field(
        default_factory=list, description="largest |g_i| / sqrt(H_ii), with parameter names"
    )
    lambda_final: float = 0.0
    message: str = ""
    gradient_norm: float = Field(default=0.0, description="|g| on the free parameters")
    hessian_positive_definite: bool | None = Field(
        default=None, description="whether H factorises (Cholesky) on the free parameters"
    )
    smallest_eigenvalues: list[float] = Field(
        default_factory=list,
        description="smallest eigenvalues of the unit-diagonal Hessian H_ij / sqrt(H_ii H_jj) "
        "(computed when the fit did not converge)",
    )
    smallest_eigen_directions: list[str] = Field(
        default_factory=list, description="their directions, largest components first"
    )
    no_curvature: list[str] = Field(
        default_factory=list, description="free parameters with H_ii <= 0 at the end"
    )
    at_bound: list[str] = Field(
        default_factory=list,
        description="free parameters that end on a bound of their range (held there)",
    )


@dataclass
class MinimizeOutput:
    """The minimum: theta (numpy), the info, and the jax objects at the minimum for the
    covariance (structured Hessian ``hs``, its undamped factorisation ``fac``)."""

    theta: np.ndarray
    info: MinimizeInfo
    grad: Any
    hs: Any
    fac: Any


def _scaled_gradient(g: np.ndarray, diag: np.ndarray, free: np.ndarray) -> np.ndarray:
    s = np.abs(g) / np.sqrt(np.where(diag > 0, diag, 1.0))
    return np.where(free, s, 0.0)


class _Box:
    """The box lo <= theta <= hi of the free parameters (fixed ones are never moved)."""

    def __init__(self, bounds: np.ndarray | None, free: np.ndarray):
        n = free.size
        b = np.tile([-np.inf, np.inf], (n, 1)) if bounds is None else np.asarray(bounds, float)
        if b.shape != (n, 2):
            raise ValueError(f"bounds must have shape ({n}, 2), got {b.shape}")
        self.lo = np.where(free, b[:, 0], -np.inf)
        self.hi = np.where(free, b[:, 1], np.inf)
        self.on = bool(np.any(np.isfinite(self.lo)) or np.any(np.isfinite(self.hi)))
        self.tol = 1e-9 * np.maximum(1.0, np.abs(np.where(np.isfinite(b), b, 0.0))).max(axis=1)

    def project(self, x: jnp.ndarray) -> jnp.ndarray:
        return jnp.clip(x, self.lo, self.hi) if self.on else x

    def at_bound(self, x: np.ndarray) -> np.ndarray:
        """Boolean (n,): x on (within tolerance of) its lower or upper bound."""
        if not self.on:
            return np.zeros(x.size, dtype=bool)
        return (x <= self.lo + self.tol) | (x >= self.hi - self.tol)

    def active(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Boolean (n,): at a bound with the gradient pushing out of the range (held)."""
        if not self.on:
            return np.zeros(x.size, dtype=bool)
        return ((x <= self.lo + self.tol) & (g > 0)) | ((x >= self.hi - self.tol) & (g < 0))


def minimize_newton(
    model: Model,
    obs: Observation,
    theta_start: np.ndarray | None = None,
    free: np.ndarray | None = None,
    *,
    edm_tol: float = 1e-8,
    gtol: float = 1e-3,
    max_iter: int = 100,
    gn_switch: float = 1.0,
    verbose: bool = False,
    diagnose: bool = True,
    bounds: np.ndarray | None = None,
) -> MinimizeOutput:
    """Minimise the nll of ``model`` for the observation ``obs`` over the ``free`` parameters
    (boolean (n_params,), default all), starting at ``theta_start`` (default 0, moved into the
    bounds). The first steps use the Gauss-Newton matrix until one predicts a decrease below
    ``gn_switch`` (0: Newton from the start). ``diagnose``: when the fit does not converge,
    analyse the Hessian's smallest eigenvalues for the message (a few extra factorisations).
    ``bounds``: (n_params, 2) ranges of theta (default ``model.bounds``, the archive's)."""
    st, ar = model.static, model.arrays
    n = model.n_params
    theta = jnp.zeros(n) if theta_start is None else jnp.asarray(theta_start, dtype=jnp.float64)
    free_all = np.ones(n, dtype=bool) if free is None else np.asarray(free, dtype=bool)
    box = _Box(model.bounds if bounds is None else bounds, free_all)
    theta = box.project(theta)
    free_np = free_all
    free_j = jnp.asarray(free_np)
    names = model.parameter_names
    # Gauss-Newton phase: far from the minimum H is often indefinite and the Gauss-Newton
    # matrix gives better steps; it ends once a step predicts less than ``gn_switch``
    gn_phase = gn_switch > 0
    f, g, hs, diag_j = engine.value_grad_hess(st, ar, theta, obs, 1.0 if gn_phase else 0.0)
    counter = {"nll": 0, "hess": 1}

    def nll_at(x: jnp.ndarray) -> float:
        counter["nll"] += 1
        return float(engine.nll(st, ar, x, obs))

    lam: float | None = None  # damping of the Gauss-Newton steps, kept across iterations
    mu: float | None = None  # relative damping of the shifted Newton steps, likewise
    status: Status = "max_iterations"
    edm = math.nan
    fac0 = None
    message = ""
    stalled = 0  # consecutive stationary iterations where H is not positive definite
    it = 0
    for it in range(max_iter + 1):  # noqa: B007
        f_val = float(f)
        g_np = np.asarray(g)
        if not math.isfinite(f_val) or not np.all(np.isfinite(g_np[free_np])):
            where = diagnostics.locate_nonfinite(model, obs, np.asarray(theta))
            at = "at the starting point" if it == 0 else f"after {it} iterations"
            status = "invalid"
            message = f"the nll or its gradient is not finite {at}: {where or 'origin unknown'}"
            break
        if box.on:  # parameters held at a bound this iteration
            free_np = free_all & ~box.active(np.asarray(theta), g_np)
            free_j = jnp.asarray(free_np)
        if gn_phase:
            if verbose:
                print(f"  iter {it}: nll {f_val:.10g} (Gauss-Newton phase)")
            step, lam, pred = _damped_gauss_newton(
                model, obs, theta, f_val, g, free_j, lam, nll_at, verbose, hs_gn=hs, box=box
            )
            if step is None or pred < gn_switch or it == max_iter:
                gn_phase = False
            if step is not None and it < max_iter:
                theta = theta + step
            f, g, hs, diag_j = engine.value_grad_hess(st, ar, theta, obs, 1.0 if gn_phase else 0.0)
            counter["hess"] += 1
            continue
        fac0, p0 = engine.step(st, ar, hs, g, 0.0, free_j)
        pd = bool(fac0.ok)
        zmax = float(np.max(_scaled_gradient(g_np, np.asarray(diag_j), free_np), initial=0.0))
        if pd:
            edm = -0.5 * float(np.dot(g_np * free_np, np.asarray(p0)))
            if verbose:
                print(f"  iter {it}: nll {f_val:.10g} edm {edm:.3g} max|g|/sqrt(H) {zmax:.3g}")
            if edm < edm_tol and zmax < gtol:
                status = "converged"
                break
        else:
            edm = math.nan
            bad = diagnostics.nonfinite_hessian(model, hs)
            if bad:
                status = "invalid"
                message = (
                    f"the Hessian is not finite after {it} iterations, in the rows of "
                    f"{diagnostics.name_list(bad)}"
                )
                break
            if verbose:
                print(f"  iter {it}: nll {f_val:.10g}, Hessian not positive definite")
        if it == max_iter:
            break
        step = (
            _newton_line_search(theta, f_val, g, p0, free_j, nll_at, verbose, box) if pd else None
        )
        if step is None:
            step, mu, pred = _damped_newton(
                model, theta, f_val, g, hs, diag_j, free_j, mu, nll_at, verbose, box
            )
            if step is None:
                step, lam, pred = _damped_gauss_newton(
                    model, obs, theta, f_val, g, free_j, lam, nll_at, verbose, box=box
                )
                counter["hess"] += 1
            # stationary where H is not positive definite: no step can do better
            stalled = stalled + 1 if not pd and zmax < gtol and pred < edm_tol else 0
            if stalled >= 2:
                status = "not_positive_definite"
                message = (
                    f"stationary point where the Hessian is not positive definite (a flat or "
                    f"concave direction), after {it} iterations"
                )
                break
        if step is None:
            status = "no_progress"
            message = (
                f"no step reduces the nll (the trust region shrank without success) after {it} "
                "iterations"
            )
            break
        theta = theta + step
        f, g, hs, diag_j = engine.value_grad_hess(st, ar, theta, obs)
        counter["hess"] += 1
    g_np = np.asarray(g)
    if fac0 is None and status != "invalid":  # ended in the Gauss-Newton phase: check H here
        fac0, p0 = engine.step(st, ar, hs, g, 0.0, free_j)
        if bool(fac0.ok):
            edm = -0.5 * float(np.dot(g_np * free_np, np.asarray(p0)))
    at_bound = free_all & box.at_bound(np.asarray(theta))
    fac_cov = fac0
    if status == "converged" and at_bound.any():
        # the covariance from the curvature on every free parameter (the inverse of the whole
        # free Hessian, as an autodiff Hessian gives it; MINUIT's HESSE at a limit goes through
        # its internal transformation) where H is positive definite there; else the one with
        # the parameters on their bounds held
        fac_all, _ = engine.step(st, ar, hs, g, 0.0, jnp.asarray(free_all))
        if bool(fac_all.ok):
            fac_cov = fac_all
    z = _scaled_gradient(g_np, np.asarray(diag_j), free_np)
    worst = np.argsort(-z)[:5]
    pd = fac0 is not None and bool(fac0.ok)
    if status == "max_iterations" and not pd:
        status = "not_positive_definite"
        message = f"the Hessian is not positive definite after {it} iterations (max_iter)"
    gnorm = float(np.linalg.norm(np.where(free_np, g_np, 0.0)))
    eig = None
    if status not in ("converged", "invalid"):
        if not message:
            message = f"not converged after {it} iterations (max_iter)"
        edm_txt = f"{edm:.3g}" if math.isfinite(edm) else "n/a"
        message += (
            f": edm {edm_txt} (tolerance {edm_tol:g}), gradient norm {gnorm:.3g}, "
            f"max |g_i|/sqrt(H_ii) {z.max(initial=0.0):.3g} (tolerance {gtol:g}); Hessian "
            f"{'positive definite' if pd else 'NOT positive definite'}; largest "
            "|g_i|/sqrt(H_ii): " + ", ".join(f"{names[i]} {z[i]:.3g}" for i in worst)
        )
        if diagnose:
            eig = diagnostics.hessian_eigen(model, hs, free_np)
            text = eig.describe()
            message += f"; {text}" if text else ""
    info = MinimizeInfo(
        status=status,
        converged=status == "converged",
        edm=edm,
        nll=float(f),
        max_scaled_gradient=float(z.max(initial=0.0)),
        n_iterations=it,
        n_evaluations=counter["nll"] + counter["hess"],
        worst_gradients=[(names[i], float(z[i])) for i in worst],
        lambda_final=float(lam or 0.0),
        message=message,
        gradient_norm=gnorm,
        hessian_positive_definite=pd if status != "invalid" else None,
        smallest_eigenvalues=eig.values if eig else [],
        smallest_eigen_directions=eig.directions if eig else [],
        no_curvature=eig.no_curvature if eig else [],
        at_bound=[names[i] for i in np.flatnonzero(at_bound)],
    )
    return MinimizeOutput(np.asarray(theta), info, g, hs, fac_cov if pd else None)


def _accept(f_val: float, f_new: float, pred: float) -> tuple[bool, float]:
    """(accept, rho) for a step predicted to lower the nll by ``pred``."""
    if not math.isfinite(f_new):
        return False, -math.inf
    rho = (f_val - f_new) / pred if pred > 0 else (1.0 if f_new <= f_val else -1.0)
    tiny = pred < 1e-11 * max(1.0, abs(f_val)) and f_new <= f_val + 1e-11 * abs(f_val)
    return rho > 1e-4 or tiny, rho


def _projected(theta, step, g, free, box: _Box | None, pred: float):
    """(step, predicted decrease) once theta + step is projected onto the bounds: where the
    projection changes the step, the prediction becomes the first-order one, -g . step."""
    if box is None or not box.on:
        return step, pred
    new = box.project(theta + step)
    d = new - theta
    if bool(jnp.all(d == step)):
        return step, pred
    return d, -float(np.dot(np.asarray(g) * np.asarray(free), np.asarray(d)))


def _newton_line_search(
    theta, f_val, g, p, free, nll_at, verbose, box: _Box | None = None
) -> jnp.ndarray | None:
    """The Newton step p (H positive definite), halved up to 5 times until the nll decreases by
    at least 1e-4 of the quadratic model's prediction; None when it never does. With bounds,
    the step is projected onto them (Armijo test on the projected step)."""
    m0 = -float(np.dot(np.asarray(g) * np.asarray(free), np.asarray(p)))  # = p^T H p > 0
    alpha = 1.0
    for _ in range(6):
        step, pred = _projected(theta, alpha * p, g, free, box, alpha * m0 * (1.0 - 0.5 * alpha))
        if pred <= 0:  # the projection left no descent
            alpha *= 0.5
            continue
        ok, rho = _accept(f_val, nll_at(theta + step), pred)
        if verbose:
            size = alpha * float(np.abs(np.asarray(p)).max())
            print(f"    newton step x {alpha:g}: |p| {size:.3g}, rho {rho:.3g}")
        if ok:
            return step
        alpha *= 0.5
    return None


def _damped_gauss_newton(
    model, obs, theta, f_val, g, free, lam, nll_at, verbose, hs_gn=None, box: _Box | None = None
):
    """Far from the minimum, and where H is not positive definite and the shifted Newton step
    fails: Levenberg-Marquardt steps on the Gauss-Newton matrix G (positive semi-definite),
    (G + lam I) p = -g, with the trust-region ratio test adapting lam (the step projected onto
    the bounds). Returns (step or None, lam, predicted decrease)."""
    st, ar = model.static, model.arrays
    if hs_gn is None:
        _, _, hs_gn, _ = engine.value_grad_hess(st, ar, theta, obs, 1.0)
    d = np.asarray(engine.hess_diagonal(st, ar, hs_gn))[np.asarray(free)]
    scale = float(np.median(np.abs(d))) if d.size else 1.0
    lam_min = 1e-8 * max(scale, 1e-12)
    lam = lam_min if lam is None else max(lam, lam_min)
    return _trust_region(
        model,
        theta,
        f_val,
        g,
        hs_gn,
        free,
        (lam, lam_min, 1e-4 * scale),
        1.0,
        nll_at,
        verbose,
        box,
        "Gauss-Newton",
    )


def _damped_newton(model, theta, f_val, g, hs, diag, free, mu, nll_at, verbose, box=None):
    """Where H is not positive definite (or the Newton line search fails): trust-region steps
    on the exact Hessian shifted along its diagonal (Marquardt's scaling),
    (H + mu diag|H|) p = -g, mu adapted by the ratio test (More and Sorensen 1983). Near a
    minimum where H is slightly indefinite (the curvature of an asymmetric interpolation), a
    small mu gives nearly the Newton step, which converges in fewer iterations than the
    Gauss-Newton matrix that drops those terms. Returns (step or None, mu, predicted
    decrease)."""
    free_np = np.asarray(free)
    dg = np.abs(np.asarray(diag))
    ref = float(np.median(dg[free_np])) if free_np.any() else 1.0
    shift = np.where(free_np, np.maximum(dg, 1e-6 * max(ref, 1e-12)), 0.0)
    mu = 1e-3 if mu is None else max(mu, 1e-6)
    return _trust_region(
        model,
        theta,
        f_val,
        g,
        hs,
        free,
        (mu, 1e-6, 1e-3),
        shift,
        nll_at,
        verbose,
        box,
        "shifted Newton",
        max_tries=12,
    )


def _trust_region(
    model, theta, f_val, g, hs, free, lams, shift, nll_at, verbose, box, label, max_tries=60
):
    """Levenberg-Marquardt steps (hs + lam diag(shift)) p = -g with the ratio test; ``lams`` =
    (start, minimum, floor after a rejection). lam grows x10 where the matrix does not
    factorise and x4 (at least to the floor) after a rejected step; an accepted step shrinks
    it (x0.1 when rho > 0.75) or grows it (x4 when rho < 0.25). Returns (step or None, lam,
    predicted decrease)."""
    st, ar = model.static, model.arrays
    lam, lam_min, lam_floor = lams
    shift_np = np.broadcast_to(np.asarray(shift, dtype=np.float64), (model.n_params,))
    g_free = np.asarray(g) * np.asarray(free)
    for _ in range(max_tries):
        fac, p = engine.step(st, ar, hs, g, lam * shift_np, free)
        if not bool(fac.ok):
            lam *= 10.0
            continue
        pn = np.asarray(p)
        pred = -0.5 * float(np.dot(g_free, pn)) + 0.5 * lam * float(np.dot(shift_np * pn, pn))
        p, pred = _projected(theta, p, g, free, box, pred)
        if pred <= 0:  # the projection left no descent: a shorter step may
            lam = max(4.0 * lam, lam_floor)
            continue
        ok, rho = _accept(f_val, nll_at(theta + p), pred)
        if verbose:
            print(
                f"    {label} step (lambda {lam:.3g}): |p| "
                f"{float(np.max(np.abs(np.asarray(p)))):.3g}, rho {rho:.3g}"
            )
        if ok:
            if rho > 0.75:
                lam = max(lam / 10.0, lam_min)
            elif rho < 0.25:
                lam *= 4.0
            return p, lam, pred
        lam = max(4.0 * lam, lam_floor)
    return None, lam, 0.0
