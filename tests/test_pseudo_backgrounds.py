"""The pseudo-analysis' background generators and the nonprompt uncertainty model: cross
sections, kinematics, CMS-like fractions after a truth-level W selection, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wmass_archive.producers.pseudo import backgrounds as bkg
from wmass_archive.producers.pseudo import kinematics as kin
from wmass_archive.producers.pseudo import nonprompt as npr
from wmass_archive.producers.pseudo.truth import TruthMuons

NAMES = ("Zmumu", "Wtaunu", "Ztautau", "Top", "Diboson", "Nonprompt")


# --------------------------------------------------------------------------- helpers
def truth_mt(t: TruthMuons) -> np.ndarray:
    """Truth mT of the muon and the invisible momentum (boson - muon), (n,)."""
    mux, muy = t.pt * np.cos(t.phi), t.pt * np.sin(t.phi)
    mx, my = t.boson_px - mux, t.boson_py - muy
    met = np.hypot(mx, my)
    return np.sqrt(np.clip(2.0 * (t.pt * met - mux * mx - muy * my), 0.0, None))


def truth_selected(t: TruthMuons) -> np.ndarray:
    """Minimal W acceptance: |eta| < 2.4, 26 < pT < 56 GeV, truth mT > 40 GeV."""
    return (np.abs(t.eta) < 2.4) & (t.pt > 26.0) & (t.pt < 56.0) & (truth_mt(t) > 40.0)


def tiny_wmunu(n: int, rng: np.random.Generator) -> TruthMuons:
    """A minimal, independent W -> mu nu generator: Breit-Wigner mass, flat-topped rapidity
    (W+ wider than W-), pT ~ pT (1 + pT^2/64)^-2.5, isotropic decay; sigma x BR = 20.6 nb."""
    plus = rng.uniform(size=n) < 11.8 / 20.6
    y0, p = np.where(plus, 4.2, 3.3), np.where(plus, 3.5, 2.0)
    y = y0 * rng.gamma(1.0 / p) ** (1.0 / p) * rng.choice([-1.0, 1.0], n)
    mw, gw = 80.36, 2.085
    t = rng.uniform(
        np.arctan((50**2 - mw**2) / (mw * gw)), np.arctan((150**2 - mw**2) / (mw * gw)), n
    )
    m = np.sqrt(mw**2 + mw * gw * np.tan(t))
    ptw = 8.0 * np.sqrt((1.0 - rng.uniform(size=n)) ** (1.0 / (1.0 - 2.5)) - 1.0)
    phiw = rng.uniform(0, 2 * np.pi, n)
    mt = np.sqrt(m**2 + ptw**2)
    e, px, py, pz = mt * np.cosh(y), ptw * np.cos(phiw), ptw * np.sin(phiw), mt * np.sinh(y)
    # isotropic decay at rest, boosted to the lab
    c, ph = rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    s = np.sqrt(1 - c * c)
    k = 0.5 * m
    d = np.stack([k * s * np.cos(ph), k * s * np.sin(ph), k * c], -1)
    beta = np.stack([px, py, pz], -1) / e[:, None]
    gamma = e / m
    bd = np.sum(beta * d, -1)
    vec = d + ((gamma - 1) / np.sum(beta**2, -1) * bd + gamma * k)[:, None] * beta
    mpt = np.hypot(vec[:, 0], vec[:, 1])
    return TruthMuons(
        pt=mpt,
        eta=np.arcsinh(vec[:, 2] / mpt),
        phi=np.arctan2(vec[:, 1], vec[:, 0]),
        charge=np.where(plus, 1, -1).astype(np.int8),
        weight=np.full(n, 20600.0 / n),
        boson_px=px,
        boson_py=py,
    )


@pytest.fixture(scope="module")
def samples() -> dict[str, TruthMuons]:
    """60k filtered events of every background, fixed seeds."""
    return {
        name: bkg.generate(name, 60_000, np.random.default_rng(100 + i))
        for i, name in enumerate(NAMES)
    }


@pytest.fixture(scope="module")
def wmunu() -> TruthMuons:
    return tiny_wmunu(400_000, np.random.default_rng(7))


# ---------------------------------------------------------------------- registry, xsec
def test_registry():
    assert tuple(bkg.BACKGROUNDS) == NAMES
    for name, proc in bkg.BACKGROUNDS.items():
        assert proc.label and proc.note
        assert proc.xsec_pb == bkg.XSEC_PB[name] > 0
        assert proc.group.isidentifier()
        if proc.nuisance is not None:
            assert proc.nuisance.isidentifier() and proc.kappa is not None and proc.kappa > 1
    assert bkg.BACKGROUNDS["Top"].kappa == 1.06
    assert bkg.BACKGROUNDS["Diboson"].kappa == 1.16
    assert bkg.BACKGROUNDS["Zmumu"].nuisance == bkg.BACKGROUNDS["Ztautau"].nuisance
    assert bkg.BACKGROUNDS["Nonprompt"].group == "Fake"
    assert bkg.BACKGROUNDS["Nonprompt"].kappa is None
    t = bkg.BACKGROUNDS["Top"].generator(100, np.random.default_rng(0))
    assert isinstance(t, TruthMuons) and len(t) == 100
    with pytest.raises(KeyError):
        bkg.generate("QCD", 10, np.random.default_rng(0))
    with pytest.raises(ValueError):
        bkg.generate("Top", -1, np.random.default_rng(0))
    assert len(bkg.generate("Top", 0, np.random.default_rng(0))) == 0  # an empty chunk


def test_declared_cross_sections():
    x = bkg.XSEC_PB
    assert x["Zmumu"] == pytest.approx(1950.0)
    assert x["Wtaunu"] == pytest.approx(20600.0 * 0.1739)
    assert x["Ztautau"] == pytest.approx(1950.0 * (1 - (1 - 0.1739) ** 2))
    assert 200.0 < x["Top"] < 280.0  # ttbar 831.8 pb and single top with >= 1 muon
    assert 25.0 < x["Diboson"] < 45.0
    assert sum([bkg.BR_W_E, bkg.BR_W_MU, bkg.BR_W_TAU, bkg.BR_W_HAD]) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["Wtaunu", "Nonprompt"])
def test_weights_sum_to_cross_section_exactly(name):
    """Nothing is cut from these processes without a filter: the sum is sigma x BR."""
    t = bkg.generate(name, 20_000, np.random.default_rng(1), bkg.GeneratorFilter.none())
    assert t.weight.sum() == pytest.approx(bkg.XSEC_PB[name], rel=1e-12)
    assert np.all(t.weight > 0)


@pytest.mark.parametrize(
    "name, lo, hi",
    [("Zmumu", 0.45, 0.65), ("Ztautau", 0.98, 1.0), ("Top", 0.94, 1.0), ("Diboson", 0.88, 1.0)],
)
def test_weights_sum_to_cross_section_of_single_muon_phase_space(name, lo, hi):
    """Events with a second, vetoing muon are not in the phase space: the sum of weights is
    the cross section of the single-muon phase space, a stated fraction of sigma x BR."""
    t = bkg.generate(name, 30_000, np.random.default_rng(2), bkg.GeneratorFilter.none())
    assert lo * bkg.XSEC_PB[name] < t.weight.sum() <= hi * bkg.XSEC_PB[name]


def test_sum_of_weights_is_unbiased_estimate():
    """Two independent filtered Zmumu samples estimate the same phase-space cross section."""
    n = 20_000
    a = bkg.generate("Zmumu", n, np.random.default_rng(3)).weight.sum()
    b = bkg.generate("Zmumu", n, np.random.default_rng(4)).weight.sum()
    eff = a / bkg.XSEC_PB["Zmumu"]
    sigma = bkg.XSEC_PB["Zmumu"] * eff * np.sqrt((1 - eff) / n)  # negative-binomial spread
    assert abs(a - b) < 5 * np.sqrt(2) * sigma
    full = bkg.generate("Zmumu", n, np.random.default_rng(3), bkg.GeneratorFilter.none())
    assert a < full.weight.sum()


# ------------------------------------------------------------------- sample contents
@pytest.mark.parametrize("name", NAMES)
def test_sample_contents(samples, name):
    t = samples[name]
    f = bkg.GeneratorFilter()
    assert len(t) == 60_000
    for field in dataclasses.fields(TruthMuons):
        a = getattr(t, field.name)
        assert a.shape == (60_000,)
        assert np.all(np.isfinite(a))
        assert a.dtype == (np.int8 if field.name == "charge" else np.float64)
    assert set(np.unique(t.charge)) == {-1, 1}
    assert np.all((t.pt >= f.pt_min) & (t.pt < f.pt_max) & (np.abs(t.eta) < f.abs_eta_max))
    assert np.all((t.phi >= -np.pi) & (t.phi <= np.pi))
    assert np.allclose(t.weight, t.weight[0])
    assert 0.45 < np.mean(t.charge > 0) < 0.65


@pytest.mark.parametrize("name", NAMES)
def test_seeding_determinism(name):
    a = bkg.generate(name, 2_000, np.random.default_rng(11))
    b = bkg.generate(name, 2_000, np.random.default_rng(11))
    c = bkg.generate(name, 2_000, np.random.default_rng(12))
    for field in dataclasses.fields(TruthMuons):
        assert np.array_equal(getattr(a, field.name), getattr(b, field.name))
    assert not np.array_equal(a.pt, c.pt)


# --------------------------------------------------------------------------- shapes
def test_z_line_shape():
    m = bkg._z_line_shape(np.random.default_rng(5), 400_000)
    assert m.min() >= 50.0 and m.max() <= 150.0
    assert 0.94 < np.mean((m > 60) & (m < 120)) < 0.995
    h, edges = np.histogram(m, bins=np.arange(80.0, 100.0, 0.5))
    peak = edges[np.argmax(h)] + 0.25
    assert abs(peak - bkg.MZ_GEV) < 0.75
    # Breit-Wigner: about half of the resonant events within +- Gamma/2 of the pole
    assert 0.40 < np.mean(np.abs(m - bkg.MZ_GEV) < bkg.GAMMA_Z_GEV / 2) < 0.55


def test_decay_kinematics():
    rng = np.random.default_rng(6)
    n = 200_000
    m = bkg._z_line_shape(rng, n)
    q, _ = bkg._vector_boson(rng, m, *bkg.Z_Y, pt0=8.5, ptk=2.5)
    a0, a4 = np.zeros(n), np.full(n, 0.6)
    lm, lp = bkg._cs_decay(rng, q, m, a0, a4)
    assert np.allclose(lm + lp, q, rtol=0, atol=1e-6)
    assert np.allclose(bkg._mass(lm + lp), m, rtol=1e-9)
    # the first daughter's Collins-Soper cos theta has <cos> = A4 / 4 for A0 = 0
    _, _, z = kin._collins_soper_axes(q)
    rest = bkg._boost(lm, -bkg._beta(q))
    cos = np.sum(bkg._unit(rest[:, 1:]) * z, axis=-1)
    assert np.mean(cos) == pytest.approx(0.15, abs=0.01)
    # polarised tau -> mu spectrum: <x> = 0.40 (P = -1), 0.35 (0), 0.30 (+1)
    for pol, mean in ((-1.0, 0.40), (0.0, 0.35), (1.0, 0.30)):
        x = bkg._sample_tau_lepton_fraction(rng, 100_000, pol)
        assert np.mean(x) == pytest.approx(mean, abs=0.005)


def half_max_edge(pt: np.ndarray) -> float:
    """pT (GeV) where the muon pT distribution falls to half its maximum above the peak."""
    h, edges = np.histogram(pt, bins=np.arange(20.0, 70.0, 1.0))
    i = int(np.argmax(h))
    j = i + int(np.argmax(h[i:] < 0.5 * h[i]))
    return float(edges[j])


def test_zmumu_muon_spectrum(samples, wmunu):
    """Z -> mu mu with a lost muon: a Jacobian edge near mZ/2, beyond the W's mW/2 (a harder
    tail), and large missing pT from the lost muon (mostly passes mT > 40 GeV)."""
    z = samples["Zmumu"]
    acc, acc_w = np.abs(z.eta) < 2.4, np.abs(wmunu.eta) < 2.4
    edge_z, edge_w = half_max_edge(z.pt[acc]), half_max_edge(wmunu.pt[acc_w])
    assert 43.0 <= edge_z <= 48.0
    assert 39.0 <= edge_w <= 44.0 and edge_z >= edge_w + 2.0
    sz, sw = truth_selected(z), truth_selected(wmunu)
    assert np.mean(z.pt[sz] > 46) > 1.5 * np.mean(wmunu.pt[sw] > 46)
    mt_acc = truth_mt(z)[acc & (z.pt > 26) & (z.pt < 56)]
    assert np.mean(mt_acc > 40) > 0.7


def test_wtaunu_softer_than_wmunu(wmunu):
    t = bkg.generate("Wtaunu", 50_000, np.random.default_rng(8), bkg.GeneratorFilter.none())
    acc_t, acc_w = np.abs(t.eta) < 2.4, np.abs(wmunu.eta) < 2.4
    assert np.mean(t.pt[acc_t]) < 0.5 * np.mean(wmunu.pt[acc_w])
    assert np.mean(t.pt[acc_t] > 26) < 0.3 * np.mean(wmunu.pt[acc_w] > 26)
    # the boson is the W: its pT spectrum peaks at a few GeV with a mean of ~8 GeV
    assert 6.0 < np.mean(np.hypot(t.boson_px, t.boson_py)) < 10.0


def test_top_and_diboson_are_broad(samples, wmunu):
    sw = truth_selected(wmunu)
    for name in ("Top", "Diboson"):
        t = samples[name]
        s = truth_selected(t)
        assert np.mean(t.pt[s] > 46) > 0.2 > 3 * np.mean(wmunu.pt[sw] > 46)
        assert np.std(truth_mt(t)[s]) > 1.5 * np.std(truth_mt(wmunu)[sw])
        assert np.mean(np.hypot(t.boson_px, t.boson_py)) > 40.0  # large recoil


def test_nonprompt_is_soft_with_low_met(samples):
    t = samples["Nonprompt"]
    h, _ = np.histogram(t.pt, bins=[26, 36, 46, 56])
    assert h[0] > 3 * h[2]
    acc = (np.abs(t.eta) < 2.4) & (t.pt > 26) & (t.pt < 56)
    assert np.mean(truth_mt(t)[acc] > 40) < 0.1


# ------------------------------------------------------------------------- fractions
#: CMS-like fractions of the selected sample, in percent, at truth level (the nonprompt is
#: tuned for ~2% after the detector model's missing-pT resolution, ~0.6% at truth level)
TRUTH_FRACTION_RANGES = {
    "Zmumu": (2.5, 5.0),
    "Wtaunu": (1.0, 3.0),
    "Ztautau": (0.1, 0.5),
    "Top": (0.3, 1.2),
    "Diboson": (0.04, 0.3),
    "Nonprompt": (0.2, 1.5),
}


def test_truth_level_fractions(samples, wmunu):
    yields = {name: t.weight[truth_selected(t)].sum() for name, t in samples.items()}
    total = wmunu.weight[truth_selected(wmunu)].sum() + sum(yields.values())
    for name, (lo, hi) in TRUTH_FRACTION_RANGES.items():
        frac = 100.0 * yields[name] / total
        assert lo < frac < hi, f"{name}: {frac:.2f}% not in [{lo}, {hi}]"
    assert 0.3 < wmunu.weight[truth_selected(wmunu)].sum() / 20600.0 < 0.6


def test_reco_level_nonprompt_fraction(samples, wmunu):
    """With the detector model (if present), nonprompt is ~2% of the selected sample."""
    det_mod = pytest.importorskip("wmass_archive.producers.pseudo.detector")
    if not hasattr(det_mod, "simulate"):
        pytest.skip("detector model without simulate()")
    det = det_mod.DetectorModel()

    def reco(t: TruthMuons) -> float:
        r = det_mod.simulate(t, det, np.random.default_rng(9))
        return float((t.weight * r.eff)[r.bin >= 0].sum())

    yields = {name: reco(t) for name, t in samples.items()}
    total = reco(wmunu) + sum(yields.values())
    frac = 100.0 * yields["Nonprompt"] / total
    assert 1.0 < frac < 4.0, f"retune NONPROMPT_XSEC_PB: nonprompt is {frac:.2f}%"
    assert 2.0 < 100.0 * yields["Zmumu"] / total < 5.5


def test_scale_to_fraction():
    k = npr.scale_to_fraction(50.0, 9800.0, 0.02)
    assert 50.0 * k / (50.0 * k + 9800.0) == pytest.approx(0.02)
    with pytest.raises(ValueError):
        npr.scale_to_fraction(0.0, 1.0)
    with pytest.raises(ValueError):
        npr.scale_to_fraction(1.0, 1.0, 1.5)


# ------------------------------------------------------------------ nonprompt nuisances
def test_nonprompt_variation_names_and_shapes():
    var = npr.nonprompt_variations()
    names = [v.name for v in var]
    assert names == npr.fake_nuisance_names()
    assert len(names) == 27 == len(set(names))
    assert all(n.isidentifier() for n in names)
    assert "fakeNorm_etaReg3_plus" in names and "fakeSlope_etaReg3" in names
    for v in var:
        assert v.group == "Fake"
        assert v.up.shape == v.down.shape == (2, 48, 30)
        assert np.all(v.up > 0) and np.all(v.down > 0)
        assert np.allclose(v.up * v.down, 1.0)
        assert not np.allclose(v.up, 1.0)


def test_nonprompt_variation_content():
    var = {v.name: v for v in npr.nonprompt_variations()}
    norm = var["fakeNorm_etaReg3_plus"].up
    touched = ~np.isclose(norm, 1.0)
    assert touched.sum() == 6 * 30
    assert touched[1, 18:24].all() and not touched[0].any()  # eta in [-0.6, 0], mu+
    assert np.allclose(norm[touched], np.exp(0.05))
    slope = var["fakeSlope_etaReg0"].up
    assert slope[0, 0, -1] > 1.0 > slope[0, 0, 0] and np.allclose(slope[:, 6:], 1.0)
    assert np.allclose(slope[0], slope[1])
    ps = var["fakePromptSubtraction"].up[0, 0]
    pt_c = 0.5 * (npr.PT_EDGES[1:] + npr.PT_EDGES[:-1])
    assert 39.5 <= pt_c[np.argmin(ps)] <= 40.5 and ps.min() < 1.0


def test_nonprompt_shape_variations_conserve_region_yields(samples):
    t = samples["Nonprompt"]
    ie = np.clip(np.floor((t.eta + 2.4) / 0.1).astype(int), 0, 47)
    ip = np.clip(np.floor(t.pt - 26.0).astype(int), 0, 29)
    nominal = np.zeros((2, 48, 30))
    np.add.at(nominal, ((t.charge > 0).astype(int), ie, ip), t.weight)
    var = npr.nonprompt_variations(nominal)
    for v in var:
        for f in (v.up, v.down):
            per_region = (nominal * f).reshape(2, 8, 6, 30).sum(axis=(2, 3))
            ref = nominal.reshape(2, 8, 6, 30).sum(axis=(2, 3))
            if v.name.startswith("fakeNorm"):
                assert not np.allclose(per_region, ref)
            else:
                assert np.allclose(per_region, ref, rtol=1e-12)
    with pytest.raises(ValueError):
        npr.nonprompt_variations(np.ones((48, 30, 2)))


def test_nonprompt_variation_config():
    cfg = npr.FakeUncertaintyConfig(eta_region_edges=(-2.4, -1.2, 0.0, 1.2, 2.4), norm=0.1)
    var = npr.nonprompt_variations(config=cfg)
    assert len(var) == 4 * 2 + 4 + 2 + 1
    assert np.max(var[0].up) == pytest.approx(np.exp(0.1))
    with pytest.raises(ValueError):
        npr.FakeUncertaintyConfig(eta_region_edges=(0.0, -1.0))
    with pytest.raises(ValueError):
        bkg.GeneratorFilter(pt_min=20.0, bogus=1.0)
