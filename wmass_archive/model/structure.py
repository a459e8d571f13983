"""The sparsity structure of the Hessian, worked out once at build time (numpy).

Parameters split into a *dense* set D (POIs, theory nuisances, nuisances whose logk entries touch
many bins) and a *sparse* set S (the rest: e.g. efficiency or calibration nuisances touching a
row of bins). Two sparse parameters are coupled in the Hessian only when they act on a common
bin, so S splits into connected components (through shared bins), and

    H = [[H_DD, H_DS], [H_SD, H_SS]],   H_SS block diagonal over the components.

Each component is a *block*: its parameters and the bins they touch. The logk entries of a
block are scattered into a small dense local Jacobian A_blk (processes x local bins x block
parameters), so that the block's Hessian is two batched matrix products,
J^T diag(phi'') J + A^T diag(phi' nu) A (J = sum over processes of nu A), with no dense
(n_slots x n_sparse) matrix and no list of entry pairs. Blocks are grouped into buckets of equal
padded size (parameters: powers of two; local bins: the bucket's maximum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: most (parameter, parameter) pairs sharing a bin whose neighbour counts the connector search
#: forms for one component (a product of 12 bytes a pair): a larger component (e.g. thousands
#: of parameters on one bin, as a hostile archive declares them) stays one block, whose size
#: the model's memory estimate then counts
MAX_DEGREE_PAIRS = 20_000_000


@dataclass
class Bucket:
    """``n_blocks`` blocks of padded size ``size`` (parameters) and ``n_local`` (bins):
    ``cols`` (n_blocks, size) sparse-column indices padded with ``n_sparse`` (a dummy);
    ``bins`` (n_blocks, n_local) bin indices padded with ``n_bins`` (a dummy bin);
    ``offset``: start of the bucket's local Jacobians in the flat storage, each block holding
    n_proc * n_local * size numbers (process, local bin, parameter; C order)."""

    offset: int
    n_blocks: int
    size: int
    n_local: int
    cols: np.ndarray
    bins: np.ndarray


@dataclass
class SparseLayout:
    """See the module docstring. Column indices are positions in ``dense_params`` or
    ``sparse_params``; ``entry_target`` gives, for each sparse-parameter logk entry (in the order
    given to :func:`build_layout`), its position in the flat storage of local Jacobians."""

    dense_params: np.ndarray
    sparse_params: np.ndarray
    is_dense: np.ndarray
    column: np.ndarray
    entry_target: np.ndarray
    buckets: list[Bucket]
    flat_size: int

    @property
    def n_dense(self) -> int:
        return int(self.dense_params.size)

    @property
    def n_sparse(self) -> int:
        return int(self.sparse_params.size)

    def summary(self) -> str:
        comp = [int(s) for b in self.buckets for s in np.sum(b.cols < self.n_sparse, axis=1)]
        return (
            f"{self.n_dense} dense + {self.n_sparse} sparse parameters; "
            f"{len(comp)} sparse blocks (largest {max(comp, default=0)})"
        )


def _components(cols: np.ndarray, bins: np.ndarray, n_cols: int) -> np.ndarray:
    """Connected-component label of each sparse column through shared bins."""
    if n_cols == 0:
        return np.zeros(0, np.int64)
    ub = np.unique(bins)
    bin_node = n_cols + np.searchsorted(ub, bins)
    n = n_cols + ub.size
    adj = coo_matrix((np.ones(cols.size), (cols, bin_node)), shape=(n, n))
    _, labels = connected_components(adj, directed=False)
    return labels[:n_cols]


def classify(
    n_params: int,
    forced_dense: np.ndarray,
    entry_param: np.ndarray,
    entry_bin: np.ndarray,
    n_bins: int,
    dense_fraction: float = 0.2,
    max_block: int = 128,
    connector_ratio: float = 1.5,
) -> np.ndarray:
    """Boolean (n_params,): dense parameters. Forced ones, those touching more than
    ``dense_fraction`` of the bins, and *connectors*: in a component of the rest larger than
    ``max_block``, the parameters with more than ``connector_ratio`` times the component's
    median number of neighbours (parameters sharing a bin), at most 5% of it at a time, until
    the component splits or has no connector left (then it stays one block). Connectors are
    typically the few nuisances spanning several eta rows of an otherwise row-local set."""
    dense = np.zeros(n_params, dtype=bool)
    dense[np.asarray(forced_dense, dtype=np.int64)] = True
    if entry_param.size == 0:
        return dense
    key = np.unique(entry_param.astype(np.int64) * n_bins + entry_bin)
    pb = np.stack([key // n_bins, key % n_bins])  # unique (parameter, bin) pairs
    n_touch = np.bincount(pb[0], minlength=n_params)
    dense |= n_touch > dense_fraction * n_bins
    settled: set[tuple[int, ...]] = set()
    for _ in range(200):
        keep = ~dense[pb[0]]
        sp = np.flatnonzero(~dense)
        col = np.full(n_params, -1)
        col[sp] = np.arange(sp.size)
        labels = _components(col[pb[0][keep]], pb[1][keep], sp.size)
        sizes = np.bincount(labels) if labels.size else np.zeros(0, int)
        moved = False
        for c in np.flatnonzero(sizes > max_block):
            members = sp[labels == c]
            key = (int(members[0]), int(members.size))
            if key in settled:
                continue
            if _pairs(members, pb, n_params, n_bins) > MAX_DEGREE_PAIRS:
                settled.add(key)
                continue
            degree = _degrees(members, pb, n_params, n_bins)
            cand = np.flatnonzero(degree > connector_ratio * np.median(degree))
            if cand.size == 0:
                settled.add(key)
                continue
            n_move = min(cand.size, max(1, members.size // 20))
            dense[members[cand[np.argsort(-degree[cand], kind="stable")[:n_move]]]] = True
            moved = True
        if not moved:
            break
    return dense


def _pairs(members: np.ndarray, pb: np.ndarray, n_params: int, n_bins: int) -> int:
    """Number of (member, member) pairs sharing a bin, counted with repetition: an upper
    bound on the stored entries of the product :func:`_degrees` forms."""
    inside = np.zeros(n_params, dtype=bool)
    inside[members] = True
    per_bin = np.bincount(pb[1][inside[pb[0]]], minlength=n_bins).astype(np.int64)
    return int(np.sum(per_bin * per_bin))


def _degrees(members: np.ndarray, pb: np.ndarray, n_params: int, n_bins: int) -> np.ndarray:
    """For each parameter of ``members``, the number of members sharing a bin with it."""
    local = np.full(n_params, -1)
    local[members] = np.arange(members.size)
    sel = local[pb[0]] >= 0
    inc = coo_matrix(
        (np.ones(int(sel.sum())), (local[pb[0][sel]], pb[1][sel])),
        shape=(members.size, n_bins),
    ).tocsr()
    return (inc @ inc.T).getnnz(axis=1) - 1


def build_layout(
    dense: np.ndarray,
    entry_param: np.ndarray,
    entry_slot: np.ndarray,
    n_bins: int,
    n_proc: int,
    max_bytes: int | None = None,
) -> SparseLayout:
    """The layout for the dense/sparse split ``dense`` (n_params,) and the logk entries of the
    *sparse* parameters (``entry_param``, ``entry_slot`` with slot = process * n_bins + bin).
    ``max_bytes``: refuse (:class:`~wmass_archive.errors.ResourceLimitError`) a layout whose
    padded blocks (their local Jacobians, (n_blocks, n_proc, n_local, size) numbers) would
    need more, before its index tables are allocated."""
    n_params = dense.size
    dense_params = np.flatnonzero(dense)
    sparse_params = np.flatnonzero(~dense)
    column = np.zeros(n_params, dtype=np.int64)
    column[dense_params] = np.arange(dense_params.size)
    column[sparse_params] = np.arange(sparse_params.size)
    n_s = sparse_params.size
    e_col = column[entry_param]
    e_bin = entry_slot % n_bins
    e_proc = entry_slot // n_bins

    labels = _components(e_col, e_bin, n_s)
    n_comp = int(labels.max()) + 1 if n_s else 0
    members = [[] for _ in range(n_comp)]
    for c, lab in enumerate(labels):
        members[lab].append(c)
    e_comp = labels[e_col] if e_col.size else np.zeros(0, np.int64)
    order = np.argsort(e_comp, kind="stable")
    starts = np.searchsorted(e_comp[order], np.arange(n_comp + 1))
    comp_bins = [np.unique(e_bin[order[starts[c] : starts[c + 1]]]) for c in range(n_comp)]

    by_size: dict[int, list[int]] = {}
    for c in range(n_comp):
        size = 1 << int(np.ceil(np.log2(max(len(members[c]), 1))))
        by_size.setdefault(size, []).append(c)
    if max_bytes is not None:
        planned = 0
        for size, comps in by_size.items():
            n_local = max(1, max(comp_bins[c].size for c in comps))
            planned += len(comps) * (n_proc * n_local * size + n_local + size) * 8
        if planned > max_bytes:
            from ..errors import ResourceLimitError

            raise ResourceLimitError(
                f"the Hessian's sparse blocks would need {planned / 1e9:.2f} GB (local "
                f"Jacobians of {n_s} sparse parameters), over the memory bound of "
                f"{max_bytes / 1e9:.2f} GB; raise it with wmass-refit --max-memory GB (API: "
                f"max_memory=, or ReadLimits(max_model_bytes=...)) if the archive is trusted"
            )
    buckets: list[Bucket] = []
    entry_target = np.zeros(e_col.size, dtype=np.int64)
    pos_of = np.zeros(n_s, np.int64)
    offset = 0
    for size in sorted(by_size):
        comps = by_size[size]
        n_local = max(1, max(comp_bins[c].size for c in comps))
        cols = np.full((len(comps), size), n_s, dtype=np.int64)
        bins = np.full((len(comps), n_local), n_bins, dtype=np.int64)
        for i, c in enumerate(comps):
            m = np.array(members[c], dtype=np.int64)
            cols[i, : m.size] = m
            pos_of[m] = np.arange(m.size)
            bins[i, : comp_bins[c].size] = comp_bins[c]
            sel = order[starts[c] : starts[c + 1]]
            local_bin = np.searchsorted(comp_bins[c], e_bin[sel])
            entry_target[sel] = (
                offset
                + ((i * n_proc + e_proc[sel]) * n_local + local_bin) * size
                + pos_of[e_col[sel]]
            )
        buckets.append(Bucket(offset, len(comps), size, n_local, cols, bins))
        offset += len(comps) * n_proc * n_local * size
    i32 = np.int32 if offset < 2**31 else np.int64
    return SparseLayout(
        dense_params=dense_params,
        sparse_params=sparse_params,
        is_dense=dense.copy(),
        column=column,
        entry_target=entry_target.astype(i32),
        buckets=buckets,
        flat_size=int(offset),
    )
