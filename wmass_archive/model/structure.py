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

A large component whose parameters each touch a window of its bins (e.g. the efficiency and
momentum-scale nuisances of a CMS-like model, each on a few eta slices, chained by overlapping
windows into one component of thousands) would make that product cost n_local x size^2 (about
3e11 multiply-adds for 2880 bins and 3840 parameters). Such a block is assembled from *tiles*:
consecutive runs of its bins (in the archive's bin order, with bins of equal parameter sets
made contiguous, or in the order of the second singular vector of the normalised
parameter-bin incidence, whichever is cheapest), each with only the
parameters touching it; a tile's part of the block is the same two products on its local
Jacobian, added into the block at its parameters' positions. A component is tiled when that is
at least :data:`TILE_GAIN` times cheaper (padding counted).
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

#: components with more parameters than this are considered for tiling
TILE_MIN = 256
#: a tiling is used when its padded cost is this many times smaller than the untiled block's
TILE_GAIN = 4.0
#: tile lengths (bins) tried
TILE_BINS = (16, 32, 64, 128, 256)


@dataclass
class Bucket:
    """``n_blocks`` blocks of padded size ``size`` (parameters): ``cols`` (n_blocks, size)
    sparse-column indices padded with ``n_sparse`` (a dummy). Their Hessian is assembled from
    ``n_tiles`` local Jacobians of ``t_size`` parameters and ``n_local`` bins: ``bins``
    (n_tiles, n_local) bin indices padded with ``n_bins`` (a dummy bin), ``offset``: start of
    the bucket's local Jacobians in the flat storage, each tile holding n_proc * n_local *
    t_size numbers (process, local bin, parameter; C order). Untiled (``tiled`` False): one
    tile per block, the block itself (t_size = size). Tiled: one block; ``tile_cols``
    (n_tiles, t_size) the tiles' sparse columns (padded with n_sparse) and ``tile_pos`` their
    positions in the block (padded with ``size``)."""

    offset: int
    n_blocks: int
    size: int
    n_local: int
    cols: np.ndarray
    bins: np.ndarray
    tiled: bool = False
    tile_cols: np.ndarray | None = None
    tile_pos: np.ndarray | None = None

    @property
    def n_tiles(self) -> int:
        return int(self.bins.shape[0])

    @property
    def t_size(self) -> int:
        return int(self.tile_cols.shape[1]) if self.tiled else self.size


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
        tiled = [b for b in self.buckets if b.tiled]
        tiles = (
            f"; {len(tiled)} assembled from tiles ({sum(b.n_tiles for b in tiled)} tiles of "
            f"up to {max(b.t_size for b in tiled)} parameters)"
            if tiled
            else ""
        )
        return (
            f"{self.n_dense} dense + {self.n_sparse} sparse parameters; "
            f"{len(comp)} sparse blocks (largest {max(comp, default=0)}){tiles}"
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


def _round8(x: int) -> int:
    return max(8, -(-int(x) // 8) * 8)


def _spectral_order(cols: np.ndarray, lbin: np.ndarray, n_cols: int, n_bins: int):
    """The bins (0..n_bins-1) ordered by the second right singular vector of the normalised
    parameter-bin incidence D_p^-1/2 I D_b^-1/2 (spectral co-clustering: bins sharing
    parameters come out close); None where ARPACK does not converge."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import ArpackError, svds

    if min(n_cols, n_bins) < 3:
        return None
    inc = coo_matrix((np.ones(cols.size), (cols, lbin)), shape=(n_cols, n_bins)).tocsr()
    dp = np.asarray(inc.sum(axis=1)).ravel()
    db = np.asarray(inc.sum(axis=0)).ravel()
    if np.any(dp == 0) or np.any(db == 0):
        return None
    m = diags(1.0 / np.sqrt(dp)) @ inc @ diags(1.0 / np.sqrt(db))
    try:
        _, sv, vt = svds(m, k=2, v0=np.ones(min(m.shape)) / np.sqrt(min(m.shape)))
    except (ArpackError, ValueError):
        return None
    v = vt[int(np.argsort(-sv)[1])] / np.sqrt(db)
    return np.argsort(v, kind="stable")


@dataclass
class _Tiling:
    """A component's bins in tile order (``order``: positions in its sorted bin list), the tile
    (``tile``) and the place in it (``local``) of each position of the order, the tiles' length
    ``n_local`` (padded) and, per tile, the sorted member positions of its parameters."""

    order: np.ndarray
    tile: np.ndarray
    local: np.ndarray
    n_local: int
    params: list[np.ndarray]
    t_size: int


#: most runs of equal-signature bins packed one by one into tiles (beyond: fixed-length tiles)
MAX_RUNS = 50_000


def _pack(runs: np.ndarray, t: int) -> np.ndarray:
    """Tile index of each position of an order made of ``runs`` (lengths of consecutive bins
    with the same parameters): whole runs are packed into tiles of at most ``t`` bins, a run
    longer than ``t`` is cut into pieces of ``t``; with too many runs, fixed pieces of ``t``."""
    n = int(runs.sum())
    if runs.size > MAX_RUNS:
        return np.arange(n) // t
    out = np.empty(n, dtype=np.int64)
    tile, fill, pos = -1, t, 0
    for length in runs.tolist():
        if fill + length > t:
            tile, fill = tile + 1, 0
        if length > t:
            out[pos : pos + length] = tile + np.arange(length) // t
            tile += (length - 1) // t
            fill = (length - 1) % t + 1
        else:
            out[pos : pos + length] = tile
            fill += length
        pos += length
    return out


def _signature_order(lcol: np.ndarray, lbin: np.ndarray, n_members: int, n_bins: int):
    """(order, signature per bin): bins with the same set of parameters made contiguous, the
    sets in the order of their first bin (a 64-bit hash of each bin's parameters)."""
    weights = np.random.default_rng(12345).integers(1, 2**62, n_members, dtype=np.uint64)
    sig = np.zeros(n_bins, dtype=np.uint64)
    np.add.at(sig, lbin, weights[lcol])
    _, first, inverse = np.unique(sig, return_index=True, return_inverse=True)
    return np.lexsort((np.arange(n_bins), first[inverse])), sig


def _tiling(lcol: np.ndarray, lbin: np.ndarray, n_members: int, n_bins: int, n_proc: int):
    """The cheapest tiling of a component (``lcol``, ``lbin``: its unique (member position,
    local bin) pairs), or None when it saves less than :data:`TILE_GAIN` on the untiled
    block's n_proc * n_bins * size^2 (size padded to a power of two). Orders tried: the
    archive's bin order, bins of equal parameter sets together, and the spectral order."""
    size = 1 << int(np.ceil(np.log2(max(n_members, 1))))
    untiled = n_proc * n_bins * size * size
    by_signature, sig = _signature_order(lcol, lbin, n_members, n_bins)
    orders = [np.arange(n_bins), by_signature]
    spectral = _spectral_order(lcol, lbin, n_members, n_bins)
    if spectral is not None:
        orders.append(spectral)
    best = None
    for order in orders:
        rank = np.empty(n_bins, dtype=np.int64)
        rank[order] = np.arange(n_bins)
        s_ord = sig[order]
        cuts = np.flatnonzero(s_ord[1:] != s_ord[:-1]) + 1
        runs = np.diff(np.concatenate([[0], cuts, [n_bins]]))
        for t in TILE_BINS:
            if t >= n_bins:
                continue
            tile = _pack(runs, t)
            n_tiles = int(tile[-1]) + 1
            if n_tiles * n_members > MAX_DEGREE_PAIRS:  # the per-tile position table
                continue
            n_local = int(np.bincount(tile).max())
            key = np.unique(tile[rank[lbin]] * n_members + lcol)
            per_tile = np.bincount(key // n_members, minlength=n_tiles)
            t_size = _round8(per_tile.max())
            cost = n_tiles * (n_proc * n_local * t_size**2 + 2 * t_size**2)
            if best is None or cost < best[0]:
                best = (cost, order, tile, n_local, key, n_tiles, t_size)
    if best is None or best[0] * TILE_GAIN > untiled:
        return None
    _, order, tile, n_local, key, n_tiles, t_size = best
    starts_t = np.searchsorted(tile, np.arange(n_tiles))  # tile is non-decreasing
    local = np.arange(n_bins) - starts_t[tile]
    tile_of, member = key // n_members, key % n_members
    starts = np.searchsorted(tile_of, np.arange(n_tiles + 1))
    params = [member[starts[i] : starts[i + 1]] for i in range(n_tiles)]
    return _Tiling(order, tile, local, n_local, params, t_size)


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

    # tiled components, with each entry's member position and local bin
    tilings: dict[int, tuple[_Tiling, np.ndarray, np.ndarray]] = {}
    for c in range(n_comp):
        if len(members[c]) <= TILE_MIN:
            continue
        sel = order[starts[c] : starts[c + 1]]
        nb = comp_bins[c].size
        lcol = np.searchsorted(np.asarray(members[c], dtype=np.int64), e_col[sel])
        lbin = np.searchsorted(comp_bins[c], e_bin[sel])
        key = np.unique(lcol * nb + lbin)
        t = _tiling(key // nb, key % nb, len(members[c]), nb, n_proc)
        if t is not None:
            tilings[c] = (t, lcol, lbin)

    by_size: dict[int, list[int]] = {}
    for c in range(n_comp):
        if c in tilings:
            continue
        size = 1 << int(np.ceil(np.log2(max(len(members[c]), 1))))
        by_size.setdefault(size, []).append(c)
    if max_bytes is not None:
        planned = 0
        for size, comps in by_size.items():
            n_local = max(1, max(comp_bins[c].size for c in comps))
            planned += len(comps) * (n_proc * n_local * size + n_local + size) * 8
        for c, (t, _, _) in tilings.items():
            n_tiles, size = len(t.params), _round8(len(members[c]))
            planned += (n_tiles * (n_proc * t.n_local + 2) * t.t_size + size * size) * 8
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
    for c, (t, lcol, lbin) in tilings.items():
        mem = np.asarray(members[c], dtype=np.int64)
        size, n_tiles, n_local, t_size = _round8(mem.size), len(t.params), t.n_local, t.t_size
        cols = np.full((1, size), n_s, dtype=np.int64)
        cols[0, : mem.size] = mem
        bins = np.full((n_tiles, n_local), n_bins, dtype=np.int64)
        bins[t.tile, t.local] = comp_bins[c][t.order]
        tile_cols = np.full((n_tiles, t_size), n_s, dtype=np.int64)
        tile_pos = np.full((n_tiles, t_size), size, dtype=np.int64)
        slot_in_tile = np.full((n_tiles, mem.size), -1, dtype=np.int64)
        for i, prm in enumerate(t.params):
            tile_cols[i, : prm.size] = mem[prm]
            tile_pos[i, : prm.size] = prm
            slot_in_tile[i, prm] = np.arange(prm.size)
        rank = np.empty(comp_bins[c].size, dtype=np.int64)
        rank[t.order] = np.arange(comp_bins[c].size)
        sel = order[starts[c] : starts[c + 1]]
        r = rank[lbin]
        tile, local_bin = t.tile[r], t.local[r]
        entry_target[sel] = (
            offset
            + ((tile * n_proc + e_proc[sel]) * n_local + local_bin) * t_size
            + slot_in_tile[tile, lcol]
        )
        buckets.append(Bucket(offset, 1, size, n_local, cols, bins, True, tile_cols, tile_pos))
        offset += n_tiles * n_proc * n_local * t_size
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
