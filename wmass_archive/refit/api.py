"""The theorist's entry point: :func:`refit` an archive with another PDF set or theory
prediction and get a :class:`~wmass_archive.refit.schema.RefitResult`.

    >>> from wmass_archive.refit import refit
    >>> r = refit("likelihoods/default.h5", pdf="NNPDF31")
    >>> print(r.summary()); r.to_json("refit.json")
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np

from ..archive.reader import Archive, open_archive
from ..archive.validate import validate_archive
from .errors import RefitError
from .groups import cms_rows, group_members
from .pdfswap import PathsLike, PDFChoice, resolve_pdf
from .schema import (
    ArchiveInfo,
    FitInfo,
    GoF,
    Impacts,
    PDFInfo,
    POIValue,
    RefitResult,
    ScanOut,
    TheoryInfo,
    TimingOut,
)
from .tasks import ModelSpec, build_spec_model
from .usergrid import TheoryLike, load_user_grid

ImpactsArg = Literal["nominal", "global", "both", "none"] | Sequence[str]
POIS = ("mw", "mw-charge", "mw-eta", "mw-barrel-endcap")


def _impact_kinds(impacts: ImpactsArg) -> tuple[str, ...]:
    if isinstance(impacts, str):
        table = {
            "both": ("nominal", "global"),
            "none": (),
            "nominal": ("nominal",),
            "global": ("global",),
        }
        if impacts not in table:
            raise RefitError(f"impacts must be nominal, global, both or none, got '{impacts}'")
        return table[impacts]
    kinds = tuple(impacts)
    bad = [k for k in kinds if k not in ("nominal", "global")]
    if bad:
        raise RefitError(f"unknown impact definition(s) {bad} (nominal, global)")
    return kinds


def refit(
    archive: str | os.PathLike[str] | Archive | None = None,
    *,
    pdf: str | None = None,
    theory: TheoryLike | None = None,
    poi: str = "mw",
    impacts: ImpactsArg = "both",
    pdf_scale: float | None = None,
    pdf_path: PathsLike = None,
    asimov: bool = False,
    freeze: Sequence[str] | str | None = None,
    scan: int | None = None,
    minos: bool = False,
    toys: int = 0,
    seed: int = 0,
    pdf_sweep: bool = False,
    pdf_bias: bool = False,
    unblind: bool = False,
    validate: bool = False,
    bb: Literal["gamma", "normal", "none"] = "gamma",
    scheduler: str | None = None,
    progress: bool = False,
    cache: bool = True,
    command: str | None = None,
) -> RefitResult:
    """Refit an archive and return the :class:`RefitResult`.

    * ``archive``: a path or an open :class:`Archive`; None: the default archive
      (:func:`~wmass_archive.refit.paths.default_archive_path`);
    * ``pdf``: the PDF set (forgiving name: archive name, LHAPDF name or alias, ``NNPDF4.0``);
      a set the archive lacks is computed from LHAPDF (``pdf_path`` folders, then
      ``LHAPDF_DATA_PATH``) and cached; ``pdf_scale``: factor of its one-sigma uncertainty
      (default the archive's factor, 1 for an external set);
    * ``theory``: a user central grid replacing the signal's (TheoryGrid file/object, hist, or
      array in pb per generator bin; see :mod:`~wmass_archive.refit.usergrid`);
    * ``poi``: ``mw``, ``mw-charge``, ``mw-eta`` or ``mw-barrel-endcap``;
      ``impacts``: ``nominal``, ``global``, ``both`` or ``none``;
    * ``asimov``: fit the expected data (theta = 0) instead of the observed;
      ``freeze``: parameter/group names or globs held at 0;
    * ``scan``: number of points of a likelihood scan of each POI over +-3 sigma;
      ``minos``: profile-likelihood 68% intervals;
    * ``toys``/``seed``: pseudo-experiments at the fitted point; ``pdf_sweep``, ``pdf_bias``:
      see :mod:`~wmass_archive.refit.sweep` (``scheduler``: None runs them here, ``"local"`` or
      an address on dask);
    * ``unblind``: report the absolute mW (otherwise a blinded archive's values carry its
      hidden offset and ``shift_mev`` is what to quote); ``validate``: run the full validator on
      the archive first (every read is SHA-256 checked in any case).
    """
    t_start = time.perf_counter()
    if poi not in POIS:
        raise RefitError(f"unknown POI definition '{poi}' (choose from {', '.join(POIS)})")
    kinds = _impact_kinds(impacts)
    if scan is not None and scan < 2:
        raise RefitError(f"a scan needs at least 2 points, got {scan}")
    if toys < 0:
        raise RefitError(f"the number of toys must be >= 0, got {toys}")
    if isinstance(freeze, str):
        freeze = [freeze]
    freeze_t = tuple(freeze or ())
    timing = TimingOut()
    notes: list[str] = []
    n_steps = 4 + bool(scan) + bool(pdf_sweep) + bool(pdf_bias) + bool(toys)
    step = _Steps(progress, n_steps)

    # ---- archive
    step("opening the archive")
    t0 = time.perf_counter()
    own = not isinstance(archive, Archive)
    if archive is None:
        from .paths import default_archive_path

        archive = default_archive_path()
    if validate:
        validate_archive(archive.path if isinstance(archive, Archive) else archive)
    arc = open_archive(archive) if own else archive  # type: ignore[arg-type]
    try:
        path = str(arc.path.resolve())
        timing.open = time.perf_counter() - t0

        # ---- PDF set and theory grid
        step("PDF set and theory grid")
        t0 = time.perf_counter()
        choice = None
        if arc.metadata.theory is not None:
            choice = resolve_pdf(
                arc, pdf, paths=pdf_path, scale=pdf_scale, cache=cache, progress=progress
            )
        elif pdf is not None or pdf_scale is not None:
            raise RefitError(f"{arc.path.name} has no theory section: --pdf does not apply")
        timing.pdf_grid = time.perf_counter() - t0
        user = load_user_grid(arc, theory) if theory is not None else None
        if choice is not None and choice.external is not None:
            notes += choice.external.notes
            if choice.external.parameters_note.startswith("WARNING"):
                notes.append(choice.external.parameters_note)
        sweep_sets: list[PDFChoice] = []
        if (pdf_sweep or pdf_bias) and choice is not None:
            sweep_sets = [
                choice if s.name == choice.name else resolve_pdf(arc, s.name) for s in arc.pdf_sets
            ]
            if choice.source == "lhapdf":
                sweep_sets.append(choice)
        meta = arc.metadata
    finally:
        if own:
            arc.close()

    # ---- model and fit
    from ..fit.api import fit as run_fit
    from ..fit.likelihood import observation
    from ..fit.toys import asimov as asimov_obs
    from .paths import enable_compilation_cache

    if cache:
        enable_compilation_cache()
    spec = ModelSpec(
        path,
        pdf=choice.name if choice else None,
        external=choice.external if choice else None,
        scale=choice.scale if choice else None,
        theory=user.central if user is not None else None,
        poi=poi,
        bb=bb,
    )
    step("building the model")
    t0 = time.perf_counter()
    model = build_spec_model(spec)
    timing.build = time.perf_counter() - t0
    step("fitting: JIT compilation, minimum, covariance, impacts")
    res = run_fit(
        model,
        asimov=asimov,
        freeze=freeze_t or None,
        impacts=kinds,
        intervals=bool(minos),
        strict=False,
    )
    timing.compile, timing.fit = res.timing.compile, res.timing.fit
    timing.covariance, timing.impacts = res.timing.covariance, res.timing.impacts
    if not res.converged:
        notes.append(f"the fit did not converge ({res.status}): {res.minimize.message}")
    blinded = (not unblind) and any(p.blinding_offset != 0 for p in model.info.pois)

    # ---- scans
    scans: list[ScanOut] = []
    if scan and res.converged:
        step(f"likelihood scan ({scan} points)")
        t0 = time.perf_counter()
        obs = asimov_obs(model) if asimov else observation(model.data, model.n_params)
        scans = _scans(model, obs, res, scan, freeze_t, blinded)
        timing.scan = time.perf_counter() - t0

    result = _assemble(
        meta,
        path,
        choice,
        user,
        model,
        res,
        blinded=blinded,
        poi=poi,
        freeze=freeze_t,
        asimov=asimov,
        bb=bb,
        scans=scans,
        notes=notes,
        timing=timing,
        command=command,
    )
    result._fit, result._model = res, model

    # ---- studies of many fits
    if pdf_sweep and sweep_sets:
        from .sweep import pdf_sweep as run_sweep
        from .tasks import fit_summary

        step("PDF sweep")
        t0 = time.perf_counter()
        done, start = {}, None
        if poi == "mw" and res.converged and choice is not None and user is None:
            done[f"{choice.name}:{'orig' if choice.scale == 1.0 else 'scaled'}"] = fit_summary(
                model, res
            )
            start = {p.name: p.value for p in res.parameters if p.kind != "pdf"}
        result.sweep = run_sweep(
            path,
            sweep_sets,
            reference=choice.name if choice else None,
            freeze=freeze_t,
            asimov=asimov,
            blinded=blinded,
            bb=bb,
            scheduler=scheduler,
            progress=progress,
            start=start,
            done=done,
        )
        timing.sweep = time.perf_counter() - t0
    if pdf_bias and sweep_sets and choice is not None:
        from .sweep import pdf_bias as run_bias

        step("PDF bias study")
        t0 = time.perf_counter()
        result.bias = run_bias(
            path, choice, sweep_sets, freeze=freeze_t, bb=bb, scheduler=scheduler, progress=progress
        )
        timing.bias = time.perf_counter() - t0
    if toys:
        from .sweep import toys as run_toys

        step(f"{toys} toys")
        t0 = time.perf_counter()
        theta_gen = np.array([p.value for p in res.parameters]) if res.converged else None
        result.toys = run_toys(
            spec,
            toys,
            seed=seed,
            theta_gen=theta_gen,
            freeze=freeze_t,
            scheduler=scheduler,
            progress=progress,
        )
        timing.toys = time.perf_counter() - t0
    step.close()
    timing.total = time.perf_counter() - t_start
    return result


class _Steps:
    """The steps of a refit as a tqdm line on stderr (``progress``): 'wmass-refit 3/6: building
    the model [00:01]'; the fits of sweeps, bias studies and toys have bars of their own."""

    def __init__(self, progress: bool, total: int):
        from tqdm import tqdm

        self.total = total
        self.n = 0
        self.bar = tqdm(
            total=total, disable=not progress, leave=False, bar_format="{desc} [{elapsed}]"
        )

    def __call__(self, what: str) -> None:
        self.n += 1
        self.bar.set_description_str(f"wmass-refit {self.n}/{self.total}: {what}")

    def close(self) -> None:
        self.bar.close()


def _scans(model, obs, res, n: int, freeze: tuple[str, ...], blinded: bool) -> list[ScanOut]:
    from ..fit.scan import scan as run_scan

    theta = res.values
    cov = np.asarray(res.covariance)
    free = model.free_mask(freeze or None)
    out = []
    for i, p in enumerate(model.info.pois):
        sig = float(np.sqrt(cov[i, i]))
        values = theta[i] + sig * np.linspace(-3.0, 3.0, n)
        q, ok = run_scan(model, obs, i, values, theta, res.nll, cov, free)
        off = p.blinding_offset if blinded else 0.0
        out.append(
            ScanOut(
                poi=p.name,
                shift_mev=[float(p.scale * v + off) for v in values],
                two_delta_nll=[float(x) for x in q],
                converged=[bool(x) for x in ok],
            )
        )
    return out


def _impacts_of(res, name: str, members, pdf_group) -> Impacts | None:
    tables = {t.kind: t for t in res.impacts if t.poi == name}
    if not tables:
        return None

    def clean(d: dict) -> dict[str, float | None]:
        return {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in d.items()}

    nom = clean(tables["nominal"].groups) if "nominal" in tables else {}
    glo = clean(tables["global"].groups) if "global" in tables else {}
    t0 = next(iter(tables.values()))
    return Impacts(
        poi=name,
        unit=t0.unit,
        nominal=nom,
        total=float(t0.total),
        cms=cms_rows(nom, glo, members, pdf_group),
        **{"global": glo},
    )


def _poi_values(model, res, by_poi: dict[str, Impacts], blinded: bool) -> dict[str, POIValue]:
    pois = {}
    for p, r in zip(model.info.pois, res.pois, strict=True):
        off = p.blinding_offset if blinded else 0.0
        mass = p.kind == "mass"
        value_mev = p.central + p.scale * r.value + off
        imp = by_poi.get(p.name)
        stat = None
        if imp is not None:
            stat = imp.nominal.get("stat")
            if stat is None:
                stat = imp.global_.get("stat")
        unc = p.scale * r.error
        syst = float(np.sqrt(max(unc**2 - stat**2, 0.0))) if stat is not None else None
        interval = None
        if r.interval is not None:
            interval = tuple(float(p.central + p.scale * x + off) for x in r.interval)
        pois[p.name] = POIValue(
            name=p.name,
            kind=p.kind,
            unit=p.unit,
            value=r.value + off / p.scale,
            unc=r.error,
            value_mev=value_mev if mass else None,
            unc_mev=unc if mass else None,
            shift_mev=value_mev - p.central if mass else None,
            reference_mev=p.central if mass else None,
            stat_mev=stat if mass else None,
            syst_mev=syst if mass else None,
            interval_mev=interval if mass else None,
            split_of=p.split_of,
        )
    return pois


def _pdf_info(meta, choice: PDFChoice | None) -> PDFInfo | None:
    if choice is None:
        return None
    s, ext = choice.pdf, choice.external
    arch_scale = next((x.scale for x in meta.theory.pdf_sets if x.name == s.name), None)
    return PDFInfo(
        name=s.name,
        lhapdf_name=s.lhapdf_name,
        source=choice.source,
        nominal=choice.nominal,
        error_type=s.error_type,
        confidence_level=s.confidence_level,
        scale=s.scale,
        archive_scale=arch_scale,
        n_members=s.n_members,
        n_nuisances=s.n_nuisances,
        variance_kept=s.variance_kept,
        grid_file=ext.grid_file if ext else None,
        grid_cached=ext.cached if ext else False,
        theory_parameters=ext.parameters_note if ext else None,
    )


def _assemble(
    meta,
    path: str,
    choice: PDFChoice | None,
    user,
    model,
    res,
    *,
    blinded: bool,
    poi: str,
    freeze: tuple[str, ...],
    asimov: bool,
    bb: str,
    scans: list[ScanOut],
    notes: list[str],
    timing: TimingOut,
    command: str | None,
) -> RefitResult:
    from .. import __version__

    members = group_members(model.info.parameters)
    pdf_group = choice.pdf.group if choice is not None else None
    by_poi = {}
    for p in model.info.pois:
        imp = _impacts_of(res, p.name, members, pdf_group)
        if imp is not None:
            by_poi[p.name] = imp
    theory_info = None
    if meta.theory is not None:
        theory_info = (
            TheoryInfo(source="archive")
            if user is None
            else TheoryInfo(
                source="user",
                file=user.source,
                label=user.label,
                ratio_to_nominal=user.ratio_to_nominal,
            )
        )
    gof = None
    if res.gof is not None:
        gof = GoF(chi2=res.gof.chi2, ndof=res.gof.ndof, p_value=res.gof.p_value)
    prov = meta.provenance
    return RefitResult(
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        command=command,
        archive=ArchiveInfo(
            path=path,
            name=Path(path).name,
            title=meta.title,
            synthetic=meta.synthetic,
            format_version=meta.format_version,
            producer=f"{prov.producer} {prov.producer_version}",
            created=prov.created.isoformat(),
            n_bins=model.n_bins,
            n_nuisances=model.n_params - model.n_pois,
        ),
        pdf=_pdf_info(meta, choice),
        theory=theory_info,
        synthetic=meta.synthetic,
        blinded=blinded,
        poi_definition=poi,
        pois=_poi_values(model, res, by_poi, blinded),
        impacts=next(iter(by_poi.values()), None),
        impacts_by_poi=by_poi,
        gof=gof,
        fit=FitInfo(
            status=res.status,
            converged=res.converged,
            edm=res.edm,
            nll=res.nll,
            minimizer=res.minimizer,
            bb=bb,
            asimov=asimov,
            frozen=list(freeze),
            n_parameters=model.n_params,
        ),
        scans=scans,
        notes=notes,
        timing_s=timing,
        versions={
            "wmass_archive": __version__,
            "jax": res.versions.jax,
            "numpy": res.versions.numpy,
            "python": res.versions.python,
        },
    )
