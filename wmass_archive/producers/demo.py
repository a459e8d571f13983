"""A small *demonstration* archive: synthetic, fast to build, with every feature of the format.

It is not the pseudo-analysis (which simulates events from real PDFs); it is a compact,
analytic stand-in for tests, examples and benchmarks. Its numbers mean nothing physical and
the archive says so (``synthetic=True`` and its description).

What it holds, at any size: one channel of muon (eta, pT, charge) bins; a folded W -> mu nu
signal with response tensors at mW and mW +- 100 MeV and a theory grid in (charge, y, pT^W,
helicity term); plain backgrounds; a mass POI acting also on a plain process through stored
variations; muon-scale nuisances (sparse), efficiency nuisances (sparse, per eta bin and
charge), luminosity and background normalisations (dense, asymmetric); a Hessian and a replica
PDF set; theory variations acting on the grid before folding.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._version import __version__
from ..archive import POI, ArchiveWriter, Axis, Citation, Provenance, WriteReport

HELICITY = ["UL", "A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7"]
MW_GEV = 80.360


@dataclass(frozen=True)
class DemoConfig:
    """Size of the demonstration model."""

    n_eta: int = 12
    n_pt: int = 10
    n_y: int = 4
    n_ptw: int = 5
    n_replicas: int = 20
    n_hessian_pairs: int = 3
    n_pdf_sets_extra: int = 0
    eff_steps: tuple[str, ...] = ("idip",)  # efficiency steps with statistical nuisances
    eff_params: int = 1  # pT-smoothing parameters per (step, eta bin, charge)
    events: float = 2.0e6  # expected signal events
    true_shift: float = 0.12  # pseudo-data mW shift, in units of 100 MeV
    seed: int = 20241217


#: sizes offered by ``wmass-archive demo --size``
DEMO_SIZES = {
    "small": DemoConfig(),
    "medium": DemoConfig(n_eta=48, n_pt=30, n_y=6, n_ptw=6),
    "large": DemoConfig(
        n_eta=48,
        n_pt=30,
        n_y=10,
        n_ptw=8,
        n_replicas=100,
        n_hessian_pairs=26,
        n_pdf_sets_extra=3,
        eff_params=5,
        eff_steps=("reco", "tracking", "idip", "trigger", "iso"),
    ),
}


def build_demo_archive(path: str | Path, config: DemoConfig = DemoConfig()) -> WriteReport:
    """Build the demonstration archive and write it to ``path``; returns the write report."""
    rng = np.random.default_rng(config.seed)
    c = config
    eta = Axis.regular(c.n_eta, -2.4, 2.4, name="eta", label="muon pseudorapidity")
    pt = Axis.regular(c.n_pt, 26.0, 56.0, name="pt", label="muon transverse momentum", unit="GeV")
    charge = Axis.category([-1, 1], name="charge", label="muon charge")
    reco_shape = (c.n_eta, c.n_pt, 2)
    n_bins = int(np.prod(reco_shape))

    gen_axes = [
        Axis.category([-1, 1], name="qW", label="W charge"),
        Axis.regular(c.n_y, -2.5, 2.5, name="yW", label="W rapidity"),
        Axis.variable(
            np.geomspace(1.0, 61.0, c.n_ptw + 1) - 1.0,
            name="ptW",
            label="W transverse momentum",
            unit="GeV",
        ),
        Axis.category(HELICITY, name="helicity", label="helicity term"),
    ]
    gen_shape = tuple(a.size for a in gen_axes)
    n_gen = int(np.prod(gen_shape))

    sigma = _theory_grid(gen_axes)  # pb per generator bin
    lumi = c.events / _fold_norm(sigma, gen_axes)  # pb^-1 such that the signal has ~events

    responses = np.stack([_response(gen_axes, eta, pt, c, shift) for shift in (-1.0, 0.0, 1.0)])
    responses = responses.reshape(3, n_bins, n_gen)
    signal = lumi * responses[1] @ sigma

    w = ArchiveWriter(
        title="wmass-archive demonstration model (synthetic)",
        synthetic=True,
        description=(
            "SYNTHETIC demonstration archive built analytically by "
            "wmass_archive.producers.demo: its numbers are not a measurement. It "
            "exercises every feature of the archive format at a small size."
        ),
        citation=Citation(
            title="wmass-archive: a reinterpretable W-mass likelihood archive",
            authors=["wmass-archive developers"],
            note="demonstration model; cite the package, not a result",
        ),
        provenance=Provenance(
            producer="wmass_archive.producers.demo",
            producer_version=__version__,
            command=f"build_demo_archive(config={c!r})",
            seeds={"pseudo_data": c.seed},
            software={"python": platform.python_version(), "numpy": np.__version__},
            notes=f"pseudo-data drawn at mW shift {c.true_shift} x 100 MeV",
        ),
        luminosity=lumi,
    )
    for g in (
        "muonCalibration",
        "muon_eff_stat",
        "experiment",
        "luminosity",
        "CMS_background",
        "Fake",
        "pTModeling",
        "angularCoeffs",
    ):
        w.add_group(g)

    w.set_theory(
        gen_axes,
        sigma,
        nominal_pdf="DemoHessian",
        description="analytic demonstration grid: sigma_UL(q, y, pT^W) x A_i(y, pT^W)",
    )
    members = _pdf_members(sigma, gen_axes, 1 + 2 * c.n_hessian_pairs, rng, hessian=True)
    members[0] = sigma
    w.add_pdf_set(
        name="DemoHessian",
        lhapdf_name="DemoHessian_nlo",
        aliases=["demo-hessian"],
        error_type="hessian",
        confidence_level=90.0,
        scale=1.0,
        members=members,
        description="synthetic Hessian set (asymmetric pairs, 90% CL)",
    )
    reps = _pdf_members(sigma, gen_axes, 1 + c.n_replicas, rng, hessian=False)
    w.add_pdf_set(
        name="DemoReplicas",
        lhapdf_name="DemoReplicas_nnlo_mc",
        aliases=["demo-mc"],
        error_type="replicas",
        scale=3.0,
        members=reps,
        description="synthetic replica set (member 0 the average)",
    )
    for k in range(c.n_pdf_sets_extra):
        m = _pdf_members(sigma, gen_axes, 1 + 2 * c.n_hessian_pairs, rng, hessian=True)
        w.add_pdf_set(
            name=f"DemoExtra{k}", lhapdf_name=f"DemoExtra{k}", error_type="hessian", members=m
        )

    ptw_c = gen_axes[2].centers()
    for name, slope in (("pTModeling_np", 0.03), ("pTModeling_resum", -0.02)):
        ratio = 1.0 + slope * np.log1p(ptw_c / 5.0) - slope * 0.5
        up = sigma * np.broadcast_to(ratio[None, None, :, None], gen_shape).reshape(-1)
        down = sigma * np.broadcast_to((2 - ratio)[None, None, :, None], gen_shape).reshape(-1)
        w.add_nuisance(name, groups=["pTModeling"])
        w.add_theory_variation(name, up, down, interpolation="multiplicative")
    for i in range(c.n_ptw):
        for h in ("A0", "A4"):
            name = f"angularCoeff_{h}_ptW{i}"
            delta = np.zeros(gen_shape)
            hi = HELICITY.index(h)
            delta[:, :, i, hi] = 0.1 * sigma.reshape(gen_shape)[:, :, i, hi]
            w.add_nuisance(name, groups=["angularCoeffs"])
            w.add_theory_variation(name, sigma + delta.reshape(-1), sigma - delta.reshape(-1))

    w.add_poi(
        POI(
            name="mW",
            kind="mass",
            unit="MeV",
            central=80360.0,
            scale=100.0,
            mass_points=[-1.0, 0.0, 1.0],
            label="W boson mass",
            acts_on=[{"process": "Wmunu"}, {"process": "Wtaunu"}],
            blinding_offset=float(np.round(rng.uniform(-50, 50), 3)),
        )
    )

    # backgrounds: smooth shapes with realistic-ish fractions of the signal
    eta_c, pt_c = eta.centers(), pt.centers()
    shape_eta = np.exp(-0.5 * (eta_c / 2.0) ** 2)
    bkg = {
        "Zmumu": (0.06, np.exp(-(pt_c - 26) / 25.0)),
        "Wtaunu": (0.02, np.exp(-(pt_c - 26) / 8.0)),
        "Top": (0.008, np.ones_like(pt_c)),
        "Nonprompt": (0.05, np.exp(-(pt_c - 26) / 6.0)),
    }
    yields = {"Wmunu": signal}
    for name, (frac, spt) in bkg.items():
        t = shape_eta[:, None, None] * spt[None, :, None] * np.ones(2)[None, None, :]
        yields[name] = (frac * signal.sum() * t / t.sum()).reshape(-1)

    truth = {k: v.copy() for k, v in yields.items()}
    truth["Wmunu"] = lumi * _interp_point(responses, c.true_shift) @ sigma
    wt_up, wt_down = (
        yields["Wtaunu"] * (1 + 0.004 * _pt_slope(eta, pt)),
        yields["Wtaunu"] * (1 - 0.004 * _pt_slope(eta, pt)),
    )
    truth["Wtaunu"] = yields["Wtaunu"] * np.exp(c.true_shift * np.log(wt_up / yields["Wtaunu"]))
    data = rng.poisson(sum(truth.values())).astype(np.float64)

    w.add_channel(
        "mu", data.reshape(reco_shape), axes=[eta, pt, charge], label="muon (eta, pT, charge)"
    )
    w.add_process("Wmunu", label="W -> mu nu", kind="signal", folded=True)
    for name in bkg:
        w.add_process(name, label=name)
    for name, nom in yields.items():
        mc_weight = 0.05 if name != "Nonprompt" else 0.5
        w.set_yield(name, "mu", nom, sumw2=nom * mc_weight)
    w.set_response("Wmunu", "mu", responses)
    w.add_variation("mW", "Wtaunu", "mu", up=wt_up, down=wt_down)

    # muon momentum scale per eta bin: shifts pT, touches one eta row (sparse)
    for i in range(c.n_eta):
        name = f"muonScale_eta{i}"
        w.add_nuisance(name, groups=["muonCalibration", "experiment"], prior_scale=1.0)
        slope = _pt_slope(eta, pt).reshape(reco_shape)[i].reshape(-1)
        bins = np.ravel_multi_index(
            (np.full(c.n_pt * 2, i), np.repeat(np.arange(c.n_pt), 2), np.tile([0, 1], c.n_pt)),
            reco_shape,
        )
        for p in ("Wmunu", "Zmumu"):
            w.add_variation(name, p, "mu", logk_up=1e-3 * slope, bins=bins)
    # efficiency statistical nuisances per (step, eta bin, charge, pT-smoothing parameter):
    # Legendre-shaped in pT, touching one (eta, charge) row each (sparse), as CMS's ~2400
    x = np.linspace(-1, 1, c.n_pt)
    legendre = [np.polynomial.legendre.Legendre.basis(k)(x) for k in range(c.eff_params)]
    for step in c.eff_steps:
        for i in range(c.n_eta):
            for qi, q in enumerate("mp"):
                bins = np.ravel_multi_index(
                    (np.full(c.n_pt, i), np.arange(c.n_pt), np.full(c.n_pt, qi)), reco_shape
                )
                for k in range(c.eff_params):
                    name = f"effStat_{step}_eta{i}_q{q}" + (f"_p{k}" if c.eff_params > 1 else "")
                    w.add_nuisance(name, groups=["muon_eff_stat", "experiment"])
                    lk = 2e-3 / (1 + k) * (1.0 + 0.5 * np.cos(np.pi * x / 2 + i)) * legendre[k]
                    for p in ("Wmunu", "Zmumu", "Wtaunu"):
                        w.add_variation(name, p, "mu", logk_up=lk, bins=bins)
    w.add_nuisance("lumi", groups=["luminosity"])
    for p in yields:
        if p != "Nonprompt":
            w.add_variation("lumi", p, "mu", kappa=1.012)
    for p, k in (("Zmumu", (0.97, 1.04)), ("Top", (0.90, 1.12))):
        w.add_nuisance(f"norm_{p}", groups=["CMS_background"])
        w.add_variation(f"norm_{p}", p, "mu", kappa=k)
    w.add_nuisance("nonpromptNorm", groups=["Fake"], constraint="none")
    w.add_variation("nonpromptNorm", "Nonprompt", "mu", kappa=1.5)
    w.add_nuisance("nonpromptShape", groups=["Fake"])
    w.add_variation(
        "nonpromptShape", "Nonprompt", "mu", up=yields["Nonprompt"] * (1 + 0.1 * _pt_slope(eta, pt))
    )
    return w.write(path)


# ------------------------------------------------------------------------- analytic pieces
def _theory_grid(gen_axes: list[Axis]) -> np.ndarray:
    """sigma[q, y, pT, h] in pb: an LO-like rapidity shape with a charge asymmetry, a
    Sudakov-like pT^W spectrum, and small signed angular coefficients."""
    y = gen_axes[1].centers()
    ptw_e = gen_axes[2].bin_edges()
    ptw = 0.5 * (ptw_e[1:] + ptw_e[:-1])
    dy = np.diff(gen_axes[1].bin_edges())
    dpt = np.diff(ptw_e)
    shape_y = {
        -1: np.exp(-0.5 * (y / 2.1) ** 2),
        1: np.exp(-0.5 * (y / 2.3) ** 2) * (1 + 0.05 * y**2),
    }
    spec = ptw / (ptw**2 + 16.0) * np.exp(-ptw / 25.0)
    total = {-1: 8.5e3, 1: 11.5e3}  # pb, W- and W+ (times BR to mu nu)
    out = np.zeros(tuple(a.size for a in gen_axes))
    for qi, q in enumerate((-1, 1)):
        ul = np.outer(shape_y[q] * dy, spec * dpt)
        ul *= total[q] / ul.sum()
        a = np.zeros((len(y), len(ptw), len(HELICITY)))
        a[..., 0] = 1.0
        a[..., 1] = 0.5 * ptw**2 / (ptw**2 + 80.0**2)  # A0
        a[..., 2] = 0.02 * np.tanh(y)[:, None]  # A1
        a[..., 3] = a[..., 1]  # A2 ~ A0 at LO
        a[..., 5] = q * 0.6 * np.tanh(y / 1.5)[:, None] * np.ones_like(ptw)  # A4, FB asymmetry
        out[qi] = ul[..., None] * a
    return out.reshape(-1)


def _fold_norm(sigma: np.ndarray, gen_axes: list[Axis]) -> float:
    """Approximate acceptance x cross section of the demo response (for the luminosity)."""
    s = sigma.reshape(tuple(a.size for a in gen_axes))[..., 0]
    return float(s.sum() * 0.35)


def _response(gen_axes: list[Axis], eta: Axis, pt: Axis, c: DemoConfig, shift: float) -> np.ndarray:
    """R[eta, pt, charge, qW, yW, ptW, h]: smeared muon eta around y^W, a Jacobian-peak pT
    shape at mW + shift x 100 MeV, helicity terms modulating acceptance."""
    mw = MW_GEV + 0.1 * shift
    y = gen_axes[1].centers()
    ptw = gen_axes[2].centers()
    eta_e, pt_c = eta.bin_edges(), pt.centers()
    from math import erf

    cdf = np.vectorize(lambda x: 0.5 * (1 + erf(x / np.sqrt(2))))
    # P(eta bin | y): gaussian of width 1.1 around y
    p_eta = cdf((eta_e[None, 1:] - y[:, None]) / 1.1) - cdf((eta_e[None, :-1] - y[:, None]) / 1.1)
    # pT: Jacobian peak at mW/2 broadened by the W pT and the resolution
    width = 1.8 + 0.25 * ptw
    p_pt = np.exp(-0.5 * ((pt_c[None, :] - (mw / 2 - 1.5)) / (width[:, None] + 2.5)) ** 2)
    p_pt *= (pt_c[None, :] / (mw / 2)) ** 2
    p_pt *= 0.35 * len(pt_c) / p_pt.sum(axis=1, keepdims=True) / 1.2
    hel_mod = np.array([1.0, -0.15, 0.05, 0.04, 0.02, 0.25, 0.0, 0.0, 0.0])
    r = np.zeros((eta.size, pt.size, 2, 2, len(y), len(ptw), len(HELICITY)))
    for qi in range(2):  # the muon charge is the W charge
        for h in range(len(HELICITY)):
            mod = np.full(eta.size, hel_mod[h])
            if HELICITY[h] == "A4":  # forward-backward term: sign with charge and eta
                mod = mod * (1 if qi == 1 else -1) * np.tanh(eta.centers())
            r[:, :, qi, qi, :, :, h] = np.einsum("ye,e,wp->epyw", p_eta, mod, p_pt)
    return r.reshape(eta.size * pt.size * 2, -1)


def _interp_point(responses: np.ndarray, theta: float) -> np.ndarray:
    """Log-normal interpolation between the stored mass points, for drawing pseudo-data."""
    lo, mid, hi = responses
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mid != 0, (hi if theta >= 0 else lo) / mid, 1.0)
    ratio = np.where(ratio > 0, ratio, 1.0)
    return mid * ratio ** abs(theta)


def _pt_slope(eta: Axis, pt: Axis) -> np.ndarray:
    """A smooth shape in (eta, pT, charge), -1..1, used for shape variations."""
    s = np.linspace(-1, 1, pt.size)[None, :, None] * np.ones((eta.size, 1, 2))
    return s.reshape(-1)


def _pdf_members(
    sigma: np.ndarray, gen_axes: list[Axis], n: int, rng: np.random.Generator, hessian: bool
) -> np.ndarray:
    """Smooth random variations of the grid in y and pT^W, a few per cent."""
    shape = tuple(a.size for a in gen_axes)
    y = np.linspace(-1, 1, shape[1])
    pw = np.linspace(-1, 1, shape[2])
    out = np.empty((n, sigma.size))
    out[0] = sigma
    f_prev = None
    for k in range(1, n):
        if hessian and k % 2 == 0:  # down member: mirror of the up member, slightly asymmetric
            f = 1 - 0.9 * (f_prev - 1)
        else:
            a = rng.normal(0, 0.015, 4)
            f = 1 + a[0] + a[1] * y[:, None] + a[2] * y[:, None] ** 2 + a[3] * pw[None, :]
        f_prev = f
        out[k] = (sigma.reshape(shape) * f[None, :, :, None]).reshape(-1)
    if not hessian:
        out[0] = out[1:].mean(axis=0)
    return out
