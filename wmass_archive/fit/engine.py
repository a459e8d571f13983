"""The jit-compiled kernels of the fitter, one per operation, keyed by the model's static
description (so a model compiles each of them once)."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..jax_config import jax, jnp
from ..model.expected import ModelStatic, expected_bins, expected_slots
from . import hessian, linalg
from .likelihood import Observation


@partial(jax.jit, static_argnums=0)
def nll(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation) -> jnp.ndarray:
    return hessian.nll(st, ar, theta, obs)


@partial(jax.jit, static_argnums=0)
def nll_grad(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation):
    return jax.value_and_grad(hessian.nll, argnums=2)(st, ar, theta, obs)


def value_grad_hess(
    st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation, gn: float = 0.0
):
    """(nll, gradient, structured Hessian, diagonal of the Hessian); ``gn = 1``: the
    Gauss-Newton matrix instead of the Hessian (one compiled kernel for both)."""
    return _value_grad_hess(st, ar, theta, obs, float(gn))


@partial(jax.jit, static_argnums=0)
def _value_grad_hess(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation, gn):
    f, g, hs = hessian.value_grad_hess(st, ar, theta, obs, gn)
    return f, g, hs, _hess_diag(st, ar, hs)


def _shifts(st: ModelStatic, lam) -> jnp.ndarray:
    """``lam`` (a scalar or one value per parameter) as a (n_params,) vector: one compiled
    kernel for a uniform and a per-parameter shift."""
    return jnp.broadcast_to(jnp.asarray(lam, dtype=jnp.float64), (st.n_params,))


def step(st: ModelStatic, ar: dict, hs, g: jnp.ndarray, lam, free):
    """Factorise H + diag(lam) on the free parameters and solve for the step
    p = -(H + diag(lam))^-1 g: (factor, p). ``lam``: a scalar or (n_params,) shifts."""
    return _step(st, ar, hs, g, _shifts(st, lam), free)


@partial(jax.jit, static_argnums=0)
def _step(st: ModelStatic, ar: dict, hs, g: jnp.ndarray, lam, free):
    fac = linalg.factorize(st, ar, hs, lam, free)
    return fac, -linalg.solve(st, ar, fac, g * free)


def factorize(st: ModelStatic, ar: dict, hs, lam, free) -> linalg.Factor:
    """Factorise H + diag(lam) on the free parameters (``lam`` a scalar or (n_params,))."""
    return _factorize(st, ar, hs, _shifts(st, lam), free)


@partial(jax.jit, static_argnums=0)
def _factorize(st: ModelStatic, ar: dict, hs, lam, free) -> linalg.Factor:
    return linalg.factorize(st, ar, hs, lam, free)


@partial(jax.jit, static_argnums=0)
def solve(st: ModelStatic, ar: dict, fac: linalg.Factor, rhs: jnp.ndarray) -> jnp.ndarray:
    return linalg.solve(st, ar, fac, rhs)


@partial(jax.jit, static_argnums=0)
def covariance(st: ModelStatic, ar: dict, fac: linalg.Factor) -> jnp.ndarray:
    return linalg.covariance(st, ar, fac)


@partial(jax.jit, static_argnums=0)
def covariance_factors(st: ModelStatic, ar: dict, fac: linalg.Factor):
    return linalg.covariance_factors(st, ar, fac)


#: rows of the sparse-sparse block computed at once by :func:`covariance_numpy`
COVARIANCE_ROW_CHUNK = 1024


def covariance_numpy(
    st: ModelStatic, ar: dict, fac: linalg.Factor, row_chunk: int = COVARIANCE_ROW_CHUNK
) -> np.ndarray:
    """The covariance in parameter order as a numpy array (n_params, n_params), written into
    the output block by block: C_SS = X C_DD X^T + blockdiag(B^-1) ``row_chunk`` rows at a
    time (linalg.covariance_factors), so that the peak is the output plus (row_chunk,
    n_sparse), not a second n_sparse^2 array. Rows and columns of fixed parameters are 0."""
    c_dd, x, invs = covariance_factors(st, ar, fac)
    dp, sp = np.asarray(ar["D_params"]), np.asarray(ar["S_params"])
    n_sp = sp.size
    out = np.empty((st.n_params, st.n_params))
    xc = x @ c_dd  # -C_SD, (n_sparse, n_dense)
    xc_np = np.asarray(xc)
    out[np.ix_(sp, dp)] = -xc_np
    out[np.ix_(dp, sp)] = -xc_np.T
    out[np.ix_(dp, dp)] = np.asarray(c_dd)
    for r0 in range(0, n_sp, row_chunk):
        r1 = min(r0 + row_chunk, n_sp)
        out[np.ix_(sp[r0:r1], sp)] = np.asarray(xc[r0:r1] @ x.T)
    sp_pad = np.append(sp, -1)  # bucket padding (column n_sparse) -> dropped below
    for cols, inv in zip(ar["bucket_cols"], invs, strict=True):
        c = np.asarray(cols)
        rows = sp_pad[np.minimum(c, n_sp)]
        ok = (c < n_sp)[:, :, None] & (c < n_sp)[:, None, :]
        r = np.broadcast_to(rows[:, :, None], ok.shape)[ok]
        k = np.broadcast_to(rows[:, None, :], ok.shape)[ok]
        np.add.at(out, (r, k), np.asarray(inv)[ok])
    fixed = ~np.asarray(fac.free)
    if fixed.any():
        out[fixed, :] = 0.0
        out[:, fixed] = 0.0
    return out


@partial(jax.jit, static_argnums=0)
def dense_hessian(st: ModelStatic, ar: dict, hs) -> jnp.ndarray:
    return hessian.dense_hessian(st, ar, hs)


def hess_diagonal(st: ModelStatic, ar: dict, hs) -> np.ndarray:
    """Diagonal of a structured Hessian as numpy (host-side gather, no kernel)."""
    out = np.zeros(st.n_params)
    out[np.asarray(ar["D_params"])] = np.diagonal(np.asarray(hs.dd))
    sp = np.asarray(ar["S_params"])
    for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True):
        c = np.asarray(cols)
        ok = c < sp.size
        out[sp[c[ok]]] = np.diagonal(np.asarray(blk), axis1=1, axis2=2)[ok]
    return out


def _hess_diag(st: ModelStatic, ar: dict, hs) -> jnp.ndarray:
    """Diagonal of the structured Hessian, (n_params,)."""
    out_s = jnp.zeros(st.n_sparse + 1)
    for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True):
        out_s = out_s.at[cols].set(jnp.diagonal(blk, axis1=1, axis2=2))
    out = jnp.zeros(st.n_params).at[ar["D_params"]].set(jnp.diagonal(hs.dd))
    return out.at[ar["S_params"]].set(out_s[:-1])


@partial(jax.jit, static_argnums=0)
def expected(st: ModelStatic, ar: dict, theta: jnp.ndarray) -> jnp.ndarray:
    return expected_bins(st, ar, theta)


@partial(jax.jit, static_argnums=0)
def expected_by_slot(st: ModelStatic, ar: dict, theta: jnp.ndarray) -> jnp.ndarray:
    return expected_slots(st, ar, theta)


@partial(jax.jit, static_argnums=0)
def mc_stat_inputs(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation, tangents):
    """(J v for tangents v (m, n_params) as (m, n_bins), and per bin s_b dbeta_b/dnu_b: the
    Barlow-Beeston global observable's sigma-scaled derivative, 0 where BB is off; module
    ``impacts``). ``bb="combine"``: the global observable g_b (unit width) enters the nll only
    through (x_b - g_b)^2 / 2, so d2 nll / dtheta dg_b = -dx_b/dtheta (x_b profiled, module
    ``likelihood``): the first element is then (dx/dtheta) v and the factor 1 (0 where BB is
    off)."""
    if st.bb == "combine":

        def x_of(t):
            return hessian.combine_terms(st, ar, t, expected_bins(st, ar, t), obs)[3]

        jx = jax.vmap(lambda v: jax.jvp(x_of, (theta,), (v,))[1])(tangents)
        on = ar["bb_on"] & ar["bin_active"]
        return jnp.where(on[None, :], jx, 0.0), jnp.where(on, 1.0, 0.0)

    def f(t):
        return expected_bins(st, ar, t)

    nu = f(theta)
    jv = jax.vmap(lambda v: jax.jvp(f, (theta,), (v,))[1])(tangents)
    beta = hessian.beta_profiled(st, ar, theta, obs)
    k, b0 = ar["bb_k"], obs.beta0
    if st.bb == "gamma":
        factor = -jnp.sqrt(k * b0) / beta * beta / (nu + k)
    elif st.bb == "normal":
        factor = -jnp.sqrt(k) * beta**2 / (obs.n + k * beta**2)
    else:
        factor = jnp.zeros_like(nu)
    on = ar["bb_on"] & ar["bin_active"]
    return jv, jnp.where(on, factor, 0.0)


@partial(jax.jit, static_argnums=0)
def beta_at(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation) -> jnp.ndarray:
    """The profiled Barlow-Beeston factors beta (n_bins,) at theta."""
    return hessian.beta_profiled(st, ar, theta, obs)
