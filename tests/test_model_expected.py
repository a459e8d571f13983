"""Expected yields of the JAX model against an independent numpy implementation of
docs/format.md sections 7, 9.2, 9.3, 10 and 11, written from the specification."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erfinv

from wmass_archive.archive import open_archive
from wmass_archive.errors import ArchiveError
from wmass_archive.model import ModelError, POISplit, build_model, poi_split
from wmass_archive.model.synthetic import write_counting_archive, write_folded_archive


# ----------------------------------------------------------------------- reference (numpy)
def _alpha(t):
    x = np.clip(2 * t, -1, 1)
    return x * (3 * x**4 - 10 * x**2 + 15) / 8


def _logratio(x, ref):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = x / ref
        return np.where((ref != 0) & (r > 0), np.log(np.where(r > 0, r, 1)), 0.0)


def reference_expected(path, theta: dict[str, float], pdf=None, grid=None, split=None):
    """Section 11 by hand: nu per bin, channels concatenated. ``split``: {bin mask name: (mask,
    value)} replacing the mass POI bin by bin."""
    with open_archive(path) as a:
        m = a.metadata
        th = m.theory
        names = m.parameter_names
        t_of = {n.name: n.prior_scale * theta.get(n.name, 0.0) for n in m.nuisances}
        t_of.update({p.name: theta.get(p.name, 0.0) for p in m.pois})
        out = []
        sigma = None
        if th is not None:
            s = next(x for x in th.pdf_sets if x.name == (pdf or th.nominal_pdf))
            nominal = a.theory_nominal()
            mem = a.pdf_members(s.name)
            c = nominal if s.name == th.nominal_pdf else mem[0]
            if grid is not None:
                c = grid
            add = c.copy()
            logf = np.zeros_like(c)
            if th.variations:
                up, dn = a.theory_variations()
                for i, v in enumerate(th.variations):
                    t = t_of[v.name]
                    if v.interpolation == "additive":
                        du, dd = up[i] - nominal, dn[i] - nominal
                        add += t * (du - dd) / 2 + t * _alpha(t) * (du + dd) / 2
                    else:
                        lu, ld = _logratio(up[i], nominal), _logratio(dn[i], nominal)
                        logf += t * (lu - ld) / 2 + t * _alpha(t) * (lu + ld) / 2
            scale = s.scale / (math.sqrt(2) * erfinv(s.confidence_level / 100))
            m0 = mem[0]
            n = s.n_nuisances
            for k in range(n):
                t = theta.get(f"pdf{s.name}EV{k + 1}", 0.0)
                if s.error_type == "hessian":
                    u, d = mem[2 * k + 1], mem[2 * k + 2]
                elif s.error_type == "symmhessian":
                    u, d = mem[k + 1], 2 * m0 - mem[k + 1]
                else:
                    e = a.pdf_eigenvectors(s.name)[k]
                    u, d = m0 + e, m0 - e
                if s.interpolation == "additive":
                    du, dd = scale * (u - m0), scale * (d - m0)
                    add += t * (du - dd) / 2 + t * _alpha(t) * (du + dd) / 2
                else:
                    lu = scale * _logratio(u, m0)
                    ld = scale * (
                        _logratio(d, m0) if s.error_type == "hessian" else -_logratio(u, m0)
                    )
                    logf += t * (lu - ld) / 2 + t * _alpha(t) * (lu + ld) / 2
            sigma = add * np.exp(logf)
        offset = 0
        for ch in m.channels:
            total = np.zeros(ch.n_bins)
            t_logk = a.logk(ch.name)
            for p in ch.processes:
                proc = m.process(p)
                pidx = m.process_index(p)
                if proc.folded:
                    mpoi = m.mass_poi_of(p)
                    pts = mpoi.mass_points if mpoi else [0.0]
                    R = a.response(p, ch.name)
                    nus = np.array([m.luminosity.value * R[j] @ sigma for j in range(len(pts))])
                    j0 = pts.index(0.0)
                    tm = np.full(ch.n_bins, t_of[mpoi.name] if mpoi else 0.0)
                    if split is not None:
                        for mask, val in split.values():
                            tm = np.where(mask[offset : offset + ch.n_bins], val, tm)
                    r = np.array([_logratio(nus[j], nus[j0]) for j in range(len(pts))])
                    if [float(x) for x in pts] == [-1.0, 0.0, 1.0]:
                        avg, hd = (r[2] - r[0]) / 2, (r[2] + r[0]) / 2
                        lnu = tm * avg + tm * _alpha(tm) * hd
                    elif len(pts) == 1:
                        lnu = 0.0
                    else:
                        lnu = np.zeros(ch.n_bins)
                        for b in range(ch.n_bins):
                            i = int(
                                np.clip(
                                    np.searchsorted(pts, tm[b], side="right") - 1, 0, len(pts) - 2
                                )
                            )
                            u = (tm[b] - pts[i]) / (pts[i + 1] - pts[i])
                            lnu[b] = r[i, b] + u * (r[i + 1, b] - r[i, b])
                    nom = nus[j0] * np.exp(lnu)
                else:
                    nom = a.nominal(p, ch.name).copy()
                rho = 1.0
                for poi in m.pois:
                    if poi.kind == "rate" and any(
                        s_.process == p and (s_.channels is None or ch.name in s_.channels)
                        for s_ in poi.acts_on
                    ):
                        rho *= poi.central + poi.scale * theta.get(poi.name, 0.0)
                sel = t_logk.process == pidx
                expo = np.zeros(ch.n_bins)
                for k, b, av, hd in zip(
                    t_logk.parameter[sel],
                    t_logk.bin[sel],
                    t_logk.avg[sel],
                    t_logk.halfdiff[sel],
                    strict=True,
                ):
                    t = t_of[names[k]]
                    if split is not None and names[k] in {x.split("_")[0] for x in split}:
                        for mask, val in split.values():
                            if mask[offset + b]:
                                t = val
                    expo[b] += t * av + t * _alpha(t) * hd
                total += rho * nom * np.exp(expo)
            out.append(total)
            offset += ch.n_bins
        return np.concatenate(out)


def random_theta(model, rng, scale=0.8):
    th = rng.normal(0.0, scale, model.n_params)
    return th, dict(zip(model.parameter_names, th, strict=True))


# ----------------------------------------------------------------------- tests
@pytest.mark.parametrize("pdf", [None, "DemoReplicas", "demo-mc"])
def test_demo_expected_matches_reference(demo_archive_master, pdf):
    m = build_model(demo_archive_master, pdf=pdf)
    rng = np.random.default_rng(3)
    for _ in range(2):
        th, named = random_theta(m, rng)
        np.testing.assert_allclose(
            m.expected(th),
            reference_expected(demo_archive_master, named, pdf=m.info.pdf_set),
            rtol=1e-11,
        )
    if pdf is None:  # theta = 0 with the nominal set reproduces the stored nominal yields
        with open_archive(demo_archive_master) as a:
            nom = a.select().nominal().sum(axis=0)
        np.testing.assert_allclose(m.expected(), nom, rtol=1e-9)


@pytest.mark.parametrize(
    "opts",
    [
        dict(pdf_type="hessian", pdf_interpolation="multiplicative"),
        dict(pdf_type="symmhessian", pdf_interpolation="multiplicative", sparse_response=True),
        dict(
            pdf_type="replicas",
            pdf_interpolation="additive",
            two_channels=True,
            variation_interpolation="additive",
        ),
        dict(
            pdf_type="replicas",
            pdf_interpolation="multiplicative",
            mass_points=(-2.0, -1.0, 0.0, 0.5, 1.5),
        ),
        dict(mass_points=(0.0,)),
    ],
)
def test_folded_variants_match_reference(tmp_path, opts):
    path = tmp_path / "f.h5"
    write_folded_archive(path, **opts)
    m = build_model(path)
    rng = np.random.default_rng(5)
    for scale in (0.3, 1.5):
        th, named = random_theta(m, rng, scale)
        np.testing.assert_allclose(m.expected(th), reference_expected(path, named), rtol=1e-11)


def test_other_pdf_set_and_user_grid(tmp_path):
    path = tmp_path / "f.h5"
    write_folded_archive(path)
    rng = np.random.default_rng(1)
    m = build_model(path, pdf="Q_test")  # by LHAPDF name
    assert m.info.pdf_set == "Q" and "pdfQEV2" in m.parameter_names
    th, named = random_theta(m, rng)
    np.testing.assert_allclose(m.expected(th), reference_expected(path, named, pdf="Q"), rtol=1e-11)
    with open_archive(path) as a:
        grid = a.theory_nominal() * np.linspace(0.9, 1.1, a.metadata.theory.n_gen)
    mg = build_model(path, theory_grid=grid)
    assert mg.info.theory_grid == "user"
    th, named = random_theta(mg, rng)
    np.testing.assert_allclose(
        mg.expected(th), reference_expected(path, named, grid=grid), rtol=1e-11
    )
    with pytest.raises(ArchiveError, match="theory grid"):
        build_model(path, theory_grid=grid[:-1])
    with pytest.raises(ArchiveError, match="unknown PDF set 'NNPDF99': not in f.h5"):
        build_model(path, pdf="NNPDF99")


def test_rate_poi(tmp_path):
    path = tmp_path / "c.h5"
    info = write_counting_archive(path)
    m = build_model(path)
    assert m.parameter_names[0] == "mu" and m.info.pois[0].kind == "rate"
    th = np.array([0.3, 0.5, -1.2])
    expect = reference_expected(path, dict(zip(m.parameter_names, th, strict=True)))
    np.testing.assert_allclose(m.expected(th), expect, rtol=1e-13)
    by_proc = m.expected_by_process(th)
    np.testing.assert_allclose(by_proc[0], 1.3 * info["yields"]["sig"] * 1.02**0.5, rtol=1e-13)


def test_charge_split_from_axis(demo_archive_master):
    m0 = build_model(demo_archive_master)
    m = build_model(demo_archive_master, poi="mw-charge")
    assert m.poi_names == ["mW_plus", "mW_minus"]
    assert m.parameter_names[2:] == m0.parameter_names[1:]
    assert [p.n_bins for p in m.info.pois] == [120, 120]
    rng = np.random.default_rng(2)
    th0, _ = random_theta(m0, rng)
    th = np.concatenate([[th0[0], th0[0]], th0[1:]])
    np.testing.assert_allclose(m.expected(th), m0.expected(th0), rtol=1e-13)
    # moving mW_plus changes only positive-charge bins (charge is the last axis: odd bins)
    th2 = th.copy()
    th2[0] += 0.5
    diff = m.expected(th2) != m.expected(th)
    assert np.all(diff[1::2]) and not np.any(diff[0::2])
    with open_archive(demo_archive_master) as a:
        split = poi_split(a.metadata, "mw-charge")
    named = dict(zip(m.parameter_names, th2, strict=True))
    named["mW"] = 0.0
    ref = reference_expected(
        demo_archive_master,
        named,
        split={n: (mask, named[n]) for n, mask in split.parts},
    )
    np.testing.assert_allclose(m.expected(th2), ref, rtol=1e-11)


def test_eta_and_barrel_splits(demo_archive_master):
    with open_archive(demo_archive_master) as a:
        meta = a.metadata
    eta = poi_split(meta, "mw-eta")
    # 12 eta bins x 10 pt x 2 charges: first 6 eta rows negative
    assert [n for n, _ in eta.parts] == ["mW_etaneg", "mW_etapos"]
    assert eta.parts[0][1].sum() == 120 and np.all(eta.parts[0][1][:120])
    be = poi_split(meta, "mw-barrel-endcap")
    # |eta centre| < 0.9: centres +-0.2, +-0.6 -> 4 rows of 20 bins
    assert be.parts[0][1].sum() == 80
    m = build_model(demo_archive_master, poi=be)
    assert m.poi_names == ["mW_barrel", "mW_endcap"]
    with pytest.raises(ArchiveError, match="acts on no bin"):
        POISplit("mW", (("a", np.zeros(240, bool)),)).validate(meta)
    half = np.arange(240) < 100
    with pytest.raises(ArchiveError, match="partition"):
        POISplit("mW", (("a", half), ("b", half))).validate(meta)
    with pytest.raises(Exception, match="unknown POI definition"):
        poi_split(meta, "mw-phi")


def test_charge_split_from_channel_names(tmp_path):
    path = tmp_path / "two.h5"
    write_folded_archive(path, two_channels=True)
    m = build_model(path, poi="mw-charge")
    th = np.zeros(m.n_params)
    th[0] = 0.4  # mW_plus: channel mu_plus, the second one
    nu0, nu = m.expected(), m.expected(th)
    n = m.n_bins // 2
    assert np.all(nu[:n] == nu0[:n]) and np.all(nu[n:] != nu0[n:])


def test_frozen_selection_and_groups(demo_archive_master):
    m = build_model(demo_archive_master)
    assert set(m.select(["lumi"])) == {m.index("lumi")}
    assert len(m.select("muon_eff_stat")) == 24
    assert len(m.select("pdf*")) == 3 and m.groups()["pdfDemoHessian"] == list(m.select("pdf*"))
    free = m.free_mask(["mW", "muonCalibration"])
    assert not free[0] and free.sum() == m.n_params - 13
    with pytest.raises(ModelError, match="matches no parameter"):
        m.select("nonexistent")


def test_rate_poi_at_or_below_zero_gives_zero_yield(tmp_path):
    """A rate POI whose physical value is <= 0 zeroes the yields it acts on (format section 11),
    in the 1.0 path as in the generic one, instead of leaving them at the nominal."""
    import numpy as np

    from wmass_archive.archive import POI, ArchiveWriter, Axis
    from wmass_archive.model import build_model

    w = ArchiveWriter(
        title="rate clip",
        synthetic=True,
        citation={"title": "test"},
        provenance={"producer": "test", "producer_version": "0"},
    )
    w.add_channel("c", np.array([5.0, 6.0]), axes=[Axis.regular(2, 0, 2, name="x")])
    w.add_process("s", kind="signal")
    w.add_process("b")
    w.set_yield("s", "c", np.array([2.0, 3.0]), sumw2=np.zeros(2))
    w.set_yield("b", "c", np.array([4.0, 4.0]), sumw2=np.zeros(2))
    w.add_poi(POI(name="mu", kind="rate", central=1.0, scale=1.0, acts_on=[{"process": "s"}]))
    w.write(tmp_path / "r.h5")
    m = build_model(tmp_path / "r.h5")
    for theta, factor in ((-0.5, 0.5), (-1.0, 0.0), (-1.7, 0.0)):
        got = np.asarray(m.expected_by_process(np.array([theta])))
        np.testing.assert_allclose(got, [factor * np.array([2.0, 3.0]), [4.0, 4.0]], rtol=1e-14)
