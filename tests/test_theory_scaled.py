"""GridVariation.scaled: inflating a theory variation by a factor, by hand."""

from __future__ import annotations

import numpy as np

from wmass_archive.theory.generator import GRID_SHAPE
from wmass_archive.theory.variations import GridVariation


def test_additive_and_multiplicative_scaling_by_hand():
    s = np.full(GRID_SHAPE, 2.0)
    s[0, 0, 0, 1] = -0.5  # an A_i entry may be negative
    up, down = s + 0.1, s - 0.3
    add = GridVariation("v", "g", "additive", up, down).scaled(s, 3.0)
    np.testing.assert_allclose(add.up, s + 0.3)
    np.testing.assert_allclose(add.down, s - 0.9)
    mul = GridVariation("w", "g", "multiplicative", s * 1.1, s * 0.8).scaled(s, 2.0)
    ok = s > 0
    np.testing.assert_allclose(mul.up[ok], (s * 1.21)[ok])
    np.testing.assert_allclose(mul.down[ok], (s * 0.64)[ok])
    assert mul.up[0, 0, 0, 1] == s[0, 0, 0, 1]  # not positive: left at the nominal
    same = GridVariation("x", "g", "additive", up, down).scaled(s, 1.0)
    np.testing.assert_array_equal(same.up, up)
    assert "scaled x3" in add.description
