"""``wmass-refit`` and ``refit`` on archives that are not W-mass analyses (rate POIs only, no
theory, no PDF set; as imported from pyhf or Combine), checked against the same likelihood
written out independently in numpy (tests/refit_archives.py: ``rates_expected``) and minimised
with scipy; and the one-line errors of the options that need a theory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from refit_archives import RATES_MODIFIER_PARAMS, RATES_PARAMS, rates_expected
from scipy.optimize import minimize

from wmass_archive.archive import open_archive
from wmass_archive.cli.refit_cmd import main
from wmass_archive.refit import RefitError, refit


def _inputs(path):
    """Observed counts, Barlow-Beeston k per bin and the bins where it applies, read from the
    archive (k = (sum_p N)^2 / sum_p sumw2: the effective number of simulated events)."""
    with open_archive(path) as a:
        sel = a.select()
        n, nom, w2 = sel.data(), sel.nominal().sum(axis=0), sel.sumw2().sum(axis=0)
    on = (w2 > 0) & (nom > 0)
    return n, np.where(on, nom**2 / np.where(on, w2, 1.0), 1.0), on


def reference_nll(theta, n, k, on, modifiers: bool, bb: bool, beta_fixed=None) -> float:
    """-ln L relative to the saturated model: Poisson terms with the Barlow-Beeston-lite factor
    beta = (n + k) / (nu + k) profiled (gamma constraint), or held at ``beta_fixed``; unit
    gaussian constraints of the nuisances."""
    nu = rates_expected(theta, modifiers)
    beta = np.where(on, (n + k) / (nu + k), 1.0) if bb else np.ones_like(nu)
    if beta_fixed is not None:
        beta = beta_fixed
    cons = np.where(on, k * (beta - 1.0) - k * np.log(beta), 0.0) if bb else 0.0
    bnu = beta * nu
    pos = n > 0
    phi = bnu - n + np.where(pos, n * np.log(np.where(pos, n, 1.0) / bnu), 0.0)
    return float(np.sum(phi + cons) + 0.5 * np.sum(np.square(theta[2:])))


def fd_hessian(f, x, h: float = 1e-4) -> np.ndarray:
    """The Hessian of ``f`` at ``x`` by central finite differences."""
    dim = x.size
    hess = np.zeros((dim, dim))
    for i in range(dim):
        for j in range(i, dim):
            e_i, e_j = np.eye(dim)[i] * h, np.eye(dim)[j] * h
            hess[i, j] = hess[j, i] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (4 * h * h)
    return hess


def reference_fit(path, modifiers: bool = False, bb: bool = True):
    """(theta_hat, covariance, nll) of the numpy likelihood: BFGS, then the Hessian by central
    finite differences."""
    n, k, on = _inputs(path)
    dim = len(RATES_PARAMS) + (len(RATES_MODIFIER_PARAMS) if modifiers else 0)

    def f(t):
        return reference_nll(t, n, k, on, modifiers, bb)

    res = minimize(f, np.zeros(dim), method="BFGS", options={"gtol": 1e-10, "maxiter": 10000})
    x = res.x
    return x, np.linalg.inv(fd_hessian(f, x)), f(x)


@pytest.fixture(scope="module")
def rates(arcs):
    return refit(arcs["rates"], scan=5, toys=2, workers=1)


def test_rate_pois_match_the_numpy_likelihood(rates, arcs):
    r = rates
    assert r.fit.converged and r.pdf is None and r.theory is None
    assert list(r.pois) == ["mu", "xs"] and r.poi_definition == "mu"
    assert r.model.parameter_names == list(RATES_PARAMS)
    x, cov, nll = reference_fit(arcs["rates"])
    central, scale = {"mu": 1.0, "xs": 10.0}, {"mu": 1.0, "xs": 2.0}
    for i, name in enumerate(("mu", "xs")):
        p = r.pois[name]
        assert p.kind == "rate" and p.value_mev is None and p.unc_mev is None
        assert (p.central, p.scale) == (central[name], scale[name])
        assert p.value == pytest.approx(x[i], abs=1e-5)
        assert p.unc == pytest.approx(np.sqrt(cov[i, i]), rel=1e-4)
        assert p.physical_value == pytest.approx(central[name] + scale[name] * x[i], abs=1e-5)
        assert p.physical_unc == pytest.approx(scale[name] * np.sqrt(cov[i, i]), rel=1e-4)
        assert p.stat**2 + p.syst**2 == pytest.approx(p.physical_unc**2, rel=1e-9)
    assert r.pois["xs"].unit == "pb"
    assert r.gof.chi2 == pytest.approx(2 * nll, abs=1e-6) and r.gof.ndof == 16 - 2
    # impacts of every group on both POIs, in their units
    assert set(r.impacts_by_poi) == {"mu", "xs"} and r.impacts.poi == "mu"
    for imp in r.impacts_by_poi.values():
        assert {"lumi", "bkg", "theory", "stat", "binByBinStat"} <= set(imp.nominal)
        assert imp.total == pytest.approx(r.pois[imp.poi].physical_unc, rel=1e-9)
        glob = [v for v in imp.global_.values() if v is not None]
        # global squares add up to the total (groups here hold disjoint nuisances)
        assert np.sqrt(np.sum(np.square(glob))) == pytest.approx(imp.total, rel=1e-3)
    # scan and toys of the first POI only
    assert [s.poi for s in r.scans] == ["mu"]
    s = r.scans[0]
    assert s.physical_values[2] == pytest.approx(r.pois["mu"].physical_value, abs=1e-9)
    assert min(s.two_delta_nll) == pytest.approx(0.0, abs=1e-6)
    assert r.toys.poi == "mu" and r.toys.unit == "" and r.toys.n_converged == 2


def test_rate_result_block(rates):
    text = rates.summary()
    mu, xs = rates.pois["mu"], rates.pois["xs"]
    assert "wmass-refit: fit of mu, xs" in text and "mW" not in text and "MeV" not in text
    assert f"mu = {mu.physical_value:.3f} +- {mu.physical_unc:.3f} (stat " in text
    assert f"xs = {xs.physical_value:.1f} +- {xs.physical_unc:.1f} pb" in text
    assert f"[theta {xs.value:.4g} +- {xs.unc:.3g}]" in text  # scale 2: theta shown too
    assert "Impacts on mu  " in text and "Impacts on xs (pb)" in text
    assert "Likelihood scan of mu: 5 points over mu in [" in text and "Toys: 2" in text
    assert "PDF set" not in text and "\n  theory " not in text and "BLINDED" not in text


def test_poi_by_name_and_errors(arcs):
    r = refit(arcs["rates"], poi="xs", scan=3, impacts="nominal", toys=2, workers=1)
    assert list(r.pois) == ["xs", "mu"] and r.poi_definition == "xs"
    assert r.impacts.poi == "xs" and list(r.impacts_by_poi) == ["xs", "mu"]
    assert [s.poi for s in r.scans] == ["xs"] and r.scans[0].unit == "pb"
    assert r.toys.poi == "xs" and r.toys.unit == "pb"
    with pytest.raises(RefitError, match=r"unknown POI 'r'.*\(mu, xs\)"):
        refit(arcs["rates"], poi="r")
    with pytest.raises(Exception, match="no mass POI"):
        refit(arcs["rates"], poi="mw-charge")
    for opts in (
        {"pdf": "CT10"},
        {"pdf_scale": 2.0},
        {"theory": np.ones(3)},
        {"pdf_sweep": True},
        {"pdf_bias": True},
    ):
        opt = "--" + next(iter(opts)).replace("_", "-").replace("theory", "theory-grid")
        with pytest.raises(RefitError, match=f"rates.h5 has no theory.*{opt}"):
            refit(arcs["rates"], **opts)


def run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_on_a_rate_archive(arcs, tmp_path):
    js, plots = tmp_path / "r.json", tmp_path / "plots"
    args = ["--poi", "xs", "--json", js, "--impacts", "global", "--scan", "3", "--plot", plots]
    res = run(["--archive", arcs["rates"], *args])
    assert res.exit_code == 0, res.output
    assert "xs = " in res.stdout and "Impacts on xs (pb)" in res.stdout
    assert (plots / "scan_xs.png").is_file() and not (plots / "scan_mu.png").exists()
    d = json.loads(js.read_text())
    assert list(d["pois"]) == ["xs", "mu"] and d["pois"]["mu"]["value_mev"] is None
    assert d["pois"]["xs"]["physical_value"] == pytest.approx(
        10.0 + 2.0 * d["pois"]["xs"]["value"], abs=1e-9
    )
    jsonschema = pytest.importorskip("jsonschema")
    from wmass_archive.refit.schema import json_schema

    jsonschema.validate(d, json_schema())
    grid = tmp_path / "g.csv"
    grid.write_text("x\n")
    for args in (
        ["--pdf", "CT10"],
        ["--pdf-scale", "2"],
        ["--theory-grid", grid],
        ["--pdf-sweep"],
        ["--pdf-bias"],
        ["--poi", "nope"],
    ):
        res = run(["--archive", arcs["rates"], *args])
        assert res.exit_code == 1, (args, res.output)
        err = res.stderr.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert args[0] in err or "unknown POI 'nope'" in err, err


def test_format_1_1_archive_with_additive_and_linear_modifiers(arcs):
    if "modifiers" not in arcs:
        pytest.skip("the archive writer has no format 1.1 modifiers yet")
    r = refit(arcs["modifiers"], impacts="nominal")
    assert r.archive.format_version.startswith("1.1") and r.fit.converged
    assert r.model.parameter_names == list(RATES_PARAMS + RATES_MODIFIER_PARAMS)
    x, cov, nll = reference_fit(arcs["modifiers"], modifiers=True)
    for i, name in enumerate(("mu", "xs")):
        assert r.pois[name].value == pytest.approx(x[i], abs=1e-5)
        assert r.pois[name].unc == pytest.approx(np.sqrt(cov[i, i]), rel=1e-4)
    assert r.gof.chi2 == pytest.approx(2 * nll, abs=1e-6)
    assert r.impacts.nominal["theory"] > r.impacts.nominal["binByBinStat"] > 0
    assert "mu = " in r.summary()


def test_stat_and_mc_stat_nominal_impacts_follow_rabbit(rates, arcs):
    """Nominal ``stat`` and ``binByBinStat`` as rabbit defines them (impacts_parms): on the block
    of the POIs and unconstrained nuisances (the constrained ones fixed, as Combine's
    allConstrainedNuisances), stat = sqrt of the variance with the Barlow-Beeston factors frozen
    at their postfit values, binByBinStat = sqrt of the variance with them profiled minus
    that. Against the numpy likelihood's finite-difference Hessians, profiled and with beta
    held at its profiled value at the minimum."""
    n, k, on = _inputs(arcs["rates"])
    x, _, _ = reference_fit(arcs["rates"], bb=True)
    nu = rates_expected(x, False)
    beta_hat = np.where(on, (n + k) / (nu + k), 1.0)
    block = [0, 1]  # mu and xs: the POIs; every nuisance of this archive is constrained
    h_prof = fd_hessian(lambda t: reference_nll(t, n, k, on, False, True), x)
    h_frozen = fd_hessian(lambda t: reference_nll(t, n, k, on, False, True, beta_hat), x)
    v_prof = np.diag(np.linalg.inv(h_prof[np.ix_(block, block)]))
    v_frozen = np.diag(np.linalg.inv(h_frozen[np.ix_(block, block)]))
    assert np.all(v_frozen < v_prof)
    for i, (name, scale) in enumerate((("mu", 1.0), ("xs", 2.0))):
        nominal = rates.impacts_by_poi[name].nominal
        assert nominal["stat"] == pytest.approx(scale * np.sqrt(v_frozen[i]), rel=1e-4)
        assert nominal["binByBinStat"] == pytest.approx(
            scale * np.sqrt(v_prof[i] - v_frozen[i]), rel=2e-3
        )
    assert "MC sample size" in rates.summary() and "n/a" not in rates.summary()
