"""Solving with the structured Hessian: a Schur complement over the block-diagonal sparse part.

    H = [[H_DD, H_DS], [H_SD, H_SS]],  H_SS = blockdiag(B_1, ..., B_m)

is factorised as Cholesky factors of every block B_i (batched per bucket), X = H_SS^-1 H_SD and
the Cholesky factor of the Schur complement S = H_DD - H_DS X. Then H x = r is solved by
y = H_SS^-1 r_S, x_D = S^-1 (r_D - H_DS y), x_S = y - X x_D, and the inverse (the covariance) is

    C_DD = S^-1,  C_SD = -X S^-1,  C_SS = H_SS^-1 + X S^-1 X^T.

H + lambda I is positive definite iff every block and S are; a failed Cholesky (NaN) reports it.
Fixed (frozen) parameters are handled by replacing their rows and columns by the identity and
zeroing the right-hand side there. Cost: O(sum of block sizes^3 + n_sparse n_dense^2 +
n_dense^3), instead of O(n_params^3).

Where the dense inverse (n_params^2 numbers: 3.2 GB at 20 000 parameters) is too large, a few of
its columns (``solve`` with unit vectors, e.g. the POIs') and its diagonal
(:func:`covariance_diagonal`) come from the same factorisation in O(n_sparse n_dense) memory.
:func:`scale_hessian` gives the unit-diagonal Hessian whose smallest eigenvalues the fitter's
diagnostics report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..jax_config import jax, jnp
from ..model.expected import ModelStatic
from .hessian import StructuredHessian


class Factor(NamedTuple):
    """Factorisation of (masked, damped) H; ``ok`` False when it is not positive definite."""

    lb: tuple[jnp.ndarray, ...]  # Cholesky factors of the blocks, per bucket
    hsd_b: tuple[jnp.ndarray, ...]  # H_SD rows in block layout (n_blocks, size, n_dense)
    x_b: tuple[jnp.ndarray, ...]  # X = H_SS^-1 H_SD in block layout
    ls: jnp.ndarray  # Cholesky factor of the Schur complement
    free: jnp.ndarray
    ok: jnp.ndarray


def _per_block(fn, *arrays: jnp.ndarray) -> jnp.ndarray:
    """``fn`` applied block by block (a sequential ``lax.map`` over the leading axis). Batched
    LAPACK calls on CPU (potrf, trsm) are parallelised over the batch inside XLA's intra-op
    thread pool, which can deadlock when two of them run at once (seen with jaxlib 0.10);
    unbatched calls do not use the pool."""
    return jax.lax.map(lambda xs: fn(*xs), arrays)


def _cho_solve(lower: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Solve (L L^T) x = b for batched L (..., n, n) and b (..., n, m)."""
    y = jax.lax.linalg.triangular_solve(lower, b, left_side=True, lower=True)
    return jax.lax.linalg.triangular_solve(lower, y, left_side=True, lower=True, transpose_a=True)


def _masks(ar: dict, free: jnp.ndarray):
    fd = free[ar["D_params"]].astype(jnp.float64)
    fs = jnp.concatenate([free[ar["S_params"]].astype(jnp.float64), jnp.zeros(1)])
    return fd, fs


def factorize(
    st: ModelStatic, ar: dict, hs: StructuredHessian, lam: jnp.ndarray, free: jnp.ndarray
) -> Factor:
    """Factorise H + diag(lam) on the free parameters (``free`` boolean (n_params,); ``lam`` a
    scalar or one shift per parameter, (n_params,))."""
    fd, fs = _masks(ar, free)
    d = st.n_dense
    lam_v = jnp.broadcast_to(jnp.asarray(lam, jnp.float64), (st.n_params,))
    lam_d = lam_v[ar["D_params"]]
    lam_s = jnp.concatenate([lam_v[ar["S_params"]], jnp.zeros(1)])
    dd = hs.dd * fd[:, None] * fd[None, :] + jnp.diag(1.0 - fd + lam_d * fd)
    sd = hs.sd * fs[:-1, None] * fd[None, :]
    sd_pad = jnp.concatenate([sd, jnp.zeros((1, d))], axis=0)
    lb, hsd_b, x_b = [], [], []
    schur = dd
    ok = jnp.array(True)
    for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True):
        fb = fs[cols]  # (n_blocks, size), padding -> 0
        eye = jnp.eye(blk.shape[-1])[None]
        b = blk * fb[:, :, None] * fb[:, None, :] + eye * (1.0 - fb + lam_s[cols] * fb)[:, :, None]
        low = _per_block(jnp.linalg.cholesky, b)
        h = sd_pad[cols]  # (n_blocks, size, d)
        x = _per_block(_cho_solve, low, h)
        schur = schur - jnp.einsum("nbi,nbj->ij", h, x)
        ok = ok & jnp.all(jnp.isfinite(low))
        lb.append(low)
        hsd_b.append(h)
        x_b.append(x)
    schur = 0.5 * (schur + schur.T)
    ls = jnp.linalg.cholesky(schur)
    ok = ok & jnp.all(jnp.isfinite(ls))
    return Factor(tuple(lb), tuple(hsd_b), tuple(x_b), ls, free, ok)


def solve(st: ModelStatic, ar: dict, fac: Factor, rhs: jnp.ndarray) -> jnp.ndarray:
    """x = (H + lam I)^-1 rhs on the free parameters (0 on the fixed ones); rhs (n_params,) or
    (n_params, m)."""
    vec = rhs.ndim == 1
    r = rhs[:, None] if vec else rhs
    fd, fs = _masks(ar, fac.free)
    free = fac.free.astype(jnp.float64)
    r = r * free[:, None]
    r_d = r[ar["D_params"]]
    r_s = jnp.concatenate([r[ar["S_params"]], jnp.zeros((1, r.shape[1]))], axis=0)
    ys = []
    t = r_d
    for cols, low, h in zip(ar["bucket_cols"], fac.lb, fac.hsd_b, strict=True):
        y = _per_block(_cho_solve, low, r_s[cols])  # (n_blocks, size, m)
        t = t - jnp.einsum("nbi,nbm->im", h, y)
        ys.append(y)
    x_d = _cho_solve(fac.ls, t)
    x_s = jnp.zeros((st.n_sparse + 1, r.shape[1]))
    for cols, y, x in zip(ar["bucket_cols"], ys, fac.x_b, strict=True):
        x_s = x_s.at[cols].set(y - jnp.einsum("nbi,im->nbm", x, x_d))
    out = jnp.zeros((st.n_params, r.shape[1]))
    out = out.at[ar["D_params"]].set(x_d).at[ar["S_params"]].set(x_s[:-1])
    out = out * free[:, None]
    return out[:, 0] if vec else out


def covariance_factors(
    st: ModelStatic, ar: dict, fac: Factor
) -> tuple[jnp.ndarray, jnp.ndarray, tuple[jnp.ndarray, ...]]:
    """The pieces of H^-1 without an n_sparse^2 array: C_DD = S^-1 (n_dense, n_dense),
    X = H_SS^-1 H_SD (n_sparse, n_dense) and the inverses of the sparse blocks, per bucket
    (n_blocks, size, size), so that C_SD = -X C_DD and C_SS = X C_DD X^T + blockdiag(B^-1).
    Rows and columns of fixed parameters are not masked here."""
    d, n_sp = st.n_dense, st.n_sparse
    c_dd = _cho_solve(fac.ls, jnp.eye(d))
    x = jnp.zeros((n_sp + 1, d))
    for cols, xb in zip(ar["bucket_cols"], fac.x_b, strict=True):
        x = x.at[cols].set(xb)
    invs = tuple(
        _per_block(lambda lo: _cho_solve(lo, jnp.eye(lo.shape[-1])), low) for low in fac.lb
    )
    return c_dd, x[:-1], invs


def covariance_blocks(
    st: ModelStatic, ar: dict, fac: Factor
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """The inverse of H on the free parameters in blocks (dense, sparse order of the layout):
    (C_DD, C_SD, C_SS); rows and columns of fixed parameters are 0."""
    n_sp = st.n_sparse
    fd, fs = _masks(ar, fac.free)
    c_dd, x, invs = covariance_factors(st, ar, fac)
    c_sd = -x @ c_dd
    c_ss = x @ c_dd @ x.T
    for cols, inv in zip(ar["bucket_cols"], invs, strict=True):
        idx = jnp.where(cols < n_sp, cols, n_sp)
        c_ss = c_ss.at[idx[:, :, None], idx[:, None, :]].add(inv, mode="drop")
    fs = fs[:-1]
    return (
        c_dd * fd[:, None] * fd[None, :],
        c_sd * fs[:, None] * fd[None, :],
        (c_ss * fs[:, None] * fs[None, :]),
    )


def covariance(st: ModelStatic, ar: dict, fac: Factor) -> jnp.ndarray:
    """The inverse of H on the free parameters (rows and columns of fixed ones are 0), dense
    (n_params, n_params) in parameter order."""
    c_dd, c_sd, c_ss = covariance_blocks(st, ar, fac)
    blocked = jnp.block([[c_dd, c_sd.T], [c_sd, c_ss]])  # dense then sparse order
    order = jnp.concatenate([ar["D_params"], ar["S_params"]])
    pos = jnp.zeros(st.n_params, dtype=order.dtype)
    pos = pos.at[order].set(jnp.arange(st.n_params, dtype=order.dtype))
    return blocked[pos[:, None], pos[None, :]]


def matvec(st: ModelStatic, ar: dict, hs: StructuredHessian, v: jnp.ndarray) -> jnp.ndarray:
    """H v for a vector v (n_params,)."""
    v_d = v[ar["D_params"]]
    v_s = jnp.concatenate([v[ar["S_params"]], jnp.zeros(1)])
    out_d = hs.dd @ v_d + hs.sd.T @ v_s[:-1]
    out_s = jnp.zeros(st.n_sparse + 1)
    for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True):
        out_s = out_s.at[cols].add(jnp.einsum("nij,nj->ni", blk, v_s[cols]))
    out_s = out_s[:-1] + hs.sd @ v_d
    return jnp.zeros(st.n_params).at[ar["D_params"]].set(out_d).at[ar["S_params"]].set(out_s)


def scale_hessian(
    st: ModelStatic, ar: dict, hs: StructuredHessian, s: jnp.ndarray
) -> StructuredHessian:
    """diag(s) H diag(s) in the same block structure; ``s`` (n_params,). With
    s_i = 1 / sqrt(H_ii) the result has a unit diagonal: its eigenvalues measure how far the
    parameters are from being linearly dependent (0: degenerate), whatever their units."""
    s_d = s[ar["D_params"]]
    s_s = jnp.concatenate([s[ar["S_params"]], jnp.zeros(1)])
    blocks = tuple(
        blk * s_s[cols][:, :, None] * s_s[cols][:, None, :]
        for cols, blk in zip(ar["bucket_cols"], hs.blocks, strict=True)
    )
    return StructuredHessian(
        hs.dd * s_d[:, None] * s_d[None, :], hs.sd * s_s[:-1, None] * s_d[None, :], blocks
    )


def covariance_diagonal(st: ModelStatic, ar: dict, fac: Factor) -> jnp.ndarray:
    """The diagonal of the inverse of H on the free parameters (0 on fixed ones), (n_params,),
    without forming the inverse: diag(S^-1) from the Schur factor, and for the sparse ones
    diag(B_i^-1) + the row norms of X L^-T (C_SS = H_SS^-1 + X S^-1 X^T). Cost
    O(n_sparse n_dense^2), memory O(n_sparse n_dense)."""
    d, n_sp = st.n_dense, st.n_sparse
    fd, fs = _masks(ar, fac.free)
    linv = jax.lax.linalg.triangular_solve(fac.ls, jnp.eye(d), left_side=True, lower=True)
    diag_d = jnp.sum(linv * linv, axis=0)
    diag_s = jnp.zeros(n_sp + 1)
    for cols, low, xb in zip(ar["bucket_cols"], fac.lb, fac.x_b, strict=True):
        eye = jnp.eye(low.shape[-1])
        lb_inv = _per_block(
            lambda lo, e=eye: jax.lax.linalg.triangular_solve(lo, e, left_side=True, lower=True),
            low,
        )
        w = jnp.einsum("nid,jd->nij", xb, linv)  # X L^-T, block layout
        diag_s = diag_s.at[cols].add(jnp.sum(lb_inv * lb_inv, axis=1) + jnp.sum(w * w, axis=2))
    out = jnp.zeros(st.n_params).at[ar["D_params"]].set(diag_d * fd)
    return out.at[ar["S_params"]].set(diag_s[:-1] * fs[:-1])


def unit_columns(n: int, idx: Sequence[int] | int) -> np.ndarray:
    """Columns ``idx`` of the n x n identity, shape (n, len(idx)); an int k means range(k).
    The right-hand side that solves for columns of H^-1 without building the identity (an
    n x n array: 0.8 GB at 10 000 parameters)."""
    idx = np.arange(idx) if isinstance(idx, int | np.integer) else np.asarray(idx)
    e = np.zeros((n, idx.size))
    e[idx, np.arange(idx.size)] = 1.0
    return e
