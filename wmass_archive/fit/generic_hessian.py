"""The Hessian of a generic model (format 1.1 extended modifiers) from its structure, instead of
JAX's dense forward mode over every parameter.

Every entry of a generic model (an additive shift, a multiplicative or linear factor, a logk
exponent, a rate POI) depends on one parameter. With, per slot s (``docs/format.md`` 15.3),

    nu_s = base_s * Q_s * R_s,    base_s = N_s + sum_add Delta_e,
    Q_s = prod_fac f_e * exp(sum_logk l_e),    R_s = the rate POI's value (or 1)

and the per-entry first and second derivatives (taken elementwise with ``jax.jvp``), the
derivatives are

    dnu_s = Q R dbase + nu G + base Q dR
    d2nu_s = Q R d2base + nu (G G^T + diag(dG)) + Q R (dbase G^T + G dbase^T)
             + Q (dbase dR^T + dR dbase^T) + base Q (G dR^T + dR G^T)

with G = dln Q (dense (n_slots, n_params), one scatter of the entries), dbase the additive
entries' derivatives, dR the rate POIs' (d2base, dG diagonal; d2R = 0). Then

    H = J^T diag(phi'') J + sum_s phi'_b d2nu_s + constraints,   J = sum_p dnu_(p,b)

a few dense products of (n_slots, n_params) matrices, and the Gauss-Newton matrix from the
same J. Clipped yields follow the model: a base clipped at 0 has no derivative (as ``where``
gives it), a factor at 0 zeroes its slot, a rate POI at its physical 0 keeps the derivative from
above. It applies to generic models without folded processes, with at most one rate POI per
slot and a Barlow-Beeston mode whose terms depend on the bin's total only (not ``combine``);
:func:`applies` says so, and the fitter keeps JAX's Hessian otherwise. It equals JAX's Hessian
to rounding (``tests/test_generic_hessian.py``).
"""

from __future__ import annotations

from ..jax_config import jax, jnp
from ..model.expected import ModelStatic, logk_terms, sum_leading
from ..model.extended import _rows, _t, _to_slots
from ..model.modifiers import (
    LINEAR,
    additive_delta_coded,
    factor_coded,
    poisson_constraint,
    poisson_constraint_d2,
)
from .likelihood import Observation, constraint_nll


def applies(st: ModelStatic) -> bool:
    """Whether :func:`value_grad_hess` holds for this model (static: usable under ``jit``)."""
    return bool(
        st.generic
        and not st.folds
        and st.bb != "combine"
        and st.ext is not None
        and st.ext.structured_hessian
    )


def _derivs(fn, t: jnp.ndarray):
    """(f, f', f'') of an elementwise function of t (each output depends on its own t)."""
    ones = jnp.ones_like(t)

    def d1(x):
        return jax.jvp(fn, (x,), (ones,))[1]

    f, f1 = jax.jvp(fn, (t,), (ones,))
    return f, f1, jax.jvp(d1, (t,), (ones,))[1]


def slot_pieces(st: ModelStatic, ar: dict, theta: jnp.ndarray):
    """(nu, base, Q, R, dbase, G, dR, second, on): per slot the yield and its three factors,
    dense (n_slots, n_params) first derivatives, the per-entry second derivatives as (slot,
    param, value, kind) to be weighted and summed (kind 0: of base, 1: of ln Q), and where the
    base is not clipped."""
    es, ex = st.ext, ar["ext"]
    ns, n = st.n_slots, st.n_params
    dbase = jnp.zeros((ns, n))
    g = jnp.zeros((ns, n))
    second = []  # (slot, param, value, kind): kind 0 for base, 1 for ln Q
    base = ex["nom"]
    if es.add_codes:
        a = ex["add"]
        ps = a["ps"]
        d, d1, d2 = _derivs(lambda t: additive_delta_coded(t, a, es.add_codes), _t(a, theta))
        base = base + _to_slots(jnp.sum(_rows(d, a, 0.0), axis=1), a, 0.0)
        dbase = dbase.at[a["slot"], a["param"]].add(ps * d1)
        second.append((a["slot"], a["param"], ps * ps * d2, 0))
    on = base > ex["floor"]
    base = jnp.where(on, base, 0.0)
    dbase = jnp.where(on[:, None], dbase, 0.0)
    q = jnp.ones(ns)
    if es.mult_codes or es.has_linear:
        fac = ex["fac"]
        present = es.mult_codes + ((LINEAR,) if es.has_linear else ())
        ps = fac["ps"]
        f, f1, f2 = _derivs(lambda t: factor_coded(t, fac, present), _t(fac, theta))
        q = _to_slots(jnp.prod(_rows(f, fac, 1.0), axis=1), fac, 1.0)
        pos = f > 0.0
        fs = jnp.where(pos, f, 1.0)
        lg1 = jnp.where(pos, f1 / fs, 0.0)
        lg2 = jnp.where(pos, f2 / fs - lg1 * lg1, 0.0)
        g = g.at[fac["slot"], fac["param"]].add(ps * lg1)
        second.append((fac["slot"], fac["param"], ps * ps * lg2, 1))
    ell = jnp.zeros(ns)
    for prefix in ("lkD", "lkS"):
        if ar[f"{prefix}_slot"].shape[0]:
            sl, pa = ar[f"{prefix}_slot"], ar[f"{prefix}_param"]
            ell = ell + jax.ops.segment_sum(logk_terms(ar, theta, prefix), sl, num_segments=ns)
            g = g.at[sl, pa].add(logk_terms(ar, theta, prefix, 1))
            second.append((sl, pa, logk_terms(ar, theta, prefix, 2), 1))
    q = jnp.where(ex["plain"], q * jnp.exp(ell), 0.0)
    r = jnp.ones(ns)
    dr = jnp.zeros((ns, n))
    if ar["rate_param"].shape[0]:
        v = ar["rate_central"] + ar["rate_scale"] * theta[ar["rate_param"]]
        kept = v >= ex["floor"]
        v = jnp.where(kept, v, 0.0)
        mask = ar["rate_mask"]  # (n_rate, n_slots), at most one rate POI per slot
        r = jnp.prod(1.0 + mask * (v[:, None] - 1.0), axis=0)
        dr = dr.at[:, ar["rate_param"]].add((mask * (ar["rate_scale"] * kept)[:, None]).T)
    nu = base * q * r
    return nu, base, q, r, dbase, g, dr, second, on


def value_grad_hess(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation, gn, terms):
    """(nll, gradient, H) of a generic model (see the module docstring); ``terms(nu_bin)``
    gives (phi, phi', phi'') per bin; ``gn = 1``: the Gauss-Newton matrix instead."""
    nu, base, q, r, dbase, g, dr, second, on = slot_pieces(st, ar, theta)
    n_proc, n_bins = st.n_proc, st.n_bins
    qr = q * r
    jac_s = qr[:, None] * dbase + nu[:, None] * g + (base * q)[:, None] * dr  # dnu_s
    nu_bin = sum_leading(nu.reshape(n_proc, n_bins))
    phi, d1, d2 = terms(nu_bin)
    jac = sum_leading(jac_s.reshape(n_proc, n_bins, -1))  # (n_bins, n_params)
    w = jnp.tile(d1, n_proc)  # phi'_b per slot
    cons_d2 = ar["constrained"] + poisson_constraint_d2(
        theta, obs.theta0, ar["poisson_tau"], ar["poisson_on"]
    )
    value = (
        jnp.sum(phi)
        + constraint_nll(theta, obs.theta0, ar["constrained"])
        + poisson_constraint(theta, obs.theta0, ar["poisson_tau"], ar["poisson_on"])
    )
    grad = jac.T @ d1 + jax.grad(
        lambda t: (
            constraint_nll(t, obs.theta0, ar["constrained"])
            + poisson_constraint(t, obs.theta0, ar["poisson_tau"], ar["poisson_on"])
        )
    )(theta)

    def exact(_):
        h = jac.T @ (d2[:, None] * jac)
        h = h + g.T @ ((w * nu)[:, None] * g)
        cross = dbase.T @ ((w * qr)[:, None] * g) + dbase.T @ ((w * q)[:, None] * dr)
        cross = cross + g.T @ ((w * base * q)[:, None] * dr)
        h = h + cross + cross.T
        diag = jnp.zeros(st.n_params)
        for sl, pa, val, kind in second:
            weight = jnp.where(on, w * qr, 0.0)[sl] if kind == 0 else (w * nu)[sl]
            diag = diag.at[pa].add(weight * val)
        return h + jnp.diag(diag + cons_d2)

    def gauss_newton(_):
        return jac.T @ (jnp.maximum(d2, 0.0)[:, None] * jac) + jnp.diag(cons_d2)

    h = jax.lax.cond(gn > 0.5, gauss_newton, exact, None)
    return value, grad, 0.5 * (h + h.T)


__all__ = ["applies", "slot_pieces", "value_grad_hess"]
