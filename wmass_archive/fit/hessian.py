"""Negative log-likelihood, its gradient and its exact Hessian, exploiting the model's structure.

With slots s = (process, bin), log yields l_s(theta), slot yields nu_s = exp(l_s), bin yields
nu_b = sum_p nu_pb and the per-bin profiled terms phi_b (module ``likelihood``):

    g = A^T (phi' nu) + C (theta - theta0)
    H = J^T diag(phi'') J + A^T diag(phi' nu) A + sum_s phi'_b nu_s d2 l_s + C

where A = dl/dtheta (slots x params), J = dnu_b/dtheta = sum_p nu_pb A_pb, C the constraint
diagonal. A is kept in two parts: dense columns A_D (POIs, theory and wide nuisances: a
(n_slots, n_dense) matrix; folded processes contribute (R_j dsigma/dtheta) / nu_j through one
matrix product per mass point) and sparse logk entries for the other nuisances (one value per
entry, never a dense column). The blocks are

* H_DD: two dense matrix products plus the second-order terms (diagonal for logk and rate
  POIs; for folded processes the contraction of d2 sigma with R^T (weights / nu_j) and the
  mass-point weights' derivatives);
* H_SS and H_SD = A_S^T Q A_D: the sparse parameters' logk entries are scattered into a small
  dense local Jacobian per block of coupled parameters (module
  ``wmass_archive.model.structure``); each block's part of H is then a few batched matrix
  products (Q = the per-bin 2-term weight, applied to A_D through Z = Q A_D).

A *generic* model (format 1.1: extended modifiers or poisson constraints, ``st.generic``) has
every parameter dense and no sparse blocks; its gradient and Hessian are built from its entries
(module :mod:`~wmass_archive.fit.generic_hessian`) or, where that does not apply, are JAX's
automatic derivatives of :func:`nll` (the Gauss-Newton matrix from the Jacobian of the bin
yields), in the same :class:`StructuredHessian` (``dd`` = H, empty ``sd`` and ``blocks``). Combine's
Barlow-Beeston lite (``bb="combine"``) exists on this path only: its per-bin term depends on
theta also through the width e_b(theta) (:func:`combine_terms`).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

from ..jax_config import jax, jnp
from ..model.expected import (
    ModelStatic,
    expected_slots,
    fold_point_yields,
    fold_weights,
    generic_slots,
    log_yields,
    logk_terms,
    rate_values,
    safe_log,
    sum_leading,
    theory_arrays,
)
from ..model.modifiers import poisson_constraint, poisson_constraint_d2
from ..model.theory import sigma_derivatives, sigma_hessian_contraction
from . import generic_hessian
from .likelihood import (
    Observation,
    bin_terms,
    combine_bin_terms,
    combine_global,
    constraint_nll,
)


class StructuredHessian(NamedTuple):
    """H in blocks: ``dd`` (n_dense, n_dense), ``sd`` (n_sparse, n_dense) and ``blocks``, one
    (n_blocks, size, size) array per bucket of the sparse-sparse block diagonal (padding rows and
    columns are zero)."""

    dd: jnp.ndarray
    sd: jnp.ndarray
    blocks: tuple[jnp.ndarray, ...]


def bin_nll_terms(st: ModelStatic, ar: dict, nu_bin: jnp.ndarray, obs: Observation):
    """(phi, phi', phi'') per bin, zero in bins without any expected yield (not for
    ``bb="combine"``, whose terms also depend on theta through the width: :func:`combine_terms`)."""
    phi, d1, d2, _ = bin_terms(nu_bin, obs.n, ar["bb_k"], obs.beta0, ar["bb_on"], st.bb)
    on = ar["bin_active"]
    return jnp.where(on, phi, 0.0), jnp.where(on, d1, 0.0), jnp.where(on, d2, 0.0)


def norm_factors(st: ModelStatic, ar: dict, theta: jnp.ndarray) -> jnp.ndarray:
    """The normalisation of every slot (n_slots,): its yield with the additive modifiers (the
    template morphing) left out and a unit nominal, i.e. the rate POIs times the multiplicative,
    linear and log-normal factors (a folded slot: its folded yield). Generic models only."""
    ext = dataclasses.replace(st.ext, add_codes=())  # type: ignore[arg-type]
    ex = ar["ext"]
    ex = {**ex, "add": (), "nom": jnp.where(ex["plain"], 1.0, 0.0)}
    return generic_slots(dataclasses.replace(st, ext=ext), {**ar, "ext": ex}, theta)


def combine_width2(st: ModelStatic, ar: dict, theta: jnp.ndarray) -> jnp.ndarray:
    """e_b^2 = sum_p sumw2_pb (c_p(theta) / c_p(0))^2 per bin of ``bb="combine"`` (n_bins,):
    the MC errors of the processes scaled with their normalisations, as Combine's
    CMSHistErrorPropagator (``toterr``)."""
    c = norm_factors(st, ar, theta)
    c0 = norm_factors(st, ar, jnp.zeros_like(theta))
    ok = c0 != 0.0
    ratio = jnp.where(ok, c / jnp.where(ok, c0, 1.0), 0.0)
    return sum_leading((ar["bb_sumw2"] * ratio * ratio).reshape(st.n_proc, st.n_bins))


def combine_terms(
    st: ModelStatic, ar: dict, theta: jnp.ndarray, nu_bin: jnp.ndarray, obs: Observation
):
    """(phi, phi' (d/dnu at fixed width), phi'', x) per bin of ``bb="combine"``, zero in bins
    without any expected yield (module ``likelihood``)."""
    e2 = combine_width2(st, ar, theta)
    g = combine_global(obs.beta0, ar["bb_k"])
    phi, d1, d2, x = combine_bin_terms(nu_bin, e2, obs.n, g, ar["bb_on"])
    on = ar["bin_active"]
    z = jnp.zeros_like(phi)
    return jnp.where(on, phi, z), jnp.where(on, d1, z), jnp.where(on, d2, z), x


def nll(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation) -> jnp.ndarray:
    """The negative log-likelihood (saturated offsets: 0 for the saturated model)."""
    if st.generic:
        return _generic_nll(st, ar, theta, obs)
    ell, active = log_yields(st, ar, theta)
    nu = jnp.where(active, jnp.exp(jnp.where(active, ell, 0.0)), 0.0)
    nu_bin = sum_leading(nu.reshape(st.n_proc, st.n_bins))
    phi, _, _ = bin_nll_terms(st, ar, nu_bin, obs)
    return jnp.sum(phi) + constraint_nll(theta, obs.theta0, ar["constrained"])


def _bin_yields(st: ModelStatic, ar: dict, theta: jnp.ndarray) -> jnp.ndarray:
    return sum_leading(expected_slots(st, ar, theta).reshape(st.n_proc, st.n_bins))


def _generic_nll(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation) -> jnp.ndarray:
    """The nll of a generic model: yields of section 15.3, gaussian and poisson constraints."""
    nu_bin = _bin_yields(st, ar, theta)
    if st.bb == "combine":
        phi = combine_terms(st, ar, theta, nu_bin, obs)[0]
    else:
        phi, _, _ = bin_nll_terms(st, ar, nu_bin, obs)
    cons = constraint_nll(theta, obs.theta0, ar["constrained"])
    return (
        jnp.sum(phi)
        + cons
        + poisson_constraint(theta, obs.theta0, ar["poisson_tau"], ar["poisson_on"])
    )


def _bin_terms_of(st: ModelStatic, ar: dict, obs: Observation, nu_bin: jnp.ndarray):
    return bin_nll_terms(st, ar, nu_bin, obs)


def _generic_value_grad_hess(
    st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation, gn
) -> tuple[jnp.ndarray, jnp.ndarray, StructuredHessian]:
    """(nll, gradient, H) of a generic model; ``gn = 1``: the Gauss-Newton matrix
    J^T diag(max(phi'', 0)) J + the constraints' second derivatives. From the model's entries
    (:mod:`~wmass_archive.fit.generic_hessian`) where that applies, else by automatic
    differentiation (folded processes, two rate POIs on a slot, ``bb="combine"``)."""
    if generic_hessian.applies(st):
        f, g, h = generic_hessian.value_grad_hess(
            st, ar, theta, obs, gn, partial(_bin_terms_of, st, ar, obs)
        )
        return f, g, StructuredHessian(h, jnp.zeros((0, st.n_params)), ())
    value_grad = jax.value_and_grad(_generic_nll, argnums=2)

    def exact(_):
        def grad_aux(t):
            v, g = value_grad(st, ar, t, obs)
            return g, (v, g)

        h, (f, g) = jax.jacfwd(grad_aux, has_aux=True)(theta)
        return f, g, h

    def gauss_newton(_):
        f, g = value_grad(st, ar, theta, obs)
        jac = jax.jacfwd(partial(_bin_yields, st, ar))(theta)  # (n_bins, n_params)
        nu_bin = _bin_yields(st, ar, theta)
        if st.bb == "combine":  # the width's dependence on theta left out (an approximation)
            d2 = combine_terms(st, ar, theta, nu_bin, obs)[2]
        else:
            _, _, d2 = bin_nll_terms(st, ar, nu_bin, obs)
        c = ar["constrained"] + poisson_constraint_d2(
            theta, obs.theta0, ar["poisson_tau"], ar["poisson_on"]
        )
        return f, g, jac.T @ (jnp.maximum(d2, 0.0)[:, None] * jac) + jnp.diag(c)

    f, g, h = jax.lax.cond(gn > 0.5, gauss_newton, exact, None)
    h = 0.5 * (h + h.T)
    return f, g, StructuredHessian(h, jnp.zeros((0, st.n_params)), ())


def beta_profiled(st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation):
    """The profiled Barlow-Beeston factors beta (n_bins,) at theta (1 when bb is off;
    ``bb="combine"``: (nu + x e) / nu)."""
    if st.bb == "combine":
        nu_bin = _bin_yields(st, ar, theta)
        x = combine_terms(st, ar, theta, nu_bin, obs)[3]
        e = jnp.sqrt(combine_width2(st, ar, theta))
        ok = nu_bin > 0
        return jnp.where(ok, 1.0 + x * e / jnp.where(ok, nu_bin, 1.0), 1.0)
    ell, active = log_yields(st, ar, theta)
    nu = jnp.where(active, jnp.exp(jnp.where(active, ell, 0.0)), 0.0)
    nu_bin = sum_leading(nu.reshape(st.n_proc, st.n_bins))
    if st.bb == "none":
        return jnp.ones_like(nu_bin)
    return bin_terms(nu_bin, obs.n, ar["bb_k"], obs.beta0, ar["bb_on"], st.bb)[3]


def _fold_pieces(st: ModelStatic, ar: dict, theta: jnp.ndarray):
    """Per folded block: (nu_j, Y_j = dln nu_j/dtheta_theory, omega, omega', omega'')."""
    if not st.folds:
        return [], None
    sig, jsig, parts = sigma_derivatives(theta[ar["th_param"]], *theory_arrays(ar))
    out = []
    for fs, fold in zip(st.folds, ar["folds"], strict=True):
        nu_j = fold_point_yields(ar, fold, sig)
        nus = jnp.where(nu_j > 0, nu_j, 1.0)
        r = fold["R"]
        ry = (r.reshape(-1, r.shape[2]) @ jsig).reshape(r.shape[0], r.shape[1], -1)
        y = fold["lumi"] * ry / nus[..., None]
        w = [fold_weights(fs, fold, theta, nu_j, order) for order in (0, 1, 2)]
        out.append((nu_j, y, *w))
    return out, parts


def value_grad_hess(
    st: ModelStatic, ar: dict, theta: jnp.ndarray, obs: Observation, gn: float = 0.0
) -> tuple[jnp.ndarray, jnp.ndarray, StructuredHessian]:
    """(nll, gradient (n_params,), :class:`StructuredHessian`) at theta. ``gn = 1`` gives the
    Gauss-Newton matrix J^T diag(max(phi'', 0)) J + C instead of H (positive semi-definite;
    the minimiser uses it where H is not positive definite)."""
    if st.generic:
        return _generic_value_grad_hess(st, ar, theta, obs, gn)
    n_s, d = st.n_slots, st.n_dense
    n_sp = st.n_sparse

    # ---- log yields and the dense Jacobian A_D
    ell, active = log_yields(st, ar, theta)
    a_d = jnp.zeros((n_s, d))
    a_d = a_d.at[ar["lkD_slot"], ar["lkD_col"]].add(logk_terms(ar, theta, "lkD", 1))
    if ar["rate_param"].shape[0]:
        coef = ar["rate_scale"] / rate_values(ar, theta)
        a_d = a_d.at[:, ar["rate_col"]].add(ar["rate_mask"].T * coef[None, :])
    folds, sig_parts = _fold_pieces(st, ar, theta)
    for fs, fold, (nu_j, y, w0, w1, _) in zip(st.folds, ar["folds"], folds, strict=True):
        a_d = a_d.at[fold["slots"][:, None], ar["th_col"][None, :]].add(
            sum_leading(w0[..., None] * y)
        )
        if fs.has_mass:
            a_d = a_d.at[fold["slots"], fold["mass_col"]].add(jnp.sum(w1 * safe_log(nu_j), 0))

    nu = jnp.where(active, jnp.exp(jnp.where(active, ell, 0.0)), 0.0)
    nu_pb = nu.reshape(st.n_proc, st.n_bins)
    phi, d1, d2 = bin_nll_terms(st, ar, sum_leading(nu_pb), obs)
    cw = (d1[None, :] * nu_pb).reshape(-1)  # phi'_b nu_s
    value = jnp.sum(phi) + constraint_nll(theta, obs.theta0, ar["constrained"])

    # ---- gradient
    a_s = logk_terms(ar, theta, "lkS", 1)
    g_d = a_d.T @ cw
    g_s = jax.ops.segment_sum(a_s * cw[ar["lkS_slot"]], ar["lkS_col"], num_segments=n_sp)
    cons = ar["constrained"]
    grad = jnp.zeros(st.n_params).at[ar["D_params"]].set(g_d).at[ar["S_params"]].set(g_s)
    grad = grad + cons * (theta - obs.theta0)

    # Gauss-Newton (gn = 1): drop the terms weighted by phi', keep phi'' >= 0
    cw = cw * (1.0 - gn)
    d2 = d2 + gn * (jnp.maximum(d2, 0.0) - d2)

    # ---- H_DD
    j_d = sum_leading((nu[:, None] * a_d).reshape(st.n_proc, st.n_bins, d))
    h_dd = j_d.T @ (d2[:, None] * j_d) + weighted_gram(st, a_d, cw, ar.get("proc_cols", ()))
    diag_d = jax.ops.segment_sum(
        cw[ar["lkD_slot"]] * logk_terms(ar, theta, "lkD", 2), ar["lkD_col"], num_segments=d
    )
    diag_d = diag_d + cons[ar["D_params"]]
    if ar["rate_param"].shape[0]:
        diag_d = diag_d.at[ar["rate_col"]].add(-(ar["rate_mask"] @ cw) * coef**2)
    if folds:
        th_col = ar["th_col"]
        u = jnp.zeros(ar["th_central"].shape[0])
        for fs, fold, (nu_j, y, w0, w1, w2) in zip(st.folds, ar["folds"], folds, strict=True):
            cwb = cw[fold["slots"]]
            nus = jnp.where(nu_j > 0, nu_j, 1.0)
            wr = (cwb[None, :] * w0 / nus).reshape(-1)
            u = u + fold["lumi"] * (wr @ fold["R"].reshape(wr.shape[0], -1))
            h_tt = -jnp.einsum("jbt,jb,jbs->ts", y, cwb[None, :] * w0, y)
            h_dd = h_dd.at[th_col[:, None], th_col[None, :]].add(h_tt)
            if fs.has_mass:
                rows = cwb[:, None] * sum_leading(w1[..., None] * y)
                m = jax.ops.segment_sum(rows, fold["mass_col"], num_segments=d)
                h_dd = h_dd.at[:, th_col].add(m).at[th_col, :].add(m.T)
                mm = cwb * jnp.sum(w2 * safe_log(nu_j), axis=0)
                diag_d = diag_d + jax.ops.segment_sum(mm, fold["mass_col"], num_segments=d)
        h_sig = sigma_hessian_contraction(u, sig_parts)
        h_dd = h_dd.at[th_col[:, None], th_col[None, :]].add(h_sig)
    h_dd = h_dd + jnp.diag(diag_d)

    # ---- H_SD = A_S^T Q A_D and the H_SS blocks, from the blocks' local Jacobians
    n_p, n_b = st.n_proc, st.n_bins
    z = (d2[None, :, None] * nu_pb[..., None] * j_d[None]) + cw.reshape(n_p, n_b)[..., None] * (
        a_d.reshape(n_p, n_b, d)
    )
    z_pad = jnp.concatenate([z, jnp.zeros((n_p, 1, d))], axis=1)
    nu_pad = jnp.concatenate([nu_pb, jnp.zeros((n_p, 1))], axis=1)
    cw_pad = jnp.concatenate([cw.reshape(n_p, n_b), jnp.zeros((n_p, 1))], axis=1)
    d2_pad = jnp.concatenate([d2, jnp.zeros(1)])
    cw_e = cw[ar["lkS_slot"]]
    diag_s = jax.ops.segment_sum(
        cw_e * logk_terms(ar, theta, "lkS", 2), ar["lkS_col"], num_segments=n_sp
    )
    diag_pad = jnp.concatenate([diag_s + cons[ar["S_params"]], jnp.zeros(1)])
    flat = jnp.zeros(st.flat_size).at[ar["lkS_target"]].add(a_s)
    h_sd = jnp.zeros((n_sp + 1, d))
    blocks = []
    for (off, _, size, n_loc, n_t, t_size, tiled), cols, bins, t_cols, t_pos in zip(
        st.buckets,
        ar["bucket_cols"],
        ar["bucket_bins"],
        ar["bucket_tile_cols"],
        ar["bucket_tile_pos"],
        strict=True,
    ):
        # the local Jacobians of the bucket's tiles (a block each when untiled)
        a_t = flat[off : off + n_t * n_p * n_loc * t_size].reshape(n_t, n_p, n_loc, t_size)
        nu_l = jnp.swapaxes(nu_pad[:, bins], 0, 1)  # (n_tiles, n_proc, n_loc)
        cw_l = jnp.swapaxes(cw_pad[:, bins], 0, 1)
        j_t = sum_leading(jnp.swapaxes(a_t * nu_l[..., None], 0, 1))
        blk = jnp.einsum("nbi,nbj->nij", j_t * d2_pad[bins][..., None], j_t)
        blk = blk + jnp.einsum("npbi,npbj->nij", a_t * cw_l[..., None], a_t)
        if tiled:  # the tiles' parts added into the one block at their parameters' places
            one = jnp.zeros((size + 1, size + 1))
            blk = one.at[t_pos[:, :, None], t_pos[:, None, :]].add(blk)[None, :size, :size]
        blk = blk + diag_pad[cols][:, :, None] * jnp.eye(size)[None]
        blocks.append(blk)
        z_l = jnp.swapaxes(z_pad[:, bins], 0, 1)  # (n_tiles, n_proc, n_loc, d)
        h_sd = h_sd.at[t_cols].add(jnp.einsum("npbi,npbd->nid", a_t, z_l))
    h_sd = h_sd[:-1]
    return value, grad, StructuredHessian(h_dd, h_sd, tuple(blocks))


def weighted_gram(st: ModelStatic, a_d: jnp.ndarray, w: jnp.ndarray, proc_cols) -> jnp.ndarray:
    """A_D^T diag(w) A_D (n_dense, n_dense) for A_D (n_slots, n_dense): one dense product, or,
    with ``proc_cols`` (per process, the columns its slots can fill:
    :func:`wmass_archive.model.build.process_columns`), a sum over processes of the products
    restricted to their columns (the same matrix: the other columns of a process are zero)."""
    if not proc_cols:
        return a_d.T @ (w[:, None] * a_d)
    d = a_d.shape[1]
    a3 = a_d.reshape(st.n_proc, st.n_bins, d)
    w2 = w.reshape(st.n_proc, st.n_bins)
    out = jnp.zeros((d, d))
    for p, cols in enumerate(proc_cols):
        if cols.shape[0] == 0:
            continue
        ap = a3[p][:, cols]
        out = out.at[cols[:, None], cols[None, :]].add(ap.T @ (w2[p][:, None] * ap))
    return out


def dense_hessian(st: ModelStatic, ar: dict, hs: StructuredHessian) -> jnp.ndarray:
    """The structured Hessian as a dense (n_params, n_params) matrix (tests, small models)."""
    n = st.n_params
    dp, sp = ar["D_params"], ar["S_params"]
    h = jnp.zeros((n, n))
    h = h.at[dp[:, None], dp[None, :]].set(hs.dd)
    h = h.at[sp[:, None], dp[None, :]].set(hs.sd).at[dp[:, None], sp[None, :]].set(hs.sd.T)
    sp_pad = jnp.concatenate([sp, jnp.array([-1], dtype=sp.dtype)])
    for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True):
        idx = sp_pad[cols]  # (n_blocks, size); padding -> -1
        ok = idx >= 0
        ii = jnp.where(ok, idx, n)  # out of range: dropped
        h = h.at[ii[:, :, None], ii[:, None, :]].set(blk, mode="drop")
    return h
