"""The jit-compiled kernels of the fitter, one per operation, keyed by the model's static
description (so a model compiles each of them once)."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..model._jax import jax, jnp
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


@partial(jax.jit, static_argnums=0)
def step(st: ModelStatic, ar: dict, hs, g: jnp.ndarray, lam, free):
    """Factorise H + lam I on the free parameters and solve for the step p = -(H + lam I)^-1 g:
    (factor, p)."""
    fac = linalg.factorize(st, ar, hs, lam, free)
    return fac, -linalg.solve(st, ar, fac, g * free)


@partial(jax.jit, static_argnums=0)
def factorize(st: ModelStatic, ar: dict, hs, lam, free) -> linalg.Factor:
    return linalg.factorize(st, ar, hs, lam, free)


@partial(jax.jit, static_argnums=0)
def solve(st: ModelStatic, ar: dict, fac: linalg.Factor, rhs: jnp.ndarray) -> jnp.ndarray:
    return linalg.solve(st, ar, fac, rhs)


@partial(jax.jit, static_argnums=0)
def covariance(st: ModelStatic, ar: dict, fac: linalg.Factor) -> jnp.ndarray:
    return linalg.covariance(st, ar, fac)


@partial(jax.jit, static_argnums=0)
def covariance_blocks(st: ModelStatic, ar: dict, fac: linalg.Factor):
    return linalg.covariance_blocks(st, ar, fac)


def covariance_numpy(st: ModelStatic, ar: dict, fac: linalg.Factor) -> np.ndarray:
    """The covariance in parameter order as a numpy array, assembled on the host block by block
    (no second full-size temporary: the peak is the output plus the sparse-sparse block)."""
    c_dd, c_sd, c_ss = covariance_blocks(st, ar, fac)
    dp, sp = np.asarray(ar["D_params"]), np.asarray(ar["S_params"])
    out = np.empty((st.n_params, st.n_params))
    out[np.ix_(sp, sp)] = np.asarray(c_ss)
    del c_ss
    c_sd = np.asarray(c_sd)
    out[np.ix_(sp, dp)] = c_sd
    out[np.ix_(dp, sp)] = c_sd.T
    out[np.ix_(dp, dp)] = np.asarray(c_dd)
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
    ``impacts``)."""

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
