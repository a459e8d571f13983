"""Small archives for the refit tests, built once per test session (a helper module of
tests/test_refit_*.py, not a test file).

``tiny``: one channel mu (charge x eta[4] x pt[6] = 48 bins), a W signal folded from the
package's real generator binning (1440 bins) with a toy response, CT10nlo (nominal, Hessian) and
NNPDF31 (central only) computed from the shared LHAPDF sets, a Z background, luminosity,
normalisation, muon-scale and pT^W-modelling nuisances, a blinded mass POI. ``tiny_full``: the
same plus NNPDF23 (replicas, scale 3), to compare with NNPDF23 taken from LHAPDF. Both fit in a
few seconds, and their theory parameters are the defaults, which the refit layer checks.

``rates`` (:func:`build_rates`): an archive that is not a W-mass analysis, as imported from
pyhf or Combine: two channels of plain processes, no theory, no PDF set, two rate POIs (``mu``
on the signal; ``xs`` in pb, central 10 and scale 2, on a second process) and log-normal
nuisances; :func:`rates_expected` is its expected yield written out in numpy, the independent
reference of the tests. ``modifiers`` (format 1.1, when the writer has ``add_linear``): the
same with an additive (code 2) and a linear modifier.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from wmass_archive.archive import POI, ArchiveWriter, Axis, Citation, Provenance
from wmass_archive.theory import compute_set_grid, generator_axes
from wmass_archive.theory.generator import ABS_Y_EDGES, GRID_SHAPE, PT_EDGES

PDF_DIR = Path(__file__).resolve().parents[2] / "shared" / "pdfsets"
if not PDF_DIR.is_dir():  # a checkout beside shared/ (the usual layout) or /work/shared
    PDF_DIR = Path("/work/shared/pdfsets")
OFFSET_MEV = 12.5
_BUILT: dict[str, dict[str, Path]] = {}


def pdf_dir() -> Path:
    return PDF_DIR


def response(n_eta: int = 4, n_pt: int = 6) -> np.ndarray:
    """R[point, (charge, eta, pt), gen]: the muon charge is the W charge, eta follows |y^W|,
    the pT peak follows mW (+-100 MeV at points 0 and 2) and pT^W."""
    eta_edges = np.linspace(-2.4, 2.4, n_eta + 1)
    pt_edges = np.linspace(26.0, 56.0, n_pt + 1)
    eta_c = 0.5 * (eta_edges[1:] + eta_edges[:-1])
    y_c = 0.5 * (np.array(ABS_Y_EDGES[1:]) + np.array(ABS_Y_EDGES[:-1]))
    ptw_c = 0.5 * (np.array(PT_EDGES[1:]) + np.array(PT_EDGES[:-1]))
    nq, ny, npw, nh = GRID_SHAPE
    hel = np.zeros((nh, n_eta))
    hel[0] = 1.0
    hel[1] = 0.05
    hel[3] = 0.02
    hel[5] = 0.1 * (1.0 + eta_c / 2.4)
    from scipy.stats import norm

    p_eta = np.exp(-0.5 * (eta_c[None, :] / (1.0 + 0.4 * y_c[:, None])) ** 2)  # (ny, n_eta)
    p_eta /= p_eta.sum(axis=1, keepdims=True)
    R = np.zeros((3, 2 * n_eta * n_pt, nq * ny * npw * nh))
    for j, shift in enumerate((-0.1, 0.0, 0.1)):
        centre = 40.18 * (80.36 + shift) / 80.36 + 0.15 * ptw_c  # (npw,)
        width = 4.0 + 0.15 * ptw_c
        cdf = norm.cdf((pt_edges[None, :] - centre[:, None]) / width[:, None])
        p_pt = np.diff(cdf, axis=1)  # (npw, n_pt): acceptance included
        for q in range(nq):
            for iy in range(ny):
                for ip in range(npw):
                    for ih in range(nh):
                        g = ((q * ny + iy) * npw + ip) * nh + ih
                        block = 0.3 * np.outer(p_eta[iy] * hel[ih], p_pt[ip])  # (n_eta, n_pt)
                        R[j, q * n_eta * n_pt : (q + 1) * n_eta * n_pt, g] = block.reshape(-1)
    return R


def _writer(title: str, **kwargs) -> ArchiveWriter:
    """A writer for a synthetic test archive of this module."""
    return ArchiveWriter(
        title=title,
        synthetic=True,
        description="test archive of tests/refit_archives.py",
        citation=Citation(title="wmass-archive refit tests"),
        provenance=Provenance(producer="tests.refit_archives", producer_version="1"),
        **kwargs,
    )


def build_tiny(path: Path, *, with_nnpdf23: bool = False, seed: int = 7) -> Path:
    """Write a tiny archive (see the module docstring) to ``path``."""
    paths = [str(PDF_DIR)]
    ct10 = compute_set_grid("CT10nlo", paths=paths, progress=False)
    nnpdf31 = compute_set_grid("NNPDF31_nnlo_as_0118_mc", paths=paths, progress=False)
    nominal = ct10.flat()[0]
    R = response()
    lumi = 200.0
    n_eta, n_pt = 4, 6
    axes = [
        Axis.category([-1, 1], name="charge", label="muon charge"),
        Axis.regular(n_eta, -2.4, 2.4, name="eta", label="muon eta"),
        Axis.regular(n_pt, 26.0, 56.0, name="pt", label="muon pT", unit="GeV"),
    ]
    w_nom = lumi * R[1] @ nominal
    pt_c = np.tile(np.linspace(27.5, 53.5, n_pt), 2 * n_eta)
    z_nom = 0.04 * w_nom.sum() / w_nom.size * np.exp(-(pt_c - 26.0) / 12.0) * 2.0
    rng = np.random.default_rng(seed)
    data = rng.poisson(w_nom + z_nom).astype(float)
    wr = _writer("tiny refit-test archive (synthetic)", luminosity=lumi)
    for g in ("muonCalibration", "luminosity", "CMS_background", "pTModeling"):
        wr.add_group(g)
    wr.add_channel("mu", data.reshape(2, n_eta, n_pt), axes=axes)
    wr.add_process("Wmunu", kind="signal", folded=True)
    wr.add_process("Zmumu")
    wr.set_yield("Wmunu", "mu", w_nom, sumw2=w_nom * 1e-3)
    wr.set_yield("Zmumu", "mu", z_nom, sumw2=z_nom * 0.02)
    wr.set_theory(generator_axes(), nominal, nominal_pdf="CT10nlo")
    wr.set_response("Wmunu", "mu", R)
    wr.add_pdf_set(**ct10.archive_pdf_kwargs(aliases=["CT10", "CT10NLO"]))
    wr.add_pdf_set(
        name="NNPDF31",
        lhapdf_name="NNPDF31_nnlo_as_0118_mc",
        aliases=["NNPDF3.1"],
        error_type="replicas",
        members=nnpdf31.flat(),
        scale=3.0,
    )
    if with_nnpdf23:
        nn23 = compute_set_grid("NNPDF23_lo_as_0119_qed", paths=paths, progress=False)
        wr.add_pdf_set(**nn23.archive_pdf_kwargs(name="NNPDF23", aliases=["NNPDF2.3"], scale=3.0))
    wr.add_poi(
        POI(
            name="mW",
            kind="mass",
            unit="MeV",
            central=80360.0,
            scale=100.0,
            mass_points=[-1.0, 0.0, 1.0],
            acts_on=[{"process": "Wmunu"}],
            blinding_offset=OFFSET_MEV,
            label="W mass",
        )
    )
    wr.add_nuisance("lumi", groups=["luminosity"])
    for p in ("Wmunu", "Zmumu"):
        wr.add_variation("lumi", p, "mu", kappa=1.012)
    wr.add_nuisance("norm_Zmumu", groups=["CMS_background"])
    wr.add_variation("norm_Zmumu", "Zmumu", "mu", kappa=1.05)
    tilt = (pt_c - 41.0) / 15.0
    for e in range(n_eta):
        name = f"muonScale_eta{e}"
        wr.add_nuisance(name, groups=["muonCalibration"])
        sel = np.zeros(2 * n_eta * n_pt, dtype=bool)
        for q in range(2):
            sel[q * n_eta * n_pt + e * n_pt : q * n_eta * n_pt + (e + 1) * n_pt] = True
        wr.add_variation(name, "Wmunu", "mu", logk_up=0.002 * tilt[sel], bins=np.flatnonzero(sel))
    ptw = np.broadcast_to(np.array(PT_EDGES[:-1])[None, None, :, None], GRID_SHAPE).reshape(-1)
    wr.add_nuisance("pTModel_shape", groups=["pTModeling"])
    wr.add_theory_variation(
        "pTModel_shape",
        nominal * (1 + 0.002 * (ptw - 10) / 10),
        nominal / (1 + 0.002 * (ptw - 10) / 10),
        interpolation="multiplicative",
    )
    wr.write(path)
    return path


RATES_SHAPE = (2, 8)  # channels "sr" and "cr", 8 bins each
RATES_TRUE = {"mu": 1.25, "xs": 11.0}  # physical values the pseudo-data are drawn at


def _rates_inputs() -> dict[str, np.ndarray]:
    """Nominal yields (channel, bin) of the processes of the ``rates`` archive: ``sig`` (only in
    sr), ``other`` (per pb of ``xs``), ``bkg``; their MC statistical variances; the logk of the
    shape nuisance on sig."""
    x = np.linspace(0.0, 1.0, RATES_SHAPE[1])
    sig = np.stack([120.0 * np.exp(-0.5 * ((x - 0.5) / 0.2) ** 2), np.zeros_like(x)])
    other = np.stack([4.0 + 2.0 * x, 9.0 - 3.0 * x])
    bkg = np.stack([300.0 * np.exp(-2.0 * x), 900.0 * np.exp(-1.5 * x)])
    return dict(
        sig=sig,
        other=other,
        bkg=bkg,
        sumw2=dict(sig=0.02 * sig, other=0.05 * other, bkg=0.01 * bkg),
        shape=0.08 * (x - 0.5),
    )


#: the parameters of the ``rates`` archive, in the model's order (POIs, then nuisances)
RATES_PARAMS = ("mu", "xs", "lumi", "norm_bkg", "shape_sig")
RATES_MODIFIER_PARAMS = ("add_sig", "lin_bkg")


def rates_expected(theta: np.ndarray, modifiers: bool = False) -> np.ndarray:
    """Expected yields (channels concatenated) of the ``rates`` archive (``modifiers``: of the
    1.1 archive) at theta, written from the archive's definition (docs/format.md sections 8,
    11, 15.3): mu = 1 + theta_mu, xs = 10 + 2 theta_xs, lumi kappa 1.025 on every process, bkg
    normalisation kappa 1.1, the shape logk on sig; the additive modifier (code 2) adds
    :func:`additive_code2` to sig in sr, the linear one multiplies bkg in sr by 1 + 0.04 t."""
    d = _rates_inputs()
    mu, xs = 1.0 + theta[0], 10.0 + 2.0 * theta[1]
    lumi = 1.025 ** theta[2]
    sig = d["sig"].copy()
    bkg = d["bkg"] * 1.1 ** theta[3]
    if modifiers:
        up, down = _add_shift(d)
        sig[0] = np.maximum(sig[0] + additive_code2(theta[5], up[0], down[0]), 0.0)
        bkg = bkg * np.stack([np.full(RATES_SHAPE[1], max(0.0, 1 + 0.04 * theta[6])), np.ones(8)])
    sig = sig * np.exp(theta[4] * np.stack([d["shape"], np.zeros(RATES_SHAPE[1])]))
    return (lumi * (mu * sig + xs * d["other"] + bkg)).reshape(-1)


def additive_code2(t: float, up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Interpolation code 2 of an additive modifier (docs/format.md section 15.2): a t^2 + b t
    inside |t| <= 1, linear outside."""
    a, b = (up + down) / 2.0, (up - down) / 2.0
    if t > 1:
        return up + (b + 2 * a) * (t - 1)
    if t < -1:
        return down + (b - 2 * a) * (t + 1)
    return a * t * t + b * t


def _add_shift(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """The additive modifier's shifts at t = +1 and t = -1 (events)."""
    return 0.1 * d["sig"] + 2.0, -0.05 * d["sig"] - 1.0


def rates_sumw2() -> np.ndarray:
    """MC statistical variance per bin (all processes), channels concatenated."""
    w = _rates_inputs()["sumw2"]
    return (w["sig"] + w["other"] + w["bkg"]).reshape(-1)


def build_rates(path: Path, *, modifiers: bool = False, seed: int = 3) -> Path:
    """Write the ``rates`` archive (``modifiers``: the format 1.1 one) to ``path``."""
    d = _rates_inputs()
    truth = np.zeros(len(RATES_PARAMS) + (2 if modifiers else 0))
    truth[0], truth[1] = RATES_TRUE["mu"] - 1.0, (RATES_TRUE["xs"] - 10.0) / 2.0
    data = np.random.default_rng(seed).poisson(rates_expected(truth, modifiers)).astype(float)
    wr = _writer("rate POIs only (as imported from pyhf/Combine)")
    for g in ("lumi", "bkg", "theory"):
        wr.add_group(g)
    for c, ch in enumerate(("sr", "cr")):
        ax = [Axis.regular(RATES_SHAPE[1], 0.0, 1.0, name="x", label="an observable")]
        wr.add_channel(ch, data.reshape(RATES_SHAPE)[c], axes=ax)
    for name in ("sig", "other", "bkg"):
        wr.add_process(name, kind="signal" if name == "sig" else "background")
    for c, ch in enumerate(("sr", "cr")):
        for name in ("sig", "other", "bkg"):
            if d[name][c].any():
                wr.set_yield(name, ch, d[name][c], sumw2=d["sumw2"][name][c])
    wr.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "sig"}]))
    wr.add_poi(
        POI(
            name="xs",
            kind="rate",
            unit="pb",
            central=10.0,
            scale=2.0,
            acts_on=[{"process": "other"}],
            label="cross section of the other process",
        )
    )
    wr.add_nuisance("lumi", groups=["lumi"])
    wr.add_nuisance("norm_bkg", groups=["bkg"])
    wr.add_nuisance("shape_sig", groups=["theory"])
    for c, ch in enumerate(("sr", "cr")):
        for name in ("sig", "other", "bkg"):
            if d[name][c].any():
                wr.add_variation("lumi", name, ch, kappa=1.025)
        wr.add_variation("norm_bkg", "bkg", ch, kappa=1.1)
    wr.add_variation("shape_sig", "sig", "sr", logk_up=d["shape"])
    if modifiers:
        wr.add_nuisance("add_sig", groups=["theory"])
        wr.add_nuisance("lin_bkg", groups=["bkg"])
        up, down = _add_shift(d)
        wr.add_additive(
            "add_sig", "sig", "sr", up=d["sig"][0] + up[0], down=d["sig"][0] + down[0], code=2
        )
        wr.add_linear("lin_bkg", "bkg", "sr", coeff=0.04)
    wr.write(path)
    return path


def tiny_archives(base: Path) -> dict[str, Path]:
    """The tiny archives under ``base`` (built on the first call of the session)."""
    key = str(base)
    if key not in _BUILT:
        base.mkdir(parents=True, exist_ok=True)
        _BUILT[key] = {
            "tiny": build_tiny(base / "tiny.h5"),
            "tiny_full": build_tiny(base / "tiny_full.h5", with_nnpdf23=True),
            "rates": build_rates(base / "rates.h5"),
        }
        if hasattr(ArchiveWriter, "add_linear"):  # format 1.1
            _BUILT[key]["modifiers"] = build_rates(base / "modifiers.h5", modifiers=True)
    return _BUILT[key]


def session_archives(tmp_path_factory) -> dict[str, Path]:
    """For a session-scoped fixture: the tiny archives, and a private cache folder
    (XDG_CACHE_HOME) so that tests never touch the user's cache."""
    base = tmp_path_factory.getbasetemp() / "refit-archives"
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.getbasetemp() / "refit-cache")
    return tiny_archives(base)
