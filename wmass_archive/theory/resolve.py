"""The theory a model uses, resolved once.

:func:`resolve_theory` turns what a user asks for (an archive, a PDF set by a forgiving name
or an LHAPDF set, a theory grid of their own, a scale factor of the PDF uncertainty, the
LHAPDF search path and the grid cache) into one immutable :class:`ResolvedTheory`: the central
grid, the set's members or eigenvectors, its error type, confidence level and scale factor, the
archive's theory variations, and where each piece comes from. The model
(:func:`wmass_archive.model.build_model`), the refit, the exports and every command take that
value; nothing downstream looks a name up again or reopens the archive for the theory.

A PDF set is taken

* **from the archive** when one of its names, LHAPDF names or aliases matches loosely (its
  members, eigenvectors, confidence level and the analysis' scale factor; ``scale=`` overrides
  the factor);
* otherwise **from LHAPDF**: the set the name means on ``paths``/``LHAPDF_DATA_PATH``
  (:func:`~wmass_archive.theory.pdfnames.find_lhapdf_name`) has its grid computed with the
  archive's theory parameters in the archive's generator binning and cached
  (:mod:`wmass_archive.theory.cache`); its Hessian pairs, symmetric Hessian members or replica
  eigenvectors (99 % of the replica variance) at the set's stated confidence level become the
  PDF nuisances, scale factor 1 unless ``scale=``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..archive.models import PDFSet, Theory
from ..archive.reader import Archive, find_pdf_set
from ..archive.writer import replica_eigenvectors
from ..errors import TheoryError
from ..text import printable
from .cache import GridCache, default_cache_dir
from .generator import generator_axes
from .grid import TheoryGrid
from .lhapdf import LHAPDFError
from .params import TheoryParameters
from .pdfnames import PathsLike, describe_sets, find_lhapdf_name, missing_set_hint
from .usergrid import TheoryLike, UserGrid, load_user_grid

__all__ = [
    "REPLICA_VARIANCE",
    "LHAPDFOrigin",
    "ResolvedTheory",
    "TheoryVariation",
    "as_theory",
    "has_theory",
    "resolve_theory",
]

#: fraction of the replica variance that the eigenvectors of an LHAPDF replica set keep
REPLICA_VARIANCE = 0.99
CacheLike = bool | str | os.PathLike[str] | GridCache


def _frozen(a: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return None
    out = np.array(a, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class TheoryVariation:
    """A theory variation of the archive (a nuisance acting on the grid): its name,
    interpolation and prior scale; its up/down grids are rows of
    :attr:`ResolvedTheory.variation_up` / ``variation_down``."""

    name: str
    interpolation: str
    prior_scale: float


@dataclass(frozen=True)
class LHAPDFOrigin:
    """Where an LHAPDF set's grid comes from: the set's folder, the cached grid file (None when
    not cached), whether it was a cache hit, and how the theory parameters were established."""

    set_path: str
    grid_file: str | None
    cached: bool
    parameters_note: str


@dataclass(frozen=True, eq=False)
class ResolvedTheory:
    """The theory in use (arrays read-only, in pb per generator bin, shape (n_gen,) or
    (k, n_gen)):

    * ``pdf``: the PDF set's description with the effective scale factor; ``source``
      ``"archive"`` or ``"lhapdf"``; ``members`` (n_members, n_gen), member 0 central;
      ``eigenvectors`` (replica sets: one-sigma shifts, else None);
    * ``central``: the grid the model folds at theta = 0: the archive's nominal grid for its
      nominal set, member 0 for another set, or the user's grid (``grid_source="user"``,
      ``grid_label`` and ``grid_origin`` where it came from, ``grid_ratio`` its total over the
      archive's nominal);
    * ``reference``: the archive's nominal grid, which the theory variations are relative to;
      ``variations`` with ``variation_up``/``variation_down`` (n_var, n_gen);
    * ``lhapdf``: an external set's origin; ``notes``: what a result should say about it.
    """

    archive: str
    pdf: PDFSet
    source: Literal["archive", "lhapdf"]
    nominal_set: bool
    members: np.ndarray
    eigenvectors: np.ndarray | None
    central: np.ndarray
    reference: np.ndarray
    variations: tuple[TheoryVariation, ...]
    variation_up: np.ndarray
    variation_down: np.ndarray
    grid_source: Literal["archive", "user"] = "archive"
    grid_label: str = ""
    grid_origin: str = ""
    grid_ratio: float | None = None
    lhapdf: LHAPDFOrigin | None = None
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ views
    @property
    def name(self) -> str:
        """The PDF set's name (in the archive, or the LHAPDF name of an external set)."""
        return self.pdf.name

    @property
    def scale(self) -> float:
        """The factor applied to the set's one-sigma uncertainty."""
        return float(self.pdf.scale)

    @property
    def n_gen(self) -> int:
        return int(self.central.shape[0])

    @property
    def is_default(self) -> bool:
        """The archive's nominal set at its own scale, with the archive's grid."""
        return self.nominal_set and self.grid_source == "archive"

    def with_scale(self, scale: float) -> ResolvedTheory:
        """The same theory with another scale factor of the PDF uncertainty."""
        _check_scale(scale)
        return dataclasses.replace(self, pdf=self.pdf.model_copy(update={"scale": float(scale)}))

    def with_grid(self, user: UserGrid) -> ResolvedTheory:
        """The same theory with a checked user grid (:func:`load_user_grid`) as the central
        grid."""
        return dataclasses.replace(
            self,
            central=_frozen(user.central),
            grid_source="user",
            grid_label=user.label,
            grid_origin=user.source,
            grid_ratio=user.ratio_to_nominal,
        )

    def key(self) -> str:
        """A digest of everything a model takes from this theory (set, scale, arrays): equal
        keys build equal models."""
        h = hashlib.sha256(self.pdf.model_dump_json().encode())
        for a in (self.members, self.eigenvectors, self.central, self.variation_up):
            h.update(b"|" if a is None else a.tobytes())
        h.update(self.variation_down.tobytes())
        h.update(repr([dataclasses.astuple(v) for v in self.variations]).encode())
        return h.hexdigest()

    def describe(self) -> str:
        """One line: 'CT10nlo (archive, hessian, 26 nuisances at 68% CL, x2)' and the grid."""
        s = self.pdf
        text = (
            f"{s.name} ({self.source}, {s.error_type}, {s.n_nuisances} nuisances at "
            f"{s.confidence_level:.4g}% CL, x{self.scale:g})"
        )
        if self.grid_source == "user":
            text += f", central grid: {self.grid_label}"
        return text

    def __repr__(self) -> str:
        return f"<ResolvedTheory {printable(self.describe(), max_len=200)} for {self.archive}>"


# --------------------------------------------------------------------------- resolution
def has_theory(meta) -> bool:
    """Whether an archive's metadata has a theory section and a folded process."""
    return meta.theory is not None and any(p.folded for p in meta.processes)


def _check_scale(scale: float | None) -> None:
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise TheoryError(f"the PDF scale factor must be a positive number, got {scale}")


def resolve_theory(
    archive: Archive,
    pdf: str | None = None,
    *,
    grid: TheoryLike | None = None,
    scale: float | None = None,
    paths: PathsLike = None,
    cache: CacheLike = True,
    progress: bool = False,
) -> ResolvedTheory:
    """The theory of ``archive`` with the PDF set ``pdf`` (default the archive's nominal set;
    a forgiving name, see the module docstring), a user central grid ``grid`` (a TheoryGrid
    file or object, a hist, or an array in pb per generator bin: :func:`load_user_grid`),
    ``scale`` (the factor of the set's one-sigma uncertainty; default the archive's factor for
    its own sets, 1 for others), the LHAPDF search ``paths`` and the grid ``cache`` (True: the
    default cache folder, a folder, a :class:`GridCache`, or False). Every problem raises
    :class:`~wmass_archive.errors.TheoryError` with one line."""
    meta = archive.metadata
    th = meta.theory
    if not has_theory(meta):
        raise TheoryError(
            f"{archive.path.name} has no theory (no folded process, no PDF set): "
            "a PDF set or theory grid does not apply"
        )
    assert th is not None
    _check_scale(scale)
    s = find_pdf_set(th.pdf_sets, pdf) if pdf is not None else th.pdf_set(th.nominal_pdf)
    if s is None:
        assert pdf is not None
        found = find_lhapdf_name(pdf, paths)
        if found is None:
            known = [x.name for x in th.pdf_sets]
            raise TheoryError(
                f"unknown PDF set '{printable(pdf, max_len=80)}': not in {archive.path.name} "
                f"({describe_sets(th.pdf_sets)}) and {missing_set_hint(pdf, paths, known)}"
            )
        s = find_pdf_set(th.pdf_sets, Path(found).name)  # e.g. NNPDF40 -> an archive alias
        if s is None:
            out = _from_lhapdf(archive, found, paths=paths, cache=cache, progress=progress)
            return _finish(archive, out, grid, scale)
    out = _from_archive(archive, s)
    return _finish(archive, out, grid, scale)


def as_theory(
    archive: Archive,
    pdf: str | ResolvedTheory | None = None,
    *,
    grid: TheoryLike | None = None,
    scale: float | None = None,
    **options,
) -> ResolvedTheory:
    """:func:`resolve_theory` of ``archive``, or, when ``pdf`` is already resolved (the caller
    resolved it once, with its search path and cache), that theory with ``scale`` and ``grid``
    applied on top. The functions that take a PDF set (the model, the exports, the refitter)
    take either."""
    if isinstance(pdf, ResolvedTheory):
        _check_scale(scale)
        return _finish(archive, pdf, grid, scale)
    return resolve_theory(archive, pdf, grid=grid, scale=scale, **options)


def _finish(archive: Archive, out: ResolvedTheory, grid, scale) -> ResolvedTheory:
    if scale is not None:
        out = out.with_scale(scale)
    if grid is not None:
        out = out.with_grid(load_user_grid(archive, grid))
    return out


def _archive_parts(archive: Archive) -> dict:
    """What every resolution of this archive shares: the nominal grid and the variations."""
    meta = archive.metadata
    th = meta.theory
    assert th is not None
    reference = archive.theory_nominal()
    n_gen = th.n_gen
    if th.variations:
        up, down = archive.theory_variations()
    else:
        up = down = np.zeros((0, n_gen))
    variations = tuple(
        TheoryVariation(v.name, v.interpolation, float(meta.nuisance(v.name).prior_scale))
        for v in th.variations
    )
    return dict(
        archive=archive.path.name,
        reference=_frozen(reference),
        variations=variations,
        variation_up=_frozen(up),
        variation_down=_frozen(down),
    )


def _from_archive(archive: Archive, s: PDFSet) -> ResolvedTheory:
    th = archive.metadata.theory
    assert th is not None
    parts = _archive_parts(archive)
    members = archive.pdf_members(s.name)
    ev = archive.pdf_eigenvectors(s.name) if s.n_eigenvectors else None
    nominal = s.name == th.nominal_pdf
    central = parts["reference"] if nominal else members[0]
    return ResolvedTheory(
        pdf=s,
        source="archive",
        nominal_set=nominal,
        members=_frozen(members),
        eigenvectors=_frozen(ev),
        central=_frozen(central),
        **parts,
    )


# --------------------------------------------------------------------------- LHAPDF sets
def archive_theory_parameters(
    archive: Archive, paths: PathsLike = None
) -> tuple[TheoryParameters, str]:
    """The theory parameters the archive's grids were computed with, and how they were
    established: the archive's typed record (format 1.3), else the producer's configuration in
    the provenance notes (older archives), else the defaults; checked by recomputing member 0 of
    the nominal PDF set when that set is on the search path."""
    from .params import parameters_from_notes, parameters_of

    th = archive.metadata.theory
    assert th is not None
    cands: list[tuple[TheoryParameters, str]] = []
    default = "default"
    try:
        recorded = parameters_of(th)
    except ValueError as exc:  # a record this version of the code does not understand
        recorded = None
        default = f"default (the archive's record is unusable: {exc})"
    if recorded is not None:
        cands.append((recorded, "the archive's"))
    else:
        noted = parameters_from_notes(archive.metadata.provenance.notes or "")
        if noted is not None:
            cands.append((noted, "the archive's (from its provenance notes)"))
    cands.append((TheoryParameters(), default))
    nominal = th.pdf_set(th.nominal_pdf)
    try:
        from .compute import compute_set_values

        target = archive.theory_nominal()
        dev = float("nan")
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


def _grid_cache(cache: CacheLike) -> GridCache | None:
    if cache is False:
        return None
    if isinstance(cache, GridCache):
        return cache
    try:
        folder = default_cache_dir() / "theory-grids" if cache is True else Path(cache)
        return GridCache(folder)
    except OSError:  # no cache folder: compute without
        return None


def _check_binning(archive: Archive, th: Theory) -> None:
    std = generator_axes()
    if len(th.generator_axes) != len(std) or not all(
        a.name == b.name and a.same_binning(b) for a, b in zip(th.generator_axes, std, strict=False)
    ):
        got = " x ".join(f"{a.name}[{a.size}]" for a in th.generator_axes)
        raise TheoryError(
            f"{archive.path.name} has generator axes {got}, not the binning wmass_archive.theory "
            "computes (qW[2] x absYW[8] x ptW[10] x helicity[9]): a PDF set it does not carry "
            "cannot be computed for it"
        )


def _from_lhapdf(
    archive: Archive,
    lhapdf_name: str,
    *,
    paths: PathsLike,
    cache: CacheLike,
    progress: bool,
    variance: float = REPLICA_VARIANCE,
) -> ResolvedTheory:
    """The theory grid of every member of an LHAPDF set for this archive (computed, or read
    from the cache when the set, binning and parameters are the same)."""
    from .compute import compute_set_grid, open_pdf_set

    th = archive.metadata.theory
    assert th is not None
    _check_binning(archive, th)
    try:
        pset = open_pdf_set(lhapdf_name, paths)
    except LHAPDFError as exc:
        raise TheoryError(str(exc)) from None
    params, how = archive_theory_parameters(archive, paths)
    axes_json = json.dumps([a.model_dump(mode="json") for a in th.generator_axes], sort_keys=True)

    def compute() -> TheoryGrid:
        try:
            return compute_set_grid(
                pset,
                params,
                progress=progress,
                description=f"computed by wmass-archive for {archive.path.name}",
            )
        except LHAPDFError as exc:
            raise TheoryError(f"cannot compute the theory grid of {pset.name}: {exc}") from None

    store = _grid_cache(cache)
    key = None
    if store is not None:
        try:
            key = store.key(Path(pset.path), axes_json, params)
        except OSError:  # a set file unreadable for hashing
            store = None
    if store is None or key is None:
        grid, grid_file, cached = compute(), None, False
    else:
        got = store.get(pset.name, key, compute, n_members=len(pset))
        grid, grid_file, cached = got.grid, got.path, got.cached
    origin = LHAPDFOrigin(str(pset.path), str(grid_file) if grid_file else None, cached, how)
    return _external(archive, grid, origin, variance)


def _external(
    archive: Archive, grid: TheoryGrid, origin: LHAPDFOrigin, variance: float
) -> ResolvedTheory:
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
        raise TheoryError(
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
        description=f"from LHAPDF ({origin.set_path}), computed by wmass-archive",
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
        raise TheoryError(f"cannot use PDF set {grid.meta.pdf_set}: {exc}") from None
    if origin.parameters_note.startswith("WARNING"):
        notes.append(origin.parameters_note)
    members = np.asarray(members, dtype=np.float64)
    return ResolvedTheory(
        pdf=pdf,
        source="lhapdf",
        nominal_set=False,
        members=_frozen(members),
        eigenvectors=_frozen(ev),
        central=_frozen(members[0]),
        lhapdf=origin,
        notes=tuple(notes),
        **_archive_parts(archive),
    )
