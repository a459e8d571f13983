"""Expected yields as pure JAX functions of the parameters (docs/format.md section 11).

Yields live on *slots* s = process * n_bins + bin (all channels concatenated, processes in the
archive's global order); a slot with no nominal yield stays exactly zero. Per slot

    ln nu_s(theta) = ln N_s + sum_entries f_e(t_{k_e}) + sum_rate ln(central + scale theta)
                     [+ sum_j w_j(theta_mass) ln(lumi R_j sigma(theta_theory))_b  if folded]

with the logk exponent f of section 7.3, the mass weights w_j of section 9.2 and the theory
grid sigma of section 9.3. ``st`` is the model's static description (:class:`ModelStatic`)
and ``ar`` its dict of arrays; both come from :func:`wmass_archive.model.build_model`.

A model with extended modifiers or poisson constraints (format 1.1) is *generic*
(``st.generic``): its yields are those of section 15.3 (module ``extended``), computed as yields
rather than logarithms, and a slot clipped at zero is inactive in :func:`log_yields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..jax_config import jax, jnp
from .extended import ExtStatic, generic_slot_yields
from .interpolation import (
    logk_exponent,
    logk_exponent_d1,
    logk_exponent_d2,
    mass_weights,
    mass_weights_d1,
    mass_weights_d2,
)
from .theory import sigma_of

Arrays = dict[str, Any]


@dataclass(frozen=True)
class FoldStatic:
    """A folded (channel, process) block: its mass points, index of theta = 0, whether a mass
    POI drives it."""

    points: tuple[float, ...]
    nominal_point: int
    has_mass: bool


@dataclass(frozen=True)
class ModelStatic:
    """Sizes and structure that jit treats as compile-time constants."""

    n_params: int
    n_bins: int
    n_proc: int
    n_dense: int
    n_sparse: int
    folds: tuple[FoldStatic, ...]
    #: (offset, n_blocks, size, n_local, n_tiles, t_size, tiled) per bucket (structure.Bucket)
    buckets: tuple[tuple[int, int, int, int, int, int, bool], ...]
    flat_size: int
    bb: str  # "gamma", "normal" or "none"
    generic: bool = False  # format 1.1 content: generic yields, Hessian by autodiff
    ext: ExtStatic | None = None  # the extended modifiers of a generic model

    @property
    def n_slots(self) -> int:
        return self.n_proc * self.n_bins


def sum_leading(x: jnp.ndarray) -> jnp.ndarray:
    """Sum over the (short, static) leading axis as a chain of additions: XLA on CPU lowers
    the equivalent ``x.sum(axis=0)`` of a large array to a far slower reduction."""
    out = x[0]
    for i in range(1, x.shape[0]):
        out = out + x[i]
    return out


def theory_arrays(ar: Arrays) -> tuple:
    return (ar["th_central"], ar["th_dA"], ar["th_dH"], ar["th_mA"], ar["th_mH"], ar["th_ps"])


def sigma(ar: Arrays, theta: jnp.ndarray) -> jnp.ndarray:
    """The theory grid in use at theta, (n_gen,) pb."""
    return sigma_of(theta[ar["th_param"]], *theory_arrays(ar))


def fold_point_yields(ar: Arrays, fold: Arrays, sig: jnp.ndarray) -> jnp.ndarray:
    """nu_j[b] = lumi R[j, b, :] @ sigma, shape (n_points, n_bins of the block)."""
    r = fold["R"]
    return fold["lumi"] * (r.reshape(-1, r.shape[2]) @ sig).reshape(r.shape[:2])


def fold_weights(
    fs: FoldStatic, fold: Arrays, theta: jnp.ndarray, nu_j: jnp.ndarray, order: int = 0
) -> jnp.ndarray:
    """Effective mass weights omega_j[b] (or their derivative of ``order`` 1, 2) such that
    ln nu_b = sum_j omega_jb ln nu_jb: the weight of a point whose ratio nu_j / nu_j0 is not
    positive goes to the nominal point (r_j = 0, section 9.2). Shape (n_points, n_bins)."""
    tm = theta[fold["mass_param"]] if fs.has_mass else jnp.zeros(nu_j.shape[1])
    fn = (mass_weights, mass_weights_d1, mass_weights_d2)[order]
    w = fn(tm, fs.points).T  # (n_points, n_bins)
    j0 = fs.nominal_point
    valid = (nu_j > 0) & (nu_j[j0] > 0)[None, :]
    moved = jnp.sum(jnp.where(valid, 0.0, w), axis=0)
    w = jnp.where(valid, w, 0.0)
    return w.at[j0].add(moved)


def safe_log(x: jnp.ndarray) -> jnp.ndarray:
    return jnp.log(jnp.where(x > 0, x, 1.0))


def logk_terms(ar: Arrays, theta: jnp.ndarray, prefix: str, order: int = 0) -> jnp.ndarray:
    """f_e, or its derivative of ``order`` with respect to theta, for the logk entries of
    ``prefix`` ("lkD" or "lkS"); t = prior_scale * theta."""
    ps = ar[f"{prefix}_ps"]
    t = ps * theta[ar[f"{prefix}_param"]]
    avg, hd = ar[f"{prefix}_avg"], ar[f"{prefix}_hd"]
    if order == 0:
        return logk_exponent(t, avg, hd)
    if order == 1:
        return ps * logk_exponent_d1(t, avg, hd)
    return ps * ps * logk_exponent_d2(t, avg, hd)


def rate_values(ar: Arrays, theta: jnp.ndarray) -> jnp.ndarray:
    """Physical values of the rate POIs, central + scale * theta, (n_rate,)."""
    return ar["rate_central"] + ar["rate_scale"] * theta[ar["rate_param"]]


def log_yields(st: ModelStatic, ar: Arrays, theta: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(ln nu_s, active_s) for every slot, shape (n_slots,)."""
    if st.generic:
        nu = generic_slots(st, ar, theta)
        on = nu > 0.0
        return jnp.where(on, jnp.log(jnp.where(on, nu, 1.0)), 0.0), on
    ns = st.n_slots
    ell = ar["log_nom"]
    for prefix in ("lkD", "lkS"):
        ell = ell + jax.ops.segment_sum(
            logk_terms(ar, theta, prefix), ar[f"{prefix}_slot"], num_segments=ns
        )
    if ar["rate_param"].shape[0]:
        ell = ell + safe_log(rate_values(ar, theta)) @ ar["rate_mask"]
    active = ar["plain_active"]
    if st.folds:
        sig = sigma(ar, theta)
        for fs, fold in zip(st.folds, ar["folds"], strict=True):
            nu_j = fold_point_yields(ar, fold, sig)
            w = fold_weights(fs, fold, theta, nu_j)
            ell = ell.at[fold["slots"]].add(jnp.sum(w * safe_log(nu_j), axis=0))
            on = fold["active"] & (nu_j[fs.nominal_point] > 0)
            active = active.at[fold["slots"]].set(on)
    if ar["rate_param"].shape[0]:
        # a rate POI at a physical value <= 0 gives a zero yield (section 15.3's clipping)
        off = (rate_values(ar, theta) <= 0.0).astype(ell.dtype) @ ar["rate_mask"]
        active = active & (off == 0.0)
    return ell, active


def generic_slots(st: ModelStatic, ar: Arrays, theta: jnp.ndarray) -> jnp.ndarray:
    """Expected yield per slot of a generic model (section 15.3), (n_slots,)."""
    ns = st.n_slots
    ell = jnp.zeros(ns)
    for prefix in ("lkD", "lkS"):
        ell = ell + jax.ops.segment_sum(
            logk_terms(ar, theta, prefix), ar[f"{prefix}_slot"], num_segments=ns
        )
    fold = None
    if st.folds:
        ell_fold, on = jnp.zeros(ns), jnp.zeros(ns, dtype=bool)
        sig = sigma(ar, theta)
        for fs, f in zip(st.folds, ar["folds"], strict=True):
            nu_j = fold_point_yields(ar, f, sig)
            w = fold_weights(fs, f, theta, nu_j)
            ell_fold = ell_fold.at[f["slots"]].add(jnp.sum(w * safe_log(nu_j), axis=0))
            on = on.at[f["slots"]].set(f["active"] & (nu_j[fs.nominal_point] > 0))
        fold = (ell_fold, on)
    return generic_slot_yields(st.ext, ar, theta, ell, fold)  # type: ignore[arg-type]


def expected_slots(st: ModelStatic, ar: Arrays, theta: jnp.ndarray) -> jnp.ndarray:
    """Expected yield of every (process, bin) slot, (n_slots,); zero where there is none."""
    if st.generic:
        return generic_slots(st, ar, theta)
    ell, active = log_yields(st, ar, theta)
    return jnp.where(active, jnp.exp(jnp.where(active, ell, 0.0)), 0.0)


def expected_bins(st: ModelStatic, ar: Arrays, theta: jnp.ndarray) -> jnp.ndarray:
    """Expected yield per bin (all channels concatenated), summed over processes, (n_bins,)."""
    return sum_leading(expected_slots(st, ar, theta).reshape(st.n_proc, st.n_bins))
