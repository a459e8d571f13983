"""pyhf's profile likelihood of the mass over the patches of an exported patchset."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._common import ExportError

#: the pyhf interpolation codes an exported workspace is meant to be fitted with
EXPORT_MODIFIER_SETTINGS = {
    "normsys": {"interpcode": "code1"},
    "histosys": {"interpcode": "code4p"},
}


@dataclass
class MassScan:
    """A profile-likelihood scan over the patches of an exported patchset."""

    values: list[float]  # physical values of the patches
    two_delta_nll: list[float]  # 2 (nll_profiled - min over the patches)
    value: float  # minimum of the parabola through the points near the minimum
    error: float  # where the parabola rises by 1
    used: list[float] = field(default_factory=list)


def pyhf_mass_scan(
    workspace: Any,
    patchset: Any,
    *,
    modifier_settings: Mapping[str, Mapping[str, str]] | None = None,
    window: float = 4.0,
    optimizer: Any = None,
    progress: Callable[[str], None] | None = None,
) -> MassScan:
    """Fit every patch of ``patchset`` to ``workspace`` (paths, dicts or pyhf objects) with
    pyhf (numpy backend; ``optimizer`` default MINUIT with tolerance 1e-4, strategy 1, then 2
    if that fails; ``modifier_settings`` default :data:`EXPORT_MODIFIER_SETTINGS`) and fit a
    parabola to 2 dNLL over the points within ``window`` of the minimum (at least three): the
    mass value and its uncertainty."""
    from ._load import pyhf_module, quiet_pyhf

    pyhf_module("the pyhf mass scan")
    with quiet_pyhf():
        return _scan(workspace, patchset, modifier_settings, window, optimizer, progress)


def _scan(
    workspace: Any,
    patchset: Any,
    modifier_settings: Mapping[str, Mapping[str, str]] | None,
    window: float,
    optimizer: Any,
    progress: Callable[[str], None] | None,
) -> MassScan:
    from ._load import _read_json, numpy_backend, pyhf_module

    pyhf = pyhf_module()

    ws_spec = _read_json(workspace, "workspace")[0]
    ps_spec = _read_json(patchset, "patchset")[0]
    settings = {k: dict(v) for k, v in (modifier_settings or EXPORT_MODIFIER_SETTINGS).items()}
    ws = pyhf.Workspace(ws_spec)
    ps = pyhf.PatchSet(ps_spec)
    vals, nll = [], []
    tries = (
        [optimizer]
        if optimizer is not None
        else [pyhf.optimize.minuit_optimizer(tolerance=1e-4, strategy=s) for s in (1, 2)]
    )
    for i, patch in enumerate(ps.patches):
        if progress:
            progress(f"pyhf fit {i + 1}/{len(ps.patches)}: {patch.name}")
        w = ps.apply(ws, patch.name)
        m = w.model(modifier_settings=settings)
        for k, opt in enumerate(tries):
            with numpy_backend(opt):
                try:
                    _, twice = pyhf.infer.mle.fit(w.data(m), m, return_fitted_val=True)
                    break
                except pyhf.exceptions.FailedMinimization:
                    if k == len(tries) - 1:
                        raise ExportError(
                            f"pyhf's fit of patch '{patch.name}' did not converge"
                        ) from None
        vals.append(float(patch.values[0]))
        nll.append(float(twice))
    order = np.argsort(vals)
    x, q = np.asarray(vals)[order], np.asarray(nll)[order]
    q = q - q.min()
    near = q <= window
    if near.sum() < 3:
        near = np.zeros(q.size, dtype=bool)
        near[np.argsort(q)[:3]] = True
    if near.sum() < 3:
        raise ExportError("a mass scan needs at least three patches")
    xc = x[near].mean()
    c2, c1, _ = np.polyfit(x[near] - xc, q[near], 2)
    if not c2 > 0:
        raise ExportError("the profile likelihood over the patches has no minimum")
    return MassScan(
        values=[float(v) for v in x],
        two_delta_nll=[float(v) for v in q],
        value=float(xc - c1 / (2 * c2)),
        error=float(1 / np.sqrt(c2)),
        used=[float(v) for v in x[near]],
    )
