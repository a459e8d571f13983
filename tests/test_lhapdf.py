"""The LHAPDF reader against the files themselves, an independent scalar implementation of
LHAPDF 6.5's log-bicubic algorithm, and the independent ``parton`` package."""

from __future__ import annotations

import bisect
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from wmass_archive.theory import (
    CL1SIGMA,
    LHAPDFError,
    PDFFormatError,
    PDFRangeError,
    PDFSetNotFoundError,
    available_pdf_sets,
    cl_scale,
    find_pdf_set_dir,
    load_member,
    load_pdf_set,
    pdf_search_paths,
    pdf_uncertainty,
    read_pdf_set_info,
)

PDFSETS = Path(
    os.environ.get("WMASS_PDFSETS", Path(__file__).resolve().parents[2] / "shared" / "pdfsets")
)
SETS = ("CT10nlo", "NNPDF23_lo_as_0119_qed", "NNPDF31_nnlo_as_0118_mc")
pytestmark = pytest.mark.skipif(not PDFSETS.is_dir(), reason="shared PDF sets not available")


# ----------------------------------------------------------------------------------------------
# an independent reading of the files and of LHAPDF's algorithm (scalar, deliberately naive)
# ----------------------------------------------------------------------------------------------


def parse_dat(path: Path) -> list[dict]:
    """Subgrids of a member file: [{'x': [...], 'q': [...], 'pids': [...], 'v': [[...]]}]."""
    blocks = path.read_text().split("\n---")
    out = []
    for block in blocks[1:]:
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        if len(lines) < 4:
            continue
        xs = [float(t) for t in lines[0].split()]
        qs = [float(t) for t in lines[1].split()]
        pids = [int(t) for t in lines[2].split()]
        rows = [[float(t) for t in ln.split()] for ln in lines[3:]]
        assert len(rows) == len(xs) * len(qs)
        out.append({"x": xs, "q": qs, "pids": pids, "v": rows})
    return out


def _herm(t, vl, vdl, vh, vdh):
    return (
        (2 * t**3 - 3 * t**2 + 1) * vl
        + (t**3 - 2 * t**2 + t) * vdl
        + (-2 * t**3 + 3 * t**2) * vh
        + (t**3 - t**2) * vdh
    )


class ReferenceLHAPDF:
    """LHAPDF 6.5 ``logcubic`` written as plainly as possible, one point at a time."""

    def __init__(self, subgrids: list[dict], force_positive: int = 0):
        self.xs = subgrids[0]["x"]
        self.q2 = [q * q for sg in subgrids for q in sg["q"]]
        self.pids = [21 if p == 0 else p for p in subgrids[0]["pids"]]
        nx = len(self.xs)
        # value[ix][iq][flavour], the subgrids' Q knots stacked
        self.v = [[] for _ in range(nx)]
        for sg in subgrids:
            nq = len(sg["q"])
            for ix in range(nx):
                for iq in range(nq):
                    self.v[ix].append(sg["v"][ix * nq + iq])
        self.lx = [math.log(x) for x in self.xs]
        self.lq = [math.log(q) for q in self.q2]
        self.fp = force_positive

    def _ddx(self, i, j, f):
        lx, v = self.lx, self.v
        if i == 0:
            return (v[1][j][f] - v[0][j][f]) / (lx[1] - lx[0])
        if i == len(lx) - 1:
            return (v[i][j][f] - v[i - 1][j][f]) / (lx[i] - lx[i - 1])
        left = (v[i][j][f] - v[i - 1][j][f]) / (lx[i] - lx[i - 1])
        right = (v[i + 1][j][f] - v[i][j][f]) / (lx[i + 1] - lx[i])
        return 0.5 * (left + right)

    def xfxQ2(self, pid, x, q2):
        f = self.pids.index(pid)
        nx, nq = len(self.xs), len(self.q2)
        ix = min(max(bisect.bisect_right(self.xs, x) - 1, 0), nx - 2)
        iq = min(max(bisect.bisect_right(self.q2, q2) - 1, 0), nq - 2)
        dlx = self.lx[ix + 1] - self.lx[ix]
        tx = (math.log(x) - self.lx[ix]) / dlx

        def along_x(j):
            return _herm(
                tx,
                self.v[ix][j][f],
                self._ddx(ix, j, f) * dlx,
                self.v[ix + 1][j][f],
                self._ddx(ix + 1, j, f) * dlx,
            )

        lq = self.lq
        lower = iq == 0 or self.q2[iq] == self.q2[iq - 1]
        upper = iq + 1 == nq - 1 or self.q2[iq + 1] == self.q2[iq + 2]
        tq = (math.log(q2) - lq[iq]) / (lq[iq + 1] - lq[iq])
        if lower and upper:  # two-knot subgrid: bilinear
            lo = self.v[ix][iq][f] + tx * (self.v[ix + 1][iq][f] - self.v[ix][iq][f])
            hi = self.v[ix][iq + 1][f] + tx * (self.v[ix + 1][iq + 1][f] - self.v[ix][iq + 1][f])
            res = lo + tq * (hi - lo)
        else:
            vl, vh = along_x(iq), along_x(iq + 1)
            d1 = lq[iq + 1] - lq[iq]
            if lower:
                vdl = vh - vl
                vdh = 0.5 * (vdl + (along_x(iq + 2) - vh) * d1 / (lq[iq + 2] - lq[iq + 1]))
            elif upper:
                vdh = vh - vl
                vdl = 0.5 * (vdh + (vl - along_x(iq - 1)) * d1 / (lq[iq] - lq[iq - 1]))
            else:
                vdl = 0.5 * ((vh - vl) + (vl - along_x(iq - 1)) * d1 / (lq[iq] - lq[iq - 1]))
                vdh = 0.5 * ((vh - vl) + (along_x(iq + 2) - vh) * d1 / (lq[iq + 2] - lq[iq + 1]))
            res = _herm(tq, vl, vdl, vh, vdh)
        if self.fp == 1:
            res = max(res, 0.0)
        elif self.fp == 2:
            res = max(res, 1e-10)
        return res


def _random_points(m, n, rng, xlo=1e-4, xhi=0.9):
    x = np.exp(rng.uniform(np.log(max(xlo, m.x_min)), np.log(xhi), n))
    q = np.exp(rng.uniform(np.log(m.q_min), np.log(m.q_max), n))
    return x, q


# ----------------------------------------------------------------------------------------------
# knots, reference algorithm, parton
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,member", [(s, 0) for s in SETS] + [("CT10nlo", 17)])
def test_values_at_the_knots_are_the_numbers_in_the_file(name, member):
    m = load_member(name, member, PDFSETS)
    (sg,) = parse_dat(PDFSETS / name / f"{name}_{member:04d}.dat")
    x = np.repeat(sg["x"], len(sg["q"]))
    q = np.tile(sg["q"], len(sg["x"]))
    want = np.array(sg["v"])  # rows: x outer, Q inner
    if m.force_positive == 1:
        want = np.maximum(want, 0.0)
    got = m.xfxQ_all(x, q, sg["pids"])
    assert np.array_equal(got.T, want)  # exactly the stored numbers


@pytest.mark.parametrize("name", SETS)
def test_between_knots_equals_independent_lhapdf_algorithm(name):
    m = load_member(name, 0, PDFSETS)
    ref = ReferenceLHAPDF(parse_dat(m.path), m.force_positive)
    rng = np.random.default_rng(7)
    x, q = _random_points(m, 300, rng, xlo=m.x_min, xhi=1.0)
    x[:3] = [m.x_min, 1.0, m.x_knots[5]]  # grid edges and a knot in x
    q[3:6] = [m.q_min, m.q_max, math.sqrt(m.q2_knots[3])]
    for pid in (21, 1, 2, -1, -2, 3, 4, 5):
        got = m.xfxQ(pid, x, q)
        want = np.array([ref.xfxQ2(pid, xi, qi * qi) for xi, qi in zip(x, q, strict=True)])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", SETS)
def test_between_knots_agrees_with_parton(name):
    """parton interpolates with a global bicubic spline (scipy), LHAPDF with local Hermite
    cubics: the two agree to the interpolation error, a few 1e-4 typically."""
    parton = pytest.importorskip("parton")
    m = load_member(name, 0, PDFSETS)
    p = parton.mkPDF(name, 0, pdfdir=str(PDFSETS))
    rng = np.random.default_rng(3)
    x, q = _random_points(m, 2000, rng, xlo=1e-4, xhi=0.6)
    q = np.clip(q, 1.001 * m.q_min, 0.999 * m.q_max)
    for pid in (21, 1, 2, -1, -2, 3, 4):
        a = m.xfxQ(pid, x, q)
        b = p.xfxQ(pid, x, q, grid=False)
        rel = np.abs(a - b) / np.abs(b)
        assert np.median(rel) < 1e-4, (pid, np.median(rel))
        # tiny sea values at large x (x f ~ 1e-3) differ more in relative terms
        assert np.all(np.abs(a - b) <= 5e-3 * np.abs(b) + 1e-4), (pid, np.max(rel))
    # at the knots both reproduce the file
    xk, qk = m.x_knots[10:60:7], np.sqrt(m.q2_knots[1:-1])
    xx, qq = np.meshgrid(xk, qk, indexing="ij")
    np.testing.assert_allclose(
        m.xfxQ(2, xx.ravel(), qq.ravel()),
        p.xfxQ(2, xx.ravel(), qq.ravel(), grid=False),
        rtol=1e-9,
    )


def _write_split_set(tmp_path: Path, cuts: list[int], scale_upper: float = 1.0) -> Path:
    """CT10nlo member 0 re-cut into subgrids at Q-knot indices ``cuts`` (boundary knots
    repeated, as LHAPDF files do); subgrids above the first scaled by ``scale_upper`` so that
    the value on a boundary tells which subgrid was used."""
    (sg,) = parse_dat(PDFSETS / "CT10nlo" / "CT10nlo_0000.dat")
    nq = len(sg["q"])
    bounds = [0, *cuts, nq - 1]
    folder = tmp_path / "Split"
    folder.mkdir()
    info = (PDFSETS / "CT10nlo" / "CT10nlo.info").read_text()
    info = info.replace("NumMembers: 53", "NumMembers: 1").replace(
        "ForcePositive: 1", "ForcePositive: 0"
    )
    (folder / "Split.info").write_text(info)
    parts = ["PdfType: central\nFormat: lhagrid1\n---"]
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        qs = sg["q"][a : b + 1]
        rows = []
        for ix in range(len(sg["x"])):
            for iq in range(a, b + 1):
                f = 1.0 if k == 0 else scale_upper
                rows.append(" ".join(f"{v * f:.8e}" for v in sg["v"][ix * nq + iq]))
        parts.append(
            " ".join(f"{x:.6e}" for x in sg["x"])
            + "\n"
            + " ".join(f"{q:.6e}" for q in qs)
            + "\n"
            + " ".join(str(p) for p in sg["pids"])
            + "\n"
            + "\n".join(rows)
            + "\n---"
        )
    (folder / "Split_0000.dat").write_text("\n".join(parts) + "\n")
    return folder


def test_several_subgrids_edges_and_bilinear_fallback(tmp_path):
    # subgrids Q knots [0..3], [3..4] (two knots: bilinear), [4..6]
    folder = _write_split_set(tmp_path, [3, 4], scale_upper=1.02)
    m = load_member(folder, 0)
    assert m.q2_knots.size == 9  # 7 knots + 2 repeated boundaries
    ref = ReferenceLHAPDF(parse_dat(folder / "Split_0000.dat"))
    rng = np.random.default_rng(11)
    x, q = _random_points(m, 400, rng, xlo=1e-5, xhi=1.0)
    qb = math.sqrt(m.q2_knots[3])
    q[:20] = qb  # exactly on a subgrid boundary
    for pid in (21, 2, -1):
        got = m.xfxQ(pid, x, q)
        want = np.array([ref.xfxQ2(pid, xi, qi * qi) for xi, qi in zip(x, q, strict=True)])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # a Q on a boundary takes the upper subgrid (LHAPDF's upper_bound - 1): the scaled values
    xk = m.x_knots[40]
    plain = load_member("CT10nlo", 0, PDFSETS).xfxQ(2, xk, qb)
    assert m.xfxQ(2, xk, qb) == pytest.approx(1.02 * plain, rel=1e-8)
    # inside the two-knot subgrid the Q dependence is linear in log Q2 at an x knot
    q_lo, q_hi = math.sqrt(m.q2_knots[4]), math.sqrt(m.q2_knots[5])
    qm = math.sqrt(q_lo * q_hi)  # half way in log Q2
    mid = m.xfxQ(2, xk, qm)
    assert mid == pytest.approx(
        0.5 * (m.xfxQ(2, xk, q_lo * 1.0000001) + m.xfxQ(2, xk, q_hi)), rel=1e-6
    )


def test_force_positive_and_missing_flavours():
    m = load_member("CT10nlo", 0, PDFSETS)
    assert m.force_positive == 1
    assert m.xfxQ(6, 0.01, 80.0) == 0.0  # no top in the grid
    assert m.xfxQ(0, 0.01, 80.0) == m.xfxQ(21, 0.01, 80.0)
    vals = m.xfxQ_all(np.full(5, 0.05), np.full(5, 91.0))
    assert vals.shape == (13, 5)
    assert np.all(vals[6] == m.xfxQ(21, 0.05, 91.0))


def test_alphas_at_mz():
    s = load_pdf_set("CT10nlo", PDFSETS)
    assert s.alphasQ(91.1876) == pytest.approx(0.1180007, abs=1e-7)  # a table knot
    assert 0.118 < s.alphasQ(80.0) < 0.124


def test_reader_is_fast():
    m = load_member("NNPDF23_lo_as_0119_qed", 0, PDFSETS)
    rng = np.random.default_rng(0)
    x, q = _random_points(m, 200_000, rng)
    t = time.perf_counter()
    m.xfxQ_all(x, q)
    assert time.perf_counter() - t < 3.0  # ~0.25 s on 2 cores


# ----------------------------------------------------------------------------------------------
# finding sets
# ----------------------------------------------------------------------------------------------


def test_discovery_on_lhapdf_data_path_with_several_folders(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "other"
    shutil.copytree(PDFSETS / "NNPDF31_nnlo_as_0118_mc", other / "NNPDF31_nnlo_as_0118_mc")
    env = os.pathsep.join([str(empty), str(tmp_path / "missing"), str(other), str(PDFSETS)])
    monkeypatch.setenv("LHAPDF_DATA_PATH", env)
    monkeypatch.delenv("LHAPATH", raising=False)
    assert pdf_search_paths()[:3] == [empty, tmp_path / "missing", other]
    assert set(SETS) <= set(available_pdf_sets())
    # the first folder holding the set wins
    assert (
        find_pdf_set_dir("NNPDF31_nnlo_as_0118_mc") == (other / "NNPDF31_nnlo_as_0118_mc").resolve()
    )
    assert find_pdf_set_dir("CT10nlo") == (PDFSETS / "CT10nlo").resolve()
    # explicit paths come before the environment
    assert (
        find_pdf_set_dir("NNPDF31_nnlo_as_0118_mc", PDFSETS)
        == (PDFSETS / "NNPDF31_nnlo_as_0118_mc").resolve()
    )
    assert load_pdf_set("CT10nlo").info.num_members == 53


def test_lhapath_fallback_and_explicit_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LHAPDF_DATA_PATH", raising=False)
    monkeypatch.setenv("LHAPATH", str(PDFSETS))
    assert read_pdf_set_info("CT10nlo").error_conf_level == 90
    monkeypatch.delenv("LHAPATH")
    with pytest.raises(PDFSetNotFoundError, match="no folders to search"):
        find_pdf_set_dir("CT10nlo")
    assert find_pdf_set_dir(PDFSETS / "CT10nlo") == (PDFSETS / "CT10nlo").resolve()
    assert find_pdf_set_dir(str(PDFSETS / "CT10nlo" / "CT10nlo.info")).name == "CT10nlo"


def test_missing_set_names_what_was_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("LHAPDF_DATA_PATH", f"{PDFSETS}{os.pathsep}{tmp_path / 'nowhere'}")
    with pytest.raises(PDFSetNotFoundError) as err:
        find_pdf_set_dir("CT18ZNNLO")
    msg = str(err.value)
    assert "CT18ZNNLO" in msg and "CT10nlo" in msg and "(missing)" in msg and "\n" not in msg
    with pytest.raises(PDFSetNotFoundError, match="not found or not a set"):
        find_pdf_set_dir(tmp_path / "nowhere")
    monkeypatch.delenv("LHAPDF_DATA_PATH")
    monkeypatch.delenv("LHAPATH", raising=False)
    with pytest.raises(LHAPDFError, match="CT10nlo"):
        load_member("CT10nlo", 0, tmp_path)


# ----------------------------------------------------------------------------------------------
# bad files and bad points
# ----------------------------------------------------------------------------------------------


def _copy_set(tmp_path: Path, name: str = "NNPDF31_nnlo_as_0118_mc") -> Path:
    dst = tmp_path / name
    shutil.copytree(PDFSETS / name, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda t: t.rsplit("---", 1)[0], "truncated"),
        (lambda t: t.replace("2.5030298e+01", "2.5030298e+0x", 1), "Q knots are not numbers"),
        (lambda t: t.replace("  2.9256278E+00", "  nonsense", 1), "not a number"),
        (lambda t: t.replace("\n  2.9256278E+00", "\n", 1), "values but 11 flavours"),
        (lambda t: "no separator at all\n", "no '---' separator"),
    ],
)
def test_malformed_member_file(tmp_path, damage, match):
    d = _copy_set(tmp_path)
    f = d / "NNPDF31_nnlo_as_0118_mc_0000.dat"
    f.write_text(damage(f.read_text()))
    with pytest.raises(PDFFormatError, match=match) as err:
        load_member(d, 0)
    assert "\n" not in str(err.value) and f.name in str(err.value)


@pytest.mark.parametrize(
    "old,new,match",
    [
        ("Format: lhagrid1", "Format: lhagrid2", "not supported"),
        ("NumMembers: 101\n", "", "NumMembers"),
        ("Flavors: [", "Flavors: [[", "nested lists"),
    ],
)
def test_malformed_info_file(tmp_path, old, new, match):
    d = _copy_set(tmp_path)
    f = d / "NNPDF31_nnlo_as_0118_mc.info"
    f.write_text(f.read_text().replace(old, new))
    with pytest.raises(PDFFormatError, match=match):
        load_pdf_set(d)


def test_out_of_range_and_unphysical_points():
    m = load_member("CT10nlo", 0, PDFSETS)
    with pytest.raises(PDFRangeError, match="outside the grid"):
        m.xfxQ(2, 1e-6, 80.0)
    with pytest.raises(PDFRangeError, match="outside the grid"):
        m.xfxQ(2, 0.1, 1000.0)
    with pytest.raises(PDFRangeError, match="unphysical"):
        m.xfxQ(2, 1.5, 80.0)
    with pytest.raises(PDFRangeError, match="unphysical"):
        m.xfxQ(2, np.array([0.1, np.nan]), 80.0)
    # extrapolation on request
    near = m.xfxQ(2, 0.1, 1000.0, extrapolation="nearest")
    assert near == pytest.approx(m.xfxQ(2, 0.1, m.q_max))
    assert m.xfxQ(2, 1e-6, 80.0, extrapolation="continuation") > 0
    with pytest.raises(IndexError, match="member 60"):
        load_pdf_set("CT10nlo", PDFSETS).member(60)


# ----------------------------------------------------------------------------------------------
# uncertainties
# ----------------------------------------------------------------------------------------------


def _u_valence(s):
    return np.array([m.xfxQ(2, 0.1, 80.36) - m.xfxQ(-2, 0.1, 80.36) for m in s])


def test_hessian_90cl_is_rescaled_to_68cl():
    s = load_pdf_set("CT10nlo", PDFSETS)
    v = _u_valence(s)
    up, dn = v[1::2] - v[0], v[2::2] - v[0]
    sym90 = 0.5 * math.sqrt(np.sum((up - dn) ** 2))
    plus90 = math.sqrt(np.sum(np.maximum(np.maximum(up, dn), 0) ** 2))
    minus90 = math.sqrt(np.sum(np.maximum(np.maximum(-up, -dn), 0) ** 2))
    u = s.uncertainty(v)
    assert cl_scale(90.0) == pytest.approx(1 / 1.644854, rel=1e-6)
    assert u.central == v[0]
    assert u.err_sym == pytest.approx(sym90 / 1.644854, rel=1e-6)
    assert u.err_plus == pytest.approx(plus90 / 1.644854, rel=1e-6)
    assert u.err_minus == pytest.approx(minus90 / 1.644854, rel=1e-6)
    assert s.uncertainty(v, cl=90).err_sym == pytest.approx(sym90, rel=1e-12)
    assert 0.001 < u.err_sym / u.central < 0.05  # a percent-level PDF uncertainty


def test_replicas_mean_and_standard_deviation():
    s = load_pdf_set("NNPDF23_lo_as_0119_qed", PDFSETS)
    assert s.info.error_type == "replicas" and len(s) == 101
    v = _u_valence(s)
    u = s.uncertainty(v, cl=CL1SIGMA)
    assert u.central == pytest.approx(np.mean(v[1:]), rel=1e-12)
    assert u.err_sym == pytest.approx(np.std(v[1:], ddof=1), rel=1e-12)
    assert u.err_plus == u.err_minus == u.err_sym
    assert v[0] == pytest.approx(u.central, rel=2e-3)  # member 0 is the replica average
    assert s.uncertainty(v, cl=90).err_sym == pytest.approx(1.644854 * u.err_sym, rel=1e-6)


def test_central_only_and_symmhessian():
    s = load_pdf_set("NNPDF31_nnlo_as_0118_mc", PDFSETS)
    assert len(s) == 1 and not s.is_complete
    u = s.uncertainty(_u_valence(s))
    assert u.err_sym == 0.0
    vals = np.array([1.0, 1.1, 0.8, 1.0])
    u = pdf_uncertainty(vals, "symmhessian")
    assert u.err_sym == pytest.approx(math.sqrt(0.01 + 0.04))
    with pytest.raises(ValueError, match="core type"):
        pdf_uncertainty(vals, "bogus")
