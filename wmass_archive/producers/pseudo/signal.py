"""W -> mu nu event generation for the pseudo-analysis, cell by cell from a theory grid.

Events are drawn per generator cell (qW, |y^W|, pT^W) of :mod:`wmass_archive.theory.generator`:

* **Importance scheme.** A cell c with sigma_UL,c > 0 gets N_c ~ N * [(1 - f) sigma_c / sum
  sigma + f / n_cells] events (f = ``SignalConfig.floor_fraction``, default 2%: every cell
  is populated, so the response tensor has no empty generator bins), rounded to integers.
  Every event of cell c weighs w = sigma_UL,c / N_c (pb): the weights of a cell sum to its
  grid cross section exactly. A chunk k of K gets floor((k+1) N_c / K) - floor(k N_c / K)
  events of each cell, so the chunks partition the sample whatever K.
* **Inside a cell.** |y| and pT are drawn from the tabulated densities of the
  :class:`CellDensities` by exact inverse CDF of their linear interpolation (restricted to
  the cell); the sign of y is random (50/50) and the W azimuth uniform.
* **Mass.** Relativistic Breit-Wigner with running width in s = m^2,
  f(s) ~ 1 / [(s - M^2)^2 + s^2 Gamma^2 / M^2] (M = 80.360, Gamma = 2.085 GeV), truncated to
  ``mass_window`` (default 50-200 GeV) and sampled exactly (it is a Cauchy in s). The mass
  weights for M +- 100 MeV (Gamma fixed) are ratios of the *normalised* (in the window)
  densities: mW changes the line shape, not the inclusive cross section. Choice documented
  here because CMS's matrix-element weights also move the normalisation by ~0.1%.
* **Decay.** (cos theta, phi) of the *charged* lepton in the Collins-Soper frame: z along
  the bisector of the beams in the W rest frame, oriented along the W's longitudinal
  direction (sign of y^W), x along the W's transverse momentum, y = z cross x. Drawn from
  :func:`angular_density` with the cell's A_i exactly: cos theta from its marginal, then
  phi given cos theta, both by accept-reject under exact bounds. This is the convention of
  :mod:`wmass_archive.theory.generator` (theta of the charged lepton, for W+ and W-).
  The leptons are massless; the W is built at (m, pT, y, phi_W) and the decay boosted to
  the lab by a transverse then a longitudinal boost (which maps the CS axes exactly).
* **Helicity weights.** h_i = [3/(16 pi) P_i] / angular_density(A_cell), i = UL, A0..A7, so
  that sum_i A_i h_i = 1 (A_UL = 1); the helicity weights of an event are w * h_i.
* **FSR** (for the EW systematic): one collinear photon with probability
  P = alpha/(2 pi) [ln(m^2/m_mu^2) - 1] integral_{z_min}^1 (1 + (1-z)^2)/z dz and energy
  fraction z from that spectrum; the muon keeps (1 - z) of its momentum. Variations by event
  weight: ``ew_fsr_rate`` (emission probability x (1 +- delta), non-emitting events
  reweighted so the total is unchanged), ``ew_fsr_hardness`` (z^(+-kappa), normalised), and
  ``ew_virtual`` (line-shape tilt 1 +- eps (s - <s>)/M^2, a stand-in for the virtual
  NLO EW corrections; normalised).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ...theory.generator import (
    ABS_Y_EDGES,
    GAMMA_W_GEV,
    GRID_SHAPE,
    MW_GEV,
    N_HEL,
    N_PT,
    N_Y,
    PT_EDGES,
    CellDensities,
)
from .truth import TruthMuons

N_CELLS = GRID_SHAPE[0] * GRID_SHAPE[1] * GRID_SHAPE[2]
ALPHA_EM = 1.0 / 137.036
M_MU = 0.1056584
#: names of the signal's EW weight variations, in the order of ``WEvents.ew_weights``
EW_NAMES: tuple[str, ...] = ("ew_fsr_rate", "ew_fsr_hardness", "ew_virtual")
#: events generated per block inside a chunk (numpy temporaries stay in cache); part of the
#: definition of the random streams, so not a tunable
GEN_BLOCK = 65_536


class SignalConfig(BaseModel):
    """W generation settings (masses in GeV).

    The EW variation sizes are tuned on the analytic model (100 M selected events, mW
    shift from a linear fit with no other nuisance): ``ew_fsr_rate`` ~0.2 MeV,
    ``ew_fsr_hardness`` ~0.2 MeV, ``ew_virtual`` ~1.9 MeV (CMS: FSR 0.3, virtual 1.9)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mw: float = MW_GEV
    gamma: float = GAMMA_W_GEV
    mass_window: tuple[float, float] = (50.0, 200.0)
    mass_shift: float = Field(0.100, gt=0, description="mW variation of the mass weights")
    floor_fraction: float = Field(0.02, ge=0, lt=1, description="importance scheme floor")
    fsr: bool = True
    fsr_zmin: float = Field(1e-3, gt=0, lt=1, description="photon energy fraction threshold")
    fsr_rate_unc: float = Field(5e-4, ge=0, description="relative emission-rate variation")
    fsr_hardness_unc: float = Field(3e-4, ge=0, description="exponent kappa of z^kappa")
    ew_virtual_unc: float = Field(0.005, ge=0, description="line-shape tilt eps")


# ---------------------------------------------------------------------------------------------
# inverse-CDF sampling of many piecewise-linear densities at once


class PiecewiseLinearTables:
    """T piecewise-linear densities, table t being f[t] (linear between the points x) on
    [lo[t], hi[t]]; a table with zero integral falls back to uniform. Sampling is by exact
    inverse CDF (quadratic in each segment), vectorised over events and tables."""

    def __init__(self, x: np.ndarray, f: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        f = np.clip(np.asarray(f, dtype=np.float64), 0.0, None)
        x0s, hs, f0s, sls, starts, tabs, areas = [], [], [], [], [], [], []
        totals = np.empty(len(lo))
        for t, (a, b) in enumerate(zip(lo, hi, strict=True)):
            inner = x[(x > a) & (x < b)]
            xp = np.concatenate([[a], inner, [b]])
            fp = np.interp(xp, x, f[t])
            h = np.diff(xp)
            area = 0.5 * h * (fp[:-1] + fp[1:])
            if not area.sum() > 0:
                fp = np.ones_like(fp)
                area = h.copy()
            totals[t] = area.sum()
            cum = np.cumsum(area) / totals[t]
            x0s.append(xp[:-1])
            hs.append(h)
            f0s.append(fp[:-1])
            sls.append(np.diff(fp) / h)
            starts.append(np.concatenate([[0.0], cum[:-1]]))
            tabs.append(np.full(h.size, t))
            areas.append(area)
        self.x0, self.h = np.concatenate(x0s), np.concatenate(hs)
        self.f0, self.slope = np.concatenate(f0s), np.concatenate(sls)
        self.area, self.start = np.concatenate(areas), np.concatenate(starts)
        self.table = np.concatenate(tabs)
        self.total = totals  #: integral of each table, (T,)
        self.keys = self.table + self.start
        self.first = np.searchsorted(self.table, np.arange(len(lo)), side="left")
        self.last = np.searchsorted(self.table, np.arange(len(lo)), side="right") - 1

    def sample(self, t: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Values drawn from tables ``t`` (n,) with uniforms ``u`` in [0, 1) (n,)."""
        u = np.minimum(u, 1.0 - 1e-12)
        seg = np.searchsorted(self.keys, t + u, side="right") - 1
        seg = np.clip(seg, self.first[t], self.last[t])
        r = np.clip((u - self.start[seg]) * self.total[t], 0.0, self.area[seg])
        f0, s = self.f0[seg], self.slope[seg]
        den = f0 + np.sqrt(np.maximum(f0 * f0 + 2.0 * s * r, 0.0))
        dx = np.where(den > 0, 2.0 * r / np.where(den > 0, den, 1.0), 0.0)
        return self.x0[seg] + np.clip(dx, 0.0, self.h[seg])


@dataclass
class CellTables:
    """Per-cell samplers of a CellDensities: |y| per (qW, y bin) (16 tables) and pT per
    (qW, y bin, pT bin) (160 tables, the flat cell index)."""

    y: PiecewiseLinearTables
    pt: PiecewiseLinearTables

    @classmethod
    def build(cls, d: CellDensities) -> CellTables:
        ye, pe = np.asarray(ABS_Y_EDGES), np.asarray(PT_EDGES)
        fy = np.repeat(d.dsigma_dy, N_Y, axis=0)  # (2*N_Y, n_y)
        ylo, yhi = np.tile(ye[:-1], 2), np.tile(ye[1:], 2)
        fpt = np.repeat(d.dsigma_dpt.reshape(-1, d.pt.size), N_PT, axis=0)
        plo, phi = np.tile(pe[:-1], 2 * N_Y), np.tile(pe[1:], 2 * N_Y)
        return cls(
            PiecewiseLinearTables(d.abs_y, fy, ylo, yhi),
            PiecewiseLinearTables(d.pt, fpt, plo, phi),
        )


# ---------------------------------------------------------------------------------------------
# line shape


def _bw_params(m: float, gamma: float) -> tuple[float, float]:
    g2 = (gamma / m) ** 2
    return m * m / (1.0 + g2), m * gamma / (1.0 + g2)  # Cauchy location and scale in s


def bw_norm(m: float, gamma: float, window: tuple[float, float]) -> float:
    """Integral over s in the window of 1 / [(s - M^2)^2 + s^2 Gamma^2 / M^2] (GeV^-6)."""
    s0, sc = _bw_params(m, gamma)
    g2 = (gamma / m) ** 2
    lo, hi = (window[0] ** 2 - s0) / sc, (window[1] ** 2 - s0) / sc
    return float((np.arctan(hi) - np.arctan(lo)) / (sc * (1.0 + g2)))


def bw_density(s: np.ndarray, m: float, gamma: float, window: tuple[float, float]) -> np.ndarray:
    """Normalised running-width Breit-Wigner density in s = m^2 (GeV^-2) on the window."""
    return 1.0 / (((s - m * m) ** 2 + (s * gamma / m) ** 2) * bw_norm(m, gamma, window))


def sample_mass(
    n: int, rng: np.random.Generator, m: float, gamma: float, window: tuple[float, float]
) -> np.ndarray:
    """W masses (GeV), shape (n,), from the truncated running-width Breit-Wigner (exact)."""
    s0, sc = _bw_params(m, gamma)
    lo = np.arctan((window[0] ** 2 - s0) / sc)
    hi = np.arctan((window[1] ** 2 - s0) / sc)
    s = s0 + sc * np.tan(lo + rng.random(n) * (hi - lo))
    return np.sqrt(s)


def bw_mean_s(m: float, gamma: float, window: tuple[float, float]) -> float:
    """Mean of s under the normalised truncated Breit-Wigner (GeV^2)."""
    s0, sc = _bw_params(m, gamma)
    lo, hi = (window[0] ** 2 - s0) / sc, (window[1] ** 2 - s0) / sc
    log_ratio = np.log((1 + hi * hi) / (1 + lo * lo))
    return float(s0 + sc * 0.5 * log_ratio / (np.arctan(hi) - np.arctan(lo)))


# ---------------------------------------------------------------------------------------------
# decay angles and kinematics


def sample_cs_angles(coeffs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(cos theta, phi) of the charged lepton in the CS frame, drawn exactly from
    :func:`angular_density` with per-event coefficients ``coeffs`` (8, n) (A_0..A_7; the
    density must be non-negative). Returns (cos theta, phi, cos phi, sin phi), each (n,);
    phi in [0, 2 pi)."""
    a = np.asarray(coeffs, dtype=np.float64)
    n = a.shape[1]
    # marginal of cos theta: g(c) = (1 + A0/2) + A4 c + (1 - 3 A0 / 2) c^2, drawn under the
    # linear envelope L(c) = g0 + max(g2, 0) + g1 c >= g(c) (chord if convex, tangent at 0 if
    # concave; L >= 0 on [-1, 1] as g is), itself sampled by exact inverse CDF
    g0, g1, g2 = 1.0 + 0.5 * a[0], a[4], 1.0 - 1.5 * a[0]
    env0 = g0 + np.maximum(g2, 0.0)
    c = np.empty(n)
    todo = np.arange(n)
    first = True
    while todo.size:
        i = slice(None) if first else todo
        e0, e1 = env0[i], g1[i]
        r = 2.0 * e0 * rng.random(todo.size)  # integral of L from -1 to c (total 2 e0)
        f0 = e0 - e1
        t = 2.0 * r / (f0 + np.sqrt(np.maximum(f0 * f0 + 2.0 * e1 * r, 0.0)))
        ct = np.clip(t - 1.0, -1.0, 1.0)
        acc = rng.random(todo.size) * (e0 + e1 * ct) <= g0[i] + ct * (e1 + ct * g2[i])
        c[todo[acc]] = ct[acc]
        todo = todo[~acc]
        first = False
    # phi given cos theta: g(c) + p cos(phi) + q sin(phi) + r cos(2 phi) + t sin(2 phi)
    s2 = np.clip(1.0 - c * c, 0.0, None)
    s = np.sqrt(s2)
    sin2t = 2.0 * s * c
    base = g0 + c * (g1 + c * g2)
    p, q = a[1] * sin2t + a[3] * s, a[6] * sin2t + a[7] * s
    r, t = 0.5 * s2 * a[2], 0.5 * s2 * a[5]
    hmax = base + np.hypot(p, q) + np.hypot(r, t)
    phi = 2.0 * np.pi * rng.random(n)
    cphi, sphi = np.cos(phi), np.sin(phi)
    c2p, s2p = cphi * cphi - sphi * sphi, 2.0 * sphi * cphi
    h = base + p * cphi + q * sphi + r * c2p + t * s2p
    todo = np.flatnonzero(rng.random(n) * hmax > h)
    while todo.size:
        ph = 2.0 * np.pi * rng.random(todo.size)
        cp, sp = np.cos(ph), np.sin(ph)
        c2p, s2p = cp * cp - sp * sp, 2.0 * sp * cp
        i = todo
        h = base[i] + p[i] * cp + q[i] * sp + r[i] * c2p + t[i] * s2p
        acc = rng.random(i.size) * hmax[i] <= h
        j = i[acc]
        phi[j], cphi[j], sphi[j] = ph[acc], cp[acc], sp[acc]
        todo = i[~acc]
    return c, phi, cphi, sphi


def _polynomials(c: np.ndarray, cp: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """:func:`angular_polynomials` from cos theta, cos phi, sin phi (no trigonometry), (9, n)."""
    out = np.empty((9, c.size))
    c2 = c * c
    s2 = np.clip(1.0 - c2, 0.0, None)
    s = np.sqrt(s2)
    sin2t = 2.0 * s * c
    out[0] = 1.0 + c2
    out[1] = 0.5 - 1.5 * c2
    out[2] = sin2t * cp
    out[3] = 0.5 * s2 * (cp * cp - sp * sp)
    out[4] = s * cp
    out[5] = c
    out[6] = s2 * sp * cp
    out[7] = sin2t * sp
    out[8] = s * sp
    return out


def lepton_momenta(
    m: np.ndarray,
    pt: np.ndarray,
    y: np.ndarray,
    phi_w: np.ndarray,
    cos_theta: np.ndarray,
    phi_cs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Lab four-momenta (E, px, py, pz) in GeV of the charged lepton and the neutrino of a W
    of mass m, transverse momentum pt, rapidity y and azimuth phi_w decaying at CS angles
    (cos_theta, phi_cs) of the charged lepton. Returns two (4, n) arrays (massless leptons)."""
    args = (m, pt, y, np.cos(phi_w), np.sin(phi_w), cos_theta)
    cp, sp = np.cos(phi_cs), np.sin(phi_cs)
    return _lab(*args, cp, sp), _lab(*args, -cp, -sp, flip=True)


def _lab(m, pt, y, cw, sw, cos_t, cp, sp, flip=False) -> np.ndarray:
    """(4, n) lab momentum of the lepton at CS angles (cos_t, phi) (the neutrino if flip:
    cos -> -cos, phi -> phi + pi, passed as -cp, -sp)."""
    ps = 0.5 * m
    st = ps * np.sqrt(np.clip(1.0 - cos_t * cos_t, 0.0, None))
    sz = np.copysign(1.0, y)  # CS z axis along the W's longitudinal direction
    lx = st * cp
    ly = sz * st * sp
    lz = sz * ps * cos_t
    if flip:
        lz = -lz
    mt = np.sqrt(m * m + pt * pt)
    e1 = (mt * ps + pt * lx) / m  # boost along x to the W's transverse velocity
    x1 = (mt * lx + pt * ps) / m
    ey = np.exp(y)
    ch, sh = 0.5 * (ey + 1.0 / ey), 0.5 * (ey - 1.0 / ey)
    out = np.empty((4, m.size))
    out[0] = e1 * ch + lz * sh  # boost along z to rapidity y
    out[1] = x1 * cw - ly * sw
    out[2] = x1 * sw + ly * cw
    out[3] = lz * ch + e1 * sh
    return out


def fsr_emission_integral(zmin: float, kappa: float = 0.0) -> float:
    """Integral over z in [zmin, 1] of z^kappa (1 + (1 - z)^2) / z = z^kappa (2/z - 2 + z)."""

    def prim(z: float) -> float:
        first = 2.0 * np.log(z) if kappa == 0 else 2.0 * z**kappa / kappa
        return first - 2.0 * z ** (kappa + 1) / (kappa + 1) + z ** (kappa + 2) / (kappa + 2)

    return float(prim(1.0) - prim(zmin))


def _sample_fsr_z(n: int, rng: np.random.Generator, zmin: float) -> np.ndarray:
    """Photon energy fractions from (1 + (1 - z)^2) / z on [zmin, 1] (accept-reject on 1/z)."""
    z = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        zt = zmin ** rng.random(todo.size)
        acc = 2.0 * rng.random(todo.size) <= 1.0 + (1.0 - zt) ** 2
        z[todo[acc]] = zt[acc]
        todo = todo[~acc]
    return z


# ---------------------------------------------------------------------------------------------
# events


@dataclass
class WEvents:
    """Generated W -> mu nu events of one chunk, arrays aligned, shape (n,).

    ``truth``: the bare muon after FSR, with ``weight`` w = sigma_UL,cell / N_cell (pb);
    ``cell``: flat (qW, |y|, pT) generator cell; ``n_cell``: N_cell of each event's cell in
    the whole sample (not only this chunk); generator-level W mass (GeV), y, pT (GeV), CS
    angles of the charged lepton, the FSR photon energy fraction (0 without emission) and
    the emission probability. The per-event weights (helicity, mass, EW) are computed on
    demand, for all events or for the events ``idx`` (an index array or boolean mask)."""

    truth: TruthMuons
    cell: np.ndarray
    n_cell: np.ndarray
    mass: np.ndarray
    y: np.ndarray
    pt_w: np.ndarray
    cos_theta: np.ndarray
    phi_cs: np.ndarray
    cos_phi: np.ndarray
    sin_phi: np.ndarray
    fsr_z: np.ndarray
    fsr_prob: np.ndarray
    coeffs: np.ndarray  #: cell-average A_0..A_7 of every cell, (N_CELLS, 8)
    config: SignalConfig

    def __len__(self) -> int:
        return len(self.truth)

    @staticmethod
    def concatenate(parts: list[WEvents]) -> WEvents:
        """Events of several chunks or blocks, in order (same coefficients and config)."""
        first = parts[0]
        kw = {
            f.name: np.concatenate([getattr(p, f.name) for p in parts])
            for f in fields(WEvents)
            if f.name not in ("truth", "coeffs", "config")
        }
        truth = TruthMuons.concatenate([p.truth for p in parts])
        return WEvents(truth=truth, coeffs=first.coeffs, config=first.config, **kw)

    def hel(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Unit helicity weights h_i = [3/(16 pi) P_i] / angular_density(A_cell), i = UL,
        A0..A7; shape (9, m). sum_i A_i,cell h_i = 1 (A_UL = 1) to rounding."""
        poly = _polynomials(self.cos_theta[idx], self.cos_phi[idx], self.sin_phi[idx])
        a = self.coeffs.T[:, self.cell[idx]]
        dens = poly[0] + np.einsum("in,in->n", a, poly[1:])
        return poly * (1.0 / dens)  # the 3/(16 pi) cancels

    def helicity_weights(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """w * h_i (pb), shape (9, m); their sum weighted by the cell's A_i is ``weight``."""
        return self.truth.weight[idx] * self.hel(idx)

    def mass_weights(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Weights for mW - shift and mW + shift (Gamma fixed), shape (2, m): ratios of the
        normalised Breit-Wigner densities at the event's s = m^2."""
        c = self.config
        s = self.mass[idx] ** 2
        ref = bw_density(s, c.mw, c.gamma, c.mass_window)
        shifts = (-c.mass_shift, c.mass_shift)
        return np.stack([bw_density(s, c.mw + d, c.gamma, c.mass_window) / ref for d in shifts])

    def ew_weights(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Up/down weights of the EW variations :data:`EW_NAMES`, shape (3, 2, m)."""
        c = self.config
        z, prob = self.fsr_z[idx], self.fsr_prob[idx]
        emit = z > 0
        s = self.mass[idx] ** 2
        mean_s = bw_mean_s(c.mw, c.gamma, c.mass_window)
        out = np.empty((len(EW_NAMES), 2, z.size))
        base = fsr_emission_integral(c.fsr_zmin)
        zz = np.where(emit, z, 1.0)
        for j, sign in enumerate((1.0, -1.0)):
            d = sign * c.fsr_rate_unc
            out[0, j] = np.where(emit, 1.0 + d, (1.0 - (1.0 + d) * prob) / (1.0 - prob))
            k = sign * c.fsr_hardness_unc
            norm = fsr_emission_integral(c.fsr_zmin, k) / base
            out[1, j] = np.where(emit, zz**k / norm, 1.0)
            out[2, j] = 1.0 + sign * c.ew_virtual_unc * (s - mean_s) / c.mw**2
        return out


def allocate_events(grid: np.ndarray, n_events: int, floor_fraction: float = 0.02) -> np.ndarray:
    """Events per generator cell (N_CELLS,) int64 for a sample of about ``n_events``
    (importance scheme of the module docstring); 0 where sigma_UL <= 0."""
    sig = np.asarray(grid, dtype=np.float64).reshape(N_CELLS, N_HEL)[:, 0]
    ok = sig > 0
    if not ok.any():
        raise ValueError("the theory grid has no cell with sigma_UL > 0")
    frac = np.where(ok, (1.0 - floor_fraction) * sig / sig[ok].sum(), 0.0)
    frac = frac + np.where(ok, floor_fraction / ok.sum(), 0.0)
    return np.where(ok, np.maximum(np.rint(n_events * frac), 1), 0).astype(np.int64)


def chunk_counts(n_cell: np.ndarray, chunk: int, n_chunks: int) -> np.ndarray:
    """Events of each cell in chunk ``chunk`` of ``n_chunks`` (exact integer partition)."""
    n = np.asarray(n_cell, dtype=np.int64)
    return (chunk + 1) * n // n_chunks - chunk * n // n_chunks


def generate_chunk(
    densities: CellDensities,
    counts: np.ndarray,
    n_cell: np.ndarray,
    rng: np.random.Generator,
    config: SignalConfig = SignalConfig(),
    tables: CellTables | None = None,
) -> WEvents:
    """Generate ``counts[c]`` events in each cell c (N_CELLS,), each weighing
    sigma_UL,c / n_cell[c] pb. ``tables``: :meth:`CellTables.build` of ``densities``, to reuse.
    Random numbers drawn in a fixed order, so the output depends only on the inputs and rng
    (more than :data:`GEN_BLOCK` events are generated in that many cache-sized blocks, each
    a partition of ``counts`` by :func:`chunk_counts`, and concatenated)."""
    tables = tables or CellTables.build(densities)
    counts = np.asarray(counts, dtype=np.int64)
    n_blocks = max(1, -(-int(counts.sum()) // GEN_BLOCK))
    if n_blocks > 1:  # cache-sized blocks, in a fixed order: same numbers whatever the caller
        parts = [
            generate_chunk(
                densities, chunk_counts(counts, b, n_blocks), n_cell, rng, config, tables
            )
            for b in range(n_blocks)
        ]
        return WEvents.concatenate(parts)
    cfg = config
    grid = densities.grid.reshape(N_CELLS, N_HEL)
    coeffs = densities.coefficients().reshape(N_CELLS, N_HEL - 1)
    cell = np.repeat(np.arange(N_CELLS), counts)
    n = cell.size
    iq = cell // (N_Y * N_PT)
    abs_y = tables.y.sample(cell // N_PT, rng.random(n))
    pt_w = tables.pt.sample(cell, rng.random(n))
    y = np.where(rng.random(n) < 0.5, -abs_y, abs_y)
    phi_w = 2.0 * np.pi * rng.random(n)
    cw, sw = np.cos(phi_w), np.sin(phi_w)
    mass = sample_mass(n, rng, cfg.mw, cfg.gamma, cfg.mass_window)
    a = coeffs.T[:, cell]  # (8, n)
    cos_t, phi_cs, cphi, sphi = sample_cs_angles(a, rng)
    mu = _lab(mass, pt_w, y, cw, sw, cos_t, cphi, sphi)
    # FSR
    fsr_z = np.zeros(n)
    if cfg.fsr:
        radiator = ALPHA_EM / (2 * np.pi) * (2.0 * np.log(mass / M_MU) - 1.0)
        prob = radiator * fsr_emission_integral(cfg.fsr_zmin)
        emit = rng.random(n) < prob
        fsr_z[emit] = _sample_fsr_z(int(emit.sum()), rng, cfg.fsr_zmin)
        scale = 1.0 - fsr_z
    else:
        prob, scale = np.zeros(n), 1.0
    pt_mu = np.hypot(mu[1], mu[2])
    eta = np.arcsinh(mu[3] / pt_mu)
    truth = TruthMuons(
        pt=pt_mu * scale,
        eta=eta,
        phi=np.arctan2(mu[2], mu[1]),
        charge=np.where(iq > 0, 1, -1).astype(np.int8),
        weight=grid[cell, 0] / n_cell[cell],
        boson_px=pt_w * cw,
        boson_py=pt_w * sw,
    )
    return WEvents(
        truth=truth,
        cell=cell,
        n_cell=n_cell[cell],
        mass=mass,
        y=y,
        pt_w=pt_w,
        cos_theta=cos_t,
        phi_cs=phi_cs,
        cos_phi=cphi,
        sin_phi=sphi,
        fsr_z=fsr_z,
        fsr_prob=prob,
        coeffs=coeffs,
        config=cfg,
    )


def generate_w_events(
    densities: CellDensities,
    n_events: int,
    rng: np.random.Generator,
    config: SignalConfig = SignalConfig(),
) -> WEvents:
    """A whole sample of about ``n_events`` W events in one go (one chunk); weights sum to the
    grid's sigma_UL in every cell."""
    n_cell = allocate_events(densities.grid, n_events, config.floor_fraction)
    return generate_chunk(densities, n_cell, n_cell, rng, config)


# ---------------------------------------------------------------------------------------------
# an analytic production model (until the PDF-based theory grid is used)


def analytic_cell_densities(
    sigma_plus: float = 11_600.0, sigma_minus: float = 8_600.0
) -> CellDensities:
    """A smooth, LO-like W production model as a CellDensities: d sigma/d|y| falling to 0 at
    |y| = 5 (W+ wider than W-), a pT^W spectrum peaking near 3.5 GeV with a ~pT^-2.5 tail,
    A0 = A2 = pT^2 / (pT^2 + mW^2), A4 = -q (0.6 + 0.15 |y|)(1 - A0), small A1 and A3,
    A5..A7 = 0. ``sigma_plus`` / ``sigma_minus``: sigma(W -> mu nu) in pb in the generator
    phase space. For tests and benchmarks; not a physics prediction."""
    abs_y = np.linspace(0.0, 5.0, 101)
    pt = np.concatenate([np.linspace(0.0, 20.0, 81)[:-1], np.linspace(20.0, 100.0, 81)])
    shape_y = np.clip(1.0 - (abs_y / 5.0) ** 2, 0.0, None) ** 2
    dy = np.stack([shape_y * (1.0 - 0.05 * abs_y), shape_y * (1.0 + 0.08 * abs_y**2)])
    ycen = 0.5 * (np.asarray(ABS_Y_EDGES)[1:] + np.asarray(ABS_Y_EDGES)[:-1])
    a = 5.0 + 0.3 * ycen  # spectrum scale per y bin
    dpt_y = pt[None, :] / (pt[None, :] ** 2 + a[:, None] ** 2) ** 1.75
    dpt = np.stack([dpt_y, dpt_y])
    tmp = CellDensities(np.zeros(GRID_SHAPE), abs_y, dy, pt, dpt)
    tab = CellTables.build(tmp)
    fy = tab.y.total.reshape(2, N_Y)
    fp = tab.pt.total.reshape(2, N_Y, N_PT)
    ul = fy[:, :, None] * fp / fp.sum(axis=2, keepdims=True)
    ul = ul / ul.sum(axis=(1, 2), keepdims=True)
    ul = ul * np.array([sigma_minus, sigma_plus])[:, None, None]
    pc = 0.5 * (np.asarray(PT_EDGES)[1:] + np.asarray(PT_EDGES)[:-1])
    lam = (pc**2 / (pc**2 + MW_GEV**2))[None, None, :] * np.ones((2, N_Y, 1))
    q = np.array([-1.0, 1.0])[:, None, None]
    yb = ycen[None, :, None]
    coef = np.zeros((2, N_Y, N_PT, 8))
    coef[..., 0] = lam
    coef[..., 1] = 0.3 * lam * np.tanh(yb)
    coef[..., 2] = lam
    coef[..., 3] = -0.2 * q * np.sqrt(lam)
    coef[..., 4] = -q * (0.6 + 0.15 * yb) * (1.0 - lam)
    grid = np.concatenate([ul[..., None], ul[..., None] * coef], axis=-1)
    return CellDensities(grid, abs_y, dy, pt, dpt)
