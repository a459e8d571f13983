"""Export an archive to rabbit's input tensor (CMS's TensorFlow fitter, PyPI ``rabbit-fit``,
``WMass/rabbit``), so that rabbit and our fitter can fit the same model.

Rabbit's model (``rabbit/fitter.py``): for bin b, process p and nuisances theta_k,

    nu[b, p] = mu_p * norm[b, p] * exp( sum_k theta_k * (logkavg[b,p,k] + alpha(theta_k) *
                                                          logkhalfdiff[b,p,k]) )

with ``mu_p`` the signal strength of a signal process (rabbit's POIs; 1 for backgrounds) and the
smooth step alpha of docs/format.md section 7.3 (rabbit's ``logkavg``/``logkhalfdiff`` are this
format's ``avg``/``halfdiff``). Gaussian constraints 1/2 theta^2 except for ``hsystsnoconstraint``;
Barlow-Beeston-lite from ``hsumw``/``hsumw2``. Rabbit has no theory folding, so the export
*unfolds* the model (:mod:`wmass_archive.interop.unfold`: plain processes with log-normal
variations; the pyhf export starts from the same).

The file holds rabbit's datasets (``hprocs``, ``hsignals``, ``hsysts``, ``hsystsnoconstraint``,
``hsystgroups``, ``hsystgroupidxs``, ``hnoiidxs``, ``hpseudodatanames``, ``hconstraintweights``,
``hdata_obs``, ``hpseudodata``, ``hsumw``, ``hsumw2`` and ``hnorm``/``hlogk`` dense or
``hnorm_sparse``/``hlogk_sparse``, flat with an ``original_shape`` attribute), rabbit's ``meta``
group (a pickle, written with the standard library, never read by this package: rabbit takes the
channels and ``symmetric_tensor`` from it) and the root attribute ``wmass_archive_export``
(JSON: channels, how each POI maps to rabbit, the approximations), which rabbit ignores.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...archive.reader import Archive, open_archive
from ...theory.resolve import ResolvedTheory, as_theory
from .._bounds import check_bounds, estimate_rabbit
from .._common import EXPORT_ATTR, ExportError, RabbitParameter
from ..unfold import unfold
from ._h5 import write_atomic

__all__ = ["EXPORT_ATTR", "ExportError", "ExportReport", "RabbitParameter", "export_rabbit"]


@dataclass
class ExportReport:
    """What :func:`export_rabbit` wrote: sizes, names and the approximations made."""

    path: Path
    archive: str
    pdf_set: str | None
    sparse: bool
    symmetric: bool
    n_bins: int
    procs: list[str]
    signals: list[str]
    systs: list[str]
    n_noconstraint: int
    noi: list[str]
    groups: list[str]
    nnz_norm: int
    nnz_logk: int
    parameters: list[RabbitParameter]
    approximations: list[str]
    size_bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """Human-readable lines."""
        lines = [
            f"wrote {self.path} ({self.size_bytes / 1e6:.2f} MB in {self.seconds:.1f} s): rabbit "
            f"input tensor of {self.archive}"
            + (f", PDF set {self.pdf_set}" if self.pdf_set else ""),
            f"  {self.n_bins} bins, {len(self.procs)} processes ({len(self.signals)} signal), "
            f"{len(self.systs)} nuisances ({self.n_noconstraint} unconstrained, "
            f"{len(self.noi)} of interest), {len(self.groups)} groups",
            f"  {'sparse' if self.sparse else 'dense'} "
            f"{'symmetric' if self.symmetric else 'asymmetric'} tensor: {self.nnz_norm} "
            f"non-zero yields, {self.nnz_logk} logk entries",
        ]
        for p in self.parameters:
            lines.append(f"  POI {p.name} ({p.kind}) -> rabbit {p.role} '{p.rabbit_name}'")
        lines += [f"  approximation: {a}" for a in self.approximations]
        return "\n".join(lines)


# --------------------------------------------------------------------------- entry point
def export_rabbit(
    archive: Archive | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    pdf: str | ResolvedTheory | None = None,
    sparse: bool = True,
    max_output_gb: float | None = None,
    max_memory_gb: float | None = None,
) -> ExportReport:
    """Write the rabbit input tensor of an archive (an open :class:`Archive` or a path) to
    ``out_path`` (atomically: a temporary file renamed into place).

    ``pdf``: PDF set in use (name, LHAPDF name or alias, or a theory resolved with
    :func:`~wmass_archive.theory.resolve.resolve_theory`; default the archive's nominal set);
    ``sparse``: ``hnorm_sparse``/``hlogk_sparse`` (default) or dense ``hnorm``/``hlogk``
    (``(n_bins, n_proc, [2,] n_syst)`` float64: about 1 GB in memory for the default archive,
    12 MB on disk); ``max_output_gb``, ``max_memory_gb``: bounds (GB) on the bytes written and
    the peak memory, checked against an estimate before any work (None: 2 GB and half the
    machine's memory, ``math.inf``: no bound; :mod:`wmass_archive.interop._bounds`)."""
    t0 = time.perf_counter()
    out = Path(out_path)
    if out.is_dir():
        raise ExportError(f"cannot write {out}: it is a folder")
    if not out.parent.is_dir():
        raise ExportError(f"cannot write {out}: folder {out.parent} does not exist")
    bounds = (max_output_gb, max_memory_gb)
    if isinstance(archive, Archive):
        pdf = _resolved(archive, pdf)
        check_bounds(estimate_rabbit(archive, pdf, sparse), *bounds)
        tensor, name = unfold(archive, pdf), archive.path.name
    else:
        src = Path(archive)
        if not src.is_file():
            raise ExportError(f"no archive at {src}")
        if src.resolve() == out.resolve():
            raise ExportError(f"the output {out} would overwrite the archive")
        with open_archive(src) as a:
            pdf = _resolved(a, pdf)
            check_bounds(estimate_rabbit(a, pdf, sparse), *bounds)
            tensor, name = unfold(a, pdf), a.path.name
    nnz_norm, nnz_logk = write_atomic(tensor, out, sparse, name)
    return ExportReport(
        path=out,
        archive=name,
        pdf_set=tensor.pdf_set,
        sparse=sparse,
        symmetric=tensor.symmetric,
        n_bins=int(tensor.data.size),
        procs=tensor.procs,
        signals=tensor.signals,
        systs=tensor.systs,
        n_noconstraint=tensor.n_noconstraint,
        noi=[tensor.systs[i] for i in tensor.noi],
        groups=list(tensor.groups),
        nnz_norm=nnz_norm,
        nnz_logk=nnz_logk,
        parameters=tensor.parameters,
        approximations=tensor.approximations,
        size_bytes=out.stat().st_size,
        seconds=time.perf_counter() - t0,
    )


def _resolved(a: Archive, pdf: str | ResolvedTheory | None) -> str | ResolvedTheory | None:
    """The theory resolved once for the estimate and the unfolding (archives with a folded
    process; without one, ``pdf`` is left for the unfolding to refuse)."""
    if any(p.folded for p in a.metadata.processes):
        return as_theory(a, pdf)
    return pdf
