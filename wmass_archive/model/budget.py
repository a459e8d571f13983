"""The memory a model will need, estimated from an archive's metadata before anything is built.

Archives are untrusted: a 1 MB file can declare 40 000 nuisances (a 14 GB covariance) or a
PDF set of 20 001 members. :func:`estimate_model_bytes` adds up, from the declared sizes only
(the parameter counts, the PDF set in use, the manifest's dataset shapes), what building the
model and fitting it allocate (bytes, float64 = 8 bytes):

* ``runtime``: Python, numpy, JAX and the XLA compiler (a constant, measured);
* ``parameter tables``: the model's parameter descriptions and per-parameter results;
* ``inputs read``: what the build reads and converts (yields, logk entries, modifier tables,
  a response's sparse storage and its dense host copy), freed once the model is built;
* ``logk entries``: their copies in the model (COO tables, device arrays, the layout's maps);
* ``response tensors``: each folded response densified (mass points x bins x n_gen), on the
  device;
* ``theory grids``: the PDF members / eigenvectors and theory variations read, and the
  model's rows of the grid (n_theory x n_gen);
* ``dense blocks``: the (n_slots x n_dense) derivative blocks of the fit and its working
  copies (a generic model: every parameter dense, and the (n_slots x n_params) Jacobians);
* ``folding in the fit``: per folded block, (mass points x bins x n_theory) derivatives and the
  compiled kernels' transposed copies of its response;
* ``sparse blocks``: the sparse parameters' local Jacobians, their Hessian blocks and their
  Cholesky factors and inverses, and the (n_sparse x n_dense) coupling H_SD and X;
* ``Hessian and covariance``: the n_params^2 covariance (and the dense Hessian of a generic
  model), with the copies the fitter and the impacts hold.

The total is the memory held throughout (runtime, parameter tables, logk entries, response
tensors, theory grids, Hessian and covariance) plus the larger of the build's transients
(``inputs read``) and the fit's working arrays (dense blocks, folding in the fit, sparse blocks):
the build's inputs are freed before the fit starts.

Without the model's sparsity ``layout`` (known only after the logk entries are classified)
the dense parameters are those forced dense (POIs, theory nuisances, the rows of dense logk
storage) and the sparse blocks are counted at their entries; :func:`build_model` checks
again with the layout, before any device array exists. The constants were measured with
``benchmarks/bench_memory_estimate.py`` (peak RSS of ``wmass-refit``; the estimate is within
about x2 above it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..archive import layout as L
from ..archive.models import ArchiveMetadata, PDFSet
from ..errors import ResourceLimitError

if TYPE_CHECKING:  # pragma: no cover
    from .structure import SparseLayout

F8 = 8
#: Python, numpy, JAX, the package and the XLA compiler's working memory (bytes, measured)
RUNTIME_BYTES = 500 * 10**6
#: per parameter: its ParameterInfo, name lists, fit results, impact entries, compiled
#: per-block kernels (bytes, measured: about 30 kB with 3 000 extra nuisances)
PER_PARAMETER_BYTES = 32 * 1024
#: per logk entry held by the model: COO tables, selections, device arrays, layout maps
PER_ENTRY_BYTES = 160
#: copies of an input array while it is read and converted
INPUT_COPIES = 2
#: working copies of the (n_slots x n_dense) blocks in the fit's compiled kernels
DENSE_COPIES = 8
#: the same for a generic model: JAX's forward-mode Jacobians carry every parameter's tangent
#: through the yields (measured: about 280 kB a parameter on the demo's 1 200 slots)
GENERIC_DENSE_COPIES = 32
#: copies of a fold's (points x bins x n_theory) Jacobian in the fit
FOLD_COPIES = 5
#: copies of the sparse local Jacobians (flat storage, per block products)
FLAT_COPIES = 4
#: copies of the sparse Hessian blocks (blocks, Cholesky factors, inverses, scaled)
BLOCK_COPIES = 5
#: copies of (n_sparse x n_dense) arrays (H_SD, its block layout, X, X C_DD)
SD_COPIES = 5
#: copies of the n_params^2 covariance (the matrix, the impacts' and results' temporaries)
COVARIANCE_COPIES = 2
#: copies of a dense response in the fit's compiled kernels (transposes for the products)
RESPONSE_FIT_COPIES = 2
#: the contributors freed before the fit starts, and the fit's working arrays
BUILD_PARTS = ("inputs read",)
FIT_PARTS = ("dense blocks", "folding in the fit", "sparse blocks")
#: the bound when none is given: 2 GiB (see ReadLimits.max_model_bytes)
DEFAULT_MAX_MODEL_BYTES = 2 * 2**30

GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    """An estimate of a model's peak memory: ``parts`` {contributor: bytes}, the parameter
    counts it assumed and whether the sparsity layout was known (``exact_structure``)."""

    parts: dict[str, int]
    n_params: int
    n_pois: int
    n_nuisances: int
    n_pdf: int
    n_bins: int
    n_dense: int
    exact_structure: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The estimated peak, bytes: the parts held throughout plus the larger of the
        build's transients and the fit's working arrays."""
        held = sum(v for k, v in self.parts.items() if k not in BUILD_PARTS + FIT_PARTS)
        build = sum(self.parts.get(k, 0) for k in BUILD_PARTS)
        fit = sum(self.parts.get(k, 0) for k in FIT_PARTS)
        return int(held + max(build, fit))

    @property
    def largest(self) -> tuple[str, int]:
        """(name, bytes) of the largest contributor."""
        return max(self.parts.items(), key=lambda kv: kv[1])

    def describe(self) -> str:
        """One line: the parameter counts, the total and the largest contributor."""
        name, nbytes = self.largest
        counts = f"{self.n_pois} + {self.n_nuisances}"
        if self.n_pdf:
            counts += f" + {self.n_pdf} PDF"
        return (
            f"{counts} parameters, {self.n_bins} bins: about {self.total / GB:.2f} GB "
            f"({name} {nbytes / GB:.2f} GB)"
        )

    def table(self) -> str:
        """The breakdown, one contributor a line, largest first (GB)."""
        rows = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return "\n".join(f"{k:24s} {v / GB:8.3f} GB" for k, v in rows)


def _declared(meta: ArchiveMetadata, path: str) -> tuple[int, ...] | None:
    rec = meta.datasets.get(path)
    return tuple(int(x) for x in rec.shape) if rec is not None else None


def _nbytes(meta: ArchiveMetadata, path: str) -> int:
    """Declared size of a dataset of the manifest, bytes (0 when absent)."""
    rec = meta.datasets.get(path)
    if rec is None:
        return 0
    item = int(rec.dtype[-1])
    return math.prod(int(x) for x in rec.shape) * item


def _pdf_in_use(meta: ArchiveMetadata, pdf: PDFSet | str | None) -> PDFSet | None:
    from ..archive.reader import find_pdf_set

    th = meta.theory
    if isinstance(pdf, PDFSet):
        return pdf
    if th is None:
        return None
    return find_pdf_set(th.pdf_sets, pdf if pdf is not None else th.nominal_pdf)


def estimate_model_bytes(
    meta: ArchiveMetadata,
    *,
    pdf: PDFSet | str | None = None,
    n_pois: int | None = None,
    generic: bool | None = None,
    bb: str | None = None,
    covariance: bool = True,
    layout: SparseLayout | None = None,
) -> MemoryEstimate:
    """Estimate the peak memory (bytes) of building the model of an archive and fitting it.

    ``meta``: the archive's metadata (only declared sizes are used; nothing is read);
    ``pdf``: the PDF set in use (a :class:`PDFSet`, e.g. an external LHAPDF set, or a name;
    default the nominal set); ``n_pois``: the model's POIs (a split POI counts its parts;
    default the archive's); ``generic``: the generic model (every parameter dense; default:
    when the archive needs it or ``bb == "combine"``); ``covariance``: the full n_params^2
    covariance is formed (a refit's default); ``layout``: the model's sparsity layout, for the
    exact dense/sparse split (module ``structure``)."""
    n_bins = meta.n_bins
    n_proc = len(meta.processes)
    n_slots = n_proc * n_bins
    th = meta.theory
    folded = [(c, p) for c in meta.channels for p in c.processes if meta.process(p).folded]
    s = _pdf_in_use(meta, pdf) if folded else None
    n_pdf = s.n_nuisances if s is not None else 0
    n_var = len(th.variations) if (th is not None and folded) else 0
    n_theory = n_pdf + n_var
    n_gen = th.n_gen if th is not None else 0
    n_poi = len(meta.pois) if n_pois is None else int(n_pois)
    n_nuis = len(meta.nuisances)
    n_params = n_poi + n_nuis + n_pdf
    if generic is None:
        generic = (
            bb == "combine"
            or meta.mc_stat == "combine"
            and bb is None
            or any(c.modifiers for c in meta.channels)
            or any(n.constraint == "poisson" for n in meta.nuisances)
        )

    parts: dict[str, int] = {"runtime": RUNTIME_BYTES}
    parts["parameter tables"] = n_params * PER_PARAMETER_BYTES

    # ---- inputs: yields, logk entries and modifier tables (read, then converted)
    yields = 0
    entries = dense_rows = sparse_entries = 0
    modifiers = 0
    for c in meta.channels:
        nb = c.n_bins
        yields += (2 * len(c.processes) + 1) * nb * F8  # nominal and sumw2, data
        rows = (_declared(meta, L.logk(c.name, "dense", "avg")) or (0,))[0]
        nnz = (_declared(meta, L.logk(c.name, "sparse", "parameter")) or (0,))[0]
        dense_rows += rows
        sparse_entries += nnz
        entries += rows * nb + nnz
        for kind in c.modifiers:
            for f in sum(L.MODIFIER_FIELDS[kind], ()):
                modifiers += _nbytes(meta, L.modifier(c.name, kind, f))
    yields += 2 * n_slots * F8  # the stacked (n_proc, n_bins) nominal and sumw2
    inputs = INPUT_COPIES * (yields + 28 * entries + modifiers)
    parts["logk entries"] = PER_ENTRY_BYTES * entries + 4 * modifiers

    # ---- response tensors, densified (host and device) and their sparse storage read
    resp = 0
    fold_jac = 0
    for c, p in folded:
        points = len(meta.mass_points_of(p))
        dense = points * c.n_bins * n_gen * F8
        coo = (_declared(meta, f"{L.response(c.name, p)}/value") or (0,))[0]
        resp += dense
        inputs += dense + coo * (20 + 3 * F8 + F8)  # host copy; stored, int64 coordinates
        fold_jac += RESPONSE_FIT_COPIES * dense
        fold_jac += FOLD_COPIES * points * c.n_bins * max(n_theory, 1) * F8
    parts["inputs read"] = inputs
    parts["response tensors"] = resp
    parts["folding in the fit"] = fold_jac

    # ---- theory grids: the set in use and the variations read, the model's rows
    grids = 0
    if folded and th is not None:
        read_rows = 1 + 2 * n_var
        if s is not None:
            read_rows += s.n_members + s.n_eigenvectors + 2 * n_pdf
        grids = n_gen * F8 * (INPUT_COPIES * read_rows + 2 * 4 * n_theory + 2 * n_theory)
    parts["theory grids"] = grids

    # ---- the fit: dense blocks, sparse blocks, Hessian and covariance
    if generic:
        n_dense = n_params
    elif layout is not None:
        n_dense = layout.n_dense
    else:
        n_dense = min(n_params, n_poi + n_theory + dense_rows)
    n_sparse = n_params - n_dense
    copies = GENERIC_DENSE_COPIES if generic else DENSE_COPIES
    parts["dense blocks"] = copies * (n_slots + n_bins) * n_dense * F8
    if layout is not None and not generic:
        flat = layout.flat_size
        blocks = sum(
            b.n_blocks * b.size * b.size + (b.n_tiles * b.t_size**2 if b.tiled else 0)
            for b in layout.buckets
        )
        padded = sum(b.n_blocks * b.size for b in layout.buckets)
    else:
        flat = n_proc * sparse_entries
        blocks = padded = n_sparse
    parts["sparse blocks"] = F8 * (
        FLAT_COPIES * flat + BLOCK_COPIES * blocks + SD_COPIES * max(padded, n_sparse) * n_dense
    )
    hess = n_dense * n_dense * F8 * 4  # H_DD, its Schur complement and factor
    if covariance:
        hess += COVARIANCE_COPIES * n_params * n_params * F8
    parts["Hessian and covariance"] = hess
    return MemoryEstimate(
        parts=parts,
        n_params=n_params,
        n_pois=n_poi,
        n_nuisances=n_nuis,
        n_pdf=n_pdf,
        n_bins=n_bins,
        n_dense=n_dense,
        exact_structure=layout is not None or generic,
    )


def check_model_bytes(
    est: MemoryEstimate, max_bytes: int | None, *, archive: str = "the archive"
) -> None:
    """Raise :class:`~wmass_archive.errors.ResourceLimitError` (one line: the estimate, its
    largest contributor, the bound and how to raise it) when ``est`` is over ``max_bytes``
    (None: no bound)."""
    if max_bytes is None or est.total <= max_bytes:
        return
    raise ResourceLimitError(
        f"{archive}: the model would need {est.describe()}, over the memory bound of "
        f"{max_bytes / GB:.2f} GB; raise it with wmass-refit --max-memory GB (API: "
        f"max_memory=, or ReadLimits(max_model_bytes=...)) if the archive is trusted"
    )


_BOUND: ContextVar[int | None] = ContextVar("wmass_max_model_bytes", default=None)


@contextmanager
def memory_bound(max_bytes: int | None) -> Iterator[None]:
    """Within the block, :func:`~wmass_archive.model.build_model` uses ``max_bytes`` (bytes)
    as its bound when it is given none (None: leave the bound as it is), whatever the
    archive's ``ReadLimits``; e.g. ``wmass-refit --max-memory`` for the models its steps
    build in this process."""
    if max_bytes is None:
        yield
        return
    token = _BOUND.set(int(max_bytes))
    try:
        yield
    finally:
        _BOUND.reset(token)


def bound_in_force() -> int | None:
    """The bound (bytes) set by an enclosing :func:`memory_bound`, or None."""
    return _BOUND.get()


def effective_bound(max_bytes: int | None, limits: object | None = None) -> int:
    """The bound in force (bytes): ``max_bytes``, else :func:`memory_bound`'s, else the
    ``max_model_bytes`` of ``limits`` (a ReadLimits), else :data:`DEFAULT_MAX_MODEL_BYTES`."""
    if max_bytes is not None:
        return int(max_bytes)
    ctx = _BOUND.get()
    if ctx is not None:
        return ctx
    return int(getattr(limits, "max_model_bytes", DEFAULT_MAX_MODEL_BYTES))
