"""Import of pyhf workspaces (wmass_archive.interop.pyhf.import_pyhf) against pyhf itself.

* the imported model's expected yields equal pyhf's ``expected_actualdata`` at random points for
  every modifier type and interpolation code (normsys code1/code4, histosys code0/code2/code4p),
  beyond +-1 too;
* best-fit values agree with pyhf's own fit (``pyhf.infer.mle.fit``, MINUIT, numpy backend) to
  1e-4 of max(|value|, uncertainty), and uncertainties to 1e-4 relative with the inverse of the
  Hessian of pyhf's own NLL at pyhf's minimum (central finite differences of pyhf's numpy
  ``logpdf``); MINUIT's HESSE (numerical, with parameter limits) is good to ~1e-3 only and is
  checked at 1e-2. Workspaces: every modifier type, three channels (one renamed), fixed
  parameters and a second measurement, a patch of a patchset;
* bad input: one-line errors through the API and the CLI.

(pyhf's published example workspaces are not shipped with the installed pyhf 0.7.6 package,
so the workspaces are built here.)
"""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from wmass_archive import open_archive
from wmass_archive.cli.import_cmd import import_
from wmass_archive.fit import fit
from wmass_archive.interop.pyhf import PyhfImportError, import_pyhf
from wmass_archive.model import build_model

pyhf = pytest.importorskip("pyhf")

CODES = [("code4", "code4p"), ("code1", "code0"), ("code1", "code2")]


LUMI = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "inits": [1.0], "bounds": [[0.8, 1.2]]}


def workspace() -> dict:
    """Three channels ('SR', 'CR one', 'CR two'), three samples, every pyhf modifier type: a
    normfactor POI and a shared normfactor, lumi, normsys, histosys (one sharing its parameter
    with a normsys), staterror on two samples, shapesys with a bin without uncertainty,
    shapefactor shared by two channels; a second measurement with fixed
    parameters."""
    sig = [120.0, 200.0, 150.0, 60.0]
    bkg = [500.0, 420.0, 300.0, 200.0]
    lumi = {"name": "lumi", "type": "lumi", "data": None}
    sf = {"name": "sf", "type": "shapefactor", "data": None}

    def hs(name, hi, lo):
        return {"name": name, "type": "histosys", "data": {"hi_data": hi, "lo_data": lo}}

    def ns(name, hi, lo):
        return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}

    signal = {
        "name": "signal",
        "data": sig,
        "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None},
            lumi,
            ns("sig_theory", 1.06, 0.95),
            hs("jes", [125.0, 206.0, 151.0, 58.0], [116.0, 195.0, 148.0, 61.5]),
            {"name": "stat_SR", "type": "staterror", "data": [4.0, 5.5, 5.2, 3.0]},
        ],
    }
    background = {
        "name": "background",
        "data": bkg,
        "modifiers": [
            lumi,
            hs("jes", [530.0, 435.0, 305.0, 195.0], [480.0, 410.0, 296.0, 203.0]),
            ns("jes", 1.03, 0.96),
            hs("bkg_shape", [490.0, 425.0, 310.0, 215.0], [505.0, 418.0, 292.0, 190.0]),
            {"name": "stat_SR", "type": "staterror", "data": [10.0, 9.5, 8.2, 7.0]},
            {"name": "bkg_norm", "type": "normfactor", "data": None},
            ns("bkg_xs", 1.08, 0.9),
        ],
    }
    return {
        "channels": [
            {"name": "SR", "samples": [signal, background]},
            {
                "name": "CR one",
                "samples": [
                    {
                        "name": "background",
                        "data": [1000.0, 900.0, 700.0],
                        "modifiers": [
                            {"name": "bkg_norm", "type": "normfactor", "data": None},
                            {"name": "cr_shape", "type": "shapesys", "data": [30.0, 0.0, 25.0]},
                            hs("jes", [1040.0, 910.0, 690.0], [970.0, 880.0, 705.0]),
                        ],
                    },
                    {
                        "name": "other",
                        "data": [100.0, 150.0, 120.0],
                        "modifiers": [sf, lumi, ns("sig_theory", 1.04, 0.97)],
                    },
                ],
            },
            {
                "name": "CR two",
                "samples": [
                    {"name": "other", "data": [300.0, 200.0, 100.0], "modifiers": [sf, lumi]}
                ],
            },
        ],
        "observations": [
            {"name": "SR", "data": [690.0, 650.0, 430.0, 280.0]},
            {"name": "CR one", "data": [1080.0, 1010.0, 830.0]},
            {"name": "CR two", "data": [330.0, 190.0, 95.0]},
        ],
        "measurements": [
            {
                "name": "meas",
                "config": {
                    "poi": "mu",
                    "parameters": [dict(LUMI)],
                },
            },
            {
                "name": "fixed",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        dict(LUMI),
                        {"name": "bkg_shape", "fixed": True, "inits": [0.6]},
                        {"name": "sig_theory", "fixed": True, "inits": [-0.4]},
                        {"name": "sf", "fixed": True, "inits": [1.1, 0.9, 1.05]},
                    ],
                },
            },
        ],
        "version": "1.0.0",
    }


def patchset(spec: dict) -> dict:
    """Two signal hypotheses for ``spec``: the signal's nominal and histosys replaced."""
    patches = []
    for name, k in (("sig_a", 0.7), ("sig_b", 1.5)):
        s = copy.deepcopy(spec["channels"][0]["samples"][0])
        s["data"] = [k * x for x in s["data"]]
        s["modifiers"][3]["data"] = {
            key: [k * x for x in v] for key, v in s["modifiers"][3]["data"].items()
        }
        patches.append(
            {
                "metadata": {"name": name, "values": [k]},
                "patch": [{"op": "replace", "path": "/channels/0/samples/0", "value": s}],
            }
        )
    return {
        "metadata": {
            "description": "signal hypotheses",
            "digests": {"sha256": pyhf.utils.digest(spec, algorithm="sha256")},
            "labels": ["k"],
            "references": {"hepdata": "ins0000000"},
        },
        "patches": patches,
        "version": "1.0.0",
    }


def _settings(codes):
    return {"normsys": {"interpcode": codes[0]}, "histosys": {"interpcode": codes[1]}}


def _pyhf_index(model, mapping) -> int:
    return model.config.par_slice(mapping.pyhf_parameter).start + mapping.pyhf_index


def _bin_permutation(spec: dict, model) -> np.ndarray:
    """Our bins (workspace channel order) in pyhf's order (sorted channel names)."""
    off, o = {}, 0
    for c in spec["channels"]:
        off[c["name"]] = o
        o += len(c["samples"][0]["data"])
    cfg = model.config
    return np.concatenate([off[c] + np.arange(cfg.channel_nbins[c]) for c in cfg.channels])


def _pyhf_reference(spec, settings, measurement=None):
    """pyhf's fit (MINUIT, numpy backend): best fit, MINUIT's uncertainties, and the
    uncertainties from the inverse of the finite-difference Hessian of pyhf's own NLL at that
    minimum (free parameters only)."""
    ws = pyhf.Workspace(spec)
    model = ws.model(measurement_name=measurement, modifier_settings=settings)
    data = np.asarray(ws.data(model))
    before = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=1e-7, strategy=2))
    try:
        res = pyhf.infer.mle.fit(data, model, return_uncertainties=True)
    finally:
        pyhf.set_backend(*before)
    x, minuit_err = res[:, 0], res[:, 1]
    free = ~np.asarray(model.config.suggested_fixed())
    idx = np.flatnonzero(free)
    h = 1e-3 * np.maximum(minuit_err[idx], 1e-6)

    def f(p):
        return -float(model.logpdf(p, data)[0])

    n = idx.size
    hess = np.zeros((n, n))
    for a in range(n):
        for b in range(a, n):
            v = 0.0
            for sa, sb, w in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                p = x.copy()
                p[idx[a]] += sa * h[a]
                p[idx[b]] += sb * h[b]
                v += w * f(p)
            hess[a, b] = hess[b, a] = v / (4 * h[a] * h[b])
    err = np.full(x.size, np.nan)
    err[idx] = np.sqrt(np.diag(np.linalg.inv(hess)))
    return model, x, err, minuit_err


def _compare(report, result, model, x, err, minuit_err):
    """Every archive parameter against pyhf's: values to 1e-4 of max(|value|, error), errors
    to 1e-4 relative (exact Hessian) and 1e-2 (MINUIT's HESSE)."""
    ours = report.pyhf_values(result)
    assert len(ours) == len(report.parameters) > 0
    for p in report.parameters:
        i = _pyhf_index(model, p)
        v, e = ours[p.pyhf_name]
        assert abs(v - x[i]) <= 1e-4 * max(abs(x[i]), err[i]), (p.pyhf_name, v, x[i])
        assert e == pytest.approx(err[i], rel=1e-4), (p.pyhf_name, e, err[i])
        assert e == pytest.approx(minuit_err[i], rel=1e-2), (p.pyhf_name, e, minuit_err[i])
    # every free pyhf parameter has an archive parameter, and nothing else
    free = ~np.asarray(model.config.suggested_fixed())
    assert sorted(_pyhf_index(model, p) for p in report.parameters) == list(np.flatnonzero(free))


# --------------------------------------------------------------------------- the mapping
def _check_yields(path, rep, spec, settings, measurement=None, n_trials=8):
    """Our expected yields against pyhf's at random points (theta = 0 first)."""
    m = build_model(path)
    model = pyhf.Workspace(spec).model(measurement_name=measurement, modifier_settings=settings)
    perm = _bin_permutation(spec, model)
    rng = np.random.default_rng(3)
    names = m.parameter_names
    for trial in range(n_trials):
        theta = rng.uniform(-1.8, 1.8, m.n_params) if trial else np.zeros(m.n_params)
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        for i, n in enumerate(names):
            p = rep.parameter(n)
            if p.kind == "poi" or p.modifier in ("normfactor", "shapefactor"):
                theta[i] = np.clip(theta[i], -0.5, 0.5)  # keep the yields positive
            if settings["histosys"]["interpcode"] == "code2" and "histosys" in p.groups:
                theta[i] = np.clip(theta[i], -1.0, 1.0)  # pyhf's code2 beyond: see below
            pars[_pyhf_index(model, p)] = p.pyhf_value(theta[i])
        ours = m.expected(theta)[perm]
        theirs = np.asarray(model.expected_actualdata(pars))
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("codes", CODES)
def test_expected_yields_equal_pyhf(tmp_path, codes):
    spec = workspace()
    rep = import_pyhf(spec, tmp_path / "a.h5", modifier_settings=_settings(codes), synthetic=True)
    _check_yields(tmp_path / "a.h5", rep, spec, _settings(codes))


def test_fixed_parameters_are_folded(tmp_path):
    spec = workspace()
    settings = _settings(CODES[1])
    rep = import_pyhf(spec, tmp_path / "a.h5", measurement="fixed", modifier_settings=settings)
    assert rep.measurement == "fixed"
    assert rep.fixed["bkg_shape"] == 0.6 and rep.fixed["sf[1]"] == 0.9
    assert not [p for p in rep.parameters if p.pyhf_parameter in ("bkg_shape", "sf")]
    assert any("folded into the yields" in n for n in rep.notes)
    _check_yields(tmp_path / "a.h5", rep, spec, settings, measurement="fixed", n_trials=4)


def test_histosys_code2_is_continuous_beyond_one(tmp_path):
    """pyhf 0.7's code2 extrapolation drops the value at |alpha| = 1 (scikit-hep/pyhf#2729):
    the archive keeps ROOT's continuous form, equal to pyhf's inside and at |alpha| = 1."""
    spec = workspace()
    rep = import_pyhf(spec, tmp_path / "a.h5", modifier_settings=_settings(CODES[2]))
    assert any("code2" in n for n in rep.notes)
    m = build_model(tmp_path / "a.h5")
    j = m.parameter_names.index("bkg_shape")
    th = np.zeros(m.n_params)
    at = {}
    for t in (1.0, 1.0 + 1e-7, 2.0):
        th[j] = t
        at[t] = m.expected(th)[:4]  # SR
    np.testing.assert_allclose(at[1.0 + 1e-7], at[1.0], rtol=1e-8)
    # linear beyond 1 with the slope of the quadratic at 1: (b + 2a) per unit alpha
    hi, lo, nom = np.array([490.0, 425.0, 310.0, 215.0]), np.array([505.0, 418.0, 292.0, 190.0]), 0
    a, b = 0.5 * (hi + lo) - np.array([500.0, 420.0, 300.0, 200.0]), 0.5 * (hi - lo)
    th[j] = 0.0
    base = m.expected(th)[:4]
    np.testing.assert_allclose(at[2.0] - base, (a + b) + (b + 2 * a), rtol=1e-9)
    assert nom == 0


def test_mapping_and_metadata(tmp_path):
    spec = workspace()
    rep = import_pyhf(spec, tmp_path / "a.h5", synthetic=True)
    assert rep.channels == {"SR": "SR", "CR_one": "CR one", "CR_two": "CR two"}
    assert rep.poi == "mu" and rep.parameter("mu").kind == "poi"
    # pyhf's staterror sigma: sqrt(sum of the samples' squared uncertainties) / sum of nominal
    s0 = rep.parameter("stat_SR[0]")
    assert s0.scale == pytest.approx(np.hypot(4.0, 10.0) / 620.0, rel=1e-14)
    assert (s0.constraint, s0.offset) == ("gaussian", 1.0)
    # shapesys: tau = (N / sigma)^2, gamma = 1 + theta / sqrt(tau); bin 1 has no uncertainty
    c0 = rep.parameter("cr_shape[0]")
    assert c0.tau == pytest.approx((1000.0 / 30.0) ** 2) and c0.scale == pytest.approx(0.03)
    assert "cr_shape[1]" not in [p.pyhf_name for p in rep.parameters]
    lumi = rep.parameter("lumi")
    assert (lumi.offset, lumi.scale, lumi.constraint) == (1.0, 0.02, "gaussian")
    assert [p.pyhf_name for p in rep.parameters if p.modifier == "shapefactor"] == [
        "sf[0]",
        "sf[1]",
        "sf[2]",
    ]
    with open_archive(tmp_path / "a.h5") as a:
        meta = a.metadata
        assert meta.format_version.startswith("1.2") and meta.mc_stat == "none"
        assert meta.pois[0].kind == "rate" and meta.pois[0].central == 1.0
        # pyhf's bounds: normfactor [0, 10] (the POI's in mu), lumi from the measurement,
        # normsys/histosys [-5, 5], staterror/shapesys [1e-10, 10], in theta
        assert meta.pois[0].bounds == (0.0, 10.0) and meta.sample_yields == "signed"
        assert meta.nuisance("lumi").bounds == pytest.approx((-10.0, 10.0))
        assert meta.nuisance("jes").bounds == (-5.0, 5.0)
        assert meta.nuisance("bkg_norm").bounds == (-1.0, 9.0)
        sig = np.hypot(4.0, 10.0) / 620.0
        assert meta.nuisance("stat_SR[0]").bounds == pytest.approx(((1e-10 - 1) / sig, 9 / sig))
        assert meta.nuisance("cr_shape[0]").bounds == pytest.approx((-33.333333333, 300.0))
        rec = meta.provenance.inputs[0]
        assert rec.sha256 == pyhf.utils.digest(spec, algorithm="sha256")
        assert [c.axes[0].name for c in meta.channels] == ["bin"] * 3
        assert meta.nuisance("cr_shape[0]").constraint == "poisson"
    # the file form records the file's own sha256
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(spec))
    rep2 = import_pyhf(path, tmp_path / "b.h5")
    assert rep2.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- fits
def test_fit_agrees_with_pyhf(tmp_path):
    spec = workspace()
    settings = _settings(CODES[0])
    rep = import_pyhf(spec, tmp_path / "a.h5", synthetic=True)
    r = fit(tmp_path / "a.h5", impacts=(), gof=False, edm_tol=1e-14)
    _compare(rep, r, *_pyhf_reference(spec, settings))


@pytest.mark.slow
@pytest.mark.parametrize(
    "codes, measurement", [(CODES[1], "meas"), (CODES[2], "meas"), (CODES[1], "fixed")]
)
def test_fit_other_codes_and_fixed_parameters(tmp_path, codes, measurement):
    """Slow: each interpolation code and the folded fixed parameters compile another model."""
    spec = workspace()
    settings = _settings(codes)
    rep = import_pyhf(spec, tmp_path / "a.h5", measurement=measurement, modifier_settings=settings)
    r = fit(tmp_path / "a.h5", impacts=(), gof=False, edm_tol=1e-14)
    _compare(rep, r, *_pyhf_reference(spec, settings, measurement=measurement))


def test_patch_of_a_patchset(tmp_path):
    spec = workspace()
    ps = patchset(spec)
    ws_path, ps_path = tmp_path / "bkg.json", tmp_path / "ps.json"
    ws_path.write_text(json.dumps(spec))
    ps_path.write_text(json.dumps(ps))
    settings = _settings(CODES[0])  # the structure of test_fit_agrees_with_pyhf: no recompile
    rep = import_pyhf(ws_path, tmp_path / "a.h5", patchset=ps_path, patch="sig_b")
    assert rep.patch == "sig_b"
    with open_archive(tmp_path / "a.h5") as a:
        assert [r.name for r in a.metadata.provenance.inputs] == ["pyhf workspace", "pyhf patchset"]
        np.testing.assert_allclose(a.nominal("signal", "SR"), [180.0, 300.0, 225.0, 90.0])
    patched = dict(pyhf.PatchSet(ps).apply(pyhf.Workspace(spec), "sig_b"))
    r = fit(tmp_path / "a.h5", impacts=(), gof=False, edm_tol=1e-14)
    _compare(rep, r, *_pyhf_reference(patched, settings))


# --------------------------------------------------------------------------- bad input
def _bad(tmp_path, spec, file="bad.json", **kw) -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(PyhfImportError) as exc:
        import_pyhf(path, tmp_path / "out.h5", **kw)
    msg = str(exc.value)
    assert "\n" not in msg and file in msg
    assert not (tmp_path / "out.h5").exists()
    return msg


def test_schema_failure_names_the_item(tmp_path):
    spec = workspace()
    del spec["channels"][0]["samples"][1]["modifiers"][2]["data"]["lo"]
    msg = _bad(tmp_path, spec)
    assert "pyhf schema" in msg and "channels[0].samples[1].modifiers[2]" in msg


def test_custom_modifier_is_refused(tmp_path):
    spec = workspace()
    spec["channels"][1]["samples"][0]["modifiers"].append(
        {"name": "mine", "type": "customscale", "data": {"k": 2.0}}
    )
    msg = _bad(tmp_path, spec)
    assert "'customscale'" in msg and "'CR one'" in msg and "custom modifiers" in msg


def test_bad_measurement_patch_and_other_errors(tmp_path):
    spec = workspace()
    assert "no measurement 'nope'" in _bad(tmp_path, spec, measurement="nope")
    ps_path = tmp_path / "ps.json"
    ps_path.write_text(json.dumps(patchset(spec)))
    msg = _bad(tmp_path, spec, file="ps.json", patchset=ps_path, patch="sig_zzz")
    assert "no patch 'sig_zzz'" in msg and "sig_a" in msg
    assert "without a patchset" in _bad(tmp_path, spec, patch="sig_a")
    other = workspace()
    other["observations"][0]["data"][0] += 1.0
    wrong = patchset(other)
    ps_path.write_text(json.dumps(wrong))
    assert "not made for" in _bad(tmp_path, spec, file="ps.json", patchset=ps_path, patch="sig_a")
    aux = workspace()
    aux["measurements"][0]["config"]["parameters"].append({"name": "jes", "auxdata": [0.5]})
    assert "auxdata 0.5" in _bad(tmp_path, aux)
    neg = workspace()
    neg["channels"][0]["samples"][1]["data"][2] = -200.0  # the bin's total: -50
    msg = _bad(tmp_path, neg)
    assert "channel 'SR' is negative in bin 2 (-50" in msg and "undefined" in msg
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PyhfImportError, match="not JSON"):
        import_pyhf(tmp_path / "bad.json", tmp_path / "out.h5")


def test_cli(tmp_path):
    spec = workspace()
    ws_path, ps_path = tmp_path / "ws.json", tmp_path / "ps.json"
    ws_path.write_text(json.dumps(spec))
    ps_path.write_text(json.dumps(patchset(spec)))
    runner = CliRunner()
    out = tmp_path / "a.h5"
    args = [str(ws_path), "-o", str(out), "--patchset", str(ps_path), "--patch", "sig_a"]
    res = runner.invoke(import_, ["pyhf", *args, "--normsys-code", "code1"])
    assert res.exit_code == 0, res.output
    assert "patch 'sig_a'" in res.output and "normsys code1" in res.output and out.is_file()
    res = runner.invoke(import_, ["pyhf", *args])  # exists: refused, one line
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "exists" in res.output
    res = runner.invoke(import_, ["pyhf", *args[:-1], "nope", "--overwrite"])
    assert res.exit_code == 1 and "no patch 'nope'" in res.output
    assert "Traceback" not in res.output and res.output.count("\n") == 1
    res = runner.invoke(import_, ["pyhf", str(tmp_path / "missing.json"), "-o", str(out)])
    assert res.exit_code == 1 and "no workspace file" in res.output
    res = runner.invoke(import_, ["pyhf", "--help"])
    assert res.exit_code == 0 and "--patchset" in res.output and "--measurement" in res.output
