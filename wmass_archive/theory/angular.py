"""LO-like angular coefficients A_0..A_7 of W -> mu nu in the Collins-Soper frame.

Conventions (see ``docs/theory.md``): theta and phi are the angles of the **charged lepton**
(mu+ for W+, mu- for W-) in the Collins-Soper frame whose z axis points along the W's
longitudinal direction (the sign of p_z^W; in pp the theory then depends on |y^W| only).

At pT^W = 0 the V-A coupling makes the W fully left-handed along the incoming quark: the mu-
goes along the quark, (1 + cos)^2, the mu+ against it, (1 - cos)^2, i.e. A4 = +2 for W- and
A4 = -2 for W+ in a frame whose z axis is the quark direction. In the Collins-Soper frame the
quark moves along +z with probability p(|y|), so A4 is diluted by D = 2p - 1
(:mod:`wmass_archive.theory.wproduction`). At finite pT (an O(alpha_s) recoil) the quark axis
is tilted from the CS z axis by an angle gamma with sin^2 gamma = pT^2/(mW^2 + pT^2), which
gives the LO pattern used here, with s_q = +1 for W-, -1 for W+ and M = mW:

    A0 = A2 = r_R [(1 - f_qg) pT^2/(M^2 + pT^2) + f_qg 5 pT^2/(M^2 + 5 pT^2)]   (Lam-Tung)
    A1 = r_R kappa_1 D pT M/(M^2 + pT^2)
    A3 = r_R kappa_3 2 s_q D pT M/(M^2 + pT^2)
    A4 = r_4 2 s_q D M/sqrt(M^2 + pT^2)
    A5 = A6 = A7 = 0   (T-odd: absorptive parts, O(alpha_s^2))

f_qg(pT) = qg_fraction_max * qg_fraction_factor * pT^2/(pT^2 + qg_pt^2) is the share of the
q g -> W q channel (whose A0 is 5 pT^2/(M^2 + 5 pT^2) at O(alpha_s)); r_R = ai_mur_factor and
r_4 = a4_mur_factor are 1 for the nominal model. A1 and A3 are small modelling terms with the
sizes kappa_1, kappa_3 of the parameters: their sign convention is that of a CS x axis along
the W's transverse momentum.

Since D depends on |y| only and everything else on pT only, each cell integral of
sigma_UL * A_i factorises into a |y| integral (of d sigma/d|y| or of D d sigma/d|y|) times a pT
integral of the pT density times a pT kernel; :func:`pt_kernels` gives those kernels.
"""

from __future__ import annotations

import numpy as np

from .params import TheoryParameters

__all__ = [
    "KERNELS",
    "angular_coefficients",
    "charge_sign",
    "pt_kernels",
    "qg_fraction",
]

#: Names of the pT kernels of :func:`pt_kernels`, in order.
KERNELS: tuple[str, ...] = ("ul", "a0", "odd_recoil", "a4")


def charge_sign(charge: int) -> int:
    """s_q: +1 for W- (mu- along the quark), -1 for W+ (mu+ against it)."""
    if charge not in (-1, 1):
        raise ValueError(f"W charge must be -1 or +1, not {charge!r}")
    return -int(charge)


def qg_fraction(pt: np.ndarray, p: TheoryParameters) -> np.ndarray:
    """Share of the q g -> W q channel at pT (GeV)."""
    pt = np.asarray(pt, dtype=np.float64)
    return p.qg_fraction_max * p.qg_fraction_factor * pt**2 / (pt**2 + p.qg_pt_gev**2)


def pt_kernels(pt: np.ndarray, p: TheoryParameters) -> np.ndarray:
    """The pT factors of the coefficients, shape (4, n) in :data:`KERNELS` order:
    1; A0 (with r_R); pT M/(M^2 + pT^2) (the shape of A1 and A3, without r_R and kappa);
    M/sqrt(M^2 + pT^2) (the shape of A4, without r_4)."""
    pt = np.asarray(pt, dtype=np.float64)
    m2 = p.mw_gev**2
    p2 = pt * pt
    f = qg_fraction(pt, p)
    a0 = p.ai_mur_factor * ((1.0 - f) * p2 / (m2 + p2) + f * 5.0 * p2 / (m2 + 5.0 * p2))
    odd = pt * p.mw_gev / (m2 + p2)
    a4 = p.mw_gev / np.sqrt(m2 + p2)
    return np.stack([np.ones_like(pt), a0, odd, a4])


def angular_coefficients(
    charge: int, pt: np.ndarray, dilution: np.ndarray, p: TheoryParameters | None = None
) -> np.ndarray:
    """A_0..A_7 at points (pT in GeV, dilution D at the point's |y|), shape (8, n)."""
    p = p or TheoryParameters()
    sq = charge_sign(charge)
    k = pt_kernels(pt, p)
    d = np.broadcast_to(np.asarray(dilution, dtype=np.float64), k.shape[1:])
    out = np.zeros((8,) + k.shape[1:])
    out[0] = k[1]
    out[1] = p.ai_mur_factor * p.a1_kappa * d * k[2]
    out[2] = k[1]
    out[3] = p.ai_mur_factor * p.a3_kappa * 2.0 * sq * d * k[2]
    out[4] = p.a4_mur_factor * 2.0 * sq * d * k[3]
    return out
