"""Build a fit model from an archive: :func:`build_model` reads the arrays once (numpy) and
returns a :class:`Model` holding JAX arrays and jit-compiled functions of theta.

Parameter order: POIs (archive order; a split POI replaced in place by its parts), then the
archive's nuisances (metadata order), then the nuisances of the PDF set in use
(``pdf<SET>EV<k>``).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import numpy as np

from ..archive.reader import Archive, open_archive
from ..jax_config import jnp
from ..theory.resolve import ResolvedTheory, has_theory, resolve_theory
from .budget import check_model_bytes, effective_bound, estimate_model_bytes
from .expected import FoldStatic, ModelStatic
from .extended import build_extended, read_modifiers, to_jax
from .info import ModelInfo, ParameterInfo, POIInfo
from .model import BBMode, Model, ModelError
from .poi import PREDEFINED, POISplit, poi_split
from .structure import build_layout, classify
from .theory import TheoryArrays, theory_arrays

__all__ = ["BBMode", "Model", "ModelError", "build_model"]  # the model's names, for old imports


# --------------------------------------------------------------------------- build
def build_model(
    archive: Archive | str,
    *,
    theory: ResolvedTheory | None = None,
    pdf: str | ResolvedTheory | None = None,
    theory_grid: Any = None,
    poi: str | POISplit | None = "mw",
    bb: BBMode | None = None,
    dense_fraction: float = 0.2,
    max_block: int = 128,
    generic: bool | None = None,
    max_model_bytes: int | None = None,
) -> Model:
    """Build the model of an archive (an open :class:`Archive` or a path).

    ``theory``: the theory in use, resolved once
    (:func:`~wmass_archive.theory.resolve.resolve_theory`); or, resolved here, ``pdf`` (the
    PDF set: a forgiving name, default the archive's nominal set; a resolved theory is taken
    as ``theory``) and ``theory_grid`` (a central theory grid replacing the set's, pb per
    generator bin);
    ``poi``: ``"mw"`` (None: the same), ``"mw-charge"``, ``"mw-eta"``, ``"mw-barrel-endcap"``,
    a :class:`POISplit`, the name of a POI of the archive (the model is that of ``"mw"``), or
    the name of a nuisance, which becomes the first POI (kind ``parameter``, physical value =
    theta; it keeps its constraint, like Combine's ``--redefineSignalPOIs``);
    ``bb``: Barlow-Beeston-lite with a gamma (Poisson) or normal constraint, ``"combine"``
    (CMS Combine's autoMCStats lite parameter: generic model only, module
    ``wmass_archive.fit.likelihood``) or ``"none"`` (default: the archive's ``mc_stat``, else
    gamma); ``dense_fraction``/
    ``max_block``: Hessian structure (module ``structure``). An archive with extended
    modifiers or poisson constraints (format 1.1) gives a generic model: every parameter
    dense, Hessian by automatic differentiation; ``generic=True`` forces that path for any
    archive (e.g. to check the structured Hessian against it), None picks it when needed.

    ``max_model_bytes``: the bound on the model's estimated memory (module ``budget``;
    default: :func:`~wmass_archive.model.budget.memory_bound`'s, else the archive's
    ``ReadLimits.max_model_bytes``), checked from the metadata before any array is read and
    again with the Hessian's layout before any device array exists: over it,
    :class:`~wmass_archive.errors.ResourceLimitError`."""
    if isinstance(pdf, ResolvedTheory) and theory is None and theory_grid is None:
        theory, pdf = pdf, None
    if not isinstance(archive, Archive):
        with open_archive(archive) as a:
            return build_model(
                a,
                theory=theory,
                pdf=pdf,
                theory_grid=theory_grid,
                poi=poi,
                bb=bb,
                dense_fraction=dense_fraction,
                max_block=max_block,
                generic=generic,
                max_model_bytes=max_model_bytes,
            )
    meta = archive.metadata
    bb = bb if bb is not None else (meta.mc_stat or "gamma")
    if bb not in ("gamma", "normal", "none", "combine"):
        raise ModelError(f"bb must be 'gamma', 'normal', 'combine' or 'none', got {bb!r}")
    if bb == "combine" and generic is False:
        raise ModelError("bb='combine' (Combine's Barlow-Beeston-lite) needs the generic model")
    sel = archive.select()
    n_bins, n_proc = sel.n_bins, len(sel.processes)
    nominal, sumw2, data = sel.nominal(), sel.sumw2(), sel.data()

    split, redefine = _resolve_poi(meta, poi)
    if split is not None:
        split.validate(meta)
    bound = effective_bound(max_model_bytes, archive.limits)
    n_pois = len(meta.pois) + (len(split.parts) - 1 if split is not None else 0)
    if theory is not None and (pdf is not None or theory_grid is not None):
        raise ModelError("pass the theory either resolved (theory=) or as pdf=/theory_grid=")
    pdf_in_use = theory.pdf if theory is not None else pdf
    budget = dict(pdf=pdf_in_use, n_pois=n_pois, generic=generic, bb=bb)
    check_model_bytes(estimate_model_bytes(meta, **budget), bound, archive=archive.path.name)
    folded_any = any(p.folded for p in meta.processes)
    if not folded_any and (theory is not None or pdf is not None or theory_grid is not None):
        raise ModelError("the archive has no folded process: pdf= and theory_grid= do not apply")
    resolved = theory
    if resolved is not None:
        _check_theory_fits(meta, resolved, archive.path.name)
    if resolved is None and folded_any:
        if not has_theory(meta):
            raise ModelError(f"{archive.path.name} has no theory section: nothing to fold")
        resolved = resolve_theory(archive, pdf, grid=theory_grid)
        budget.update(pdf=resolved.pdf)  # an LHAPDF set has its own nuisances
        check_model_bytes(estimate_model_bytes(meta, **budget), bound, archive=archive.path.name)
    theory = theory_arrays(resolved) if resolved is not None else None
    pm = _parameters(meta, split, theory, redefine)
    n_params = len(pm.params)
    prior_scale = np.array([p.prior_scale for p in pm.params])

    signed = getattr(meta, "sample_yields", None) == "signed"
    # format 1.2 'signed': a process may have a negative yield in a bin (pyhf's semantics)
    plain_active = (nominal != 0 if signed else nominal > 0).reshape(-1)
    needed = any(c.modifiers for c in sel.channels) or any(
        p.constraint == "poisson" for p in pm.params
    )
    if generic is False and needed:
        raise ModelError("this archive has format 1.1 modifiers: it needs the generic model")
    generic = (needed or bb == "combine") if generic is None else bool(generic)
    ext = None
    if generic:  # format 1.1: a yield shifted up from a zero nominal is active too
        ext = _extended(archive, sel, pm, prior_scale)
        plain_active |= ext[2]
    folds_static, folds = _folds(archive, sel, pm, theory)
    for f in folds:
        plain_active[f["slots"]] = False
    fold_active = np.zeros(n_proc * n_bins, dtype=bool)
    for f in folds:
        fold_active[f["slots"]] = f["active"]
    slot_active = plain_active | fold_active
    with np.errstate(divide="ignore", invalid="ignore"):  # generic: a slot active from a zero
        # (or, signed, negative) nominal has no finite log; the generic path does not use it
        log_nom = np.where(
            plain_active, np.log(np.where(plain_active, nominal.reshape(-1), 1.0)), 0.0
        )
    e_param, e_slot, e_avg, e_hd = _logk_entries(sel, pm, slot_active)
    rate = _rate_pois(meta, sel, pm.index)

    # Hessian structure: dense parameters and blocks of coupled sparse ones
    forced = np.array([i for i, p in enumerate(pm.params) if p.kind == "poi" or p.theory], int)
    if generic:  # the generic path: every parameter dense, Hessian by autodiff
        dense = np.ones(n_params, dtype=bool)
    else:
        dense = classify(
            n_params, forced, e_param, e_slot % n_bins, n_bins, dense_fraction, max_block
        )
    is_d = dense[e_param]
    order_s = np.lexsort((e_slot[~is_d], e_param[~is_d]))
    sp_param, sp_slot = e_param[~is_d][order_s], e_slot[~is_d][order_s]
    lay = build_layout(dense, sp_param, sp_slot, n_bins, n_proc, max_bytes=bound)
    budget.update(generic=generic)
    est = estimate_model_bytes(meta, **budget, layout=lay)  # type: ignore[arg-type]
    check_model_bytes(est, bound, archive=archive.path.name)

    # Barlow-Beeston-lite: k = (sum_p N)^2 / sum_p sumw2 per bin (at the nominal point);
    # "combine" also needs each slot's sumw2: its width is sqrt(sum_p sumw2_p c_p(theta)^2)
    # with c_p the normalisation of process p relative to the nominal (fit.likelihood)
    nom_tot, var_tot = nominal.sum(axis=0), sumw2.sum(axis=0)
    bb_on = (var_tot > 0) & (nom_tot > 0)
    bb_k = np.where(bb_on, nom_tot**2 / np.where(bb_on, var_tot, 1.0), 1.0)
    bb_sumw2 = np.where(bb_on[None, :], sumw2, 0.0).reshape(-1)
    bin_active = slot_active.reshape(n_proc, n_bins).any(axis=0)
    if np.any(data[~bin_active] > 0):
        b = int(np.flatnonzero(~bin_active & (data > 0))[0])
        raise ModelError(f"bin {b} has {data[b]:g} observed events but no expected yield")

    f64 = partial(jnp.asarray, dtype=jnp.float64)
    i32 = partial(jnp.asarray, dtype=jnp.int32)
    arrays: dict[str, Any] = dict(
        log_nom=f64(log_nom),
        plain_active=jnp.asarray(plain_active),
        lkD_param=i32(e_param[is_d]),
        lkD_col=i32(lay.column[e_param[is_d]]),
        lkD_slot=i32(e_slot[is_d]),
        lkD_avg=f64(e_avg[is_d]),
        lkD_hd=f64(e_hd[is_d]),
        lkD_ps=f64(prior_scale[e_param[is_d]]),
        lkS_param=i32(sp_param),
        lkS_col=i32(lay.column[sp_param]),
        lkS_slot=i32(sp_slot),
        lkS_avg=f64(e_avg[~is_d][order_s]),
        lkS_hd=f64(e_hd[~is_d][order_s]),
        lkS_ps=f64(prior_scale[sp_param]),
        lkS_target=i32(lay.entry_target),
        bucket_cols=tuple(i32(b.cols) for b in lay.buckets),
        bucket_bins=tuple(i32(b.bins) for b in lay.buckets),
        bucket_tile_cols=tuple(i32(b.tile_cols if b.tiled else b.cols) for b in lay.buckets),
        bucket_tile_pos=tuple(
            i32(b.tile_pos if b.tiled else np.zeros((b.n_tiles, 0))) for b in lay.buckets
        ),
        D_params=i32(lay.dense_params),
        S_params=i32(lay.sparse_params),
        rate_param=i32(rate["param"]),
        rate_col=i32(lay.column[rate["param"]]),
        rate_central=f64(rate["central"]),
        rate_scale=f64(rate["scale"]),
        rate_mask=f64(rate["mask"].reshape(len(rate["param"]), n_proc * n_bins)),
        constrained=f64([p.constraint == "gaussian" for p in pm.params]),
        bb_k=f64(bb_k),
        bb_on=jnp.asarray(bb_on),
        bb_sumw2=f64(bb_sumw2),
        bin_active=jnp.asarray(bin_active),
        folds=tuple(
            dict(
                R=f64(f["R"]),
                lumi=f64(f["lumi"]),
                slots=i32(f["slots"]),
                mass_param=i32(f["mass_param"]),
                mass_col=i32(lay.column[f["mass_param"]]),
                active=jnp.asarray(f["active"]),
            )
            for f in folds
        ),
    )
    th_param = (
        np.array([pm.index[n.name] for n in theory.nuisances], dtype=np.int64)
        if theory is not None
        else np.zeros(0, np.int64)
    )
    n_gen = meta.theory.n_gen if meta.theory is not None else 0
    empty = np.zeros((0, n_gen))
    arrays.update(
        th_central=f64(theory.central if theory is not None else np.zeros(n_gen)),
        th_dA=f64(theory.dA if theory is not None else empty),
        th_dH=f64(theory.dH if theory is not None else empty),
        th_mA=f64(theory.mA if theory is not None else empty),
        th_mH=f64(theory.mH if theory is not None else empty),
        th_ps=f64(prior_scale[th_param]),
        th_param=i32(th_param),
        th_col=i32(lay.column[th_param]),
    )
    if not generic:
        arrays["proc_cols"] = tuple(
            i32(c)
            for c in process_columns(
                n_proc,
                n_bins,
                lay.n_dense,
                e_slot[is_d],
                lay.column[e_param[is_d]],
                [(int(c), m) for c, m in zip(lay.column[rate["param"]], rate["mask"], strict=True)],
                [(f["slots"], lay.column[np.unique(f["mass_param"])]) for f in folds],
                lay.column[th_param],
            )
        )
    if ext is not None:
        plain = np.zeros((n_proc, n_bins), dtype=bool)
        for c, ch in enumerate(sel.channels):
            for i, p in enumerate(sel.processes):
                if p.name in ch.processes and not p.folded:
                    plain[i, sel.offsets[c] : sel.offsets[c + 1]] = True
        arrays["ext"] = to_jax(ext[1], plain.reshape(-1), nominal.reshape(-1), signed=signed)
        tau = {n.name: n.tau for n in meta.nuisances if n.tau is not None}
        arrays["poisson_tau"] = f64([tau.get(p.name, 0.0) for p in pm.params])
        arrays["poisson_on"] = jnp.asarray([p.constraint == "poisson" for p in pm.params])
    static = ModelStatic(
        n_params=n_params,
        n_bins=n_bins,
        n_proc=n_proc,
        n_dense=lay.n_dense,
        n_sparse=lay.n_sparse,
        folds=tuple(folds_static),
        buckets=tuple(
            (b.offset, b.n_blocks, b.size, b.n_local, b.n_tiles, b.t_size, b.tiled)
            for b in lay.buckets
        ),
        flat_size=lay.flat_size,
        bb=bb,
        generic=generic,
        ext=(
            dataclasses.replace(
                ext[0], structured_hessian=bool(np.all(rate["mask"].sum(axis=0) <= 1.0))
            )
            if ext is not None
            else None
        ),
    )
    pdf_name = theory.pdf_set.name if theory is not None and theory.pdf_set is not None else None
    grid_source = "none" if resolved is None else resolved.grid_source
    info = ModelInfo(
        archive=archive.path.name,
        title=meta.title,
        synthetic=meta.synthetic,
        pdf_set=pdf_name,
        theory_grid=grid_source,
        poi_definition=((poi or "mw") if not isinstance(poi, POISplit) else f"split of {poi.poi}"),
        bb=bb,
        n_bins=n_bins,
        channels=[c.name for c in sel.channels],
        processes=[p.name for p in sel.processes],
        parameters=pm.params,
        pois=pm.pois,
        structure=(
            f"generic model: {n_params} dense parameters, Hessian by automatic differentiation"
            if generic
            else lay.summary()
        ),
    )
    model = Model(info, static, arrays, data, lay, theory, np.asarray(sel.offsets, dtype=np.int64))
    model.resolved = resolved
    return model


@dataclasses.dataclass
class _Params:
    """The model's parameter list and the maps from the archive's parameter indices."""

    params: list[ParameterInfo]
    pois: list[POIInfo]
    index: dict[str, int]
    arch_to_model: np.ndarray  # archive parameter index -> model index (-1: the split POI)
    split: POISplit | None
    split_arch: int  # archive index of the split POI (-1: none)
    split_parts: np.ndarray | None  # model index of the split POI's part holding each bin


def _resolve_poi(meta, poi: str | POISplit | None) -> tuple[POISplit | None, str | None]:
    """(split of a mass POI, nuisance made a POI) for the ``poi`` argument of
    :func:`build_model`."""
    if poi is None or isinstance(poi, POISplit):
        return poi, None
    if not isinstance(poi, str):
        raise ModelError(f"poi must be a name or a POISplit, got {type(poi).__name__}")
    if poi.lower() in PREDEFINED:
        return poi_split(meta, poi), None
    if poi in [p.name for p in meta.pois]:
        return None, None
    if poi in [n.name for n in meta.nuisances]:
        return None, poi
    names = [p.name for p in meta.pois]
    raise ModelError(
        f"unknown POI '{poi}': choose {', '.join(PREDEFINED)}, a POI of the archive "
        f"({', '.join(names) or 'none'}) or any of its {len(meta.nuisances)} nuisances"
    )


def _parameters(
    meta, split: POISplit | None, theory: TheoryArrays | None, redefine: str | None = None
) -> _Params:
    """POIs (a nuisance made a POI first, a split one replaced by its parts), archive
    nuisances, PDF nuisances."""
    params: list[ParameterInfo] = []
    pois: list[POIInfo] = []
    arch_to_model = np.full(len(meta.parameter_names), -1, dtype=np.int64)
    split_parts, split_arch = None, -1
    theory_names = {n.name for n in theory.nuisances} if theory is not None else set()

    def nuisance_info(n, kind: str) -> ParameterInfo:
        return ParameterInfo(
            name=n.name,
            kind=kind,
            constraint=n.constraint,
            prior_scale=n.prior_scale,
            groups=list(n.groups),
            theory=n.name in theory_names,
            bounds=n.bounds,
        )

    if redefine is not None:
        j = [n.name for n in meta.nuisances].index(redefine)
        n = meta.nuisances[j]
        arch_to_model[len(meta.pois) + j] = 0
        params.append(nuisance_info(n, "poi"))
        pois.append(
            POIInfo(
                name=n.name, kind="parameter", central=0.0, scale=1.0, redefined_from="nuisance"
            )
        )
    for i, p in enumerate(meta.pois):
        common = dict(
            kind=p.kind,
            unit=p.unit,
            central=p.central,
            scale=p.scale,
            blinding_offset=p.blinding_offset,
        )
        tb = p.theta_bounds() if hasattr(p, "theta_bounds") else None
        if split is not None and p.name == split.poi:
            split_arch = i
            split_parts = len(params) + split.part_of_bin()
            for name, mask in split.parts:
                params.append(ParameterInfo(name=name, kind="poi", constraint="none", bounds=tb))
                pois.append(POIInfo(name=name, split_of=p.name, n_bins=int(np.sum(mask)), **common))
            continue
        arch_to_model[i] = len(params)
        params.append(ParameterInfo(name=p.name, kind="poi", constraint="none", bounds=tb))
        pois.append(POIInfo(name=p.name, **common))
    for j, n in enumerate(meta.nuisances):
        if n.name == redefine:
            continue
        arch_to_model[len(meta.pois) + j] = len(params)
        params.append(nuisance_info(n, "nuisance"))
    if theory is not None and theory.pdf_set is not None:
        s = theory.pdf_set
        for name in s.nuisance_names:
            params.append(
                ParameterInfo(
                    name=name, kind="pdf", constraint="gaussian", groups=[s.group], theory=True
                )
            )
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ModelError("parameter names of the model are not unique (PDF nuisance clash?)")
    index = {n: i for i, n in enumerate(names)}
    return _Params(params, pois, index, arch_to_model, split, split_arch, split_parts)


def _extended(archive: Archive, sel, pm: _Params, prior_scale: np.ndarray):
    """The extended modifiers of the selected channels: (static, numpy tables, slots that an
    additive shift touches); see module ``extended``."""
    meta = archive.metadata
    proc_pos = np.full(len(meta.processes), -1, dtype=np.int64)
    for i, p in enumerate(sel.processes):
        proc_pos[meta.process_index(p.name)] = i
    mods = read_modifiers(archive, sel.channels)
    return build_extended(
        mods,
        np.asarray(sel.offsets[:-1]),
        proc_pos,
        pm.arch_to_model,
        prior_scale,
        sel.n_bins,
        len(sel.processes) * sel.n_bins,
    )


def _folds(archive: Archive, sel, pm: _Params, theory: TheoryArrays | None):
    """Static description and numpy arrays of every folded (channel, process) block."""
    meta = archive.metadata
    n_bins = sel.n_bins
    proc_index = {p.name: i for i, p in enumerate(sel.processes)}
    statics: list[FoldStatic] = []
    arrays: list[dict[str, Any]] = []
    for c, ch in enumerate(sel.channels):
        for pname in ch.processes:
            if not meta.process(pname).folded:
                continue
            mpoi = meta.mass_poi_of(pname)
            points = tuple(mpoi.mass_points) if mpoi is not None else (0.0,)
            j0 = points.index(0.0)
            R = np.asarray(archive.response(pname, ch.name), dtype=np.float64)
            lumi = float(meta.luminosity.value)  # type: ignore[union-attr]
            bins = sel.offsets[c] + np.arange(ch.n_bins)
            if mpoi is None:
                mass_param = np.zeros(ch.n_bins, dtype=np.int64)
            elif pm.split is not None and mpoi.name == pm.split.poi:
                mass_param = pm.split_parts[bins]  # type: ignore[index]
            else:
                mass_param = np.full(ch.n_bins, pm.index[mpoi.name], dtype=np.int64)
            nom_fold = lumi * R[j0] @ theory.central  # type: ignore[union-attr]
            statics.append(FoldStatic(points, j0, mpoi is not None))
            arrays.append(
                dict(
                    R=R,
                    lumi=lumi,
                    slots=proc_index[pname] * n_bins + bins,
                    mass_param=mass_param,
                    active=nom_fold > 0,
                )
            )
    return statics, arrays


def _logk_entries(sel, pm: _Params, slot_active: np.ndarray):
    """(model parameter, slot, avg, halfdiff) of every logk entry on a slot with a yield; the
    split POI's entries go to the part holding their bin."""
    t = sel.logk()
    mp = pm.arch_to_model[t.parameter]
    if pm.split is not None:
        mp = np.where(t.parameter == pm.split_arch, pm.split_parts[t.bin], mp)  # type: ignore[index]
    slot = t.process * sel.n_bins + t.bin
    keep = slot_active[slot] & ((t.avg != 0) | (t.halfdiff != 0))
    return mp[keep], slot[keep], t.avg[keep], t.halfdiff[keep]


def _rate_pois(meta, sel, index: dict[str, int]) -> dict[str, np.ndarray]:
    """Rate POIs: model index, central, scale and the (n_rate, n_slots) mask of their slots."""
    n_bins = sel.n_bins
    chan_names = [c.name for c in sel.channels]
    proc_index = {p.name: i for i, p in enumerate(sel.processes)}
    out: dict[str, list] = {"param": [], "central": [], "scale": [], "mask": []}
    for p in meta.pois:
        if p.kind != "rate":
            continue
        mask = np.zeros(len(sel.processes) * n_bins)
        for s in p.acts_on:
            for cname in s.channels if s.channels is not None else chan_names:
                c = chan_names.index(cname)
                if s.process in sel.channels[c].processes:
                    pi = proc_index[s.process]
                    mask[pi * n_bins + sel.offsets[c] : pi * n_bins + sel.offsets[c + 1]] = 1.0
        out["param"].append(index[p.name])
        out["central"].append(p.central)
        out["scale"].append(p.scale)
        out["mask"].append(mask)
    return {
        "param": np.array(out["param"], dtype=np.int64),
        "central": np.array(out["central"], dtype=np.float64),
        "scale": np.array(out["scale"], dtype=np.float64),
        "mask": np.array(out["mask"], dtype=np.float64),
    }


def _check_theory_fits(meta, theory: ResolvedTheory, name: str) -> None:
    """A theory resolved for another archive is refused: its generator bins and theory
    variations must be this archive's."""
    th = meta.theory
    if th is None:
        raise ModelError(f"{name} has no theory section: a resolved theory does not apply")
    if theory.n_gen != th.n_gen:
        raise ModelError(
            f"the theory was resolved for {theory.archive} ({theory.n_gen} generator bins), "
            f"not for {name} ({th.n_gen})"
        )
    if [v.name for v in theory.variations] != [v.name for v in th.variations]:
        raise ModelError(
            f"the theory was resolved for {theory.archive}: its theory variations are not "
            f"those of {name}"
        )


def process_columns(
    n_proc: int,
    n_bins: int,
    n_dense: int,
    slots: np.ndarray,
    cols: np.ndarray,
    rates: list[tuple[int, np.ndarray]],
    folds: list[tuple[np.ndarray, np.ndarray]],
    theory_cols: np.ndarray,
    saving: float = 1.0 / 3.0,
) -> list[np.ndarray]:
    """Per process, the columns of the dense Jacobian A_D (n_slots, n_dense) that its slots can
    fill: its logk entries' columns (``slots``, ``cols``), the rate POIs acting on it
    (``rates``: (column, mask over slots)), and for a folded process (``folds``: (slots, mass
    columns)) the theory and mass columns. The Hessian's A_D^T diag(w) A_D is then summed over
    processes on these columns only (module ``wmass_archive.fit.hessian``). An empty list when
    that saves less than ``saving`` of the dense product's work."""
    out: list[set[int]] = [set() for _ in range(n_proc)]
    proc = np.asarray(slots) // n_bins
    for p in range(n_proc):
        out[p].update(np.unique(np.asarray(cols)[proc == p]).tolist())
    for col, mask in rates:
        hit = np.flatnonzero(np.asarray(mask).reshape(n_proc, n_bins).any(axis=1))
        for p in hit:
            out[int(p)].add(int(col))
    for fslots, mass_cols in folds:
        p = int(np.asarray(fslots)[0]) // n_bins
        out[p].update(np.asarray(theory_cols).tolist())
        out[p].update(np.asarray(mass_cols).tolist())
    work = sum(len(c) ** 2 for c in out)
    if work > (1.0 - saving) * n_proc * n_dense**2:
        return []
    return [np.array(sorted(c), dtype=np.int64) for c in out]
