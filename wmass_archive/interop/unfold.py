"""The archive's model unfolded into plain processes with log-normal variations, rabbit's
norm/logk: what the rabbit export (:mod:`.rabbit`) writes and the pyhf export (:mod:`.pyhf`)
starts from. With ``mu_p`` a rabbit signal strength,

    nu[b, p] = mu_p * norm[b, p] * exp( sum_k theta_k * (logkavg[b,p,k] + alpha(theta_k) *
                                                          logkhalfdiff[b,p,k]) )

and, piece by piece:

* **plain processes and their logk entries** are copied: exact (a nuisance's ``prior_scale`` s is
  folded into its logk, ``s * avg``, ``s * halfdiff``: exact for symmetric entries and wherever
  |theta| >= 1/2 and |s theta| >= 1/2; it differs only in the smooth step's argument elsewhere);
* **a folded process**'s nominal is its folded yield at the nominal mass point with the central
  grid of the PDF set in use (``lumi * R[j0] @ c``);
* **each theory nuisance** (PDF eigenvectors of the set in use, with its CL and scale; theory
  variations, with their prior scale) becomes a logk on the folded process from its folded yields
  at theta = +1 and -1: ``logk_up = ln(nu(+1)/nu(0))``, ``logk_down = ln(nu(-1)/nu(0))`` (0 where
  a ratio is not positive). Exact at theta = -1, 0, +1 one nuisance at a time; elsewhere rabbit's
  log-normal replaces our interpolation on the grid (for an additive nuisance the folded yield is
  linear in theta, rabbit's exponential: the two differ at second order,
  ``nu * theta (theta - 1) (ln r)^2 / 2`` for theta >= 1/2 and a ratio r), and several theory
  nuisances combine multiplicatively in rabbit but additively on the grid in our model;
* **a mass POI** becomes an unconstrained nuisance of interest (``hnoiidxs``, in
  ``hsystsnoconstraint``; like CMS's ``massShift100MeV``) with, on folded processes, logk from the
  folded yields at theta = +1 and -1 (the mass points +- one ``scale``, e.g. +-100 MeV), on plain
  processes the stored logk. For mass points [-1, 0, 1] the interpolation in theta is the same as
  ours (section 9.2), but taken at the central theory grid: the theory x mass cross terms (the
  mass shift of a PDF-varied prediction) are dropped;
* **a rate POI** acting on one process in all its channels (and the only rate POI on it) becomes a
  rabbit signal: rabbit's POI ``mu`` with ``norm = central * N``, ``mu = 1 + theta * scale /
  central`` (exact; run rabbit with ``--allowNegativePOI``, otherwise rabbit fits sqrt(mu));
  another rate POI becomes an unconstrained NOI with the log-normal ``ln((c +- s)/c)``
  (exact at theta = -1, 0, 1 only);
* **MC statistics**: ``hsumw`` = the stored nominal yields and ``hsumw2`` = ``sumw2``, so that
  rabbit's Barlow-Beeston-lite ``k = (sum_p sumw)^2 / sum_p sumw2`` equals ours;
* nuisance groups are kept (``hsystgroups``), the PDF nuisances in ``pdf<SET>``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..archive.reader import Archive
from ..model.interpolation import mass_weights, smooth_step
from ..model.theory import TheoryArrays, build_theory
from ..theory.resolve import ResolvedTheory
from ._common import ExportError, RabbitParameter, UnfoldedModel

__all__ = ["safe_log_ratio", "theory_grids", "unfold"]


def unfold(archive: Archive, pdf: str | ResolvedTheory | None = None) -> UnfoldedModel:
    """The archive's model with the theory unfolded into plain processes with log-normal
    variations, rabbit's norm/logk (module docstring), for the PDF set ``pdf`` (default the
    archive's nominal set)."""
    meta = archive.metadata
    extended = [c.name for c in meta.channels if c.modifiers]
    poisson = [n.name for n in meta.nuisances if n.constraint == "poisson"]
    if extended or poisson:
        what = (
            f"extended modifiers in channel '{extended[0]}'"
            if extended
            else f"a poisson-constrained nuisance '{poisson[0]}'"
        )
        raise ExportError(
            f"{archive.path.name} holds {what} (format 1.1), which rabbit's log-normal tensor "
            "cannot express; export archives with log-normal variations only"
        )
    sel = archive.select()
    n_bins, n_proc = sel.n_bins, len(sel.processes)
    proc_names = [p.name for p in sel.processes]
    folded_any = any(p.folded for p in meta.processes)
    if not folded_any and pdf is not None:
        raise ExportError("the archive has no folded process: --pdf does not apply")
    theory = build_theory(archive, pdf) if folded_any else None
    nominal, sumw2, data = sel.nominal(), sel.sumw2(), sel.data()
    approx: list[str] = []

    # ---- parameters: rate POIs as signals where possible, then rabbit's syst list
    holding = {p: [c.name for c in sel.channels if p in c.processes] for p in proc_names}
    targets = {
        poi.name: sorted(
            {
                (s.process, c)
                for s in poi.acts_on
                for c in (s.channels if s.channels is not None else holding[s.process])
            }
        )
        for poi in meta.pois
        if poi.kind == "rate"
    }
    n_rate_on = {p: sum(any(t[0] == p for t in v) for v in targets.values()) for p in proc_names}
    signal_of: dict[str, Any] = {}  # process -> rate POI
    params: list[RabbitParameter] = []
    unconstrained: list[str] = []
    for poi in meta.pois:
        common = dict(name=poi.name, kind=poi.kind, unit=poi.unit, central=poi.central)
        common.update(scale=poi.scale, blinding_offset=poi.blinding_offset)
        if poi.kind == "mass":
            params.append(RabbitParameter(rabbit_name=poi.name, role="noi", **common))
            unconstrained.append(poi.name)
            continue
        if poi.central <= 0:
            raise ExportError(
                f"rate POI '{poi.name}' has central value {poi.central}: rabbit's signal "
                "strengths need a positive nominal rate"
            )
        procs_t = {p for p, _ in targets[poi.name]}
        p0 = next(iter(procs_t))
        if (
            len(procs_t) == 1
            and [c for _, c in targets[poi.name]] == sorted(holding[p0])
            and n_rate_on[p0] == 1
        ):
            signal_of[p0] = poi
            params.append(RabbitParameter(rabbit_name=p0, role="signal", **common))
        else:
            params.append(RabbitParameter(rabbit_name=poi.name, role="noi-lognormal", **common))
            unconstrained.append(poi.name)
            approx.append(
                f"rate POI '{poi.name}' acts on several processes or on part of a process's "
                "channels: exported as a log-normal NOI, exact at theta = -1, 0, +1 only"
            )
    unconstrained += [n.name for n in meta.nuisances if n.constraint == "none"]
    constrained = [n.name for n in meta.nuisances if n.constraint != "none"]
    pdf_set = theory.pdf_set if theory is not None else None
    if pdf_set is not None:
        constrained += list(pdf_set.nuisance_names)
    systs = unconstrained + constrained
    sidx = {n: i for i, n in enumerate(systs)}
    if len(sidx) != len(systs):
        raise ExportError("parameter names are not unique (a PDF nuisance clashes with another)")
    groups: dict[str, list[int]] = {g.name: [] for g in meta.groups}
    for n in meta.nuisances:
        for g in n.groups:
            groups[g].append(sidx[n.name])
    if pdf_set is not None:
        groups.setdefault(pdf_set.group, []).extend(sidx[n] for n in pdf_set.nuisance_names)
    groups = {g: sorted(v) for g, v in groups.items() if v}

    # ---- norm and logk entries (archive process order)
    norm = np.maximum(nominal.T, 0.0).copy()
    entries: list[tuple[np.ndarray, ...]] = []
    par_to_syst = np.array([sidx.get(n, -1) for n in meta.parameter_names], dtype=np.int64)
    ps = np.array([1.0] * len(meta.pois) + [n.prior_scale for n in meta.nuisances])
    t = sel.logk()
    if np.any(par_to_syst[t.parameter] < 0):
        raise ExportError("logk entries of a rate POI cannot be exported")
    scale = ps[t.parameter]
    entries.append((par_to_syst[t.parameter], t.process, t.bin, t.avg * scale, t.halfdiff * scale))
    if np.any((scale != 1.0) & (t.halfdiff != 0)):
        approx.append(
            "asymmetric logk of nuisances with prior_scale != 1: rabbit evaluates the smooth "
            "step at theta instead of prior_scale * theta (identical for |theta| and "
            "|prior_scale * theta| >= 1/2)"
        )
    if theory is not None:
        entries += _folded_entries(archive, sel, theory, sidx, norm)
        approx.append(
            "theory nuisances (PDF eigenvectors, theory variations) act on the folded yields "
            "through log-normal templates from the folded yields at theta = +-1: exact at "
            "-1, 0, +1 one at a time; our grid interpolation (additive: linear in theta) and "
            "rabbit's exponential differ elsewhere, and several combine multiplicatively"
        )
        if any(p.kind == "mass" for p in meta.pois):
            approx.append(
                "the mass POI's templates on folded processes are taken at the central theory "
                "grid: the theory x mass cross terms of the folded model are dropped"
            )
    for poi in meta.pois:
        if poi.kind == "rate" and not any(s is poi for s in signal_of.values()):
            new = _lognormal_rate_entries(poi, targets[poi.name], sel, sidx, proc_names)
            for e in new:
                norm[e[2], e[1]] *= poi.central  # the rate at theta = 0
            entries += new
    e_syst, e_proc, e_bin, e_avg, e_hd = _merge(entries, norm, n_bins, n_proc)

    # ---- rabbit's process order: signals first (rabbit multiplies procs[:n_signals] by mu)
    signals = list(signal_of)
    order = [proc_names.index(p) for p in signals] + [
        i for i, p in enumerate(proc_names) if p not in signal_of
    ]
    new_index = np.argsort(order)
    for p, poi in signal_of.items():
        norm[:, proc_names.index(p)] *= poi.central
    channels = [
        dict(
            name=c.name,
            n_bins=c.n_bins,
            offset=int(sel.offsets[i]),
            processes=list(c.processes),
            axes=[ax.model_dump(mode="json") for ax in c.axes],
        )
        for i, c in enumerate(sel.channels)
    ]
    return UnfoldedModel(
        procs=[proc_names[i] for i in order],
        signals=signals,
        systs=systs,
        n_noconstraint=len(unconstrained),
        noi=[sidx[p.name] for p in params if p.role != "signal"],
        groups=groups,
        norm=norm[:, order],
        sumw=np.maximum(nominal.T, 0.0)[:, order].copy(),
        sumw2=sumw2.T[:, order].copy(),
        data=data,
        e_syst=e_syst,
        e_proc=new_index[e_proc],
        e_bin=e_bin,
        e_avg=e_avg,
        e_hd=e_hd,
        channels=channels,
        parameters=params,
        approximations=approx,
        pdf_set=pdf_set.name if pdf_set is not None else None,
        title=meta.title,
        synthetic=meta.synthetic,
    )


def safe_log_ratio(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """ln(x / ref), 0 where x or ref is not positive (docs/format.md section 9.2)."""
    ok = (x > 0) & (ref > 0)
    return np.where(ok, np.log(np.where(ok, x, 1.0) / np.where(ok, ref, 1.0)), 0.0)


def theory_grids(theory: TheoryArrays) -> tuple[np.ndarray, np.ndarray]:
    """The grid in use with one theory nuisance at theta = +1 (resp. -1) and all others at 0,
    as in :func:`wmass_archive.model.theory.sigma_of`: two arrays (n_theory, n_gen), pb."""
    c, n_add = theory.central, theory.n_add
    out = []
    for sign in (1.0, -1.0):
        t = sign * theory.prior_scales
        ta = t * np.asarray(smooth_step(t))
        g = np.empty((t.size, c.size))
        g[:n_add] = c + t[:n_add, None] * theory.dA + ta[:n_add, None] * theory.dH
        g[n_add:] = c * np.exp(t[n_add:, None] * theory.mA + ta[n_add:, None] * theory.mH)
        out.append(g)
    return out[0], out[1]


def _folded_entries(archive: Archive, sel, theory: TheoryArrays, sidx, norm) -> list[tuple]:
    """Set the folded processes' nominal in ``norm`` (n_bins, n_proc) and return their logk
    entries for the mass POI and the theory nuisances."""
    meta = archive.metadata
    lumi = float(meta.luminosity.value)  # type: ignore[union-attr]
    proc_index = {p.name: i for i, p in enumerate(sel.processes)}
    up_grid, down_grid = theory_grids(theory)
    th_syst = np.array([sidx[n.name] for n in theory.nuisances], dtype=np.int64)
    out: list[tuple] = []
    for c, ch in enumerate(sel.channels):
        for pname in ch.processes:
            if not meta.process(pname).folded:
                continue
            pi = proc_index[pname]
            bins = sel.offsets[c] + np.arange(ch.n_bins)
            mpoi = meta.mass_poi_of(pname)
            points = [float(x) for x in mpoi.mass_points] if mpoi is not None else [0.0]
            j0 = points.index(0.0)
            r = np.asarray(archive.response(pname, ch.name), dtype=np.float64)
            n_gen = r.shape[2]
            nu = lumi * (r.reshape(-1, n_gen) @ theory.central).reshape(r.shape[:2])
            nu0 = nu[j0]
            on = nu0 > 0
            norm[bins, pi] = np.where(on, nu0, 0.0)
            if mpoi is not None and len(points) > 1:
                w = np.asarray(mass_weights(np.array([1.0, -1.0]), points))  # (2, n_pts)
                lr = safe_log_ratio(nu, nu0[None, :])
                lu, ld = w[0] @ lr, w[1] @ lr
                out.append(_entries(sidx[mpoi.name], pi, bins[on], lu[on], ld[on]))
            if th_syst.size:
                r0 = r[j0]
                lu = safe_log_ratio(lumi * (r0 @ up_grid.T), nu0[:, None])  # (nb, n_th)
                ld = safe_log_ratio(lumi * (r0 @ down_grid.T), nu0[:, None])
                n_th = th_syst.size
                b = np.repeat(bins[on], n_th)
                out.append(
                    (
                        np.tile(th_syst, int(on.sum())),
                        np.full(b.size, pi, dtype=np.int64),
                        b,
                        (0.5 * (lu - ld))[on].reshape(-1),
                        (0.5 * (lu + ld))[on].reshape(-1),
                    )
                )
    return out


def _entries(syst: int, proc: int, bins: np.ndarray, lu: np.ndarray, ld: np.ndarray) -> tuple:
    """COO entries (syst, proc, bin, avg, halfdiff) of one (parameter, process) pair."""
    n = bins.size
    return (
        np.full(n, syst, dtype=np.int64),
        np.full(n, proc, dtype=np.int64),
        np.asarray(bins, dtype=np.int64),
        0.5 * (lu - ld),
        0.5 * (lu + ld),
    )


def _lognormal_rate_entries(poi, targets, sel, sidx, proc_names) -> list[tuple]:
    """A rate POI that is no rabbit signal: ln((c + s)/c) up, ln((c - s)/c) down (symmetric
    when c - s <= 0) on every bin of the (process, channel) pairs it acts on."""
    c, s = poi.central, poi.scale
    lu = np.log((c + s) / c)
    ld = np.log((c - s) / c) if c - s > 0 else -lu
    chan = [ch.name for ch in sel.channels]
    out = []
    for p, cname in targets:
        i = chan.index(cname)
        bins = sel.offsets[i] + np.arange(sel.channels[i].n_bins)
        ones = np.ones(bins.size)
        out.append(_entries(sidx[poi.name], proc_names.index(p), bins, lu * ones, ld * ones))
    return out


def _merge(entries: list[tuple], norm: np.ndarray, n_bins: int, n_proc: int) -> tuple:
    """Sum the entries of each (syst, process, bin), drop those on empty yields and zeros;
    sorted by (syst, process, bin)."""
    cols = [np.concatenate([e[k] for e in entries]) for k in range(5)] if entries else None
    if cols is None or cols[0].size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, np.zeros(0), np.zeros(0)
    syst, proc, b, avg, hd = cols
    keep = norm[b, proc] > 0
    syst, proc, b, avg, hd = syst[keep], proc[keep], b[keep], avg[keep], hd[keep]
    key = (syst * n_proc + proc) * n_bins + b
    order = np.argsort(key, kind="stable")
    key = key[order]
    uniq, start = np.unique(key, return_index=True)
    if uniq.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, np.zeros(0), np.zeros(0)
    avg = np.add.reduceat(avg[order], start)
    hd = np.add.reduceat(hd[order], start)
    nz = (avg != 0) | (hd != 0)
    uniq, avg, hd = uniq[nz], avg[nz], hd[nz]
    return uniq // (n_proc * n_bins), (uniq // n_bins) % n_proc, uniq % n_bins, avg, hd
