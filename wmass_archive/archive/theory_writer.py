"""The writer's API for the theory: :class:`TheoryWriter`, a mixin of
:class:`~wmass_archive.archive.writer.ArchiveWriter`, which takes the generator binning, the
nominal theory grid, the PDF sets (member grids; eigenvectors of replica sets) and the theory
variations; and :func:`replica_eigenvectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ContentError
from .axes import Axis
from .models import PDFSet, TheoryParametersRecord, TheoryVariation
from .write_checks import _check_finite, _model


class TheoryWriter:
    """Theory methods of the writer. The host class holds the collections (``_theory``,
    ``_pdf``, ``_theory_vars``) and the lookup ``_values`` (flattened values of an array or
    hist on given axes)."""

    _theory: dict[str, Any] | None
    _pdf: dict[str, tuple[PDFSet, np.ndarray, np.ndarray | None]]
    _theory_vars: dict[str, tuple[TheoryVariation, np.ndarray, np.ndarray]]

    def set_theory(
        self,
        generator_axes: Sequence[Axis | Any],
        nominal: Any,
        *,
        nominal_pdf: str,
        description: str = "",
        parameters: TheoryParametersRecord | dict[str, Any] | None = None,
    ) -> None:
        """Generator binning and nominal theory grid sigma[g] (pb per generator bin, flattened
        in C order over ``generator_axes``). ``parameters`` (format 1.3): what computed the
        grids, a :class:`~wmass_archive.archive.models.TheoryParametersRecord` or its fields
        (``model``: the code and its version, ``values``: its numeric parameters by name)."""
        ax = [a if isinstance(a, Axis) else Axis.from_hist(a) for a in generator_axes]
        grid = self._grid(nominal, ax, "nominal theory grid")
        if parameters is not None and not isinstance(parameters, TheoryParametersRecord):
            if not isinstance(parameters, dict):
                raise ContentError(
                    "theory parameters: give a TheoryParametersRecord or a dict of its fields, "
                    f"not {type(parameters).__name__}"
                )
            parameters = _model(TheoryParametersRecord, **parameters)
        self._theory = dict(
            axes=ax,
            nominal=grid,
            nominal_pdf=nominal_pdf,
            description=description,
            parameters=parameters,
        )

    def add_pdf_set(
        self,
        pdf: PDFSet | None = None,
        members: Any = None,
        *,
        eigenvectors: Any = None,
        variance_threshold: float = 0.99,
        **kwargs: Any,
    ) -> None:
        """A PDF set with the theory grid of each member, shape (n_members, n_gen), member 0
        the central value. For replica sets the eigenvectors of the replica covariance are
        computed (keeping ``variance_threshold`` of its trace) unless given."""
        th = self._need_theory("add_pdf_set")
        m = np.asarray(members, dtype=np.float64)
        if m.ndim == 1:
            m = m[None]
        n_gen = len(th["nominal"])
        if m.ndim != 2 or m.shape[1] != n_gen:
            raise ContentError(f"PDF members must have shape (n_members, {n_gen}), got {m.shape}")
        _check_finite(m, "PDF members")
        info = dict(kwargs)
        if pdf is not None:
            info = {**pdf.model_dump(), **info}
        info["n_members"] = m.shape[0]
        ev = None
        if info.get("error_type") == "replicas" and m.shape[0] > 1:
            if eigenvectors is None:
                ev, kept = replica_eigenvectors(m[1:], variance_threshold)
            else:
                ev = np.asarray(eigenvectors, dtype=np.float64)
                kept = info.get("variance_kept")
                if kept is None:
                    raise ContentError("give variance_kept= with precomputed eigenvectors")
            if ev.shape[0] == 0:
                raise ContentError(
                    f"replica set '{info.get('name')}': the replicas have no "
                    f"spread, so there is no uncertainty to store; declare it "
                    f"with its central member only"
                )
            if ev.ndim != 2 or ev.shape[1] != n_gen:
                raise ContentError(f"PDF eigenvectors must have shape (k, {n_gen}), got {ev.shape}")
            _check_finite(ev, "PDF eigenvectors")
            info["n_eigenvectors"] = ev.shape[0]
            info["variance_kept"] = float(kept)
        s = _model(PDFSet, **info)
        if s.name in self._pdf:
            raise ContentError(f"PDF set '{s.name}' added twice")
        self._pdf[s.name] = (s, m, ev)

    def add_theory_variation(
        self,
        name: str,
        up: Any,
        down: Any,
        *,
        interpolation: str = "additive",
        description: str = "",
    ) -> None:
        """A variation of the theory grid (up and down grids with the nominal theory), driven by
        the nuisance ``name`` (declare it with :meth:`add_nuisance`)."""
        th = self._need_theory("add_theory_variation")
        if name in self._theory_vars:
            raise ContentError(f"theory variation '{name}' added twice")
        v = _model(TheoryVariation, name=name, interpolation=interpolation, description=description)
        self._theory_vars[name] = (
            v,
            self._grid(up, th["axes"], f"theory variation '{name}' up"),
            self._grid(down, th["axes"], f"theory variation '{name}' down"),
        )

    def _need_theory(self, what: str) -> dict:
        if self._theory is None:
            raise ContentError(f"{what}: call set_theory() first")
        return self._theory

    def _grid(self, grid: Any, axes: list[Axis], what: str) -> np.ndarray:
        g, _ = self._values(grid, axes, what)
        _check_finite(g, what)
        return g


def replica_eigenvectors(
    replicas: np.ndarray, variance_threshold: float = 0.99
) -> tuple[np.ndarray, float]:
    """Symmetric one-sigma eigenvector shifts of a replica set's theory grids.

    ``replicas`` (n_rep, n_gen). The replica covariance C = cov(replicas) is decomposed as
    C = sum_k lambda_k v_k v_k^T; the shifts sqrt(lambda_k) v_k with the largest eigenvalues
    are kept until their sum holds ``variance_threshold`` of trace(C). Returns the shifts,
    shape (k, n_gen), and the fraction of the variance they hold.
    """
    x = replicas - replicas.mean(axis=0)
    # SVD of the centred replicas: the right singular vectors are the eigenvectors of C
    _, s, vt = np.linalg.svd(x / np.sqrt(max(len(replicas) - 1, 1)), full_matrices=False)
    lam = s**2
    total = lam.sum()
    if total <= 0:
        return np.zeros((0, replicas.shape[1])), 1.0
    frac = np.cumsum(lam) / total
    k = int(np.searchsorted(frac, variance_threshold) + 1)
    k = min(k, len(lam))
    shifts = s[:k, None] * vt[:k]
    # fix the sign so that the largest component of each shift is positive (deterministic)
    sign = np.sign(shifts[np.arange(k), np.argmax(np.abs(shifts), axis=1)])
    return shifts * sign[:, None], min(float(frac[k - 1]), 1.0)
