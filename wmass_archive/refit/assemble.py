"""The :class:`~wmass_archive.refit.schema.RefitResult` of a refit, assembled from the fit's
:class:`~wmass_archive.fit.FitResult` and model: POI values in theta and physical units (MeV
for mW, blinded unless asked), their covariance and the differences of split POIs, impacts
per POI with the CMS-style rows, the archive, PDF set and theory in use, the fit's status, the
generator-level distributions (refit/genlevel.py) when the archive folds a signal."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..theory.resolve import ResolvedTheory
from .groups import cms_rows, group_members
from .poicov import poi_covariance
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


def _poi_values(
    model, res, by_poi: dict[str, Impacts], blinded: bool, first: str | None = None
) -> dict[str, POIValue]:
    """Every POI (``first`` first): theta and physical values; the ``*_mev`` fields for mass
    POIs."""
    pois = {}
    for p, r in zip(model.info.pois, res.pois, strict=True):
        off = p.blinding_offset if blinded else 0.0
        value = p.central + p.scale * r.value + off
        unc = p.scale * r.error
        imp = by_poi.get(p.name)
        stat = None
        if imp is not None:
            stat = imp.nominal.get("stat")
            if stat is None:
                stat = imp.global_.get("stat")
        syst = float(np.sqrt(max(unc**2 - stat**2, 0.0))) if stat is not None else None
        interval = None
        if r.interval is not None:
            lo, hi = (float(p.central + p.scale * x + off) for x in r.interval)
            interval = (lo, hi)
        mass = p.kind == "mass"
        pois[p.name] = POIValue(
            name=p.name,
            kind=p.kind,
            unit=p.unit,
            value=r.value + off / p.scale,
            unc=r.error,
            value_mev=value if mass else None,
            unc_mev=unc if mass else None,
            shift_mev=value - p.central if mass else None,
            reference_mev=p.central if mass else None,
            stat_mev=stat if mass else None,
            syst_mev=syst if mass else None,
            interval_mev=interval if mass else None,
            split_of=p.split_of,
            central=p.central,
            scale=p.scale,
            physical_value=value,
            physical_unc=unc,
            physical_interval=interval,
            stat=stat,
            syst=syst,
        )
    if first in pois:
        pois = {first: pois[first], **{k: v for k, v in pois.items() if k != first}}
    return pois


def _pdf_info(meta, choice: ResolvedTheory | None) -> PDFInfo | None:
    if choice is None:
        return None
    s, ext = choice.pdf, choice.lhapdf
    arch_scale = next((x.scale for x in meta.theory.pdf_sets if x.name == s.name), None)
    return PDFInfo(
        name=s.name,
        lhapdf_name=s.lhapdf_name,
        source=choice.source,
        nominal=choice.nominal_set,
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


def assemble(
    meta,
    path: str,
    choice: ResolvedTheory | None,
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
    """The result of the fit ``res`` of ``model`` (archive metadata ``meta`` at ``path``, the
    theory ``choice`` in use, with its PDF set and central grid); ``poi``: the POI definition,
    or the archive POI chosen by name (which then comes first)."""
    from .._version import __version__

    members = group_members(model.info.parameters)
    pdf_group = choice.pdf.group if choice is not None else None
    chosen = poi if poi in model.poi_names else None
    by_poi = {}
    for name in sorted(model.poi_names, key=lambda n: n != chosen):  # the chosen POI first
        imp = _impacts_of(res, name, members, pdf_group)
        if imp is not None:
            by_poi[name] = imp
    theory_info = None
    if meta.theory is not None:
        theory_info = (
            TheoryInfo(source="archive")
            if choice is None or choice.grid_source != "user"
            else TheoryInfo(
                source="user",
                file=choice.grid_origin,
                label=choice.grid_label,
                ratio_to_nominal=choice.grid_ratio,
            )
        )
    gof = None
    if res.gof is not None:
        gof = GoF(chi2=res.gof.chi2, ndof=res.gof.ndof, p_value=res.gof.p_value)
    prov = meta.provenance
    pois = _poi_values(model, res, by_poi, blinded, first=chosen)
    poi_cov, poi_diffs = poi_covariance(model.info.pois, res, list(pois), blinded)
    gen = None
    if meta.theory is not None and model.theory is not None and res.covariance is not None:
        from .genlevel import generator_level  # JAX: imported only when there is a grid

        t0 = time.perf_counter()
        gen = generator_level(model, meta.theory.generator_axes, res)
        timing.generator_level = time.perf_counter() - t0
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
        pois=pois,
        poi_covariance=poi_cov,
        poi_differences=poi_diffs,
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
        generator_level=gen,
        notes=notes,
        timing_s=timing,
        versions={
            "wmass_archive": __version__,
            "jax": res.versions.jax,
            "numpy": res.versions.numpy,
            "python": res.versions.python,
        },
    )
