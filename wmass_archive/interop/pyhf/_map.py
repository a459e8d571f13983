"""The mapping of a pyhf model onto the archive's parameters and modifiers (docs/pyhf.md).

pyhf's expected yield of sample s in bin b is ``(N + sum_histosys Delta(alpha)) * prod(factors)``
with the factors of normsys, normfactor, lumi, staterror, shapesys and shapefactor; the archive's
(docs/format.md section 15.3) has the same structure. Each free pyhf parameter component becomes
one archive parameter theta with ``pyhf value = offset + scale * theta``:

* normsys / histosys alpha: gaussian nuisance, ``alpha = sigma * theta`` (prior_scale sigma),
  multiplicative rows (normsys hi/lo, code 1 or 4) and additive rows (histosys, code 0, 2, 4p);
* normfactor: the measurement's POI becomes a rate POI (central 1, scale 1, so that its
  physical value is mu); any other is an unconstrained nuisance with a linear factor 1 + theta;
* lumi, staterror gamma: gaussian, ``value = aux + sigma * theta``; aux is folded into the
  yields and the linear coefficient is ``sigma / aux``;
* shapesys gamma: poisson nuisance with pyhf's tau, ``gamma = 1 + theta / sqrt(tau)``;
* shapefactor: unconstrained per bin, ``gamma = 1 + theta``.

Parameters fixed in the measurement (and the staterror/shapesys bins pyhf fixes because they
have no uncertainty) are folded into the yields at their initial value; the yields at theta = 0
and the histosys variations are pyhf's own expected yields per sample at those values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._load import LoadedWorkspace, PyhfImportError, numpy_backend
from ._params import (
    ParameterMapping,
    ParamNames,
    components,
    kind_of,
    neutral_values,
    unique_safe,
)

#: format interpolation codes of pyhf's codes (docs/format.md section 15.2)
MULT_CODE = {"code1": 1, "code4": 4}
ADD_CODE = {"code0": 0, "code2": 2, "code4p": 4}


@dataclass
class ImportPlan:
    """What the archive will hold: channels (pyhf names kept in ``channel_names``), the
    yields at theta = 0, the parameters and their modifier rows."""

    channels: list[dict[str, Any]]
    processes: dict[str, str]  # archive name -> pyhf sample name
    signal: set[str]
    yields: dict[tuple[str, str], np.ndarray]  # (process, channel) -> nominal
    parameters: list[ParameterMapping]
    poi_acts_on: list[dict[str, Any]]
    additive: list[tuple[str, str, str, np.ndarray, np.ndarray, int]]
    multiplicative: list[tuple[str, str, str, np.ndarray, np.ndarray, int]]
    linear: list[tuple[str, str, str, np.ndarray, np.ndarray]]
    fixed: dict[str, float]  # pyhf name of a folded component -> its value
    notes: list[str]
    signed: bool = False  # a sample's yield is negative somewhere (format 1.2 signed yields)

    @property
    def channel_names(self) -> dict[str, str]:
        """archive channel name -> pyhf channel name."""
        return {c["name"]: c["pyhf_name"] for c in self.channels}


def plan_import(lw: LoadedWorkspace) -> ImportPlan:
    """Map the loaded workspace (module docstring)."""
    model, cfg, source = lw.model, lw.model.config, lw.source
    spec = lw.spec
    norm_code = lw.modifier_settings.get("normsys", {}).get("interpcode", "code1")
    hist_code = lw.modifier_settings.get("histosys", {}).get("interpcode", "code0")

    # ---- names: safe channel and process names, per (channel, sample) modifiers (pyhf: the
    # last of a repeated type/name wins)
    chan_name = unique_safe([c["name"] for c in spec["channels"]])
    samples = sorted({s["name"] for c in spec["channels"] for s in c["samples"]})
    proc_name = unique_safe(samples)
    mods: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
    users: dict[str, set[str]] = {}  # pyhf parameter -> modifier types using it
    for c in spec["channels"]:
        seen = set()
        for s in c["samples"]:
            if s["name"] in seen:
                raise PyhfImportError(
                    f"{source}: channel '{c['name']}' has two samples named '{s['name']}'"
                )
            seen.add(s["name"])
            d = mods.setdefault((c["name"], s["name"]), {})
            for m in s["modifiers"]:
                d[(m["type"], m["name"])] = m
                users.setdefault(m["name"], set()).add(m["type"])
    user_fixed = {
        p["name"] for p in lw.measurement["config"].get("parameters", []) if p.get("fixed")
    }
    poi = cfg.poi_name
    bounds = np.asarray(cfg.suggested_bounds(), dtype=float)

    # ---- the point theta = 0 in pyhf's parameters, and what is free
    pars0 = np.zeros(cfg.npars)
    free: dict[str, list[bool]] = {}
    notes: list[str] = []
    fixed: dict[str, float] = {}
    n_auto_fixed = 0
    for name in cfg.par_order:
        ps = cfg.param_set(name)
        sl = cfg.par_slice(name)
        kind = kind_of(users.get(name, set()), name, source)
        init = np.asarray(ps.suggested_init, dtype=float)
        fx = list(ps.suggested_fixed)
        neutral = neutral_values(ps, kind, name, fx, source)
        pars0[sl] = np.where(fx, init, neutral)
        free[name] = [not f for f in fx]
        for i, f in enumerate(fx):
            if f:
                pname = name if ps.is_scalar else f"{name}[{i}]"
                fixed[pname] = float(init[i])
                if name not in user_fixed:
                    n_auto_fixed += 1
    if n_auto_fixed:
        notes.append(
            f"{n_auto_fixed} staterror/shapesys bins without uncertainty have no parameter "
            "(pyhf fixes them at 1)"
        )
    folded_user = sorted(n for n in user_fixed if n in cfg.par_map)
    if folded_user:
        notes.append(
            "parameters fixed in the measurement are folded into the yields at their initial "
            f"value: {', '.join(folded_user)}"
        )

    # ---- yields at theta = 0 and the histosys variations, from pyhf itself
    s_index = {s: i for i, s in enumerate(cfg.samples)}
    with numpy_backend():
        e0 = np.asarray(model.main_model.expected_data(pars0, return_by_sample=True))
        hist_var: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in cfg.par_order:
            if "histosys" in users.get(name, set()) and free[name][0]:
                i = cfg.par_slice(name).start
                out = []
                for sign in (1.0, -1.0):
                    p = pars0.copy()
                    p[i] += sign  # alpha = +-1: the archive's t = +-1
                    out.append(np.asarray(model.main_model.expected_data(p, return_by_sample=True)))
                hist_var[name] = (out[0], out[1])

    # pyhf sums the samples' yields, each may be negative (e.g. a data-driven background);
    # only a negative total makes its Poisson likelihood undefined
    total = e0.sum(axis=0)
    if np.any(total < 0):
        b = int(np.argmin(total))
        ch = next(
            c for c in cfg.channels if cfg.channel_slices[c].start <= b < cfg.channel_slices[c].stop
        )
        raise PyhfImportError(
            f"{source}: the expected yield of channel '{ch}' is negative in bin "
            f"{b - cfg.channel_slices[ch].start} ({total[b]:.6g}, the sum of its samples at the "
            "nominal parameters): pyhf's Poisson likelihood is undefined there"
        )
    signed = bool(np.any(e0 < 0)) or any(
        bool(np.any(u < 0) or np.any(d < 0)) for u, d in hist_var.values()
    )
    if signed:
        notes.append(
            "some sample yields are negative (pyhf sums them): the archive keeps them signed "
            "(sample_yields 'signed', format 1.2)"
        )

    channels: list[dict[str, Any]] = []
    yields: dict[tuple[str, str], np.ndarray] = {}
    ws_obs = {o["name"]: o["data"] for o in spec["observations"]}
    for c in spec["channels"]:
        cn = chan_name[c["name"]]
        sl = cfg.channel_slices[c["name"]]
        procs = []
        for s in c["samples"]:
            pn = proc_name[s["name"]]
            procs.append(pn)
            yields[(pn, cn)] = e0[s_index[s["name"]], sl].copy()
        channels.append(
            dict(
                name=cn,
                pyhf_name=c["name"],
                n_bins=int(cfg.channel_nbins[c["name"]]),
                data=np.asarray(ws_obs[c["name"]], dtype=float),
                processes=procs,
            )
        )

    # ---- parameters and modifier rows
    params: list[ParameterMapping] = []
    add_rows: list = []
    mult_rows: list = []
    lin: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    acts_on: list[dict[str, Any]] = []
    signal: set[str] = set()
    par_name = ParamNames()

    def carriers(mtype: str, name: str):
        for c in spec["channels"]:
            for s in c["samples"]:
                m = mods[(c["name"], s["name"])].get((mtype, name))
                if m is not None:
                    yield c, s, m

    for name in cfg.par_order:
        ps = cfg.param_set(name)
        types = users.get(name, set())
        kind = kind_of(types, name, source)
        fr = free[name]
        groups = sorted(types)
        if kind == "alpha":
            if not fr[0]:
                continue
            sigma = float(ps.width()[0])
            arch = par_name(name)
            params.append(
                ParameterMapping(
                    arch, name, name, 0, "+".join(groups), "nuisance", "gaussian", 0.0, sigma,
                    prior_scale=sigma, groups=groups,
                )
            )  # fmt: skip
            for c, s, m in carriers("normsys", name):
                hi, lo = float(m["data"]["hi"]), float(m["data"]["lo"])
                if hi <= 0 or lo <= 0:
                    raise PyhfImportError(
                        f"{source}: normsys '{name}' of sample '{s['name']}' in channel "
                        f"'{c['name']}' has hi={hi}, lo={lo}: both must be > 0"
                    )
                nb = cfg.channel_nbins[c["name"]]
                mult_rows.append(
                    (arch, proc_name[s["name"]], chan_name[c["name"]], np.full(nb, hi),
                     np.full(nb, lo), MULT_CODE[norm_code])
                )  # fmt: skip
            for c, s, _m in carriers("histosys", name):
                up, dn = hist_var[name]
                sl, si = cfg.channel_slices[c["name"]], s_index[s["name"]]
                # pyhf's yield at alpha = +-1 holds this parameter's normsys factor too (hi or
                # lo exactly, for both codes): divide it out
                ns = mods[(c["name"], s["name"])].get(("normsys", name))
                hi, lo = (ns["data"]["hi"], ns["data"]["lo"]) if ns is not None else (1.0, 1.0)
                add_rows.append(
                    (arch, proc_name[s["name"]], chan_name[c["name"]], up[si, sl] / hi,
                     dn[si, sl] / lo, ADD_CODE[hist_code])
                )  # fmt: skip
            continue
        if kind == "normfactor":
            if not fr[0]:
                continue
            if name == poi:
                arch = par_name(name)
                params.append(
                    ParameterMapping(
                        arch, name, name, 0, kind, "poi", "none", 1.0, 1.0, groups=groups
                    )
                )
                by_proc: dict[str, list[str]] = {}
                for c, s, _m in carriers(kind, name):
                    by_proc.setdefault(proc_name[s["name"]], []).append(chan_name[c["name"]])
                for p, chs in by_proc.items():
                    holding = [ch["name"] for ch in channels if p in ch["processes"]]
                    acts_on.append(
                        {"process": p, "channels": None if sorted(chs) == sorted(holding) else chs}
                    )
                    signal.add(p)
                continue
            arch = par_name(name)
            params.append(
                ParameterMapping(
                    arch, name, name, 0, kind, "nuisance", "none", 1.0, 1.0, groups=groups
                )
            )
            for c, s, _m in carriers(kind, name):
                key = (arch, proc_name[s["name"]], chan_name[c["name"]])
                lin.setdefault(key, []).extend(
                    (b, 1.0) for b in range(cfg.channel_nbins[c["name"]])
                )
            continue
        if kind == "lumi":
            if not fr[0]:
                continue
            a, sig = float(ps.auxdata[0]), float(ps.width()[0])
            arch = par_name(name)
            params.append(
                ParameterMapping(arch, name, name, 0, kind, "nuisance", "gaussian", a, sig,
                                 groups=groups)
            )  # fmt: skip
            for c, s, _m in carriers(kind, name):
                key = (arch, proc_name[s["name"]], chan_name[c["name"]])
                lin.setdefault(key, []).extend(
                    (b, sig / a) for b in range(cfg.channel_nbins[c["name"]])
                )
            continue
        # per-bin parameters: component i of the paramset acts on the bins comp_bins[i],
        # a list of (channel, local bin, samples)
        comp_bins = components(kind, name, ps.n_parameters, spec, cfg, mods, source)
        for i, where in enumerate(comp_bins):
            if not fr[i]:
                continue
            pyname = f"{name}[{i}]"
            arch = par_name(pyname)
            if kind == "staterror":
                a, sig = float(ps.auxdata[i]), float(ps.width()[i])
                pm = ParameterMapping(
                    arch, pyname, name, i, kind, "nuisance", "gaussian", a, sig, groups=groups
                )
                coeff = sig / a
            elif kind == "shapesys":
                tau = float(ps.factors[i])
                pm = ParameterMapping(
                    arch, pyname, name, i, kind, "nuisance", "poisson", 1.0, 1.0 / np.sqrt(tau),
                    tau=tau, groups=groups,
                )  # fmt: skip
                coeff = 1.0 / np.sqrt(tau)
            else:  # shapefactor
                pm = ParameterMapping(
                    arch, pyname, name, i, kind, "nuisance", "none", 1.0, 1.0, groups=groups
                )
                coeff = 1.0
            params.append(pm)
            for cname, b, snames in where:
                for sn in snames:
                    key = (arch, proc_name[sn], chan_name[cname])
                    lin.setdefault(key, []).append((b, coeff))

    if add_rows and hist_code == "code2":
        notes.append(
            "histosys code2: pyhf 0.7's extrapolation beyond |alpha| = 1 is discontinuous "
            "(scikit-hep/pyhf#2729, #2610); the archive uses the continuous form of ROOT's "
            "code 2, identical for |alpha| <= 1"
        )
    if poi is not None and not any(p.kind == "poi" for p in params):
        what = "fixed" if poi in fixed else f"a {kind_of(users.get(poi, set()), poi, source)}"
        notes.append(
            f"the POI '{poi}' is {what}: the archive has no POI (a pyhf POI becomes the "
            "archive's only if it is a free normfactor)"
            + (
                f"; fit it as the POI with poi='{poi}' (it keeps its constraint, as in pyhf)"
                if poi not in fixed
                else ""
            )
        )
    for pm in params:  # pyhf's bounds (the measurement's, else its defaults)
        lo, hi = bounds[cfg.par_slice(pm.pyhf_parameter).start + pm.pyhf_index]
        pm.bounds = (float(lo), float(hi))
    params.sort(key=lambda p: p.kind != "poi")  # the POI first, then pyhf's order
    linear = [
        (k[0], k[1], k[2], np.array([b for b, _ in v], dtype=np.int64), np.array([x for _, x in v]))
        for k, v in lin.items()
    ]
    return ImportPlan(
        channels=channels,
        processes={v: k for k, v in proc_name.items()},
        signal=signal,
        yields=yields,
        parameters=params,
        poi_acts_on=acts_on,
        additive=add_rows,
        multiplicative=mult_rows,
        linear=linear,
        fixed=fixed,
        notes=notes,
        signed=signed,
    )
