"""Generator-level results (wmass_archive/refit/genlevel.py): the theory grid projected on pT^W and
|y^W| per W charge, with the angular coefficients, prefit and postfit, checked against numpy
sums of the archive's grid done by hand, a finite-difference J C J^T, the prior, a zero
covariance, the JSON, blinding, archives without a folded signal, the axes' roles and the
plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wmass_archive.archive import Axis, open_archive
from wmass_archive.model.expected import sigma
from wmass_archive.refit import RefitResult, refit
from wmass_archive.refit.genlevel import (
    generator_binning,
    generator_level,
    prior_covariance,
    project,
    theory_covariance,
)
from wmass_archive.theory import generator_axes
from wmass_archive.theory.generator import GRID_SHAPE, HELICITIES


@pytest.fixture(scope="module")
def nominal(arcs) -> RefitResult:
    return refit(arcs["tiny"], impacts="none")


@pytest.fixture(scope="module")
def grid(arcs) -> np.ndarray:
    """The archive's nominal grid read with the reader, (qW, |y|, pT, helicity), pb."""
    with open_archive(arcs["tiny"]) as a:
        return a.theory_nominal().reshape(a.metadata.theory.shape)


@pytest.fixture(scope="module")
def axes(arcs) -> list[Axis]:
    with open_archive(arcs["tiny"]) as a:
        return list(a.metadata.theory.generator_axes)


def theta_of(r: RefitResult) -> np.ndarray:
    return np.array([p.value for p in r.fit_result.parameters])


def test_prefit_is_the_central_grid_summed_by_hand(nominal, grid, axes):
    m = nominal.model
    pre = project(m, axes, np.zeros(m.n_params), prior_covariance(m))
    assert set(pre.distributions) == {"minus", "plus"}
    for q, charge in enumerate(("minus", "plus")):
        d = pre.distributions[charge]
        ul = grid[q, ..., 0]  # (|y|, pT)
        np.testing.assert_allclose(d["sigma_ptW"].values, ul.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(d["sigma_absYW"].values, ul.sum(axis=1), rtol=1e-12)
        for i in range(8):
            ai = grid[q, ..., 1 + i]
            np.testing.assert_allclose(
                d[f"A{i}_ptW"].values, ai.sum(axis=0) / ul.sum(axis=0), rtol=1e-10, atol=1e-15
            )
            np.testing.assert_allclose(
                d[f"A{i}_absYW"].values, ai.sum(axis=1) / ul.sum(axis=1), rtol=1e-10, atol=1e-15
            )
    # the bins add up to the charge's total sigma_UL, and the result's field holds the same
    total = grid[1, ..., 0].sum()
    assert pre.distributions["plus"]["sigma_ptW"].values.sum() == pytest.approx(total, rel=1e-12)
    g = nominal.generator_level
    np.testing.assert_allclose(
        g.charges["plus"]["sigma_absYW"].prefit, grid[1, ..., 0].sum(axis=1), rtol=1e-12
    )


def test_coefficients_are_ratios_of_sums_and_bounded(nominal, grid, axes):
    """A_i = sum sigma_Ai / sum sigma_UL: a sigma_UL-weighted mean of the cells' A_i, so
    between their smallest and largest, and not their plain mean; |A_i| <= 2, 0 <= A0 <= 2;
    A4 of W+ is negative, of W- positive (docs/theory.md)."""
    m = nominal.model
    post = project(m, axes, theta_of(nominal), nominal.fit_result.covariance)
    pre = project(m, axes, np.zeros(m.n_params), prior_covariance(m))
    cells = grid[..., 1:] / grid[..., :1]  # cell-average A_i, (q, |y|, pT, 8)
    for proj in (pre, post):
        for q, charge in enumerate(("minus", "plus")):
            for i in range(8):
                for k, ax in ((0, "ptW"), (1, "absYW")):  # summed over |y| / over pT
                    a = proj.distributions[charge][f"A{i}_{ax}"].values
                    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 2.0)
                    if i == 0:
                        assert np.all(a >= 0.0)
                    if proj is pre:
                        lo = cells[q, ..., i].min(axis=k) - 1e-12
                        hi = cells[q, ..., i].max(axis=k) + 1e-12
                        assert np.all((lo <= a) & (a <= hi))
    a4 = pre.distributions["plus"]["A4_ptW"].values
    assert np.all(a4 < 0) and np.all(pre.distributions["minus"]["A4_ptW"].values > 0)
    plain_mean = cells[1, ..., 4].mean(axis=0)
    assert np.max(np.abs(a4 - plain_mean)) > 1e-3  # a ratio of sums, not a mean of ratios
    # postfit: the ratio of the postfit sums of sigma(theta)
    s = np.asarray(sigma(m.arrays, theta_of(nominal))).reshape(GRID_SHAPE)  # the model's grid
    np.testing.assert_allclose(
        post.distributions["minus"]["A1_absYW"].values,
        s[0, ..., 2].sum(axis=1) / s[0, ..., 0].sum(axis=1),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        post.distributions["plus"]["sigma_ptW"].values, s[1, ..., 0].sum(axis=0), rtol=1e-12
    )


def _finite_difference_jacobian(m, axes, theta: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """d values / d theta of every parameter by central differences of ``project`` (the
    independent check of the test only), (n_out, n_params)."""
    zero = np.zeros((m.n_params, m.n_params))
    cols = []
    for j in range(m.n_params):
        e = np.zeros(m.n_params)
        e[j] = h
        up = project(m, axes, theta + e, zero).values
        down = project(m, axes, theta - e, zero).values
        cols.append((up - down) / (2 * h))
    return np.array(cols).T


def test_uncertainties_are_j_c_jt_with_every_parameter(nominal, axes):
    m, fit = nominal.model, nominal.fit_result
    theta, cov = theta_of(nominal), np.asarray(fit.covariance)
    post = project(m, axes, theta, cov)
    jac = _finite_difference_jacobian(m, axes, theta)  # every parameter, POIs included
    th = np.asarray(m.arrays["th_param"])
    others = np.setdiff1d(np.arange(m.n_params), th)
    assert np.all(jac[:, others] == 0.0)  # only the theory nuisances act on sigma
    # central differences keep ~1e-5 of a row's largest derivative: an A_i's derivatives are
    # tiny next to its value (rounding), so every comparison is relative to the row's scale
    row = np.abs(jac).max(axis=1, keepdims=True)
    assert np.all(np.abs(post.jacobian - jac[:, th]) <= 1e-4 * row + 1e-300)
    hand = jac @ cov @ jac.T
    s_all = np.sqrt(np.diag(hand))
    err = np.abs(post.covariance - hand)
    assert np.all(err <= 1e-4 * np.outer(s_all, s_all) + 1e-300)
    for charge, by_key in post.distributions.items():
        for key, d in by_key.items():
            rows = _rows_of(post, charge, key)
            c = hand[np.ix_(rows, rows)]
            s = np.sqrt(np.diag(c))
            np.testing.assert_allclose(d.uncertainties, s, rtol=1e-4, atol=1e-300)
            ok = s > 0
            np.testing.assert_allclose(
                d.correlation[np.ix_(ok, ok)],
                c[np.ix_(ok, ok)] / np.outer(s[ok], s[ok]),
                rtol=0,
                atol=1e-4,
            )
            assert np.all(d.correlation[~ok] == 0.0) and np.all(d.uncertainties[~ok] == 0.0)
    # the postfit field of the result is this projection
    g = nominal.generator_level.charges["plus"]["sigma_ptW"]
    np.testing.assert_allclose(g.postfit_unc, post.distributions["plus"]["sigma_ptW"].uncertainties)
    np.testing.assert_allclose(
        g.postfit_correlation, post.distributions["plus"]["sigma_ptW"].correlation
    )
    assert np.max(g.postfit_unc) > 0.0


def _rows_of(p, charge: str, key: str) -> np.ndarray:
    """Rows of ``key`` of ``charge`` in the projection's one vector of values."""
    d = p.distributions[charge][key]
    for r0 in range(p.values.size - d.values.size + 1):
        if np.array_equal(p.values[r0 : r0 + d.values.size], d.values, equal_nan=True):
            return np.arange(r0, r0 + d.values.size)
    raise AssertionError(key)


def test_prefit_uses_the_prior_and_the_prior_scale(nominal, axes):
    """Prefit: unit covariance on the constrained theory nuisances; a nuisance's prior_scale
    (t = prior_scale * theta) scales its column of J, hence the prefit uncertainty."""
    m = nominal.model
    zero = np.zeros(m.n_params)
    th = np.asarray(m.arrays["th_param"])
    assert np.all(m.constrained[th])
    np.testing.assert_array_equal(prior_covariance(m), np.eye(th.size))
    full_prior = np.diag(m.constrained.astype(float))
    a = project(m, axes, zero, prior_covariance(m))
    b = project(m, axes, zero, full_prior)
    np.testing.assert_allclose(a.covariance, b.covariance, rtol=1e-14, atol=0)
    g = nominal.generator_level.charges["minus"]["sigma_ptW"]
    np.testing.assert_allclose(g.prefit_unc, a.distributions["minus"]["sigma_ptW"].uncertainties)
    # the prefit uncertainty is the quadrature sum of the one-sigma shifts of every nuisance
    jac = _finite_difference_jacobian(m, axes, zero)
    np.testing.assert_allclose(
        np.sqrt(np.diag(a.covariance)), np.sqrt((jac**2).sum(axis=1)), rtol=1e-4, atol=1e-300
    )
    doubled = m._replace(arrays={**m.arrays, "th_ps": 2.0 * np.asarray(m.arrays["th_ps"])})
    d = project(doubled, axes, zero, prior_covariance(doubled))
    np.testing.assert_allclose(d.jacobian, 2.0 * a.jacobian, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d.values, a.values, rtol=1e-14)


def test_zero_covariance_gives_zero_uncertainties(nominal, axes):
    m = nominal.model
    th = np.asarray(m.arrays["th_param"])
    for cov in (np.zeros((m.n_params, m.n_params)), np.zeros((th.size, th.size))):
        p = project(m, axes, theta_of(nominal), cov)
        for by_key in p.distributions.values():
            for d in by_key.values():
                assert np.all(d.uncertainties == 0.0) and np.all(d.correlation == 0.0)
    # the theory block of a full covariance, in th_param order
    c = np.asarray(nominal.fit_result.covariance)
    np.testing.assert_array_equal(theory_covariance(m, c), c[np.ix_(th, th)])
    with pytest.raises(Exception, match="covariance of shape"):
        project(m, axes, theta_of(nominal), np.zeros((3, 3)))


def test_json_round_trip(nominal, tmp_path):
    p = tmp_path / "r.json"
    nominal.to_json(p)
    d = json.loads(p.read_text())
    assert d["schema_version"] == "1.3"
    g = d["generator_level"]
    assert g["charge_axis"] == "qW" and g["helicity_axis"] == "helicity"
    assert g["n_theory_nuisances"] == nominal.model.arrays["th_param"].size
    assert set(g["charges"]) == {"minus", "plus"}
    keys = {f"{q}_{a}" for q in ("sigma", *HELICITIES[1:]) for a in ("ptW", "absYW")}
    assert set(g["charges"]["plus"]) == keys
    pt = g["charges"]["plus"]["sigma_ptW"]
    assert pt["unit"] == "pb" and pt["quantity"] == "sigma"
    assert pt["axis"] == {
        "name": "ptW",
        "label": "p_T^W",
        "unit": "GeV",
        "edges": [0.0, 3.0, 5.0, 7.0, 9.0, 12.0, 15.0, 20.0, 27.0, 40.0, 100.0],
    }
    assert len(pt["prefit"]) == len(pt["postfit_unc"]) == 10
    assert np.array(pt["postfit_correlation"]).shape == (10, 10)
    a0 = g["charges"]["minus"]["A0_absYW"]
    assert a0["unit"] == "" and a0["axis"]["label"] == "|y^W|" and len(a0["postfit"]) == 8
    back = RefitResult.load(p)
    assert back.generator_level == nominal.generator_level
    jsonschema = pytest.importorskip("jsonschema")
    from wmass_archive.refit.schema import json_schema

    jsonschema.validate(d, json_schema())


def test_blinding_does_not_enter(nominal, arcs):
    """The distributions do not involve mW: the same blinded and unblinded."""
    assert nominal.blinded
    un = refit(arcs["tiny"], impacts="none", unblind=True)
    a, b = nominal.generator_level, un.generator_level
    for charge in a.charges:
        for key, d in a.charges[charge].items():
            e = b.charges[charge][key]
            np.testing.assert_allclose(d.prefit, e.prefit, rtol=1e-12)
            np.testing.assert_allclose(d.postfit, e.postfit, rtol=1e-7, atol=1e-12)


def test_no_field_without_folded_signal_or_covariance(arcs, nominal, axes):
    r = refit(arcs["rates"], impacts="none")
    assert r.model.theory is None and r.generator_level is None
    assert r.to_dict()["generator_level"] is None
    pois_only = nominal.fit_result.model_copy(update={"covariance": None})
    assert generator_level(nominal.model, axes, pois_only) is None
    with pytest.raises(Exception, match="no folded signal"):
        project(r.model, axes, np.zeros(r.model.n_params), np.zeros((0, 0)))


def test_axis_roles():
    b = generator_binning(generator_axes())
    assert (b.charge, b.helicity, b.ul, b.kinematic) == (0, 3, 0, (1, 2))
    assert [c for c, _ in b.coefficients] == [f"A{i}" for i in range(8)]
    assert b.charges() == [("minus", 0), ("plus", 1)]
    # the demonstration archive: signed rapidity yW; a grid without helicity terms
    demo = [
        Axis.category([-1, 1], name="qW"),
        Axis.regular(4, -2.5, 2.5, name="yW"),
        Axis.category(list(HELICITIES), name="helicity"),
    ]
    assert generator_binning(demo).kinematic == (1,)
    plain = generator_binning([Axis.regular(3, 0.0, 1.0, name="x")])
    assert plain.charges() == [("all", None)] and plain.helicity is None
    assert generator_binning([Axis.category([-1, 1], name="qW")]) is None
    no_ul = [Axis.regular(2, 0, 1, name="x"), Axis.category(["A0", "A1"], name="helicity")]
    assert generator_binning(no_ul) is None


def test_plots(nominal, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import wmass_archive.refit.genlevel_plots as gp
    from wmass_archive.refit.plots import make_plots

    seen: dict[str, list[str]] = {}
    save = gp._save

    def record(fig, out, stem, files):
        seen[stem] = [t.get_text() for ax in fig.axes for t in ax.texts] + [
            ax.get_xlabel() for ax in fig.axes
        ]
        save(fig, out, stem, files)

    monkeypatch.setattr(gp, "_save", record)
    files = {f.name for f in make_plots(nominal, tmp_path)}
    for charge in ("plus", "minus"):
        for axis in ("ptW", "absYW"):
            for stem in (f"genlevel_{charge}_{axis}", f"genlevel_{charge}_{axis}_coeffs"):
                assert f"{stem}.png" in files and f"{stem}.pdf" in files, files
                assert "wmass-archive: Synthetic, blinded" in seen[stem]
    assert "$p_T^W$ [GeV]" in seen["genlevel_plus_ptW"]
    assert "$|y^W|$" in seen["genlevel_minus_absYW_coeffs"]


def test_demonstration_archive_signed_rapidity(demo_archive_master):
    """Another generator binning: the demonstration archive's signed y^W and its pT^W bins,
    prefit sums by hand again."""
    r = refit(demo_archive_master, impacts="none")
    with open_archive(demo_archive_master) as a:
        th = a.metadata.theory
        grid = a.theory_nominal().reshape(th.shape)  # (qW, yW, ptW, helicity)
    g = r.generator_level
    assert g is not None and set(g.charges) == {"minus", "plus"}
    assert {"sigma_yW", "sigma_ptW", "A4_yW", "A0_ptW"} <= set(g.charges["plus"])
    y = g.charges["minus"]["sigma_yW"]
    assert y.axis.label == "y^W" and y.axis.edges[0] == -2.5
    np.testing.assert_allclose(y.prefit, grid[0, ..., 0].sum(axis=1), rtol=1e-12)
    a3 = g.charges["plus"]["A3_ptW"]
    np.testing.assert_allclose(
        a3.prefit, grid[1, ..., 4].sum(axis=0) / grid[1, ..., 0].sum(axis=0), rtol=1e-10
    )
    assert all(u > 0 for u in y.postfit_unc)
