"""Theory variations of the grid for the pseudo-analysis' nuisance parameters.

Each variation is an up and a down grid computed with the nominal PDF member and a few
:class:`TheoryParameters` fields changed, so it is the same calculation as the nominal grid.
The archive applies them as in ``docs/format.md`` section 9.3, with reference grid S = the
nominal grid.

Group ``pTModeling`` (interpolation ``multiplicative``: they reshape positive cross sections;
the whole grid varies, UL and A_i entries alike):

=====================  ===========================  ==========================================
nuisance               parameter                    up / down
=====================  ===========================  ==========================================
pTModel_ktNP           kt_np_gev                    +0.25 / -0.25 GeV (non-perturbative k_T)
pTModel_ktNPy          kt_np_y_slope                +0.05 / -0.05 per unit |y|
pTModel_mu0            mu0_gev                      x1.5 / /1.5 (IR freezing of alpha_s)
pTModel_resScale       res_scale                    x1.07 / /1.07 (resummation scale)
pTModel_alphaS         alphas_sudakov               +0.003 / -0.003
pTModel_hardFraction   hard_fraction                +0.01 / -0.01 (matching / hard tail)
=====================  ===========================  ==========================================

Group ``angularCoeffs`` (interpolation ``additive``: A_i cell entries change sign across the
grid; only the A_0..A_7 entries vary, sigma_UL stays): for each of the 10 pT^W bins and,
by default, each W charge separately, two nuisances

* ``AiMuR_<W>_ptW<j>``: renormalisation-scale-like, A0..A3 x (1 +- 0.10) and A4 x (1 +- 0.02)
  (``ai_mur_factor``, ``a4_mur_factor``);
* ``AiMuF_<W>_ptW<j>``: factorisation-scale-like, the quark-direction dilution recomputed with
  the PDFs at mu_F = 2 mW (up) and mW/2 (down) and the q g share x (1 +- 0.2)
  (``dilution_mu_f_factor``, ``qg_fraction_factor``),

with ``<W>`` = ``Wplus``/``Wminus``: 2 x 2 x 10 = 40 nuisances, uncorrelated across pT^W bins
(as CMS treats the A_i scale variations) and across charges (u dbar and d ubar initial states
have different q g shares and dilutions, so their missing higher orders need not move
together). ``correlate_charges=True`` gives 20 nuisances ``AiMuR_ptW<j>``/``AiMuF_ptW<j>``
acting on both charges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .compute import grid_values
from .generator import CHARGES, GRID_SHAPE, N_PT
from .lhapdf import PDFMember
from .params import TheoryParameters

__all__ = [
    "ANGULAR_GROUP",
    "PT_GROUP",
    "GridVariation",
    "add_variations_to_writer",
    "angular_variations",
    "pt_modeling_variations",
    "theory_variations",
]

PT_GROUP = "pTModeling"
ANGULAR_GROUP = "angularCoeffs"

# (nuisance, field, up value(nominal), down value(nominal), what)
_PT_RULES: tuple[tuple[str, str, Any, Any, str], ...] = (
    (
        "pTModel_ktNP",
        "kt_np_gev",
        lambda v: v + 0.25,
        lambda v: v - 0.25,
        "NP k_T width +-0.25 GeV",
    ),
    (
        "pTModel_ktNPy",
        "kt_np_y_slope",
        lambda v: v + 0.05,
        lambda v: v - 0.05,
        "rapidity slope of the NP k_T width +-0.05",
    ),
    ("pTModel_mu0", "mu0_gev", lambda v: v * 1.5, lambda v: v / 1.5, "IR freezing scale x1.5^+-1"),
    (
        "pTModel_resScale",
        "res_scale",
        lambda v: v * 1.07,
        lambda v: v / 1.07,
        "resummation scale x1.07^+-1",
    ),
    (
        "pTModel_alphaS",
        "alphas_sudakov",
        lambda v: v + 0.003,
        lambda v: v - 0.003,
        "alpha_s(mW) of the Sudakov +-0.003",
    ),
    (
        "pTModel_hardFraction",
        "hard_fraction",
        lambda v: v + 0.01,
        lambda v: v - 0.01,
        "hard-emission (fixed-order tail) fraction +-0.01",
    ),
)
_MUR = {
    "up": dict(ai_mur_factor=1.10, a4_mur_factor=1.02),
    "down": dict(ai_mur_factor=0.90, a4_mur_factor=0.98),
}
_MUF = {
    "up": dict(dilution_mu_f_factor=2.0, qg_fraction_factor=1.2),
    "down": dict(dilution_mu_f_factor=0.5, qg_fraction_factor=0.8),
}
_CHARGE_NAME = {-1: "Wminus", 1: "Wplus"}


@dataclass(frozen=True)
class GridVariation:
    """One theory nuisance: up and down grids (2, 8, 10, 9) in pb, computed with the nominal
    PDF member, to be read relative to the nominal grid."""

    name: str
    group: str
    interpolation: Literal["multiplicative", "additive"]
    up: np.ndarray
    down: np.ndarray
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"variation name {self.name!r} is not a valid identifier")
        for what in ("up", "down"):
            a = getattr(self, what)
            if a.shape != GRID_SHAPE or not np.all(np.isfinite(a)):
                raise ValueError(f"variation {self.name}: {what} grid must be finite {GRID_SHAPE}")

    def scaled(self, nominal: np.ndarray, factor: float) -> GridVariation:
        """The same variation ``factor`` times as large, relative to the ``nominal`` grid
        (2, 8, 10, 9): ``S + k (U - S)`` for an additive one, ``S (U / S)^k`` for a
        multiplicative one (1 where S is not positive)."""
        s = np.asarray(nominal, dtype=np.float64).reshape(GRID_SHAPE)
        if self.interpolation == "additive":
            up, down = s + factor * (self.up - s), s + factor * (self.down - s)
        else:
            ok = (s > 0) & (self.up > 0) & (self.down > 0)
            safe = np.where(ok, s, 1.0)
            up = np.where(ok, safe * (np.where(ok, self.up, 1.0) / safe) ** factor, s)
            down = np.where(ok, safe * (np.where(ok, self.down, 1.0) / safe) ** factor, s)
        note = f" (scaled x{factor:g})" if factor != 1.0 else ""
        return GridVariation(
            self.name, self.group, self.interpolation, up, down, self.description + note
        )


def _varied(member: PDFMember, p: TheoryParameters, **changes: Any) -> np.ndarray:
    return grid_values(member, p.replace(**changes))


def pt_modeling_variations(
    member: PDFMember, params: TheoryParameters | None = None
) -> list[GridVariation]:
    """The ``pTModeling`` nuisances (table in the module docstring)."""
    p = params or TheoryParameters()
    out = []
    for name, field, up, down, what in _PT_RULES:
        v = getattr(p, field)
        out.append(
            GridVariation(
                name,
                PT_GROUP,
                "multiplicative",
                _varied(member, p, **{field: up(v)}),
                _varied(member, p, **{field: down(v)}),
                f"pT^W model: {what} ({field} = {v:g} nominal)",
            )
        )
    return out


def angular_variations(
    member: PDFMember,
    params: TheoryParameters | None = None,
    *,
    correlate_charges: bool = False,
) -> list[GridVariation]:
    """The ``angularCoeffs`` nuisances: muR- and muF-like variations of the A_i per pT^W bin
    (and per charge unless ``correlate_charges``)."""
    p = params or TheoryParameters()
    nominal = grid_values(member, p)
    full = {
        (kind, d): _varied(member, p, **rule[d])
        for kind, rule in (("MuR", _MUR), ("MuF", _MUF))
        for d in ("up", "down")
    }
    charge_sets: Iterable[tuple[str, list[int]]] = (
        [("", [0, 1])]
        if correlate_charges
        else [(f"{_CHARGE_NAME[c]}_", [i]) for i, c in enumerate(CHARGES)]
    )
    out = []
    for kind in ("MuR", "MuF"):
        for label, iqs in charge_sets:
            for j in range(N_PT):
                grids = {}
                for d in ("up", "down"):
                    g = nominal.copy()
                    for iq in iqs:
                        g[iq, :, j, 1:] = full[(kind, d)][iq, :, j, 1:]
                    grids[d] = g
                what = (
                    "mu_R-like (A0-A3 x1.1^+-1, A4 x1.02^+-1)"
                    if kind == "MuR"
                    else ("mu_F-like (dilution at mu_F = 2 mW / mW/2, q g share x1.2^+-1)")
                )
                out.append(
                    GridVariation(
                        f"Ai{kind}_{label}ptW{j}",
                        ANGULAR_GROUP,
                        "additive",
                        grids["up"],
                        grids["down"],
                        f"A_i {what} in pT^W bin {j}"
                        + ("" if correlate_charges else f", {label.rstrip('_')} only"),
                    )
                )
    return out


def theory_variations(
    member: PDFMember,
    params: TheoryParameters | None = None,
    *,
    correlate_charges: bool = False,
) -> list[GridVariation]:
    """All theory variations: :func:`pt_modeling_variations` then
    :func:`angular_variations` (46 by default)."""
    return pt_modeling_variations(member, params) + angular_variations(
        member, params, correlate_charges=correlate_charges
    )


def add_variations_to_writer(writer: Any, variations: Iterable[GridVariation]) -> None:
    """Declare each variation's group and nuisance on an
    :class:`~wmass_archive.archive.ArchiveWriter` and add its grids
    (``add_theory_variation``); call after ``set_theory``."""
    groups = {}
    for v in variations:
        if v.group not in groups:
            groups[v.group] = True
            writer.add_group(v.group)
        writer.add_nuisance(v.name, groups=[v.group], label=v.description[:200])
        writer.add_theory_variation(
            v.name,
            v.up.ravel(),
            v.down.ravel(),
            interpolation=v.interpolation,
            description=v.description,
        )
