"""Small synthetic archives for tests and examples of the fitter (written with
:class:`~wmass_archive.archive.ArchiveWriter`; numbers mean nothing physical).

* :func:`write_counting_archive`: plain processes only, a rate POI (signal strength
  ``mu = 1 + theta``), log-normal (``lnN``) normalisation nuisances and optional shape variations:
  a model that pyhf can express (normfactor, normsys, staterror/shapesys);
* :func:`write_folded_archive`: a folded W-like signal with a response tensor at configurable mass
  points, a PDF set of any error type and interpolation, theory variations, a mass POI also
  acting on a plain process, sparse nuisances, one channel with a charge axis or two channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..archive import POI, ArchiveWriter, Axis, SparseTensor


def _writer(title: str, lumi: float | None = None) -> ArchiveWriter:
    return ArchiveWriter(
        title=title,
        synthetic=True,
        citation={"title": "wmass-archive fitter tests"},
        provenance={"producer": "wmass_archive.model.synthetic", "producer_version": "0"},
        luminosity=lumi,
    )


def write_counting_archive(
    path: str | Path,
    *,
    signal: Sequence[float] = (20.0, 30.0, 45.0, 30.0, 15.0),
    backgrounds: dict[str, Sequence[float]] | None = None,
    lnN: dict[str, dict[str, float]] | None = None,
    shapes: dict[str, tuple[str, Sequence[float]]] | None = None,
    mc_fraction: float = 0.02,
    data: Sequence[float] | None = None,
    seed: int = 1,
) -> dict:
    """A one-channel counting model ``ch`` with processes ``sig`` (scaled by the rate POI
    ``mu``) and backgrounds. ``lnN``: {nuisance: {process: kappa}} (symmetric);
    ``shapes``: {nuisance: (process, logk_up per bin)} (symmetric); sumw2 = mc_fraction *
    nominal^2 (relative MC uncertainty sqrt(mc_fraction)). Data: ``data`` or a Poisson draw of
    the total. Returns the arrays used (for building the same model elsewhere)."""
    sig = np.asarray(signal, dtype=np.float64)
    nb = sig.size
    if backgrounds is None:
        backgrounds = {"bkg": np.linspace(50.0, 30.0, nb)}
    if lnN is None:
        lnN = {"lumi": {"sig": 1.02, "bkg": 1.02}, "bkg_norm": {"bkg": 1.1}}
    shapes = shapes or {}
    yields = {"sig": sig, **{k: np.asarray(v, dtype=np.float64) for k, v in backgrounds.items()}}
    total = sum(yields.values())
    obs = (
        np.asarray(data, dtype=np.float64)
        if data is not None
        else np.random.default_rng(seed).poisson(total).astype(np.float64)
    )
    w = _writer("counting test model")
    w.add_group("syst")
    w.add_channel("ch", obs, axes=[Axis.regular(nb, 0.0, float(nb), name="x")])
    w.add_process("sig", kind="signal")
    for k in backgrounds:
        w.add_process(k)
    for k, v in yields.items():
        w.set_yield(k, "ch", v, sumw2=mc_fraction * v**2)
    w.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "sig"}]))
    for name, per in lnN.items():
        w.add_nuisance(name, groups=["syst"])
        for p, kappa in per.items():
            w.add_variation(name, p, "ch", kappa=kappa)
    for name, (p, logk) in shapes.items():
        if name not in lnN:
            w.add_nuisance(name, groups=["syst"])
        w.add_variation(name, p, "ch", logk_up=np.asarray(logk, dtype=np.float64))
    w.write(path)
    return {"yields": yields, "data": obs, "mc_fraction": mc_fraction, "lnN": lnN, "shapes": shapes}


def write_folded_archive(
    path: str | Path,
    *,
    n_eta: int = 4,
    n_pt: int = 6,
    n_y: int = 3,
    mass_points: Sequence[float] = (-1.0, 0.0, 1.0),
    pdf_type: str = "hessian",
    pdf_interpolation: str = "additive",
    pdf_members: int = 5,
    variation_interpolation: str = "multiplicative",
    sparse_response: bool = False,
    two_channels: bool = False,
    events: float = 2.0e5,
    true_theta: float = 0.0,
    seed: int = 7,
) -> None:
    """A folded W-like model: reco (eta, pt, charge), or two channels ``mu_minus``/``mu_plus``
    over (eta, pt); generator (qW, yW); mass POI ``mW`` (scale 100 MeV) with responses at
    ``mass_points`` and a stored variation on the plain process ``Wtau``; PDF set ``P`` of
    ``pdf_type`` (90% CL if hessian, scale 1.5) with ``pdf_members`` members, and a second set
    ``Q`` (symmhessian); theory variation ``thvar`` (prior scale 0.5); per-(eta, charge) sparse
    asymmetric efficiency nuisances, a luminosity and an asymmetric background normalisation.
    Pseudo-data: Poisson at mW theta = ``true_theta`` (log-linear towards the nearest point)."""
    rng = np.random.default_rng(seed)
    eta = Axis.regular(n_eta, -2.4, 2.4, name="eta")
    pt = Axis.regular(n_pt, 26.0, 56.0, name="pt", unit="GeV")
    gen_axes = [Axis.category([-1, 1], name="qW"), Axis.regular(n_y, -2.5, 2.5, name="yW")]
    n_gen = 2 * n_y
    yc = np.tile(gen_axes[1].centers(), 2)
    sigma = np.concatenate([np.linspace(800.0, 600.0, n_y), np.linspace(1100.0, 900.0, n_y)])
    pts = [float(x) for x in mass_points]
    j0 = pts.index(0.0)
    ptc, etac = pt.centers(), eta.centers()
    # R[point, eta, pt, q, g]: muon charge = W charge, eta around y, a pT peak moving with mW
    r = np.zeros((len(pts), n_eta, n_pt, 2, n_gen))
    for j, t in enumerate(pts):
        shape_pt = np.exp(-0.5 * ((ptc - (38.0 + 0.8 * t)) / 6.0) ** 2)
        for q in range(2):
            for iy in range(n_y):
                shape_eta = np.exp(-0.5 * ((etac - 0.8 * yc[iy]) / 1.2) ** 2)
                r[j, :, :, q, q * n_y + iy] = np.outer(shape_eta, shape_pt) * (0.9 + 0.1 * q)

    if pdf_type == "replicas":
        reps = [
            sigma * (1 + rng.normal(0, 0.02) + rng.normal(0, 0.01) * yc) for _ in range(pdf_members)
        ]
        members = np.array([np.mean(reps, axis=0), *reps])
    else:
        members = np.array(
            [sigma]
            + [
                sigma * (1 + rng.normal(0, 0.02) + rng.normal(0, 0.02) * yc)
                for _ in range(pdf_members - 1)
            ]
        )
    central = members[0]
    lumi = float(events / np.einsum("epqg,g->", r[j0], central))
    r_flat = r.reshape(len(pts), -1, n_gen)

    # pseudo-data at true_theta: log-linear between theta = 0 and the nearest point
    jn = min(
        (j for j in range(len(pts)) if j != j0), key=lambda j: abs(pts[j] - true_theta), default=j0
    )
    nu0, nu1 = lumi * r_flat[j0] @ central, lumi * r_flat[jn] @ central
    ratio = np.where((nu0 > 0) & (nu1 > 0), nu1 / np.where(nu0 > 0, nu0, 1.0), 1.0)
    frac = true_theta / pts[jn] if jn != j0 else 0.0
    sig = nu0.reshape(n_eta, n_pt, 2)
    sig_true = (nu0 * ratio**frac).reshape(n_eta, n_pt, 2)
    falloff = np.exp(-(ptc - 26.0) / 15.0)[None, :, None]
    wtau = 0.05 * sig * falloff
    z = 0.1 * sig.mean() * np.ones((n_eta, n_pt, 2)) * falloff
    wt_logk = 0.002 * np.linspace(-1, 1, n_pt)[None, :, None] * np.ones((n_eta, 1, 2))
    data = rng.poisson(sig_true + wtau * np.exp(true_theta * wt_logk) + z).astype(np.float64)
    nominal = {"W": sig, "Wtau": wtau, "Z": z}

    w = _writer("folded test model", lumi)
    for g in ("eff", "lumi", "bkg", "theory"):
        w.add_group(g)
    w.set_theory(gen_axes, central, nominal_pdf="P")
    w.add_pdf_set(
        name="P",
        lhapdf_name="P_test",
        error_type=pdf_type,
        confidence_level=90.0 if pdf_type == "hessian" else 68.268949,
        scale=1.5,
        members=members,
        interpolation=pdf_interpolation,
    )
    w.add_pdf_set(
        name="Q", lhapdf_name="Q_test", error_type="symmhessian", members=members[:3] * 1.01
    )
    w.add_nuisance("thvar", groups=["theory"], prior_scale=0.5)
    w.add_theory_variation(
        "thvar",
        central * (1 + 0.03 * yc),
        central * (1 - 0.02 * yc),
        interpolation=variation_interpolation,
    )
    w.add_poi(
        POI(
            name="mW",
            kind="mass",
            unit="MeV",
            central=80360.0,
            scale=100.0,
            mass_points=pts,
            acts_on=[{"process": "W"}, {"process": "Wtau"}],
        )
    )
    w.add_process("W", kind="signal", folded=True)
    w.add_process("Wtau")
    w.add_process("Z")
    if two_channels:
        channels = [("mu_minus", 0), ("mu_plus", 1)]
    else:
        channels = [("mu", None)]
    for cname, q in channels:
        qs = slice(None) if q is None else slice(q, q + 1)
        axes = [eta, pt] + ([Axis.category([-1, 1], name="charge")] if q is None else [])
        shape = (n_eta, n_pt, 2) if q is None else (n_eta, n_pt)
        w.add_channel(cname, data[:, :, qs].reshape(shape), axes=axes)
        for p, v in nominal.items():
            vv = v[:, :, qs].reshape(shape)
            w.set_yield(p, cname, vv, sumw2=0.01 * vv)
        rc = r[:, :, :, qs, :].reshape(len(pts), -1, n_gen)
        w.set_response("W", cname, SparseTensor.fromdense(rc) if sparse_response else rc)
        w.add_variation("mW", "Wtau", cname, logk_up=wt_logk[:, :, qs].reshape(-1))
    w.add_nuisance("lumi", groups=["lumi"])
    w.add_nuisance("bkgnorm", groups=["bkg"])
    for cname, _ in channels:
        for p in ("W", "Wtau", "Z"):
            w.add_variation("lumi", p, cname, kappa=1.025)
        w.add_variation("bkgnorm", "Z", cname, kappa=(0.9, 1.15))
    lk = 0.01 * (1 + 0.3 * np.linspace(-1, 1, n_pt))
    for i in range(n_eta):
        for qq in range(2):
            name = f"eff_eta{i}_q{qq}"
            w.add_nuisance(name, groups=["eff"])
            for cname, q in channels:
                if q is None:
                    idx = (np.full(n_pt, i), np.arange(n_pt), np.full(n_pt, qq))
                    bins = np.ravel_multi_index(idx, (n_eta, n_pt, 2))
                elif q == qq:
                    bins = np.ravel_multi_index((np.full(n_pt, i), np.arange(n_pt)), (n_eta, n_pt))
                else:
                    continue
                for p in ("W", "Wtau"):
                    w.add_variation(name, p, cname, logk_up=lk, logk_down=-0.8 * lk, bins=bins)
    w.write(path)
