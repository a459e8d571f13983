"""The archive's datasets, assembled from what the writer collected: :class:`DatasetAssembly`,
a mixin of :class:`~wmass_archive.archive.writer.ArchiveWriter`.

Every channel's data, yields, sumw2, responses (dense or sparse), log-normal variations (dense
rows or sparse entries) and extended modifiers, and the theory grids, at the paths of
:mod:`~wmass_archive.archive.layout` (docs/format.md section 6), checked against the metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ContentError
from . import layout
from .models import ArchiveMetadata, Channel
from .modifiers import ModifierCollector, modifier_problem
from .sparse import SparseTensor

#: a (parameter, process, channel) variation touching more than this fraction of the
#: channel's bins is stored as a dense row, otherwise as sparse entries
DENSE_ROW_FRACTION = 0.5
#: a response tensor with more than this fraction of non-zero entries is stored dense
DENSE_RESPONSE_FRACTION = 0.3


class DatasetAssembly:
    """The datasets of the writer's content. The host class holds the collections
    (``_channels``, ``_yields``, ``_responses``, ``_variations``, ``_theory``, ``_pdf``,
    ``_theory_vars``, ``_mods``)."""

    _channels: dict[str, dict[str, Any]]
    _yields: dict
    _responses: dict
    _variations: dict
    _theory: dict[str, Any] | None
    _pdf: dict
    _theory_vars: dict
    _mods: ModifierCollector

    def _arrays(self, meta: ArchiveMetadata) -> dict[str, np.ndarray]:
        """Every dataset to write, checked against the metadata."""
        out: dict[str, np.ndarray] = {}
        pidx = {n: i for i, n in enumerate(meta.parameter_names)}
        proc_idx = {p.name: i for i, p in enumerate(meta.processes)}
        theory_nominal = self._theory["nominal"] if self._theory else None
        for ch in meta.channels:
            c = self._channels[ch.name]
            out[layout.data(ch.name)] = c["data"]
            for p in ch.processes:
                nom, w2 = self._yields[(p, ch.name)]
                out[layout.nominal(ch.name, p)] = nom
                out[layout.sumw2(ch.name, p)] = w2
                if meta.process(p).folded:
                    out.update(self._response_arrays(meta, ch, p))
            out.update(self._logk_arrays(meta, ch, pidx, proc_idx))
            out.update(self._modifier_arrays(meta, ch))
        missing = [
            k
            for k in self._responses
            if k[1] not in self._channels or k[0] not in self._channels[k[1]]["processes"]
        ]
        if missing:
            raise ContentError(
                f"response of '{missing[0][0]}' in '{missing[0][1]}' given but the "
                f"process has no yield there"
            )
        if meta.theory is not None:
            out[layout.THEORY_NOMINAL] = theory_nominal
            for name, (_, m, ev) in self._pdf.items():
                out[layout.pdf_members(name)] = m
                if ev is not None:
                    out[layout.pdf_eigenvectors(name)] = ev
            n_gen = meta.theory.n_gen
            tv = list(self._theory_vars.values())
            out[layout.THEORY_VAR_UP] = np.array([u for _, u, _ in tv]).reshape(len(tv), n_gen)
            out[layout.THEORY_VAR_DOWN] = np.array([d for _, _, d in tv]).reshape(len(tv), n_gen)
        elif self._pdf or self._theory_vars:
            raise ContentError("PDF sets or theory variations given without set_theory()")
        return out

    def _response_arrays(self, meta: ArchiveMetadata, ch: Channel, p: str) -> dict[str, np.ndarray]:
        what = f"response of '{p}' in '{ch.name}'"
        if (p, ch.name) not in self._responses:
            raise ContentError(f"folded process '{p}' has a yield in '{ch.name}' but no response")
        r = self._responses[(p, ch.name)]
        pts = meta.mass_points_of(p)
        want = (len(pts), ch.n_bins, meta.theory.n_gen)  # type: ignore[union-attr]
        if tuple(r.shape) != want:
            raise ContentError(
                f"{what} has shape {tuple(r.shape)}, expected {want} "
                f"(mass points, reco bins, generator bins)"
            )
        # its folding at every mass point is checked with the other plausibility rules
        base = layout.response(ch.name, p)
        if isinstance(r, SparseTensor):
            if r.density > DENSE_RESPONSE_FRACTION:
                return {base: r.todense()}
            sp = r
        else:
            if np.count_nonzero(r) / max(r.size, 1) > DENSE_RESPONSE_FRACTION:
                return {base: r}
            sp = SparseTensor.fromdense(r)
        return {
            f"{base}/point": sp.coords[0].astype(np.int32),
            f"{base}/bin": sp.coords[1].astype(np.int32),
            f"{base}/gen": sp.coords[2].astype(np.int32),
            f"{base}/value": sp.values,
        }

    def _logk_arrays(
        self, meta: ArchiveMetadata, ch: Channel, pidx: dict[str, int], proc_idx: dict[str, int]
    ) -> dict[str, np.ndarray]:
        nb = ch.n_bins
        dense_rows: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        sparse: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
        for (par, p, c), v in self._variations.items():
            if c != ch.name:
                continue
            problem = meta.variation_problem(par, p, c)
            if problem is not None:
                raise ContentError(f"variation '{par}' of '{p}' in '{c}': {problem}")
            if v.bins.size > DENSE_ROW_FRACTION * nb:
                a = np.zeros(nb)
                h = np.zeros(nb)
                a[v.bins], h[v.bins] = v.avg, v.halfdiff
                dense_rows.append((pidx[par], proc_idx[p], a, h))
            elif v.bins.size:
                sparse.append((pidx[par], proc_idx[p], v.bins, v.avg, v.halfdiff))
        dense_rows.sort(key=lambda r: (r[0], r[1]))
        sparse.sort(key=lambda r: (r[0], r[1]))

        def path(storage: str, name: str) -> str:
            return layout.logk(ch.name, storage, name)

        def rows(i: int) -> np.ndarray:
            return np.array([r[i] for r in dense_rows]).reshape(-1, nb)

        def entries(i: int) -> np.ndarray:
            return np.concatenate([e[i] for e in sparse]) if sparse else np.zeros(0)

        n = [len(e[2]) for e in sparse]
        out = {
            path("dense", "parameter"): np.array([r[0] for r in dense_rows], np.int32),
            path("dense", "process"): np.array([r[1] for r in dense_rows], np.int32),
            path("dense", "avg"): rows(2),
            path("dense", "halfdiff"): rows(3),
            path("sparse", "parameter"): np.repeat([e[0] for e in sparse], n).astype(np.int32),
            path("sparse", "process"): np.repeat([e[1] for e in sparse], n).astype(np.int32),
            path("sparse", "bin"): entries(2).astype(np.int32),
            path("sparse", "avg"): entries(3).astype(np.float64),
            path("sparse", "halfdiff"): entries(4).astype(np.float64),
        }
        return out

    def _modifier_arrays(self, meta: ArchiveMetadata, ch: Channel) -> dict[str, np.ndarray]:
        """The channel's extended-modifier datasets (format 1.1), checked by the rules the
        validator applies."""
        if not ch.modifiers:
            return {}
        problem = self._mods.problem(meta, ch.name)
        mods = self._mods.tables(meta, ch.name) if problem is None else None
        problem = problem or modifier_problem(meta, ch.name, mods)  # type: ignore[arg-type]
        if problem is not None:
            raise ContentError(f"channel '{ch.name}': {problem}")
        return {
            layout.modifier(ch.name, kind, f): arr
            for kind in ch.modifiers
            for f, arr in mods.arrays(kind).items()
        }
