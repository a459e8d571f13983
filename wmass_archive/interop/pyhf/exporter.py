"""Export an archive to a pyhf JSON workspace, with its mass POI as a patchset.

    >>> from wmass_archive.interop.pyhf import export_pyhf, pyhf_mass_scan
    >>> rep = export_pyhf("tiny.h5", "tiny_pyhf.json")     # + tiny_pyhf_patchset.json
    >>> print(rep.summary())
    >>> scan = pyhf_mass_scan("tiny_pyhf.json", "tiny_pyhf_patchset.json")
    >>> scan.value, scan.error                            # mW and its uncertainty from pyhf

pyhf has no folding and no continuous mass parameter: the base workspace is the model at the
nominal mass, and each patch of the patchset replaces the samples that depend on the mass by
their values at one fixed mass (module :mod:`wmass_archive.interop.pyhf._spec` and docs/pyhf.md
list what maps to what and the approximations). Fit the workspaces with
``modifier_settings=EXPORT_MODIFIER_SETTINGS`` (normsys code1: exactly the archive's symmetric
log-normal; histosys code4p).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...archive.reader import Archive, open_archive
from ...model.theory import build_theory
from ...theory.resolve import ResolvedTheory, as_theory
from .._bounds import Estimate, check_bounds, estimate_pyhf
from .._common import ExportError
from ..unfold import unfold
from ._scan import EXPORT_MODIFIER_SETTINGS, MassScan, pyhf_mass_scan
from ._spec import build_layout, mass_dependent, workspace_spec

__all__ = [
    "EXPORT_MODIFIER_SETTINGS",
    "MassScan",
    "PyhfExportReport",
    "export_pyhf",
    "pyhf_mass_scan",
]

#: mass points of ``mass_points="auto"``: the fitted value +- this many Hessian uncertainties
AUTO_SIGMAS = 3.0
AUTO_POINTS = 13


@dataclass
class PyhfExportReport:
    """What :func:`export_pyhf` wrote and how the archive's parameters appear in pyhf."""

    path: Path
    patchset_path: Path | None
    archive: str
    pdf_set: str | None
    n_channels: int
    n_bins: int
    n_samples: int
    modifiers: dict[str, int]  # pyhf modifier type -> number of (sample, modifier) entries
    poi: str
    poi_fixed: bool
    mass_poi: str | None
    mass_points: list[float]  # physical values (unit of the mass POI, blinding offset included)
    mass_thetas: list[float]
    parameters: dict[str, str]  # archive parameter -> how it appears in pyhf
    approximations: list[str]
    size_bytes: int = 0
    patchset_bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    estimate: Estimate | None = None  # the estimate checked before the export

    def summary(self) -> str:
        """Human-readable lines."""
        mods = ", ".join(f"{n} {k}" for k, n in sorted(self.modifiers.items()))
        lines = [
            f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB in {self.seconds:.1f} s): pyhf "
            f"workspace of {self.archive}" + (f", PDF set {self.pdf_set}" if self.pdf_set else ""),
            f"  {self.n_channels} channels, {self.n_bins} bins, {self.n_samples} samples; "
            f"modifiers: {mods}",
            f"  measurement POI '{self.poi}'"
            + (" (fixed at 1: a placeholder)" if self.poi_fixed else ""),
        ]
        if self.patchset_path is not None:
            lines.append(
                f"  wrote {self.patchset_path} ({self.patchset_bytes / 1e6:.2f} MB): "
                f"{len(self.mass_points)} patches of {self.mass_poi} from "
                f"{min(self.mass_points):.6g} to {max(self.mass_points):.6g}"
            )
        lines.append(
            "  fit with pyhf modifier_settings="
            + json.dumps(EXPORT_MODIFIER_SETTINGS, separators=(",", ":"))
        )
        lines += [f"  {k}: {v}" for k, v in self.parameters.items()]
        lines += [f"  approximation: {a}" for a in self.approximations]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def export_pyhf(
    archive: Archive | str | os.PathLike,
    output: str | os.PathLike,
    *,
    pdf: str | ResolvedTheory | None = None,
    mass_points: Sequence[float] | str = "auto",
    patchset_output: str | os.PathLike | None = None,
    inspire: str | None = None,
    progress: Callable[[str], None] | None = None,
    max_output_gb: float | None = None,
    max_memory_gb: float | None = None,
) -> PyhfExportReport:
    """Write the pyhf workspace of an archive to ``output`` (JSON), and, when the archive has a
    mass POI, the patchset of its mass points to ``patchset_output`` (default
    ``<output stem>_patchset.json``).

    ``pdf``: PDF set in use (a name, or a theory resolved with
    :func:`~wmass_archive.theory.resolve.resolve_theory`: its scale factor, an LHAPDF set;
    default the archive's nominal set); ``mass_points``: physical
    values of the mass POI (its unit, blinding offset included, as the fitter reports them), or
    ``"auto"``: 13 points over the fitted value +- 3 Hessian uncertainties (one fit of the
    archive); ``inspire``: the INSPIRE record ``insNNNNNNN`` for the patchset's references
    (default: found in the archive's citation, else ``ins0000000``); ``progress``: called with
    a line of text at each slow step; ``max_output_gb``, ``max_memory_gb``: bounds (GB) on the
    bytes written and the peak memory, checked against an estimate before any work (None: 2 GB
    and half the machine's memory, ``math.inf``: no bound;
    :mod:`wmass_archive.interop._bounds`)."""
    from ._load import pyhf_module, quiet_pyhf

    pyhf_module("wmass-archive export pyhf")  # before the fit that chooses the mass points
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    out = Path(output)
    for p in (out, Path(patchset_output) if patchset_output is not None else None):
        if p is None:
            continue
        if p.is_dir():
            raise ExportError(f"cannot write {p}: it is a folder")
        if not p.parent.is_dir():
            raise ExportError(f"cannot write {p}: folder {p.parent} does not exist")
    bounds = (max_output_gb, max_memory_gb)

    if isinstance(archive, Archive):
        with quiet_pyhf():
            return _export(
                archive, out, pdf, mass_points, patchset_output, inspire, say, t0, bounds
            )
    src = Path(archive)
    if not src.is_file():
        raise ExportError(f"no archive at {src}")
    if src.resolve() == out.resolve():
        raise ExportError(f"the output {out} would overwrite the archive")
    with open_archive(src) as a, quiet_pyhf():
        return _export(a, out, pdf, mass_points, patchset_output, inspire, say, t0, bounds)


def _export(
    a: Archive,
    out: Path,
    pdf: str | ResolvedTheory | None,
    mass_points: Sequence[float] | str,
    patchset_output: str | os.PathLike | None,
    inspire: str | None,
    say: Callable[[str], None],
    t0: float,
    bounds: tuple[float | None, float | None] = (None, None),
) -> PyhfExportReport:
    from ._load import pyhf_module

    pyhf = pyhf_module()

    meta = a.metadata
    if any(getattr(c, "modifiers", None) for c in meta.channels):
        raise ExportError(
            f"{a.path.name} holds extended modifiers (format 1.1): the pyhf export takes "
            "log-normal variations, folded processes and POIs only"
        )
    n_patches = (
        AUTO_POINTS if isinstance(mass_points, str) else len({float(v) for v in mass_points})
    )
    if any(p.folded for p in meta.processes):  # resolved once: the estimate, the unfolding,
        pdf = as_theory(a, pdf)  # the model and the fit of the mass points take it
    est = estimate_pyhf(a, pdf, n_patches)
    check_bounds(est, *bounds)
    say(f"unfolding {a.path.name}")
    model = unfold(a, pdf)
    theory = build_theory(a, pdf) if any(p.folded for p in meta.processes) else None
    lay = build_layout(a, model, theory)
    name = _safe_label(meta.title)[:60] or "wmass_archive"
    base = workspace_spec(lay, mass_dependent(a, lay, theory, 0.0), name)
    _validate(base, out)
    mpoi = lay.mass_poi
    thetas: list[float] = []
    values: list[float] = []
    ps_path: Path | None = None
    ps_bytes = 0
    if mpoi is not None:
        thetas, values = _mass_points(a, mpoi, pdf, mass_points, say)
        ps_path = (
            Path(patchset_output)
            if patchset_output is not None
            else out.with_name(f"{out.stem}_patchset.json")
        )
        label = _safe_label(mpoi.name) or "mass"
        patches = []
        for i, (th, v) in enumerate(zip(thetas, values, strict=True)):
            say(f"patch {i + 1}/{len(thetas)}: {mpoi.name} = {v:.6g} {mpoi.unit}")
            spec = workspace_spec(lay, mass_dependent(a, lay, theory, th), name)
            ops = [
                {"op": "replace", "path": f"/channels/{ci}/samples/{si}", "value": s}
                for ci, (c0, c1) in enumerate(zip(base["channels"], spec["channels"], strict=True))
                for si, (s0, s) in enumerate(zip(c0["samples"], c1["samples"], strict=True))
                if s != s0
            ]
            patches.append(
                {
                    "metadata": {
                        "name": _patch_name(label, v),
                        "values": [v],
                        "theta": th,
                        "unit": mpoi.unit,
                    },
                    "patch": ops,
                }
            )
        patchset = {
            "metadata": {
                "description": (
                    f"{mpoi.name} of {a.path.name} ({meta.title}) at fixed values: profile "
                    "the likelihood over the patches (wmass_archive.interop.pyhf.pyhf_mass_scan)"
                ),
                "digests": {"sha256": pyhf.utils.digest(base, algorithm="sha256")},
                "labels": [label],
                "references": {"hepdata": _inspire(inspire, meta)},
            },
            "patches": patches,
            "version": "1.0.0",
        }
        try:
            pyhf.PatchSet(patchset)
        except Exception as exc:  # pragma: no cover - a bug of this module
            raise ExportError(f"the patchset does not validate: {exc}") from None
        ps_bytes = _write_json(patchset, ps_path)
    size = _write_json(base, out)
    counts: dict[str, int] = {}
    for c in base["channels"]:
        for s in c["samples"]:
            for m in s["modifiers"]:
                counts[m["type"]] = counts.get(m["type"], 0) + 1
    approx = _approximations(lay, base, theory)
    return PyhfExportReport(
        path=out,
        patchset_path=ps_path,
        archive=a.path.name,
        pdf_set=model.pdf_set,
        n_channels=len(base["channels"]),
        n_bins=int(model.data.size),
        n_samples=sum(len(c["samples"]) for c in base["channels"]),
        modifiers=counts,
        poi=lay.poi,
        poi_fixed=lay.fixed_poi,
        mass_poi=mpoi.name if mpoi is not None else None,
        mass_points=values,
        mass_thetas=thetas,
        parameters=_parameter_map(lay),
        approximations=approx,
        size_bytes=size,
        patchset_bytes=ps_bytes,
        seconds=time.perf_counter() - t0,
        estimate=est,
    )


def _mass_points(
    a: Archive,
    mpoi: Any,
    pdf: str | ResolvedTheory | None,
    given: Sequence[float] | str,
    say: Callable,
) -> tuple[list[float], list[float]]:
    """(thetas, physical values) of the patches."""
    off = mpoi.central + mpoi.blinding_offset
    if isinstance(given, str):
        if given != "auto":
            raise ExportError(f"mass_points must be 'auto' or a list of values, got {given!r}")
        from ...fit import fit

        say(f"fitting {a.path.name} to place the {mpoi.name} points (mass_points='auto')")
        r = fit(a, pdf=pdf, impacts=(), gof=False)
        p = r.poi(mpoi.name)
        raw = 2 * AUTO_SIGMAS * p.physical_error / (AUTO_POINTS - 1)
        if not raw > 0:
            raise ExportError(f"the fit gave no uncertainty of {mpoi.name}: give mass_points")
        tens = 10.0 ** np.floor(np.log10(raw))
        step = next(f * tens for f in (1.0, 2.0, 2.5, 5.0, 10.0) if f * tens >= raw * 0.999)
        centre = round(p.physical_value / step) * step
        k = (AUTO_POINTS - 1) // 2
        values = [round(centre + step * i, 10) for i in range(-k, k + 1)]
    else:
        values = sorted({float(v) for v in given})
        if not values or not all(np.isfinite(values)):
            raise ExportError("mass_points: give at least one finite value")
    return [(v - off) / mpoi.scale for v in values], values


def _parameter_map(lay: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in lay.model.parameters:
        if p.role == "signal":
            out[p.name] = (
                f"normfactor '{p.name}' (the measurement's POI): mu = (central + scale * theta)"
                f" / central = 1 + theta * {p.scale:g} / {p.central:g}"
            )
        elif p.kind == "mass":
            out[p.name] = (
                f"patches: values = {p.central:g} + {p.blinding_offset:g} + {p.scale:g} * theta"
            )
    for name, lu in lay.free_norms.items():
        out[name] = f"normfactor '{name}': mu = exp({lu:.10g} * theta)"
    if lay.fixed_poi:
        out[lay.poi] = "placeholder normfactor on the signal processes, fixed at 1"
    return out


def _approximations(lay: Any, base: dict, theory: Any) -> list[str]:
    types = {m["type"] for c in base["channels"] for s in c["samples"] for m in s["modifiers"]}
    out = []
    if "histosys" in types:
        out.append(
            "a log-normal that varies across the bins becomes a histosys (code4p: additive, "
            "exact at theta = -1, 0, +1; linear beyond +-1 where the archive is exponential, "
            "a difference of nu * theta (theta - 1) (ln r)^2 / 2 for a ratio r), and pyhf sums "
            "the histosys shifts of a sample where the archive multiplies its log-normals"
        )
    asym = [
        m["name"]
        for c in base["channels"]
        for s in c["samples"]
        for m in s["modifiers"]
        if m["type"] == "normsys" and abs(np.log(m["data"]["hi"]) + np.log(m["data"]["lo"])) > 1e-12
    ]
    if asym:
        out.append(
            f"{len(set(asym))} asymmetric flat log-normals become normsys: with code1 exact for "
            "|theta| >= 1/2, different inside (pyhf's piecewise exponential against the "
            "archive's smooth step); symmetric ones are exact"
        )
    if theory is not None and lay.theory_names:
        out.append(
            "theory nuisances (PDF eigenvectors, theory variations) become histosys from the "
            "folded yields at theta = +-1 at each mass point: exact for additive symmetric "
            "variations; otherwise pyhf's code4p smooth step (|theta| < 1) replaces the "
            "archive's (|theta| < 1/2), and multiplicative grid variations are made additive"
        )
    out += lay.notes
    if lay.mass_poi is not None:
        out.append(
            f"{lay.mass_poi.name} is scanned over fixed values (one patch each): the pyhf "
            "estimate comes from a parabola through the profile likelihood at those values"
        )
    return out


def _validate(spec: dict, out: Path) -> None:
    from ._load import pyhf_module

    pyhf = pyhf_module()

    try:
        pyhf.Workspace(spec)
    except Exception as exc:  # pragma: no cover - a bug of this module
        raise ExportError(f"the workspace for {out} does not validate: {exc}") from None


def _write_json(obj: Any, path: Path) -> int:
    """Write ``obj`` as JSON atomically (a temporary file renamed into place); bytes written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path.stat().st_size


def _safe_label(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", s).strip("_")


def _patch_name(label: str, value: float) -> str:
    txt = f"{value:.10g}".replace("-", "m").replace(".", "p").replace("+", "")
    return f"{label}_{txt}"


def _inspire(given: str | None, meta: Any) -> str:
    if given is not None:
        if not re.fullmatch(r"ins[0-9]{7}", given):
            raise ExportError(f"inspire must look like ins1234567, got '{given}'")
        return given
    c = meta.citation
    for text in (c.url or "", c.note or "", c.bibtex or ""):
        m = re.search(r"(?:inspirehep\.net/(?:literature|record)/|\bins)([0-9]{7})\b", text)
        if m:
            return f"ins{m.group(1)}"
    return "ins0000000"
