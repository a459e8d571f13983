"""The theory grid in use, sigma(theta) (docs/format.md sections 9.3 and 10).

At build time (numpy) the archive's central grid, PDF members/eigenvectors and theory variations
become a :class:`TheoryArrays`: one row per theory nuisance, additive rows (``dA``, ``dH``: the
average and half-difference of the up/down shifts, pb) and multiplicative rows (``mA``, ``mH``:
avg and halfdiff of the logk). In the fit (JAX)

    sigma(t)[g] = (c[g] + sum_a t_a dA[a,g] + t_a alpha(t_a) dH[a,g])
                  * exp(sum_m t_m mA[m,g] + t_m alpha(t_m) mH[m,g])

with ``t = prior_scale * theta`` (1 for PDF nuisances).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..archive.models import PDFSet
from ..archive.reader import Archive
from ..errors import ArchiveError
from ..jax_config import jnp
from ..theory.resolve import ResolvedTheory, as_theory, has_theory
from .interpolation import logk_from_updown, smooth_step, smooth_step_d1, smooth_step_d2, z_of_cl


@dataclass
class TheoryNuisance:
    """A nuisance acting on the grid: its name, whether it comes from the PDF set, its prior
    scale and interpolation."""

    name: str
    source: str  # "pdf" or "variation"
    interpolation: str  # "additive" or "multiplicative"
    prior_scale: float = 1.0


@dataclass
class TheoryArrays:
    """Numpy arrays of the grid in use: ``central`` (n_gen,), additive rows ``dA``/``dH``
    (n_add, n_gen) and multiplicative rows ``mA``/``mH`` (n_mult, n_gen); ``nuisances`` lists the
    theory nuisances, additive ones first then multiplicative ones, in row order."""

    central: np.ndarray
    dA: np.ndarray
    dH: np.ndarray
    mA: np.ndarray
    mH: np.ndarray
    nuisances: list[TheoryNuisance] = field(default_factory=list)
    pdf_set: PDFSet | None = None

    @property
    def n_add(self) -> int:
        return int(self.dA.shape[0])

    @property
    def n_mult(self) -> int:
        return int(self.mA.shape[0])

    @property
    def prior_scales(self) -> np.ndarray:
        return np.array([n.prior_scale for n in self.nuisances], dtype=np.float64)


def pdf_updown(
    s: PDFSet, members: np.ndarray, eigenvectors: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m0, up, down) grids of a PDF set's nuisances before rescaling (section 10):
    hessian pairs, symmetric Hessian members mirrored around member 0, or replica
    eigenvectors around member 0. up/down have shape (n, n_gen)."""
    m0 = members[0]
    n = s.n_nuisances
    if s.error_type == "hessian":
        up, down = members[1 : 2 * n : 2], members[2 : 2 * n + 1 : 2]
    elif s.error_type == "symmhessian":
        up = members[1 : n + 1]
        down = 2.0 * m0[None, :] - up
    else:
        e = eigenvectors if eigenvectors is not None else np.zeros((0, m0.size))
        up, down = m0[None, :] + e, m0[None, :] - e
    return m0, np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)


def theory_arrays(theory: ResolvedTheory) -> TheoryArrays:
    """The grid in use as additive and multiplicative rows (section 10 of docs/format.md), from
    a resolved theory (:func:`wmass_archive.theory.resolve.resolve_theory`): numpy only, no
    archive read."""
    s = theory.pdf
    nominal = np.asarray(theory.reference)
    add_rows: list[tuple[TheoryNuisance, np.ndarray, np.ndarray]] = []
    mult_rows: list[tuple[TheoryNuisance, np.ndarray, np.ndarray]] = []

    # theory variations, S = the archive's nominal grid, t = prior_scale * theta
    for i, v in enumerate(theory.variations):
        up, down = theory.variation_up[i], theory.variation_down[i]
        nuis = TheoryNuisance(v.name, "variation", v.interpolation, v.prior_scale)
        if v.interpolation == "additive":
            du, dd = up - nominal, down - nominal
            add_rows.append((nuis, 0.5 * (du - dd), 0.5 * (du + dd)))
        else:
            mult_rows.append((nuis, *logk_from_updown(up, down, nominal)))

    # PDF nuisances of the set in use, S = m0, shifts times scale / z(CL)
    m0, up, down = pdf_updown(s, np.asarray(theory.members), theory.eigenvectors)
    scale = s.scale / z_of_cl(s.confidence_level)
    for k, nm in enumerate(s.nuisance_names):
        nuis = TheoryNuisance(nm, "pdf", s.interpolation, 1.0)
        if s.interpolation == "additive":
            du, dd = scale * (up[k] - m0), scale * (down[k] - m0)
            add_rows.append((nuis, 0.5 * (du - dd), 0.5 * (du + dd)))
        else:
            avg, half = logk_from_updown(up[k], down[k], m0)
            lu, ld = avg + half, half - avg
            if s.error_type != "hessian":  # symmetric in the logarithm
                ld = -lu
            lu, ld = scale * lu, scale * ld
            mult_rows.append((nuis, 0.5 * (lu - ld), 0.5 * (lu + ld)))

    n_gen = theory.n_gen

    def stack(rows: list, i: int) -> np.ndarray:
        return np.array([r[i] for r in rows], dtype=np.float64).reshape(len(rows), n_gen)

    return TheoryArrays(
        central=np.asarray(theory.central, dtype=np.float64),
        dA=stack(add_rows, 1),
        dH=stack(add_rows, 2),
        mA=stack(mult_rows, 1),
        mH=stack(mult_rows, 2),
        nuisances=[r[0] for r in add_rows] + [r[0] for r in mult_rows],
        pdf_set=s,
    )


def build_theory(
    archive: Archive, pdf: str | ResolvedTheory | None = None, theory_grid: Any = None
) -> TheoryArrays:
    """:func:`theory_arrays` of the theory in use: ``pdf`` already resolved, or the one
    :func:`~wmass_archive.theory.resolve.resolve_theory` resolves for ``archive``, the PDF set
    ``pdf`` (default the archive's nominal set) and an optional user central grid
    ``theory_grid`` (pb per generator bin)."""
    if not has_theory(archive.metadata):
        raise ArchiveError(f"{archive.path.name} has no theory section: nothing to fold")
    return theory_arrays(as_theory(archive, pdf, grid=theory_grid))


# --------------------------------------------------------------------------- JAX side
def sigma_of(
    t_theta: jnp.ndarray,
    central: jnp.ndarray,
    dA: jnp.ndarray,
    dH: jnp.ndarray,
    mA: jnp.ndarray,
    mH: jnp.ndarray,
    prior_scale: jnp.ndarray,
) -> jnp.ndarray:
    """sigma(theta) (n_gen,) for the theory nuisances' theta (n_add + n_mult,), additive first."""
    t = prior_scale * t_theta
    n_add = dA.shape[0]
    ta, tm = t[:n_add], t[n_add:]
    add = central + ta @ dA + (ta * smooth_step(ta)) @ dH
    return add * jnp.exp(tm @ mA + (tm * smooth_step(tm)) @ mH)


def sigma_derivatives(
    theta_t: jnp.ndarray,
    central: jnp.ndarray,
    dA: jnp.ndarray,
    dH: jnp.ndarray,
    mA: jnp.ndarray,
    mH: jnp.ndarray,
    prior_scale: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray, tuple]:
    """(sigma (n_gen,), d sigma / d theta (n_gen, n_theory), parts for
    :func:`sigma_hessian_contraction`), in closed form: with q(t) = t alpha(t),
    d sigma / d theta_a = ps_a (dA_a + q'(t_a) dH_a) E for additive rows and
    sigma ps_m (mA_m + q'(t_m) mH_m) for multiplicative ones (E = the exponential factor)."""
    t = prior_scale * theta_t
    n_add = dA.shape[0]
    ta, tm = t[:n_add], t[n_add:]
    psa, psm = prior_scale[:n_add], prior_scale[n_add:]
    add = central + ta @ dA + (ta * smooth_step(ta)) @ dH
    e = jnp.exp(tm @ mA + (tm * smooth_step(tm)) @ mH)
    sig = add * e
    da = psa[:, None] * (dA + _q1(ta)[:, None] * dH)  # d add / d theta_a
    dm = psm[:, None] * (mA + _q1(tm)[:, None] * mH)  # d ln E / d theta_m
    jac = jnp.concatenate([da * e[None, :], dm * sig[None, :]], axis=0).T
    parts = (e, sig, da, dm, psa**2 * _q2(ta), psm**2 * _q2(tm), dH, mH)
    return sig, jac, parts


def sigma_hessian_contraction(u: jnp.ndarray, parts: tuple) -> jnp.ndarray:
    """sum_g u[g] d^2 sigma[g] / d theta d theta^T, (n_theory, n_theory), from the ``parts`` of
    :func:`sigma_derivatives` (closed form: additive rows are linear in their own q(t), the
    exponential factor couples everything)."""
    e, sig, da, dm, qa2, qm2, dH, mH = parts
    ue, us = u * e, u * sig
    h_aa = jnp.diag(qa2 * (dH @ ue))
    h_am = (da * ue[None, :]) @ dm.T
    h_mm = (dm * us[None, :]) @ dm.T + jnp.diag(qm2 * (mH @ us))
    return jnp.block([[h_aa, h_am], [h_am.T, h_mm]])


def _q1(t: jnp.ndarray) -> jnp.ndarray:
    """d (t alpha(t)) / dt."""
    return smooth_step(t) + t * smooth_step_d1(t)


def _q2(t: jnp.ndarray) -> jnp.ndarray:
    """d^2 (t alpha(t)) / dt^2."""
    return 2.0 * smooth_step_d1(t) + t * smooth_step_d2(t)
