"""The pyhf workspace of an archive at one value of its mass POI (docs/pyhf.md, "Export").

The archive is unfolded with rabbit's export (:func:`wmass_archive.interop.unfold.unfold`: plain
yields and logk entries with the prior scales folded in, rate POIs as signal strengths, MC
statistics, groups); what depends on the mass POI is recomputed at each mass value theta_m:

* a folded process's yield is folded at every stored mass point with the grid in use and
  interpolated to theta_m (docs/format.md section 9.2), for the central grid and for the grid
  with one theory nuisance at +-1 (:func:`wmass_archive.interop.unfold.theory_grids`); the
  theory nuisances become ``histosys`` with those yields as hi/lo (exact at -1, 0, +1);
* a plain process's yield takes its mass-POI logk at theta_m.

Each log-normal entry of a nuisance on a sample becomes a ``normsys`` (hi = exp(logk_up), lo =
exp(logk_down)) when it is the same in every bin with a yield, otherwise a ``histosys`` with the
yields nominal * exp(logk_up/down) as hi/lo. An unconstrained log-normal nuisance that scales
everything it touches by the same factor is a free normalisation: a ``normfactor``. MC
statistics become one ``staterror`` per channel on every sample, scaled so that pyhf's relative
uncertainty is the archive's Barlow-Beeston-lite one, sqrt(sum sumw2) / sum nominal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...archive.reader import Archive
from ...model.interpolation import mass_weights, smooth_step
from ...model.theory import TheoryArrays
from .._common import ExportError, UnfoldedModel
from ..unfold import safe_log_ratio, theory_grids

#: relative tolerance under which a logk is taken as flat across the bins of a sample
FLAT_RTOL = 1e-12


@dataclass
class ExportLayout:
    """What does not depend on the mass: the unfolded model and how parameters map."""

    model: UnfoldedModel
    proc_col: dict[str, int]  # process -> column of model.norm
    logk: dict[tuple[str, str], dict[str, tuple[np.ndarray, np.ndarray]]]  # (ch, proc) -> syst
    normfactors: dict[tuple[str, str], list[str]]  # (ch, proc) -> normfactor names
    poi: str  # the measurement's POI
    fixed_poi: bool  # a placeholder normfactor, fixed at 1
    free_norms: dict[str, float]  # unconstrained nuisance -> its logk_up (mu = exp(theta * lu))
    staterror: bool
    mass_poi: Any | None
    theory_names: list[str]
    stored_nominal: np.ndarray  # (n_bins, n_proc) archive nominal, for the staterror scaling
    notes: list[str] = field(default_factory=list)


def build_layout(
    archive: Archive, model: UnfoldedModel, theory: TheoryArrays | None
) -> ExportLayout:
    """Sort the unfolded model's entries by (channel, process) and decide how each non-POI
    parameter maps onto pyhf (module docstring)."""
    meta = archive.metadata
    mass = [p for p in meta.pois if p.kind == "mass"]
    if len(mass) > 1:
        raise ExportError(
            f"{archive.path.name} has {len(mass)} mass POIs: the pyhf export scans one mass POI"
        )
    for p in model.parameters:
        if p.role == "noi-lognormal":
            raise ExportError(
                f"rate POI '{p.name}' acts on several processes or on part of a process's "
                "channels: pyhf's normfactor cannot express it"
            )
    mpoi = mass[0] if mass else None
    theory_names = [n.name for n in theory.nuisances] if theory is not None else []
    proc_col = {p: i for i, p in enumerate(model.procs)}
    chan_of_bin = np.concatenate(
        [np.full(c["n_bins"], i) for i, c in enumerate(model.channels)]
    ).astype(np.int64)
    logk: dict[tuple[str, str], dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    skip = set(theory_names) | ({mpoi.name} if mpoi is not None else set())
    for s in range(len(model.systs)):
        name = model.systs[s]
        if name in skip:
            continue
        sel = model.e_syst == s
        for p, b, a, h in zip(
            model.e_proc[sel], model.e_bin[sel], model.e_avg[sel], model.e_hd[sel], strict=True
        ):
            ch = model.channels[chan_of_bin[b]]
            key = (ch["name"], model.procs[p])
            lu, ld = logk.setdefault(key, {}).setdefault(
                name, (np.zeros(ch["n_bins"]), np.zeros(ch["n_bins"]))
            )
            lu[b - ch["offset"]] = a + h
            ld[b - ch["offset"]] = h - a
    # unconstrained nuisances: a free normalisation when flat and equal wherever they act
    free_norms: dict[str, float] = {}
    for name in model.systs[: model.n_noconstraint]:
        if name in skip:
            continue
        ups, downs = [], []
        for (ch, p), d in logk.items():
            if name in d:
                on = model.norm[_bins(model, ch), proc_col[p]] > 0
                ups.append(d[name][0][on])
                downs.append(d[name][1][on])
        u, dn = np.concatenate(ups or [np.zeros(0)]), np.concatenate(downs or [np.zeros(0)])
        if u.size == 0:
            continue
        if not (_flat(u) and _flat(dn) and np.isclose(dn[0], -u[0], rtol=FLAT_RTOL, atol=0)):
            raise ExportError(
                f"unconstrained nuisance '{name}' is not one symmetric normalisation of "
                "everything it acts on: pyhf has no unconstrained log-normal modifier"
            )
        free_norms[name] = float(u[0])
    normfactors: dict[tuple[str, str], list[str]] = {}
    for (ch, p), d in logk.items():
        for name in list(d):
            if name in free_norms:
                normfactors.setdefault((ch, p), []).append(name)
                del d[name]
    signals = [p for p in model.parameters if p.role == "signal"]
    for par in signals:
        for ch in model.channels:
            if par.rabbit_name in ch["processes"]:
                normfactors.setdefault((ch["name"], par.rabbit_name), []).insert(0, par.name)
    taken = set(model.systs) | {p.name for p in model.parameters}
    if signals:
        poi, fixed_poi = signals[0].name, False
    else:  # pyhf needs a POI: a normfactor on the signal processes, fixed at 1
        poi, k = "mu_signal", 2
        while poi in taken:
            poi, k = f"mu_signal_{k}", k + 1
        fixed_poi = True
        targets = {s.process for s in mpoi.acts_on} if mpoi is not None else set()
        targets |= {p.name for p in meta.processes if p.kind == "signal"}
        for ch in model.channels:
            for p in ch["processes"]:
                if p in targets:
                    normfactors.setdefault((ch["name"], p), []).insert(0, poi)
    mc = getattr(meta, "mc_stat", None)
    notes = []
    staterror = mc != "none" and bool(np.any(model.sumw2 > 0))
    if staterror and mc != "normal":
        notes.append(
            "MC statistics: the archive's Barlow-Beeston-lite gamma (Poisson) constraint becomes "
            "pyhf's staterror (normal constraint on the same relative uncertainty); refit the "
            "archive with bb='normal' for the same likelihood"
        )
    return ExportLayout(
        model=model,
        proc_col=proc_col,
        logk=logk,
        normfactors=normfactors,
        poi=poi,
        fixed_poi=fixed_poi,
        free_norms=free_norms,
        staterror=staterror,
        mass_poi=mpoi,
        theory_names=theory_names,
        stored_nominal=model.sumw,
        notes=notes,
    )


def mass_dependent(
    archive: Archive, lay: ExportLayout, theory: TheoryArrays | None, theta: float
) -> dict[tuple[str, str], tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """{(channel, process): (yield, {theory nuisance: (yield at +1, yield at -1)})} at the
    mass POI's theta for the processes that depend on it (folded ones: all of them)."""
    meta = archive.metadata
    mpoi = lay.mass_poi
    out: dict[tuple[str, str], tuple[np.ndarray, dict]] = {}
    if theory is not None:
        up_grid, down_grid = theory_grids(theory)
        grids = np.vstack([theory.central[None, :], up_grid, down_grid])
        n_th = up_grid.shape[0]
        lumi = float(meta.luminosity.value)  # type: ignore[union-attr]
        for ch in lay.model.channels:
            for p in ch["processes"]:
                if not meta.process(p).folded:
                    continue
                q = meta.mass_poi_of(p)
                points = [float(x) for x in q.mass_points] if q is not None else [0.0]
                j0 = points.index(0.0)
                r = np.asarray(archive.response(p, ch["name"]), dtype=np.float64)
                nu = lumi * np.einsum("jbg,kg->kjb", r, grids)  # (grid, point, bin)
                w = np.asarray(mass_weights(np.array([theta if q is not None else 0.0]), points))[0]
                lr = safe_log_ratio(nu, nu[:, j0 : j0 + 1, :])
                nu_t = np.where(
                    nu[:, j0] > 0, nu[:, j0] * np.exp(np.einsum("j,kjb->kb", w, lr)), 0.0
                )
                scale = _signal_scale(lay, p)
                th = {
                    lay.theory_names[k]: (scale * nu_t[1 + k], scale * nu_t[1 + n_th + k])
                    for k in range(n_th)
                }
                out[(ch["name"], p)] = (scale * nu_t[0], th)
    if mpoi is not None:
        sel = archive.select()
        t = sel.logk()
        ip = [x.name for x in meta.pois].index(mpoi.name)
        procs = [x.name for x in sel.processes]
        mask = t.parameter == ip
        alpha = float(smooth_step(np.asarray(theta)))
        for c, ch in enumerate(lay.model.channels):
            for p in ch["processes"]:
                if meta.process(p).folded:
                    continue
                m = mask & (t.process == procs.index(p))
                m &= (t.bin >= sel.offsets[c]) & (t.bin < sel.offsets[c + 1])
                if not np.any(m):
                    continue
                nom = lay.model.norm[_bins(lay.model, ch["name"]), lay.proc_col[p]].copy()
                b = t.bin[m] - sel.offsets[c]
                nom[b] *= np.exp(theta * t.avg[m] + theta * alpha * t.halfdiff[m])
                out[(ch["name"], p)] = (nom, {})
    return out


def workspace_spec(
    lay: ExportLayout, varying: dict[tuple[str, str], tuple[np.ndarray, dict]], name: str
) -> dict[str, Any]:
    """The pyhf workspace (a dict of the schema 1.0.0) with the mass-dependent yields
    ``varying`` (from :func:`mass_dependent`)."""
    m = lay.model
    channels = []
    for ch in m.channels:
        bins = _bins(m, ch["name"])
        tot_stored = lay.stored_nominal[bins].sum(axis=1)
        noms = {}
        for p in ch["processes"]:
            v = varying.get((ch["name"], p))
            noms[p] = v[0] if v is not None else m.norm[bins, lay.proc_col[p]]
        tot_now = np.sum([noms[p] for p in ch["processes"]], axis=0)
        # pyhf's staterror sigma is sqrt(sum unc^2) / sum(sample data): scale the uncertainties
        # so that it stays sqrt(sum sumw2) / sum(stored nominal) whatever the patch's yields
        ratio = np.where(tot_stored > 0, tot_now / np.where(tot_stored > 0, tot_stored, 1.0), 0.0)
        samples = []
        for p in ch["processes"]:
            nom = noms[p]
            v = varying.get((ch["name"], p))
            mods: list[dict[str, Any]] = [
                {"name": n, "type": "normfactor", "data": None}
                for n in lay.normfactors.get((ch["name"], p), [])
            ]
            for syst, (lu, ld) in lay.logk.get((ch["name"], p), {}).items():
                mods += _lognormal(syst, nom, lu, ld)
            if v is not None:
                for syst, (hi, lo) in v[1].items():
                    if np.any(hi != nom) or np.any(lo != nom):
                        mods.append(_histosys(syst, hi, lo))
            if lay.staterror:
                unc = np.sqrt(m.sumw2[bins, lay.proc_col[p]]) * ratio
                mods.append(
                    {"name": f"staterror_{ch['name']}", "type": "staterror", "data": _list(unc)}
                )
            samples.append({"name": p, "data": _list(nom), "modifiers": mods})
        channels.append({"name": ch["name"], "samples": samples})
    params: list[dict[str, Any]] = []
    if lay.fixed_poi:
        params.append({"name": lay.poi, "inits": [1.0], "fixed": True})
    return {
        "channels": channels,
        "observations": [
            {"name": ch["name"], "data": _list(m.data[_bins(m, ch["name"])])} for ch in m.channels
        ],
        "measurements": [{"name": name, "config": {"poi": lay.poi, "parameters": params}}],
        "version": "1.0.0",
    }


def _lognormal(syst: str, nom: np.ndarray, lu: np.ndarray, ld: np.ndarray) -> list[dict]:
    on = nom > 0
    if not np.any(on) or (not np.any(lu[on]) and not np.any(ld[on])):
        return []
    if _flat(lu[on]) and _flat(ld[on]):
        hi, lo = float(np.exp(lu[on][0])), float(np.exp(ld[on][0]))
        return [{"name": syst, "type": "normsys", "data": {"hi": hi, "lo": lo}}]
    return [_histosys(syst, nom * np.exp(lu), nom * np.exp(ld))]


def _histosys(syst: str, hi: np.ndarray, lo: np.ndarray) -> dict[str, Any]:
    return {"name": syst, "type": "histosys", "data": {"hi_data": _list(hi), "lo_data": _list(lo)}}


def _signal_scale(lay: ExportLayout, process: str) -> float:
    """The rate POI's central value folded into a signal process's yield (rabbit's norm)."""
    for p in lay.model.parameters:
        if p.role == "signal" and p.rabbit_name == process:
            return float(p.central)
    return 1.0


def _flat(x: np.ndarray) -> bool:
    return x.size > 0 and float(np.ptp(x)) <= FLAT_RTOL * (1.0 + float(np.max(np.abs(x))))


def _bins(model: UnfoldedModel, channel: str) -> np.ndarray:
    ch = next(c for c in model.channels if c["name"] == channel)
    return ch["offset"] + np.arange(ch["n_bins"])


def _list(a: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(a, dtype=np.float64).reshape(-1)]
