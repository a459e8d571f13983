"""The generic model's traced program does not grow with the model (issue: JAX compilation
dominated the fits of imported likelihoods): the extended modifiers are padded arrays, so the
number of equations of ``jax.make_jaxpr`` of the expected yields, the nll, its gradient and the
fitter's value/gradient/Hessian kernel is the same for a pyhf workspace with N and with 2N
channels and modifiers, and with twice as many modifiers on every sample. No timings."""

from __future__ import annotations

import numpy as np
import pytest

from wmass_archive.fit import hessian
from wmass_archive.fit.likelihood import observation
from wmass_archive.jax_config import jax, jnp
from wmass_archive.model import build_model
from wmass_archive.model.expected import expected_slots

pytest.importorskip("pyhf")
from wmass_archive.interop.pyhf import import_pyhf  # noqa: E402


def workspace(n_channels: int, per_sample: int, seed: int = 0) -> dict:
    """A pyhf workspace of ``n_channels`` channels of 3 bins with a signal and two
    backgrounds, every modifier type, and ``per_sample`` normsys and histosys on each
    background (their names shared between neighbouring channels)."""
    rng = np.random.default_rng(seed)
    channels, observations = [], []
    for c in range(n_channels):
        nb = 3
        samples = [
            {
                "name": "signal",
                "data": (5.0 * rng.uniform(0.8, 1.2, nb)).tolist(),
                "modifiers": [
                    {"name": "mu", "type": "normfactor", "data": None},
                    {"name": "lumi", "type": "lumi", "data": None},
                ],
            }
        ]
        for b in range(2):
            nom = 50.0 * rng.uniform(0.8, 1.2, nb)
            mods = [
                {"name": "lumi", "type": "lumi", "data": None},
                {"name": f"stat_{c}", "type": "staterror", "data": (0.1 * nom).tolist()},
            ]
            if b == 0:
                mods.append({"name": f"norm_{c}", "type": "normfactor", "data": None})
                mods.append(
                    {"name": f"shapesys_{c}", "type": "shapesys", "data": (0.2 * nom).tolist()}
                )
            else:
                mods.append({"name": "sf", "type": "shapefactor", "data": None})
            for k in range(per_sample):
                j = (c + k) % max(n_channels, 1) * per_sample + k
                mods.append(
                    {
                        "name": f"theo_{j}",
                        "type": "normsys",
                        "data": {"hi": 1.0 + rng.uniform(0.02, 0.1), "lo": 0.95},
                    }
                )
                mods.append(
                    {
                        "name": f"exp_{j}",
                        "type": "histosys",
                        "data": {
                            "hi_data": (nom * rng.uniform(1.0, 1.1, nb)).tolist(),
                            "lo_data": (nom * rng.uniform(0.9, 1.0, nb)).tolist(),
                        },
                    }
                )
            samples.append({"name": f"bkg{b}", "data": nom.tolist(), "modifiers": mods})
        channels.append({"name": f"ch{c}", "samples": samples})
        observations.append({"name": f"ch{c}", "data": [100.0] * nb})
    lumi = {"auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.8, 1.2]], "inits": [1.0]}
    params = [{"name": "lumi", **lumi}]
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": params}}],
        "version": "1.0.0",
    }


def _n_eqns(jaxpr) -> int:
    """Equations of a jaxpr, those of its sub-jaxprs (jit, scan, cond, custom rules) included."""
    n = 0
    for eqn in jaxpr.eqns:
        n += 1
        for p in eqn.params.values():
            for q in p if isinstance(p, tuple | list) else (p,):
                inner = getattr(q, "jaxpr", q)
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    n += _n_eqns(inner)
    return n


def _sizes(tmp_path, n_channels: int, per_sample: int, kernels: bool) -> dict[str, int]:
    path = tmp_path / f"ws_{n_channels}_{per_sample}.h5"
    import_pyhf(workspace(n_channels, per_sample), path)
    m = build_model(path)
    st, ar = m.static, m.arrays
    assert st.generic
    obs = observation(m.data, m.n_params)
    th = jnp.zeros(m.n_params)
    fns = {
        "expected": lambda t: expected_slots(st, ar, t),
        "nll": lambda t: hessian.nll(st, ar, t, obs),
        "grad": jax.grad(lambda t: hessian.nll(st, ar, t, obs)),
    }
    if kernels:
        fns["value_grad_hess"] = lambda t: hessian.value_grad_hess(st, ar, t, obs, 0.0)
    out = {k: _n_eqns(jax.make_jaxpr(f)(th).jaxpr) for k, f in fns.items()}
    out["n_params"] = m.n_params
    return out


def test_jaxpr_does_not_grow_with_channels_and_modifiers(tmp_path):
    """N -> 2N -> 4N channels (and so twice the parameters each time): same program."""
    a = _sizes(tmp_path, 3, 2, kernels=True)
    b = _sizes(tmp_path, 6, 2, kernels=True)
    c = _sizes(tmp_path, 12, 2, kernels=False)
    assert b["n_params"] > 1.8 * a["n_params"] and c["n_params"] > 1.8 * b["n_params"]
    for k in ("expected", "nll", "grad", "value_grad_hess"):
        assert b[k] == a[k], (k, a, b)
    for k in ("expected", "nll", "grad"):
        assert c[k] == a[k], (k, a, c)


def test_jaxpr_does_not_grow_with_modifiers_per_sample(tmp_path):
    """Twice as many normsys and histosys on every sample (twice the factors of each slot,
    the width of the padded product): same program."""
    a = _sizes(tmp_path, 3, 2, kernels=False)
    b = _sizes(tmp_path, 3, 4, kernels=False)
    assert b["n_params"] > a["n_params"]
    for k in ("expected", "nll", "grad"):
        assert b[k] == a[k], (k, a, b)
