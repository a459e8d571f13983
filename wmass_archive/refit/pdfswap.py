"""Swapping the PDF set of a refit: a set the archive carries, or any LHAPDF set.

:func:`resolve_pdf` turns a forgiving name (``NNPDF40``, ``NNPDF4.0``, an LHAPDF name, an
archive alias) into a :class:`PDFChoice`:

* a set **in the archive** is used as it is (its members, eigenvectors, confidence level and the
  analysis' scale factor; ``scale=`` overrides the factor);
* otherwise an **LHAPDF set** of that name found on ``paths`` / ``LHAPDF_DATA_PATH`` has its
  theory grid computed (:func:`wmass_archive.theory.compute_set_grid`) with the archive's theory
  parameters in the archive's generator binning, cached under ``<cache>/theory-grids/``
  (:mod:`wmass_archive.theory.cache`: keyed by the content of the set's files, the binning, the
  parameters and the code's version; verified on load), and becomes an :class:`ExternalPDF`: its
  Hessian pairs, symmetric Hessian members or replica eigenvectors (99% of the replica variance)
  at the set's stated confidence level are the PDF nuisances, scale factor 1 unless ``scale=``.

:class:`DerivedArchive` is an open archive seen with such an extra set and/or changed scale
factors (in memory: the file is not touched), so that :func:`wmass_archive.model.build_model`
builds the model of format.md section 10 with it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..archive.models import PDFSet, Theory, normalize_pdf_name
from ..archive.reader import Archive, ReadLimits, find_pdf_set
from ..archive.writer import replica_eigenvectors
from ..theory.cache import GridCache
from ..theory.generator import generator_axes
from ..theory.grid import TheoryGrid
from ..theory.lhapdf import LHAPDFError, available_pdf_sets, pdf_search_paths
from ..theory.params import TheoryParameters
from .errors import RefitError
from .paths import cache_dir

PathsLike = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None

#: Short names of the PDF sets of CMS's W-mass analysis -> their LHAPDF names
WELL_KNOWN: dict[str, str] = {
    "ct18z": "CT18ZNNLO",
    "ct18": "CT18NNLO",
    "pdf4lhc21": "PDF4LHC21_40",
    "msht20": "MSHT20nnlo_as118",
    "msht20an3lo": "MSHT20an3lo_as118",
    "nnpdf31": "NNPDF31_nnlo_as_0118",
    "nnpdf40": "NNPDF40_nnlo_as_01180",
    "ct14": "CT14nnlo",
    "mmht14": "MMHT2014nnlo68cl",
}
REPLICA_VARIANCE = 0.99


@dataclass
class ExternalPDF:
    """A PDF set that the archive does not carry, with its theory grid in the archive's
    generator binning: ``members`` (n_members, n_gen) in pb (member 0 central), ``eigenvectors``
    (replica sets: one-sigma shifts, else None) and the archive description ``pdf``."""

    pdf: PDFSet
    members: np.ndarray
    eigenvectors: np.ndarray | None = None
    set_path: str = ""
    grid_file: str | None = None
    cached: bool = False
    parameters_note: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class PDFChoice:
    """The PDF set a refit uses: its name in the (derived) archive, where it comes from, its
    description with the effective scale factor, and the external data when not in the archive."""

    name: str
    source: Literal["archive", "lhapdf"]
    pdf: PDFSet
    nominal: bool
    external: ExternalPDF | None = None

    @property
    def scale(self) -> float:
        return float(self.pdf.scale)


class DerivedArchive(Archive):
    """An archive opened again from ``path`` and seen with extra PDF sets (``extra``) and other
    scale factors of its sets (``scales``: set name -> factor); only the metadata in memory
    changes. It is an :class:`Archive`, so every reader of archives (and ``build_model``) takes
    it."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        extra: Sequence[ExternalPDF] = (),
        scales: Mapping[str, float] | None = None,
        verify: bool = True,
        limits: ReadLimits = ReadLimits(),
    ):
        super().__init__(path, verify=verify, limits=limits)
        try:
            self._extra = {e.pdf.name: e for e in extra}
            th = self.metadata.theory
            if th is None:
                raise RefitError(f"{self.path.name} has no theory section: no PDF set to swap")
            scales = dict(scales or {})
            sets = []
            for s in th.pdf_sets:
                sets.append(
                    s.model_copy(update={"scale": float(scales.pop(s.name))})
                    if s.name in scales
                    else s
                )
            for e in extra:
                pdf = e.pdf
                if pdf.name in scales:
                    pdf = pdf.model_copy(update={"scale": float(scales.pop(pdf.name))})
                    self._extra[pdf.name] = dataclasses.replace(e, pdf=pdf)
                sets.append(pdf)
            if scales:
                raise RefitError(f"no PDF set {sorted(scales)} to rescale in {self.path.name}")
            try:
                theory = Theory.model_validate({**th.model_dump(), "pdf_sets": sets})
            except ValueError as exc:
                msg = str(exc).splitlines()
                raise RefitError(f"cannot add the PDF set: {msg[-1] if msg else exc}") from None
            self.metadata = self.metadata.model_copy(update={"theory": theory})
        except BaseException:
            self.close()
            raise

    def pdf_members(self, pdf: str) -> np.ndarray:
        s = self._pdf(pdf)
        if s.name in self._extra:
            return self._extra[s.name].members
        return super().pdf_members(pdf)

    def pdf_eigenvectors(self, pdf: str) -> np.ndarray:
        s = self._pdf(pdf)
        if s.name in self._extra:
            ev = self._extra[s.name].eigenvectors
            if ev is None:
                raise RefitError(f"PDF set '{s.name}' ({s.error_type}) has no eigenvectors")
            return ev
        return super().pdf_eigenvectors(pdf)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", derived: +{len(self._extra)} PDF set(s)>"


# --------------------------------------------------------------------------- resolution
def describe_sets(sets: Sequence[PDFSet]) -> str:
    """'CT10nlo (CT10, CT10NLO), NNPDF23 (NNPDF23_lo_as_0119_qed, NNPDF2.3)' for messages."""
    out = []
    for s in sets:
        other = [x for x in dict.fromkeys([s.lhapdf_name, *s.aliases]) if x != s.name]
        out.append(f"{s.name} ({', '.join(other)})" if other else s.name)
    return ", ".join(out)


def find_lhapdf_name(name: str, paths: PathsLike = None) -> str | None:
    """The LHAPDF set a forgiving ``name`` means among the sets on the search path: the exact
    name, a folder path, a name equal ignoring case and ' .-_', a CMS short name
    (:data:`WELL_KNOWN`), or the only set whose loose name starts with it. None when nothing
    matches; :class:`RefitError` when several sets match."""
    if os.sep in name or name.startswith("."):
        p = Path(name).expanduser()
        return str(p) if (p / f"{p.name}.info").is_file() else None
    names = available_pdf_sets(paths)
    if name in names:
        return name
    loose = normalize_pdf_name(name)
    hits = [n for n in names if normalize_pdf_name(n) == loose]
    if not hits and loose in WELL_KNOWN:
        want = normalize_pdf_name(WELL_KNOWN[loose])
        hits = [n for n in names if normalize_pdf_name(n) == want]
    if not hits:
        hits = [n for n in names if normalize_pdf_name(n).startswith(loose)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise RefitError(f"PDF set name '{name}' is ambiguous: {', '.join(hits[:8])}; name one")
    return None


def _not_found(archive: Archive, name: str, paths: PathsLike) -> RefitError:
    folders = [str(p) for p in pdf_search_paths(paths)]
    on_path = available_pdf_sets(paths)
    where = (
        f"LHAPDF folders {', '.join(folders)} (sets there: {', '.join(on_path) or 'none'})"
        if folders
        else "no LHAPDF folder (set LHAPDF_DATA_PATH or pass --pdf-path DIR)"
    )
    hint = difflib.get_close_matches(
        name, [s.name for s in archive.pdf_sets] + on_path, n=2, cutoff=0.5
    )
    return RefitError(
        f"unknown PDF set '{name}': not in {archive.path.name} (available: "
        f"{describe_sets(archive.pdf_sets)}) nor in {where}"
        + (f"; did you mean {' or '.join(hint)}?" if hint else "")
    )


def resolve_pdf(
    archive: Archive,
    name: str | None = None,
    *,
    paths: PathsLike = None,
    scale: float | None = None,
    cache: bool = True,
    progress: bool = False,
) -> PDFChoice:
    """The PDF set ``name`` (default the archive's nominal set): in the archive when one of its
    names or aliases matches loosely, otherwise an LHAPDF set on ``paths``/LHAPDF_DATA_PATH (its
    theory grid computed or taken from the cache). ``scale``: the factor of its uncertainty
    (default: the archive's factor for its own sets, 1 for others). Raises :class:`RefitError`
    listing the available sets when nothing matches."""
    th = archive.metadata.theory
    if th is None:
        raise RefitError(f"{archive.path.name} has no theory section: --pdf does not apply")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise RefitError(f"the PDF scale factor must be a positive number, got {scale}")
    s = find_pdf_set(th.pdf_sets, name) if name is not None else th.pdf_set(th.nominal_pdf)
    if s is not None:
        if scale is not None:
            s = s.model_copy(update={"scale": float(scale)})
        return PDFChoice(s.name, "archive", s, nominal=s.name == th.nominal_pdf)
    assert name is not None
    found = find_lhapdf_name(name, paths)
    if found is None:
        raise _not_found(archive, name, paths)
    again = find_pdf_set(th.pdf_sets, Path(found).name)  # e.g. NNPDF40 -> an archive alias
    if again is not None:
        return resolve_pdf(archive, again.name, paths=paths, scale=scale)
    ext = external_pdf(archive, found, paths=paths, cache=cache, progress=progress)
    if scale is not None:
        ext.pdf = ext.pdf.model_copy(update={"scale": float(scale)})
    return PDFChoice(ext.pdf.name, "lhapdf", ext.pdf, nominal=False, external=ext)


def derived_archive(archive: Archive, choice: PDFChoice) -> Archive:
    """The archive to build the model from: ``archive`` itself when the choice is one of its sets
    at its own scale, else a :class:`DerivedArchive` (the caller closes it)."""
    if choice.external is None:
        own = archive.metadata.theory.pdf_set(choice.name)  # type: ignore[union-attr]
        if own.scale == choice.pdf.scale:
            return archive
        return DerivedArchive(
            archive.path,
            scales={choice.name: choice.scale},
            verify=archive.verify,
            limits=archive.limits,
        )
    ext = dataclasses.replace(choice.external, pdf=choice.pdf)  # the choice's scale factor
    return DerivedArchive(archive.path, extra=[ext], verify=archive.verify, limits=archive.limits)


# --------------------------------------------------------------------------- external sets
def archive_theory_parameters(
    archive: Archive, paths: PathsLike = None
) -> tuple[TheoryParameters, str]:
    """The theory parameters the archive's grids were computed with, and how they were
    established: taken from the producer's recorded configuration (the pseudo-analysis writes
    it in the provenance notes) or the defaults, and checked by recomputing member 0 of the
    nominal PDF set when that set is on the search path."""
    cands: list[tuple[TheoryParameters, str]] = []
    notes = archive.metadata.provenance.notes or ""
    m = re.search(r"Configuration: (\{.*\})\s*$", notes, re.S)
    if m:
        try:
            cands.append((TheoryParameters(**json.loads(m.group(1))["theory"]), "the archive's"))
        except (ValueError, KeyError, TypeError):
            pass
    cands.append((TheoryParameters(), "default"))
    th = archive.metadata.theory
    assert th is not None
    nominal = th.pdf_set(th.nominal_pdf)
    try:
        from ..theory.compute import compute_set_values

        target = archive.theory_nominal()
        for params, what in cands:
            vals, _ = compute_set_values(
                nominal.lhapdf_name, params, paths=paths, members=0, progress=False
            )
            dev = float(np.max(np.abs(vals.reshape(-1) - target)) / np.max(np.abs(target)))
            if dev < 1e-6:
                return params, (
                    f"{what} theory parameters (checked: they reproduce the "
                    f"archive's nominal grid with {nominal.lhapdf_name})"
                )
        return cands[0][0], (
            f"WARNING: {cands[0][1]} theory parameters do not reproduce the archive's nominal "
            f"grid with {nominal.lhapdf_name} (relative deviation {dev:.2g}): the new set's grid "
            "may differ from the archive's in more than the PDF"
        )
    except (LHAPDFError, OSError):
        return cands[0][0], (
            f"{cands[0][1]} theory parameters (not checked: the nominal set "
            f"{nominal.lhapdf_name} is not on the LHAPDF path)"
        )


def external_pdf(
    archive: Archive,
    lhapdf_name: str,
    *,
    paths: PathsLike = None,
    cache: bool = True,
    progress: bool = False,
    variance: float = REPLICA_VARIANCE,
) -> ExternalPDF:
    """The theory grid of every member of an LHAPDF set, as an :class:`ExternalPDF` for this
    archive (computed, or read from the cache when the set, binning and parameters are the
    same)."""
    from ..theory.compute import compute_set_grid, open_pdf_set

    th = archive.metadata.theory
    assert th is not None
    std = generator_axes()
    if len(th.generator_axes) != len(std) or not all(
        a.name == b.name and a.same_binning(b) for a, b in zip(th.generator_axes, std, strict=False)
    ):
        got = " x ".join(f"{a.name}[{a.size}]" for a in th.generator_axes)
        raise RefitError(
            f"{archive.path.name} has generator axes {got}, not the binning wmass_archive.theory "
            "computes (qW[2] x absYW[8] x ptW[10] x helicity[9]): a PDF set it does not carry "
            "cannot be computed for it"
        )
    try:
        pset = open_pdf_set(lhapdf_name, paths)
    except LHAPDFError as exc:
        raise RefitError(str(exc)) from None
    params, how = archive_theory_parameters(archive, paths)
    axes_json = json.dumps([a.model_dump(mode="json") for a in th.generator_axes], sort_keys=True)

    def compute() -> TheoryGrid:
        try:
            return compute_set_grid(
                pset,
                params,
                progress=progress,
                description=f"computed by wmass-refit for {archive.path.name}",
            )
        except LHAPDFError as exc:
            raise RefitError(f"cannot compute the theory grid of {pset.name}: {exc}") from None

    store: GridCache | None = None
    if cache:
        try:
            store = GridCache(cache_dir() / "theory-grids")
            key = store.key(Path(pset.path), axes_json, params)
        except OSError:  # no cache folder, or a set file unreadable for hashing
            store = None
    if store is None:
        grid, grid_file, cached = compute(), None, False
    else:
        got = store.get(pset.name, key, compute, n_members=len(pset))
        grid, grid_file, cached = got.grid, got.path, got.cached
    return _external_from_grid(grid, str(pset.path), grid_file, cached, how, variance)


def _external_from_grid(grid, set_path, grid_file, cached, how, variance) -> ExternalPDF:
    info_type = (grid.meta.pdf_error_type or "replicas").lower()
    parts = info_type.split("+")
    core = parts[0]
    members = grid.flat()
    notes: list[str] = []
    if len(parts) > 1:  # e.g. symmhessian+as: the last two members per extra part vary alpha_s
        drop = 2 * (len(parts) - 1)
        members = members[: max(1, len(members) - drop)]
        notes.append(
            f"{grid.meta.pdf_set}: its last {drop} members ({'+'.join(parts[1:])}) "
            "are not PDF uncertainties and were left out"
        )
    if core not in ("hessian", "symmhessian", "replicas"):
        raise RefitError(
            f"PDF set {grid.meta.pdf_set} has error type '{info_type}', "
            "not hessian, symmhessian or replicas"
        )
    if core == "hessian" and len(members) % 2 == 0:
        members = members[:-1]
        notes.append(f"{grid.meta.pdf_set}: an odd member was left out of its Hessian pairs")
    cl = float(grid.meta.pdf_conf_level or 68.268949)
    kwargs: dict = dict(
        name=grid.meta.pdf_set,
        lhapdf_name=grid.meta.pdf_set,
        error_type=core,
        n_members=len(members),
        scale=1.0,
        interpolation="additive",
        description=f"from LHAPDF ({set_path}), computed by wmass-refit",
    )
    ev = None
    if core == "replicas":
        kwargs["confidence_level"] = 68.268949
        if len(members) > 1:
            ev, kept = replica_eigenvectors(members[1:], variance)
            kwargs.update(n_eigenvectors=int(ev.shape[0]), variance_kept=float(kept))
            if ev.shape[0] == 0:
                kwargs.update(n_members=1, n_eigenvectors=0, variance_kept=None)
                members, ev = members[:1], None
        else:
            notes.append(f"{grid.meta.pdf_set} has its central member only: no PDF uncertainty")
    else:
        kwargs["confidence_level"] = cl
    try:
        pdf = PDFSet(**kwargs)
    except ValueError as exc:
        raise RefitError(f"cannot use PDF set {grid.meta.pdf_set}: {exc}") from None
    return ExternalPDF(
        pdf=pdf,
        members=np.asarray(members, dtype=np.float64),
        eigenvectors=ev,
        set_path=set_path,
        grid_file=str(grid_file) if grid_file else None,
        cached=cached,
        parameters_note=how,
        notes=notes,
    )
