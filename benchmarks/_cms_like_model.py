"""A generated CMS-like W-mass model written with rabbit's own ``TensorWriter``.

Runs in the rabbit environment (``benchmarks/.venv-rabbit/bin/python``: it needs rabbit-fit,
hist and numpy), called by ``benchmarks/bench_cms_like.py``::

    benchmarks/.venv-rabbit/bin/python benchmarks/_cms_like_model.py -o WORK \
        [--bins 2880] [--nuisances 4000] [--density 0.09] [--seed 1] [--dense-tensor]

writes ``WORK/tensor.hdf5`` (rabbit's input tensor, sparse unless ``--dense-tensor``; another
name with ``--outname``) and ``WORK/tensor.json`` (the model's numbers: processes, nuisances per
category, non-zero entries). The same options and seed give the same model.

The model: one channel ``ch0`` with the axes muon eta (``--bins`` / 60 slices in [-2.4, 2.4]),
pT (30 bins, 26-56 GeV) and charge (2); processes Wmunu (the signal, a rate POI in rabbit),
Wtaunu, Zmumu, Ztautau, ttbar, singletop, diboson and nonprompt (fakes), smooth templates whose
sumw2 give MC statistics (Barlow-Beeston lite); data: a Poisson draw (``--seed``) from the sum of
the nominal templates. ``--nuisances`` systematics, all log-normal (rabbit's ``logkavg``; the
theory ones asymmetric, ``logkhalfdiff``):

* ``massShiftW100MeV``: the nuisance of interest (unconstrained, ``noi=True``), the +100 MeV
  shift of the W mass: the Jacobian edge of the W pT spectrum moved by 50 MeV, its mean
  removed (a shape), at most 2.5e-3 (~1e-3 on average; half as large on Wtaunu);
* dense ones: PDF eigenvectors (2.5 %) and asymmetric QCD-scale/resummation-like theory
  nuisances (1 %) on every bin of the W and Z processes, broad experimental ones (0.25 %) on
  every bin of the MC processes, the luminosity, eight normalisations;
* localised ones: momentum-scale nuisances (25 %, all MC processes, both charges, a window of
  a few eta slices around their eta), efficiency nuisances (the rest, about 64 %, all MC
  processes, a window of eta slices of one charge), fake-rate nuisances (7 %, the nonprompt
  process, eta window of one charge).

The width of the localised windows (``w`` or ``w + 1`` eta slices, picked at random in the
proportion that matches) is solved so that the fraction of non-zero (process, bin, nuisance)
entries is ``--density`` (9 %: windows of 6 or 7 of the 48 eta slices at the default size).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

N_PT, PT_LO, PT_HI = 30, 26.0, 56.0
ETA_MAX = 2.4
SIGNAL = "Wmunu"
MC = ["Wmunu", "Wtaunu", "Zmumu", "Ztautau", "ttbar", "singletop", "diboson"]
EW = ["Wmunu", "Wtaunu", "Zmumu", "Ztautau"]  # PDF and theory nuisances act on these
W_PROCS = ["Wmunu", "Wtaunu"]  # the W-mass shift acts on these
PROCS = MC + ["nonprompt"]
#: yield per process as a fraction of the W signal's; MC statistics: effective MC events per
#: expected event (sumw2 = nominal / r)
FRACTION = {
    "Wmunu": 1.0,
    "Wtaunu": 0.03,
    "Zmumu": 0.06,
    "Ztautau": 0.003,
    "ttbar": 0.006,
    "singletop": 0.002,
    "diboson": 0.0015,
    "nonprompt": 0.03,
}
MC_RATIO = {
    "Wmunu": 5.0,
    "Wtaunu": 2.0,
    "Zmumu": 4.0,
    "Ztautau": 0.5,
    "ttbar": 1.5,
    "singletop": 0.5,
    "diboson": 0.5,
    "nonprompt": 1.0,
}
NORMS = {  # log-normal normalisations: (name, processes, charge or None, kappa)
    "norm_Wtaunu": (["Wtaunu"], None, 1.03),
    "norm_Z": (["Zmumu", "Ztautau"], None, 1.02),
    "norm_ttbar": (["ttbar"], None, 1.06),
    "norm_singletop": (["singletop"], None, 1.04),
    "norm_diboson": (["diboson"], None, 1.08),
    "norm_nonprompt": (["nonprompt"], None, 1.05),
    "norm_nonprompt_qminus": (["nonprompt"], 0, 1.02),
    "norm_nonprompt_qplus": (["nonprompt"], 1, 1.02),
}
W_TOTAL = 6.0e7  # W -> mu nu events in the acceptance (the CMS analysis: ~1e8)
MASS_SHIFT_MEV = 100.0


# --------------------------------------------------------------------------- templates
def _spectrum(proc: str, pt: np.ndarray) -> np.ndarray:
    """Unnormalised muon pT spectrum of a process (smooth, positive)."""

    def edge(pt, at, width, rise):
        return (pt / PT_LO) ** rise / (1.0 + np.exp((pt - at) / width)) + 0.04

    if proc == "Wmunu":
        return edge(pt, 40.2, 2.2, 1.5)
    if proc == "Zmumu":
        return edge(pt, 44.0, 2.6, 1.2)
    if proc in ("Wtaunu", "Ztautau"):
        return np.exp(-(pt - PT_LO) / 7.0)
    if proc == "nonprompt":
        return np.exp(-(pt - PT_LO) / 5.5)
    return (pt / PT_LO) ** 0.4 * np.exp(-(pt - PT_LO) / 45.0)  # top, diboson: broad


def _eta_charge(proc: str, x: np.ndarray) -> np.ndarray:
    """(n_eta, 2) eta x charge shape, x = eta / 2.4; charge 0 = minus, 1 = plus."""
    if proc in W_PROCS:
        minus, plus = 0.435 * (1.0 - 0.18 * x**2), 0.565 * (1.0 + 0.08 * x**2)
    elif proc == "nonprompt":
        minus, plus = 0.5 * (1.0 + 0.25 * x**2), 0.5 * (1.0 + 0.25 * x**2)
    elif proc in ("ttbar", "singletop", "diboson"):
        minus = plus = 0.5 * (1.0 - 0.35 * x**2)
    else:  # Z: charge symmetric
        minus = plus = 0.5 * (1.0 - 0.1 * x**2)
    return np.stack([minus, plus], axis=-1)


def _template(proc: str, eta_c: np.ndarray, pt_c: np.ndarray) -> np.ndarray:
    """Nominal (n_eta, n_pt, 2) yields of a process."""
    f = _spectrum(proc, pt_c)
    g = _eta_charge(proc, eta_c / ETA_MAX)
    t = g[:, None, :] * f[None, :, None]
    return W_TOTAL * FRACTION[proc] * t / t.sum()


def _dlogf(proc: str, pt_c: np.ndarray, shift: float) -> np.ndarray:
    """log f(pt - shift) - log f(pt): the change of the spectrum when pT moves by ``shift``."""
    return np.log(_spectrum(proc, pt_c - shift)) - np.log(_spectrum(proc, pt_c))


def _legendre(n: int, x: np.ndarray) -> np.ndarray:
    return np.polynomial.legendre.Legendre.basis(n)(x)


def _smooth(rng, x, y, orders=(3, 3)) -> np.ndarray:
    """A random smooth (n_eta, n_pt, 2) shape of unit size: a sum of Legendre products in
    x = eta / 2.4, y in [-1, 1] over pT, with a charge-odd part."""
    out = np.zeros((x.size, y.size, 2))
    q = np.array([-1.0, 1.0])
    for a in range(orders[0] + 1):
        for b in range(orders[1] + 1):
            c_even, c_odd = rng.normal(size=2) / (1.0 + a + b)
            xy = np.outer(_legendre(a, x), _legendre(b, y))
            out += xy[:, :, None] * (c_even + 0.3 * c_odd * q)[None, None, :]
    return out / np.sqrt(np.mean(out**2))


# --------------------------------------------------------------------------- the model
class Plan:
    """Categories and sizes of the nuisances, before anything is booked."""

    def __init__(self, n_eta: int, n_nuis: int, density: float, rng: np.random.Generator):
        self.n_eta, self.rng = n_eta, rng
        n = n_nuis
        fixed = 1 + 1 + len(NORMS)  # noi, lumi, normalisations
        self.n_pdf = max(1, round(0.025 * n))
        self.n_theory = max(1, round(0.010 * n))
        self.n_broad = max(1, round(0.0025 * n))
        self.n_fake = max(1, round(0.07 * n))
        self.n_scale = max(1, round(0.25 * n))
        self.n_eff = n - fixed - self.n_pdf - self.n_theory - self.n_broad - self.n_fake
        self.n_eff -= self.n_scale
        if self.n_eff < 1:
            raise SystemExit(f"--nuisances {n} is too few (at least {fixed + 6})")
        n_bins = n_eta * N_PT * 2
        per_charge = n_eta * N_PT
        # non-zero (process, bin, nuisance) entries of the dense categories ...
        base = n_bins * (
            len(W_PROCS)  # mass
            + len(MC)  # lumi
            + (self.n_pdf + self.n_theory) * len(EW)
            + self.n_broad * len(MC)
        )
        base += sum(
            len(p) * (per_charge if q is not None else n_bins) for p, q, _ in NORMS.values()
        )
        # ... and of the localised ones per eta slice of their window
        per_slice = N_PT * (self.n_scale * 2 * len(MC) + self.n_eff * len(MC) + self.n_fake * 1)
        target = density * len(PROCS) * n_bins * n_nuis
        w = (target - base) / per_slice
        if w < 1 or w > n_eta:
            w = min(max(w, 1.0), float(n_eta))
            print(f"density {density:g} is out of reach: windows of {w:g} eta slices")
        self.w_lo = int(math.floor(w))
        self.p_hi = w - self.w_lo if self.w_lo < n_eta else 0.0
        self.target = target

    def window(self) -> slice:
        """Eta slices of a localised nuisance: w or w + 1 slices about a random centre."""
        w = self.w_lo + int(self.rng.random() < self.p_hi)
        start = int(self.rng.integers(0, self.n_eta - w + 1))
        return slice(start, start + w)


def build(args) -> dict:
    import hist
    from rabbit import tensorwriter

    if args.bins % (N_PT * 2) or args.bins < N_PT * 2:
        raise SystemExit(f"--bins must be a multiple of {N_PT * 2} (eta x 30 pT x 2 charges)")
    n_eta = args.bins // (N_PT * 2)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    axes = [
        hist.axis.Regular(n_eta, -ETA_MAX, ETA_MAX, name="eta"),
        hist.axis.Regular(N_PT, PT_LO, PT_HI, name="pt"),
        hist.axis.Regular(2, -2.0, 2.0, name="charge"),
    ]
    eta_c, pt_c = axes[0].centers, axes[1].centers
    x, y = eta_c / ETA_MAX, 2.0 * (pt_c - PT_LO) / (PT_HI - PT_LO) - 1.0
    nominal = {p: _template(p, eta_c, pt_c) for p in PROCS}
    total = sum(nominal.values())
    data = rng.poisson(total).astype(np.float64)

    writer = tensorwriter.TensorWriter(sparse=not args.dense_tensor)
    writer.add_channel(axes, "ch0")
    writer.add_data(data, "ch0")
    for p in PROCS:
        writer.add_process(
            nominal[p], p, "ch0", signal=(p == SIGNAL), variances=nominal[p] / MC_RATIO[p]
        )

    plan = Plan(n_eta, args.nuisances, args.density, rng)
    counts: dict[str, int] = {}
    entries = 0

    def book(name, group, effects, asym=None, noi=False):
        """effects: {process: logk (n_eta, n_pt, 2)}; asym: {process: logk_down} for an
        asymmetric nuisance (logk_down: the log of down / nominal, with its sign)."""
        nonlocal entries
        for p, logk in effects.items():
            nom = nominal[p]
            if asym is None:
                writer.add_systematic(
                    nom * np.exp(logk), name, p, "ch0", groups=[group], noi=noi,
                    constrained=not noi,
                )  # fmt: skip
            else:
                up, down = nom * np.exp(logk), nom * np.exp(asym[p])
                writer.add_systematic([up, down], name, p, "ch0", groups=[group], symmetrize=None)
            nz = logk != 0 if asym is None else (logk != 0) | (asym[p] != 0)
            entries += int(np.count_nonzero(nz))
        counts[group] = counts.get(group, 0) + 1

    ones = np.ones((n_eta, N_PT, 2))
    q_sign = np.array([-1.0, 1.0])

    # the nuisance of interest: the Jacobian edge moves by half the mass shift
    # (50 MeV of muon pT), scaled to at most 2.5e-3 (~1e-3 on average): the resolution and the
    # W's transverse momentum smear the edge; W -> tau nu, with a softer spectrum, gets half
    edge = _dlogf(SIGNAL, pt_c, 0.5 * MASS_SHIFT_MEV / 1000.0)
    w_pt = _spectrum(SIGNAL, pt_c)
    edge -= np.sum(w_pt * edge) / np.sum(w_pt)  # the acceptance barely changes: a shape
    edge *= 2.5e-3 / np.max(np.abs(edge))
    mass = {"Wmunu": ones * edge[None, :, None], "Wtaunu": 0.5 * ones * edge[None, :, None]}
    book("massShiftW100MeV", "massShift", mass, noi=True)
    book("lumi", "luminosity", {p: ones * math.log(1.017) for p in MC})
    for name, (procs, q, kappa) in NORMS.items():
        eff = {}
        for p in procs:
            logk = ones * math.log(kappa)
            if q is not None:
                logk[:, :, 1 - q] = 0.0
            eff[p] = logk
        book(name, "normalization", eff)
    for k in range(plan.n_pdf):  # Hessian PDF eigenvectors: smooth, correlated W and Z
        amp = 0.004 * math.exp(-k / 40.0) + 0.0008  # mostly in eta, gentle in pT
        shape_w, shape_z = _smooth(rng, x, y, (4, 1)), _smooth(rng, x, y, (4, 1))
        eff = {p: amp * (shape_w if p in W_PROCS else shape_z) for p in EW}
        book(f"pdf{k + 1}", "pdf", eff)
    for k in range(plan.n_theory):  # scale/resummation-like: asymmetric up and down
        amp = 0.004 * math.exp(-k / 15.0) + 0.001
        up_s, dn_s = _smooth(rng, x, y, (2, 2)), _smooth(rng, x, y, (2, 2))
        up = {p: amp * up_s * (1.0 if p in W_PROCS else 0.7) for p in EW}
        # down: mostly opposite to up, with an asymmetry of ~30 %
        down = {p: -0.75 * up[p] + 0.3 * amp * dn_s for p in EW}
        book(f"theory_ptV{k // 4}_{('muR', 'muF', 'muRmuF', 'resum')[k % 4]}", "theory", up, down)
    for k in range(plan.n_broad):  # resolution, pileup, prefiring ...: every MC bin
        amp = 0.002
        shape = _smooth(rng, x, y, (2, 2))
        book(f"exp_broad{k + 1}", "experimental", {p: amp * shape for p in MC})

    n_loc = {"muonScale": plan.n_scale, "efficiency": plan.n_eff, "fakerate": plan.n_fake}
    widths = []
    for group, n in n_loc.items():
        for k in range(n):
            sl = plan.window()
            widths.append(sl.stop - sl.start)
            q = int(rng.integers(0, 2))
            eff = {}
            if group == "muonScale":  # a pT scale change, charge-odd (sagitta) or even (B field)
                delta = rng.normal(0.0, 3e-5) * 40.0  # GeV at 40 GeV
                odd = k % 2 == 0
                prof = 1.0 + 0.3 * rng.normal() * np.linspace(-1.0, 1.0, sl.stop - sl.start)
                for p in MC:
                    logk = np.zeros((n_eta, N_PT, 2))
                    d = _dlogf(p, pt_c, delta * pt_c / 40.0)
                    sign = q_sign if odd else np.ones(2)
                    logk[sl] = prof[:, None, None] * d[None, :, None] * sign[None, None, :]
                    eff[p] = logk
            elif group == "efficiency":  # scale-factor variation of one charge, pT dependent
                order = int(rng.integers(0, 3))
                amp = rng.normal(0.0, 0.001)
                shape = _legendre(order, y) + 0.2 * rng.normal()
                prof = 1.0 + 0.2 * rng.normal(size=sl.stop - sl.start)
                for p in MC:
                    logk = np.zeros((n_eta, N_PT, 2))
                    logk[sl, :, q] = amp * prof[:, None] * shape[None, :]
                    eff[p] = logk
            else:  # fake rate of one charge in an eta window, on the nonprompt process
                order = int(rng.integers(0, 3))
                amp = rng.normal(0.0, 0.02)
                logk = np.zeros((n_eta, N_PT, 2))
                logk[sl, :, q] = amp * (_legendre(order, y) + 0.3 * rng.normal())[None, :]
                eff["nonprompt"] = logk
            book(f"{group}{k + 1}", group, eff)
    t_book = time.perf_counter() - t0

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    writer.write(outfolder=str(out), outfilename=args.outname)
    n_syst = len(writer.get_systs())
    slots = len(PROCS) * args.bins * n_syst
    info = {
        "bins": args.bins,
        "axes": {"eta": n_eta, "pt": N_PT, "charge": 2},
        "processes": PROCS,
        "signal": SIGNAL,
        "yields": {p: float(nominal[p].sum()) for p in PROCS},
        "data": float(data.sum()),
        "nuisances": n_syst,
        "by_group": counts,
        "entries": entries,
        "density": entries / slots,
        "density_target": args.density,
        "window_slices": {"mean": float(np.mean(widths)), "min": min(widths), "max": max(widths)},
        "seed": args.seed,
        "sparse": not args.dense_tensor,
        "symmetric": bool(writer.symmetric_tensor),
        "seconds": {"book": t_book, "total": time.perf_counter() - t0},
    }
    (out / f"{args.outname}.json").write_text(json.dumps(info, indent=1))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="folder for tensor.hdf5 and tensor.json")
    ap.add_argument("--bins", type=int, default=2880, help="eta x pT x charge bins (60 per eta)")
    ap.add_argument("--nuisances", type=int, default=4000, help="systematics, the NOI included")
    ap.add_argument("--density", type=float, default=0.09, help="non-zero entry fraction")
    ap.add_argument("--seed", type=int, default=1, help="random seed (shapes and data)")
    ap.add_argument("--dense-tensor", action="store_true", help="rabbit's dense hlogk")
    ap.add_argument("--outname", default="tensor", help="file name: NAME.hdf5 and NAME.json")
    info = build(ap.parse_args())
    print(
        f"{info['bins']} bins, {len(info['processes'])} processes, {info['nuisances']} "
        f"nuisances, {info['entries']} non-zero entries ({100 * info['density']:.2f} %), "
        f"windows of {info['window_slices']['mean']:.2f} eta slices, "
        f"{info['seconds']['total']:.1f} s"
    )


if __name__ == "__main__":
    main()
