"""``import_combine``: CMS Combine datacards into archives, checked against known answers.

* (a) a counting card: best fit r = (n - b) / s exactly, and the scan of a card without
  systematics equals the closed-form Poisson 2 dNLL;
* (b) an independent implementation of Combine's likelihood, written here from Combine's
  documentation and source conventions (log-normal and AsymPow normalisations, vertical
  template morphing of the normalised templates with the column scale and smoothing region,
  autoMCStats per-process Poisson and Gaussian parameters, gmN, rateParam), minimised with
  scipy using JAX derivatives: best fit r, its uncertainty and the profile scan must agree
  with our fit of the imported archive;
* (c) pyhf on a card it can express exactly (lnN = normsys code1, autoMCStats threshold 0 =
  staterror, rateParam and r = normfactor);
* the pure mapping (parser, morphing shifts, autoMCStats classification), groups, remap,
  several channels and bad input (one-line errors naming the card and the item).
"""

from __future__ import annotations

import fnmatch
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))

from _combine_cards import (  # noqa: E402
    EDGES,
    card_text,
    spec_card,
    templates,
    th1,
    write_card,
    write_root,
    write_templates,
)

from wmass_archive import open_archive  # noqa: E402
from wmass_archive.fit import fit  # noqa: E402
from wmass_archive.interop.combine._card import (  # noqa: E402
    CombineImportError,
    parse_datacard_text,
)
from wmass_archive.interop.combine._morph import lnn_under_prior, morph_shifts  # noqa: E402
from wmass_archive.interop.combine._shapes import Histogram  # noqa: E402
from wmass_archive.interop.combine._stats import classify_bins  # noqa: E402
from wmass_archive.interop.combine.importer import import_combine  # noqa: E402
from wmass_archive.model import build_model  # noqa: E402

iminuit = pytest.importorskip("iminuit")


# =========================================================================== reference
def smooth_step(x, q):
    """Combine's smoothStepFunc of the vertical morphing (CMSHistFunc / FastVertical...):
    h(x / q) inside |x| < q, sign(x) outside."""
    xn = x / q
    poly = 0.125 * xn * (xn * xn * (3.0 * xn * xn - 10.0) + 15.0)
    return np.where(np.abs(x) >= q, np.sign(x), poly)


def asym_pow(kd, ku, th):
    """Combine's AsymPow / ProcessNormalization asymmetric log-normal (logKappaForX)."""
    lhi, llo = math.log(ku), -math.log(kd)
    avg, half = 0.5 * (lhi + llo), 0.5 * (lhi - llo)
    tx = 2.0 * th
    alpha = 0.125 * tx * (tx * tx * (3.0 * tx * tx - 10.0) + 15.0)
    logk = np.where(np.abs(th) >= 0.5, np.where(th >= 0, lhi, -llo), avg + alpha * half)
    return np.exp(logk * th)


class CombineReference:
    """Combine's negative log-likelihood of a test card spec (see ``_combine_cards.spec_card``),
    built from the spec and the template arrays (not from the importer).

    ``bb``: "combine" (the Barlow-Beeston-lite parameter x adds x * sqrt(sum_p (e_p c_p)^2)
    with the current normalisations c_p, as CMSHistErrorPropagator) or "archive" (its width is
    fixed relative to the total yield at the nominal point, the archive's mc_stat "normal")."""

    def __init__(self, spec: dict, inputs: dict, bb: str = "combine"):
        self.spec, self.inputs, self.bb = spec, inputs, bb
        signals = {"sig"}
        names = ["r"]
        for kind in ("lnN", "shape", "shape?"):
            names += list(spec.get(kind, {}))
        self.gmn = spec.get("gmN", {})
        names += list(self.gmn)
        self.rate_params = {}
        for name, ch, p, init, _ in spec.get("rateParam", []):
            self.rate_params.setdefault(name, (init, []))[1].append((ch, p))
            if name not in names:
                names.append(name)
        self.cols = {}
        for ch, p, rate in spec["columns"]:
            self.cols.setdefault(ch, []).append((p, rate))
        # autoMCStats classification at the nominal point, from the documented algorithm
        self.stats = {}
        for ch, (thr, inc) in spec.get("auto", {}).items():
            procs = [p for p, _ in self.cols[ch]]
            v = np.array([self.inputs[(ch, p)][0] for p in procs])
            e = np.sqrt(np.array([self.inputs[(ch, p)][1] for p in procs]))
            use = np.array([inc or p not in signals for p in procs])
            kinds = []
            for j in range(v.shape[1]):
                se = math.sqrt(float((e[use, j] ** 2).sum()))
                if se <= 0:
                    kinds.append(("none", None))
                    continue
                n = int(0.5 + float(v[use, j].sum()) ** 2 / se**2)
                if n > thr:
                    kinds.append(("lite", None))
                    continue
                per = {}
                for i, p in enumerate(procs):
                    if e[i, j] <= 0 or v[i, j] < 0:
                        continue
                    if v[i, j] > 0 and v[i, j] >= 0.999 * e[i, j]:
                        n_p = int(0.5 + v[i, j] ** 2 / e[i, j] ** 2)
                        if n_p <= thr:
                            per[p] = ("poisson", float(n_p))
                            names.append(f"x_{ch}_{j}_{p}")
                            continue
                    per[p] = ("gauss", float(e[i, j]))
                    names.append(f"x_{ch}_{j}_{p}")
                kinds.append(("per", per))
            self.stats[ch] = kinds
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.signals = signals
        self._nominal: dict = {}

    def start(self) -> np.ndarray:
        x = np.zeros(len(self.names))
        x[self.index["r"]] = 1.0
        for n, (big_n, _) in self.gmn.items():
            x[self.index[n]] = big_n
        for n, (init, _) in self.rate_params.items():
            x[self.index[n]] = init
        for n, i in self.index.items():
            if n.startswith("x_"):
                ch, j, p = n[2:].split("_")
                if self.stats[ch][int(j)][1][p][0] == "poisson":
                    x[i] = 1.0
        return x

    def _column(self, ch, p, rate, x):
        """(morphed template in events, normalisation coefficient c_p(x), MC errors)."""
        spec, idx = self.spec, self.index
        counting = spec["channels"][ch] != "shape"
        c = 1.0
        if p in self.signals:
            c = c * x[idx["r"]]
        for name, vals in spec.get("lnN", {}).items():
            k = vals.get((ch, p))
            if k is not None:
                c = c * (
                    asym_pow(k[0], k[1], x[idx[name]])
                    if isinstance(k, tuple)
                    else k ** x[idx[name]]
                )
        for name, (_init, cols) in self.rate_params.items():
            if any(fnmatch.fnmatchcase(ch, cp[0]) and fnmatch.fnmatchcase(p, cp[1]) for cp in cols):
                c = c * x[idx[name]]
        for name, vals in spec.get("shape?", {}).items():  # lnN where no histograms exist
            s = vals.get((ch, p))
            if s is not None and (ch, f"{p}_{name}Up") not in self.inputs:
                c = c * s ** x[idx[name]]
        gmn = [
            (n, a) for n, (big_n, vals) in self.gmn.items() for k, a in vals.items() if k == (ch, p)
        ]
        if counting:
            base = rate
            if gmn:  # the yield is alpha * n, n the gmN variable (nominal N)
                (name, alpha), big_n = gmn[0], self.gmn[gmn[0][0]][0]
                base, c = alpha * big_n, c * x[idx[name]] / big_n
            return np.array([base]) * c, c, np.zeros(1)
        h, var = self.inputs[(ch, p)]
        big_h = h.sum()
        morphs = []
        for kind in ("shape", "shape?"):
            for name, vals in spec.get(kind, {}).items():
                s = vals.get((ch, p))
                if s is None:
                    continue
                if (ch, f"{p}_{name}Up") not in self.inputs:  # shape? as lnN: done above
                    continue
                morphs.append((name, s))
        q = min([1.0] + [s for _, s in morphs])
        t = np.asarray(h)
        for name, s in morphs:
            u = self.inputs[(ch, f"{p}_{name}Up")][0]
            d = self.inputs[(ch, f"{p}_{name}Down")][0]
            du, dd = u * big_h / u.sum() - h, d * big_h / d.sum() - h
            xs = s * x[idx[name]]
            t = t + 0.5 * xs * ((du - dd) + (du + dd) * smooth_step(xs, q))
            ku, kd = u.sum() / big_h, d.sum() / big_h
            if not (abs(ku - 1) < 1e-3 and abs(kd - 1) < 1e-3):
                c = c * asym_pow(kd**s, ku**s, x[idx[name]])
        t = np.maximum(t, 0.0)
        self_norm = ch in spec.get("auto", {})
        scale = 1.0 if (self_norm or rate == -1) else rate / big_h
        return t * scale * c, c * scale, np.sqrt(var)

    def nll(self, x, data: dict):
        total = 0.0
        idx = self.index
        for ch, cols in self.cols.items():
            nus, cs, es = {}, {}, {}
            for p, rate in cols:
                nus[p], cs[p], es[p] = self._column(ch, p, rate, x)
            nu = sum(nus.values())
            n = data[ch]
            if ch in self.stats:
                nu_bins = []
                for j, (kind, per) in enumerate(self.stats[ch]):
                    y = nu[j]
                    if kind == "lite":
                        sig2 = sum((es[p][j] * cs[p]) ** 2 for p in nus)
                        if self.bb == "archive":
                            if ch not in self._nominal:
                                self._nominal[ch] = self._nominal_totals(ch)
                            nom = self._nominal[ch]
                            sig2 = nom[1][j] * (y / nom[0][j]) ** 2
                        b = sig2 - y
                        y = 0.5 * (-b + np.sqrt(b * b + 4.0 * n[j] * sig2))
                        total = total + 0.5 * ((y - nu[j]) ** 2 / sig2)
                    elif kind == "per":
                        for p, (how, val) in per.items():
                            xv = x[idx[f"x_{ch}_{j}_{p}"]]
                            if how == "poisson":
                                y = y + (xv - 1.0) * nus[p][j]
                                total = total + val * xv - val * np.log(xv)
                            else:
                                y = y + xv * val * cs[p]
                                total = total + 0.5 * xv * xv
                    nu_bins.append(y)
                nu = np.stack(nu_bins)
            total = total + np.sum(nu - n * np.log(nu))
        for kind in ("lnN", "shape", "shape?"):
            for name in self.spec.get(kind, {}):
                total = total + 0.5 * x[idx[name]] ** 2
        for name, (big_n, _) in self.gmn.items():
            total = total + x[idx[name]] - big_n * np.log(x[idx[name]])
        return total

    def _nominal_totals(self, ch):
        """(total yield, total MC variance) per bin at the nominal point."""
        x0 = self.start()
        nu, var = 0.0, 0.0
        for p, rate in self.cols[ch]:
            t, c, e = self._column(ch, p, rate, x0)
            nu, var = nu + t, var + (e * c) ** 2
        return nu, var

    def data(self) -> dict:
        out = {}
        for ch, kind in self.spec["channels"].items():
            out[ch] = (
                self.inputs[(ch, "data_obs")][0] if kind == "shape" else np.array([float(kind)])
            )
        return out

    def minimise(self, fixed: dict | None = None):
        """MIGRAD (iminuit, errordef 0.5, strategy 2) from the nominal point; ``fixed``:
        {name: value} held constant. Returns the Minuit object."""
        data = self.data()
        x0 = self.start()
        for n, v in (fixed or {}).items():
            x0[self.index[n]] = v

        def f(x):
            with np.errstate(invalid="ignore", divide="ignore"):
                v = self.nll(np.asarray(x), data)
            return float(v) if np.isfinite(v) else 1e30

        m = iminuit.Minuit(f, x0, name=self.names)
        m.errordef = 0.5
        m.strategy = 1 if fixed else 2
        m.tol = 1e-8
        for n in fixed or {}:
            m.fixed[n] = True
        m.migrad()
        assert m.valid
        return m

    def fit(self) -> dict:
        """MIGRAD, then one Newton step and the covariance with a central-difference
        gradient and Hessian (steps of 1e-3 of each parameter's HESSE error)."""
        m = self.minimise()
        m.hesse()
        data = self.data()

        def f(x):
            return float(self.nll(x, data))

        x = np.array(m.values)
        h = 1e-3 * np.array(m.errors)
        for _ in range(2):
            g, hess = _numeric_derivatives(f, x, h)
            x = x - np.linalg.solve(hess, g)
        g, hess = _numeric_derivatives(f, x, h)
        cov = np.linalg.inv(hess)
        i = self.index["r"]
        return {"nll": f(x), "x": x, "r": x[i], "sigma_r": math.sqrt(cov[i, i])}


def _numeric_derivatives(f, x, h):
    """Central-difference gradient and Hessian of f at x with steps h."""
    n = x.size
    f0 = f(x)
    e = np.eye(n) * h
    fp = np.array([f(x + e[i]) for i in range(n)])
    fm = np.array([f(x - e[i]) for i in range(n)])
    g = (fp - fm) / (2 * h)
    hess = np.diag((fp - 2 * f0 + fm) / h**2)
    for i in range(n):
        for j in range(i):
            v = (
                f(x + e[i] + e[j]) - f(x + e[i] - e[j]) - f(x - e[i] + e[j]) + f(x - e[i] - e[j])
            ) / (4 * h[i] * h[j])
            hess[i, j] = hess[j, i] = v
    return g, hess


# =========================================================================== cards
def _card_b() -> dict:
    """Exact card: ch1 without autoMCStats (explicit rates, template normalised), ch2 with
    autoMCStats 150 (only per-process Poisson and Gaussian parameters), counting ch3 with gmN;
    lnN symmetric and asymmetric, shape scale 1 and 0.5, shape? (shape and lnN), rateParam."""
    inputs = templates()
    cols = []
    for ch in ("ch1", "ch2"):
        for p, _ in (("sig", 0), ("bkg", 1), ("other", 2)):
            rate = -1 if ch == "ch2" or p != "bkg" else float(inputs[(ch, p)][0].sum()) * 1.004
            cols.append((ch, p, rate))
    cols += [("ch3", "sig", 3.0), ("ch3", "bkg", 10.0), ("ch3", "other", 5.0)]
    spec = {
        "channels": {"ch1": "shape", "ch2": "shape", "ch3": 17},
        "columns": cols,
        "lnN": {
            "lumi": {(c, p): 1.025 for c in ("ch1", "ch2", "ch3") for p in ("sig", "other")},
            "bkgNorm": {(c, "bkg"): (0.92, 1.1) for c in ("ch1", "ch2", "ch3")},
        },
        "shape": {
            "shapeA": {(c, p): 1.0 for c in ("ch1", "ch2") for p in ("sig", "bkg")},
            "shapeB": {(c, "other"): 0.5 for c in ("ch1", "ch2")},
        },
        "shape?": {"shapeC": {("ch1", "sig"): 1.0, ("ch1", "other"): 1.04, ("ch3", "bkg"): 1.06}},
        "gmN": {"otherStat": (20, {("ch3", "other"): 0.25})},
        "rateParam": [("bkgScale", "ch[12]", "bkg", 1.0, None)],
        "groups": {"theory": ["shapeA", "shapeB", "shapeC"], "norms": ["lumi", "bkgNorm"]},
        "auto": {"ch2": (150, False)},
    }
    return spec, inputs


def _card_a() -> dict:
    """Card with Barlow-Beeston-lite bins: autoMCStats 10 on ch1 and 100 on ch2."""
    spec, inputs = _card_b()
    spec = dict(spec)
    spec["channels"] = {"ch1": "shape", "ch2": "shape"}
    spec["columns"] = [(c, p, -1) for c, p, _ in spec["columns"] if c != "ch3"]
    spec.pop("gmN")
    spec["lnN"] = {
        k: {cp: v for cp, v in vals.items() if cp[0] != "ch3"} for k, vals in spec["lnN"].items()
    }
    spec["auto"] = {"ch1": (10, False), "ch2": (100, False)}
    return spec, inputs


def _import(tmp_path: Path, spec: dict, inputs: dict, name: str = "card"):
    folder = tmp_path / name
    folder.mkdir()
    write_templates(folder, inputs)
    card = write_card(folder / f"{name}.txt", spec_card(spec))
    rep = import_combine(card, folder / f"{name}.h5")
    return rep, folder / f"{name}.h5"


def _our_fit(path: Path, scan_r=(), bb=None):
    m = build_model(open_archive(path), bb=bb)
    pts = {"r": [r - 1.0 for r in scan_r]} if len(scan_r) else None
    return fit(m, impacts=(), gof=False, scan_points=pts, edm_tol=1e-12)


def _scan_q(result) -> np.ndarray:
    (sc,) = [s for s in result.scans if s.poi == "r"]
    assert all(sc.converged)
    return np.asarray(sc.two_delta_nll)


def _ref_scan(ref: CombineReference, r_values, nll_min):
    return np.array([2 * (ref.minimise({"r": r}).fval - nll_min) for r in r_values])


# =========================================================================== (b)
def test_exact_card_agrees_with_independent_combine_likelihood(tmp_path):
    spec, inputs = _card_b()
    rep, path = _import(tmp_path, spec, inputs)
    assert rep.mc_stat == "none"  # ch2's bins are all per-process: no Barlow-Beeston-lite
    kinds = {p.source for p in rep.parameters}
    assert {"r", "lnN", "shape", "gmN", "rateParam", "autoMCStats"} <= kinds
    ref = CombineReference(spec, inputs).fit()
    r_values = [ref["r"] - 0.6, ref["r"] + 0.4, ref["r"] + 1.0]
    ours = _our_fit(path, r_values)
    r = ours.poi("r")
    assert r.physical_value == pytest.approx(ref["r"], rel=1e-4)
    assert r.physical_error == pytest.approx(ref["sigma_r"], rel=1e-4)
    # every nuisance at Combine's best fit (values in Combine's terms through the report)
    vals = rep.combine_values(ours)
    ref_x = dict(zip(CombineReference(spec, inputs).names, ref["x"], strict=True))
    for name in ("lumi", "bkgNorm", "shapeA", "shapeB", "shapeC", "otherStat", "bkgScale"):
        assert vals[name][0] == pytest.approx(ref_x[name], abs=2e-4, rel=1e-4), name
    q_ref = _ref_scan(CombineReference(spec, inputs), r_values, ref["nll"])
    q = np.asarray(_scan_q(ours))
    np.testing.assert_allclose(q, q_ref, rtol=1e-4, atol=1e-3)


def test_lite_card_agrees_with_reference_in_the_archive_convention(tmp_path):
    """Barlow-Beeston-lite bins fitted with the archive's older convention (bb="normal": the
    parameter's width fixed relative to the bin's total yield): exact against Combine's model
    with that convention."""
    spec, inputs = _card_a()
    rep, path = _import(tmp_path, spec, inputs)
    assert rep.mc_stat == "combine"
    r_values = [0.2, 1.8]
    ours = _our_fit(path, r_values, bb="normal")
    r = ours.poi("r")
    ref_a = CombineReference(spec, inputs, bb="archive")
    fa = ref_a.fit()
    assert r.physical_value == pytest.approx(fa["r"], rel=1e-4)
    assert r.physical_error == pytest.approx(fa["sigma_r"], rel=1e-4)
    np.testing.assert_allclose(
        _scan_q(ours), _ref_scan(ref_a, r_values, fa["nll"]), rtol=1e-4, atol=1e-3
    )


# 15 s; bb "combine" against an independent calculation of Combine's Barlow-Beeston lite (best
# fit, uncertainty, scan) is in the fast set: tests/test_combine_semantics.py::
# test_bb_lite_matches_an_independent_numerical_minimisation
@pytest.mark.slow
def test_lite_card_agrees_with_combines_own_barlow_beeston(tmp_path):
    """The imported archive (mc_stat "combine": Combine's width sqrt(sum_p (e_p c_p)^2), the
    errors following the current normalisations c_p) against the independent implementation
    of Combine's likelihood: best fit, uncertainty and scan."""
    spec, inputs = _card_a()
    _, path = _import(tmp_path, spec, inputs)
    r_values = [0.2, 1.8]
    ours = _our_fit(path, r_values)
    assert ours.model.bb == "combine"
    r = ours.poi("r")
    ref_c = CombineReference(spec, inputs, bb="combine")
    fc = ref_c.fit()
    assert r.physical_value == pytest.approx(fc["r"], rel=1e-4)
    assert r.physical_error == pytest.approx(fc["sigma_r"], rel=1e-4)
    np.testing.assert_allclose(
        _scan_q(ours), _ref_scan(ref_c, r_values, fc["nll"]), rtol=1e-4, atol=1e-3
    )


# =========================================================================== (a)
def test_counting_card_closed_form(tmp_path):
    """One bin, signal s, background b with lnN kappa: r_hat = (n - b) / s and, at the
    minimum (theta_hat = 0), sigma_r^2 = (n + b^2 ln^2 kappa) / s^2 exactly; the profile scan
    equals the one-dimensional profile of the Poisson term and the constraint."""
    from scipy.optimize import minimize_scalar

    s, b, n, kappa = 5.0, 20.0, 31.0, 1.1
    text = card_text(
        ["cnt"],
        [n],
        [("cnt", "sig", 0, s), ("cnt", "bkg", 1, b)],
        ["bkgUnc lnN - 1.1"],
        counts=("1", "1", "1"),
    )
    card = write_card(tmp_path / "count.txt", text)
    rep = import_combine(card, tmp_path / "count.h5")
    assert rep.channels == {"cnt": 1} and rep.signals == ["sig"]
    r_values = [0.5, 1.5, 3.0, 4.5]
    ours = _our_fit(tmp_path / "count.h5", r_values)
    r = ours.poi("r")
    assert r.physical_value == pytest.approx((n - b) / s, rel=1e-7)
    lk = math.log(kappa)
    assert r.physical_error == pytest.approx(math.sqrt(n + (b * lk) ** 2) / s, rel=1e-6)

    def q(rv):
        def f(th):
            nu = rv * s + b * kappa**th
            return 2 * (nu - n + n * math.log(n / nu)) + th * th

        return minimize_scalar(f, bounds=(-8, 8), method="bounded", options={"xatol": 1e-12}).fun

    np.testing.assert_allclose(_scan_q(ours), [q(v) for v in r_values], rtol=1e-4, atol=1e-6)


# =========================================================================== (c)
def test_pyhf_agrees_on_a_card_it_expresses_exactly(tmp_path):
    """lnN (symmetric) = normsys code1, shape with a log-symmetric normalisation = histosys
    code4p on the normalised templates + normsys code1, autoMCStats 0 = staterror, r and
    rateParam = normfactor: pyhf's fit and ours agree."""
    pyhf = pytest.importorskip("pyhf")
    inputs = templates()
    v_s, var_s = inputs[("ch1", "sig")]
    v_b, var_b = inputs[("ch1", "bkg")]
    data = inputs[("ch1", "data_obs")][0]
    slope = np.linspace(-1.0, 1.0, v_b.size)
    h = v_b.sum()
    up_n = v_b * (1 + 0.08 * slope) / (v_b * (1 + 0.08 * slope)).sum()
    down_n = v_b * (1 - 0.06 * slope) / (v_b * (1 - 0.06 * slope)).sum()
    up, down = up_n * h * 1.03, down_n * h / 1.03
    files = {
        "ch1/sig": th1(v_s, EDGES["ch1"], var_s),
        "ch1/bkg": th1(v_b, EDGES["ch1"], var_b),
        "ch1/bkg_shapeSUp": th1(up, EDGES["ch1"], 0.25 * up),
        "ch1/bkg_shapeSDown": th1(down, EDGES["ch1"], 0.25 * down),
        "ch1/data_obs": th1(data, EDGES["ch1"]),
    }
    write_root(tmp_path / "shapes.root", files)
    text = card_text(
        ["ch1"],
        [-1],
        [("ch1", "sig", 0, -1), ("ch1", "bkg", 1, -1)],
        ["lumi lnN 1.025 -", "bkgNorm lnN - 1.1", "shapeS shape - 1"],
        ["shapes * * shapes.root $CHANNEL/$PROCESS $CHANNEL/$PROCESS_$SYSTEMATIC"],
        ["bkgScale rateParam ch1 bkg 1", "ch1 autoMCStats 0"],
    )
    card = write_card(tmp_path / "p.txt", text)
    rep = import_combine(card, tmp_path / "p.h5")
    assert rep.mc_stat == "combine"
    r_values = [0.3, 2.0]
    ours = _our_fit(tmp_path / "p.h5", r_values, bb="normal")  # pyhf's staterror

    spec = {
        "channels": [
            {
                "name": "ch1",
                "samples": [
                    {
                        "name": "sig",
                        "data": v_s.tolist(),
                        "modifiers": [
                            {"name": "r", "type": "normfactor", "data": None},
                            {
                                "name": "lumi",
                                "type": "normsys",
                                "data": {"hi": 1.025, "lo": 1 / 1.025},
                            },
                            {"name": "stat", "type": "staterror", "data": np.sqrt(var_s).tolist()},
                        ],
                    },
                    {
                        "name": "bkg",
                        "data": v_b.tolist(),
                        "modifiers": [
                            {"name": "bkgScale", "type": "normfactor", "data": None},
                            {
                                "name": "bkgNorm",
                                "type": "normsys",
                                "data": {"hi": 1.1, "lo": 1 / 1.1},
                            },
                            {
                                "name": "shapeS",
                                "type": "histosys",
                                "data": {
                                    "hi_data": (up_n * h).tolist(),
                                    "lo_data": (down_n * h).tolist(),
                                },
                            },
                            {
                                "name": "shapeS",
                                "type": "normsys",
                                "data": {"hi": 1.03, "lo": 1 / 1.03},
                            },
                            {"name": "stat", "type": "staterror", "data": np.sqrt(var_b).tolist()},
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "ch1", "data": data.tolist()}],
        "measurements": [
            {
                "name": "m",
                "config": {
                    "poi": "r",
                    "parameters": [
                        {"name": "r", "bounds": [[-5.0, 10.0]]},
                        {"name": "bkgScale", "bounds": [[0.0, 10.0]]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }
    pyhf.set_backend("numpy")
    ws = pyhf.Workspace(spec)
    model = ws.model(
        modifier_settings={
            "normsys": {"interpcode": "code1"},
            "histosys": {"interpcode": "code4p"},
        }
    )
    obs = np.asarray(ws.data(model), dtype=np.float64)

    def f(x):
        return float(-model.logpdf(np.asarray(x), obs)[0])

    best = np.asarray(pyhf.infer.mle.fit(obs, model))
    err = 1e-3 * np.ones(best.size)
    for _ in range(3):  # Newton steps with central differences: the precise minimum
        g, hess = _numeric_derivatives(f, best, err)
        best = best - np.linalg.solve(hess, g)
    g, hess = _numeric_derivatives(f, best, err)
    cov = np.linalg.inv(hess)
    i = model.config.poi_index
    r = ours.poi("r")
    assert r.physical_value == pytest.approx(best[i], rel=1e-4)
    assert r.physical_error == pytest.approx(math.sqrt(cov[i, i]), rel=1e-4)
    vals = rep.combine_values(ours)
    j = model.config.par_slice("bkgScale").start
    assert vals["bkgScale"][0] == pytest.approx(best[j], rel=1e-4)
    q_pyhf = []
    for rv in r_values:
        fixed = np.asarray(pyhf.infer.mle.fixed_poi_fit(rv, obs, model))
        q_pyhf.append(2 * (f(fixed) - f(best)))
    np.testing.assert_allclose(_scan_q(ours), q_pyhf, rtol=1e-4, atol=1e-3)


# =========================================================================== pure mapping
def test_parser_reads_the_card_directives():
    text = """Combination of a.txt b.txt
imax 2 number of channels
jmax 1
kmax *   # systematics
---------------
shapes * * f.root $CHANNEL/$PROCESS $CHANNEL/$PROCESS_$SYSTEMATIC
shapes data_obs chB FAKE
---------------
bin chA chB
observation -1 7
---------------
bin      chA  chA  chB chB
process  1    0    0   1
process  bkg  sig  sig bkg
rate     -1   -1   2.5 4.0
---------------
lumi  lnN  1.02  1.02 - 0.97/1.04   # comment
shp   shape  1  -   0  -
st    gmN 12   - - - 0.333
free  rateParam ch* bkg 1.5 [0,4]
grp group = lumi shp
grp group += free
ch* autoMCStats 5 1 2
"""
    card = parse_datacard_text(text, "x/card.txt")
    assert card.bins == ["chA", "chB"] and card.processes == ["bkg", "sig"]
    assert card.signals == ["sig"]
    assert card.columns == [("chA", "bkg"), ("chA", "sig"), ("chB", "sig"), ("chB", "bkg")]
    assert card.rates[("chB", "bkg")] == 4.0 and card.observation == {"chA": -1, "chB": 7}
    lumi, shp, st = card.systematics
    assert lumi.effects == {
        ("chA", "bkg"): 1.02,
        ("chA", "sig"): 1.02,
        ("chB", "bkg"): (0.97, 1.04),
    }
    assert shp.kind == "shape" and shp.effects == {("chA", "bkg"): 1.0}
    assert st.n_events == 12 and st.effects == {("chB", "bkg"): 0.333}
    assert [(r.bin, r.process, r.initial, r.range) for r in card.rate_params] == [
        ("chA", "bkg", 1.5, (0.0, 4.0)),
        ("chB", "bkg", 1.5, (0.0, 4.0)),
    ]
    assert card.groups == {"grp": ["lumi", "shp", "free"]}
    assert card.auto_mc_stats["chA"].include_signal and card.auto_mc_stats["chB"].hist_mode == 2
    assert [(r.process, r.channel, r.file) for r in card.shapes][1] == ("data_obs", "chB", "FAKE")


def test_morph_shifts_and_kappas():
    nom = Histogram(np.array([10.0, 20.0, 30.0]), np.zeros(3), np.arange(4.0))
    up = Histogram(np.array([12.0, 22.0, 32.0]), np.zeros(3), np.arange(4.0))
    down = Histogram(np.array([9.0, 18.0, 30.0]), np.zeros(3), np.arange(4.0))
    du, dd, kd, ku = morph_shifts(nom, up, down, 1.0, 1)
    assert ku == pytest.approx(66 / 60) and kd == pytest.approx(57 / 60)
    np.testing.assert_allclose(du, up.values * 60 / 66 - nom.values)  # normalised templates
    np.testing.assert_allclose(dd, down.values * 60 / 57 - nom.values)
    assert du.sum() == pytest.approx(0, abs=1e-12)
    du2, dd2, kd2, ku2 = morph_shifts(nom, up, down, 1.0, 2)
    np.testing.assert_allclose(du2, [2, 2, 2])  # hist-mode 2: raw templates, no kappas
    assert (kd2, ku2) == (1.0, 1.0)
    # a prior scale p = s / q: kappa^(1/p) on the archive's t = p theta (symmetric only)
    assert lnn_under_prior(1 / 1.2, 1.2, 2.0, "x") == pytest.approx((1.2**-0.5, 1.2**0.5))
    assert lnn_under_prior(0.9, 1.2, 1.0, "x") == (0.9, 1.2)
    with pytest.raises(CombineImportError, match="asymmetric"):
        lnn_under_prior(0.9, 1.2, 2.0, "'s' of 'p' in 'c'")


def test_auto_mc_stats_classification():
    """Combine's rules: n_eff = round(n^2 / e^2) of the backgrounds against the threshold;
    per process Poisson (tau = round(v^2 / e^2)) or Gaussian parameters below it."""
    values = {
        "sig": np.array([5.0, 5.0, 5.0, 1.0]),
        "bkg": np.array([100.0, 4.0, 0.5, 3.0]),
        "oth": np.array([0.0, 9.0, 2.0, 0.0]),
    }
    errors = {
        "sig": np.array([0.1, 0.1, 1.0, 0.2]),
        "bkg": np.array([5.0, 4.0, 1.0, 0.0]),  # bin 1: 1 effective event; bin 2: e > v
        "oth": np.array([1.0, 0.5, 2.0, 0.0]),  # bin 1: 324 effective events
    }
    plan = classify_bins(values, errors, ["sig"], threshold=10)
    # bin 0: 384 background events; bin 1: 169 / 16.25 -> 10 <= 10; bin 2: 1; bin 3: e = 0
    assert plan.lite.tolist() == [True, False, False, False]
    got = {(s.bin, s.process): (s.kind, s.tau) for s in plan.per_process}
    assert got == {
        (1, "sig"): ("gaussian", None),  # 2500 effective events > 10 (signals always counted)
        (1, "bkg"): ("poisson", 1.0),
        (1, "oth"): ("gaussian", None),
        (2, "sig"): ("gaussian", None),
        (2, "bkg"): ("gaussian", None),  # error above the yield: Poisson not viable
        (2, "oth"): ("poisson", 1.0),
    }
    inc = classify_bins(values, errors, ["sig"], threshold=10, include_signal=True)
    # with the signal in the sums: bin 1 has 324 / 16.26 -> 20 events, bin 3 the signal's 25
    assert inc.lite.tolist() == [True, True, False, True]


# =========================================================================== content, groups
def test_multichannel_archive_content_and_groups(tmp_path):
    spec, inputs = _card_b()
    rep, path = _import(tmp_path, spec, inputs)
    a = open_archive(path)
    assert [c.name for c in a.channels] == ["ch1", "ch2", "ch3"]
    ax1, ax2 = a.channels[0].axes[0], a.channels[1].axes[0]
    assert ax1.type == "regular" and (ax1.bins, ax1.lower, ax1.upper) == (5, 0.0, 5.0)
    assert ax2.type == "variable" and ax2.edges == EDGES["ch2"].tolist()
    v, _ = inputs[("ch1", "bkg")]
    np.testing.assert_allclose(a.nominal("bkg", "ch1"), 1.004 * v, rtol=1e-12)  # rate x shape
    np.testing.assert_allclose(a.nominal("bkg", "ch2"), inputs[("ch2", "bkg")][0], rtol=1e-12)
    np.testing.assert_allclose(a.nominal("other", "ch3"), [5.0])  # gmN: alpha N
    np.testing.assert_allclose(a.data("ch2"), inputs[("ch2", "data_obs")][0])
    nus = {n.name: n for n in a.nuisances}
    assert nus["otherStat"].constraint == "poisson" and nus["otherStat"].tau == 20
    assert nus["bkgScale"].constraint == "none"
    assert nus["shapeB"].prior_scale == 1.0  # scale 0.5 = the process's smoothing region
    assert set(nus["shapeA"].groups) == {"theory"} and set(nus["lumi"].groups) == {"norms"}
    stats = [n for n in nus.values() if n.name.startswith("prop_binch2_")]
    assert stats and all(n.groups == ["autoMCStats"] for n in stats)
    assert {n.constraint for n in stats} == {"poisson", "gaussian"}
    assert np.all(a.sumw2("bkg", "ch1") == 0)  # no autoMCStats in ch1
    assert [p.name for p in a.pois] == ["r"] and a.pois[0].acts_on[0].process == "sig"
    # shapeB (scale 0.5): the archive's shifts are 0.5 x the normalised-template shifts
    mods = a.modifiers("ch1").additive
    names = [pn.name for pn in a.pois] + [n.name for n in a.nuisances]
    row = [k for k in range(mods.n_rows) if names[mods.parameter[k]] == "shapeB"][0]
    vo = inputs[("ch1", "other")][0]
    uo = inputs[("ch1", "other_shapeBUp")][0]
    np.testing.assert_allclose(mods.up[row], 0.5 * (uo * vo.sum() / uo.sum() - vo), rtol=1e-10)


def test_remap_and_relative_paths(tmp_path):
    inputs = templates()
    shapes = tmp_path / "elsewhere"
    shapes.mkdir()
    write_templates(shapes, {k: v for k, v in inputs.items() if k[0] == "ch1"})
    cols = [("ch1", "sig", 0, -1), ("ch1", "bkg", 1, -1)]
    line = "shapes * * /eos/user/x/shapes.root $CHANNEL/$PROCESS"
    card = write_card(tmp_path / "c.txt", card_text(["ch1"], [-1], cols, [], [line]))
    with pytest.raises(
        CombineImportError, match=r"c\.txt: line \d+: .*/eos/user/x/shapes\.root.*--remap"
    ):
        import_combine(card, tmp_path / "c.h5")
    rep = import_combine(card, tmp_path / "c.h5", remap={"/eos/user/x": str(shapes)})
    assert rep.inputs == [shapes / "shapes.root"]
    rel = write_card(
        tmp_path / "d.txt",
        card_text(["ch1"], [-1], cols, [], ["shapes * * elsewhere/shapes.root $CHANNEL/$PROCESS"]),
    )
    assert import_combine(rel, tmp_path / "d.h5").channels == {"ch1": 5}


# =========================================================================== bad input
def _bad_card(tmp_path, systematics=(), extra=(), shapes=None, cols=None):
    inputs = templates()
    write_templates(tmp_path, {k: v for k, v in inputs.items() if k[0] == "ch1"})
    cols = cols or [("ch1", "sig", 0, -1), ("ch1", "bkg", 1, -1)]
    shapes = shapes or ["shapes * * shapes.root $CHANNEL/$PROCESS $CHANNEL/$PROCESS_$SYSTEMATIC"]
    return write_card(
        tmp_path / "bad.txt", card_text(["ch1"], [-1], cols, list(systematics), shapes, list(extra))
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"shapes": ["shapes * * nope.root $CHANNEL/$PROCESS"]},
            r"shape file .*nope\.root does not exist",
        ),
        (
            {"shapes": ["shapes * * shapes.root $CHANNEL/$PROCESS_x"]},
            r"no histogram 'ch1/data_obs_x' in shapes\.root",
        ),
        (
            {"extra": ["sc rateParam ch1 ghost 1"]},
            r"rateParam 'sc': bin 'ch1' / process 'ghost' match nothing",
        ),
        ({"extra": ["g group = lumi"]}, r"group 'g' names unknown nuisance 'lumi'"),
        ({"systematics": ["bkgShape shape - 1"]}, r"no histogram 'ch1/bkg_bkgShapeUp'"),
        (
            {"systematics": ["a param 0 1"]},
            r"line \d+: 'a param': 'param' constraints are not supported",
        ),
        ({"systematics": ["nuisance edit rename a b"]}, r"'nuisance edit' lines are not supported"),
        ({"systematics": ["u lnU - 2"]}, r"'u lnU': log-uniform"),
        ({"extra": ["f rateParam ch1 bkg (@0*2) sc"]}, r"formula rateParams are not supported"),
        ({"shapes": ["shapes * * shapes.root w:$PROCESS"]}, r"RooFit workspace object"),
        ({"systematics": ["x lnN -1 -"]}, r"negative value -1"),
        (
            {"cols": [("ch1", "sig", 0, 9.0), ("ch1", "bkg", 1, -1)]},
            r"rate 9 of 'sig' in bin 'ch1' differs",
        ),
    ],
)
def test_bad_input_one_line_errors(tmp_path, kwargs, match):
    card = _bad_card(tmp_path, **kwargs)
    with pytest.raises(CombineImportError, match=match) as exc:
        import_combine(card, tmp_path / "bad.h5")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("bad.txt")
    assert not (tmp_path / "bad.h5").exists()


def test_cli_imports_and_reports_one_line_errors(tmp_path):
    from wmass_archive.cli.archive_cmd import main

    card = _bad_card(tmp_path, systematics=["lumi lnN 1.02 1.02"])
    runner = CliRunner()
    res = runner.invoke(main, ["import", "combine", str(card), "-o", str(tmp_path / "ok.h5")])
    assert res.exit_code == 0, res.output
    assert "imported" in res.output and (tmp_path / "ok.h5").is_file()
    res = runner.invoke(main, ["import", "combine", str(card), "-o", str(tmp_path / "ok.h5")])
    assert res.exit_code == 1 and "exists" in res.output  # no --overwrite
    bad = _bad_card(tmp_path, systematics=["a param 0 1"])
    res = runner.invoke(main, ["import", "combine", str(bad), "-o", str(tmp_path / "x.h5")])
    assert res.exit_code == 1
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: bad.txt: line")
    res = runner.invoke(main, ["import", "combine", str(card), "--remap", "noequals", "-o", "y.h5"])
    assert res.exit_code == 2


def test_histogram_types(tmp_path):
    """TH1I/TH1F/TH1D contents, sumw2 when stored (else |content|, ROOT's GetBinError),
    variable edges; a TH2 is refused."""
    import hist
    import uproot

    from wmass_archive.interop.combine._shapes import ShapeReader

    edges = np.array([0.0, 1.0, 3.0, 7.0])
    write_root(
        tmp_path / "h.root",
        {
            "c/i": th1([3, 0, 5], edges, kind="I"),
            "c/f": th1([1.5, 2.5, 0.5], edges, [0.5, 1, 2], "F"),
        },
    )
    with uproot.update(tmp_path / "h.root") as f:
        f["c/h2"] = hist.Hist.new.Reg(2, 0, 1).Reg(2, 0, 1).Double()
    card = parse_datacard_text(
        card_text(
            ["c"],
            [-1],
            [("c", "i", 0, -1), ("c", "f", 1, -1), ("c", "h2", 2, -1)],
            [],
            ["shapes * * h.root $CHANNEL/$PROCESS"],
        ),
        tmp_path / "card.txt",
    )
    with ShapeReader(card) as rd:
        hi, hf = rd.read("c", "i"), rd.read("c", "f")
        np.testing.assert_array_equal(hi.values, [3, 0, 5])
        np.testing.assert_array_equal(hi.variances, [3, 0, 5])
        np.testing.assert_array_equal(hf.variances, [0.5, 1, 2])
        np.testing.assert_array_equal(hf.edges, edges)
        with pytest.raises(CombineImportError, match=r"'c/h2' in h\.root is a TH2D"):
            rd.read("c", "h2")
