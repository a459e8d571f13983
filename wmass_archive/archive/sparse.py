"""A minimal COO sparse tensor, the in-memory form of the archive's sparse arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SparseTensor:
    """``coords`` (ndim, nnz) int64 indices, ``values`` (nnz,) float64, dense ``shape``.
    Entries are unique and sorted lexicographically by coordinate."""

    coords: np.ndarray
    values: np.ndarray
    shape: tuple[int, ...]

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    @property
    def density(self) -> float:
        size = int(np.prod(self.shape, dtype=np.int64))
        return self.nnz / size if size else 0.0

    def todense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float64)
        if self.nnz:
            out[tuple(self.coords)] = self.values
        return out

    @classmethod
    def fromdense(cls, a: np.ndarray) -> SparseTensor:
        a = np.asarray(a, dtype=np.float64)
        coords = np.array(np.nonzero(a), dtype=np.int64).reshape(a.ndim, -1)
        return cls(coords, a[tuple(coords)], tuple(a.shape))
