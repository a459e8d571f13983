"""Prefit and postfit expected yields per bin, with their uncertainties, for the HEPData
distribution tables.

The yields are the model's (:meth:`~wmass_archive.model.Model.expected_by_process`): prefit at
theta = 0, postfit at the fitted parameters (without the Barlow-Beeston factors, as in
``wmass-refit``'s postfit plots). Their uncertainties propagate a parameter covariance C
linearly through the Jacobian J = d nu / d theta of the expected yield per bin (J computed with
JAX forward-mode derivatives of the model's own function):

    sigma_b^2 = (J C J^T)_bb

* **prefit**: J at theta = 0 and C the prior covariance (1 on the diagonal for every
  gaussian-constrained nuisance, PDF ones included; 0 for POIs and unconstrained parameters),
  plus the MC statistical variance of the stored templates (sum over processes of ``sumw2``);
* **postfit**: J at the fitted parameters and C the fit's covariance (Hessian inverse, POIs
  included).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ...archive.reader import Archive
from ...fit.result import FitResult
from ...jax_config import jax, jnp
from ...model.build import Model
from ...model.expected import expected_bins

#: tangents per vectorised forward-mode pass (memory ~ chunk x the model's intermediates)
CHUNK = 128


@dataclass(frozen=True)
class YieldBands:
    """Yields and uncertainties of every bin (channels concatenated, events).

    ``data`` (n_bins,); ``prefit``, ``postfit`` (n_processes, n_bins) in ``processes`` order;
    ``prefit_unc``, ``postfit_unc`` (n_bins,): one-sigma uncertainties of the total."""

    processes: list[str]
    data: np.ndarray
    prefit: np.ndarray
    postfit: np.ndarray
    prefit_unc: np.ndarray
    postfit_unc: np.ndarray

    @property
    def prefit_total(self) -> np.ndarray:
        """Total prefit yield per bin, (n_bins,)."""
        return self.prefit.sum(axis=0)

    @property
    def postfit_total(self) -> np.ndarray:
        """Total postfit yield per bin, (n_bins,)."""
        return self.postfit.sum(axis=0)


@partial(jax.jit, static_argnums=0)
def _jvp_rows(st, ar, theta, tangents):
    def f(t):
        return expected_bins(st, ar, t)

    return jax.vmap(lambda v: jax.jvp(f, (theta,), (v,))[1])(tangents)


def parameter_supports(archive: Archive, model: Model) -> list[np.ndarray | None]:
    """The bins each model parameter can change, from the archive's logk tables: an index
    array per parameter, or None (every bin) for POIs, PDF and theory nuisances, parameters
    without logk entries, and every parameter of an archive with extended modifiers (format
    1.1). Used by :func:`jacobian` to share forward passes; it checks the result."""
    out: list[np.ndarray | None] = [None] * model.n_params
    if any(getattr(ch, "modifiers", None) for ch in archive.metadata.channels):
        return out
    sel = archive.select()
    table = sel.logk()
    names = sel.parameter_names
    where = {n: i for i, n in enumerate(model.parameter_names)}
    order = np.argsort(table.parameter, kind="stable")
    par, bins = table.parameter[order], table.bin[order]
    cuts = np.flatnonzero(np.diff(par)) + 1
    for group_par, group_bins in zip(np.split(par, cuts), np.split(bins, cuts), strict=True):
        if group_par.size == 0:
            continue
        k = where.get(names[int(group_par[0])])
        info = model.info.parameters[k] if k is not None else None
        if info is None or info.kind != "nuisance" or info.theory:
            continue
        out[k] = np.unique(group_bins)
    return out


def _colors(supports: list[np.ndarray | None], n_bins: int) -> list[list[int]]:
    """Greedy colouring: parameters whose bins do not overlap share a colour (parameters of
    unknown support get a colour of their own)."""
    colors: list[list[int]] = []
    used: list[np.ndarray] = []
    order = sorted(
        range(len(supports)),
        key=lambda k: -(n_bins if supports[k] is None else supports[k].size),
    )
    for k in order:
        sup = supports[k]
        if sup is None:
            colors.append([k])
            used.append(np.ones(n_bins, dtype=bool))
            continue
        for c, mask in enumerate(used):
            if not mask[sup].any():
                colors[c].append(k)
                mask[sup] = True
                break
        else:
            mask = np.zeros(n_bins, dtype=bool)
            mask[sup] = True
            colors.append([k])
            used.append(mask)
    return colors


def _forward(model: Model, theta: np.ndarray, tangents: np.ndarray, chunk: int) -> np.ndarray:
    """J v for each row v of ``tangents`` (m, n_params), (m, n_bins)."""
    th = jnp.asarray(theta, dtype=jnp.float64)
    m, n = tangents.shape
    out = np.empty((m, model.n_bins))
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        block = np.zeros((chunk, n))  # always `chunk` rows: one compilation
        block[: stop - start] = tangents[start:stop]
        rows = _jvp_rows(model.static, model.arrays, th, jnp.asarray(block))
        out[start:stop] = np.asarray(rows)[: stop - start]
    return out


def jacobian(
    model: Model,
    theta: np.ndarray,
    supports: list[np.ndarray | None] | None = None,
    chunk: int = CHUNK,
) -> np.ndarray:
    """d nu_b / d theta_i of the expected yield per bin at ``theta``, (n_bins, n_params).

    Forward-mode derivatives of the model's expected yield: one per parameter, or, with the
    ``supports`` of :func:`parameter_supports`, one per group of parameters that change
    disjoint bins (a compressed Jacobian). The compressed result is checked against one
    forward derivative along a random direction and recomputed parameter by parameter if they
    differ."""
    n = model.n_params
    if supports is not None:
        colors = _colors(supports, model.n_bins)
        tangents = np.zeros((len(colors), n))
        for c, members in enumerate(colors):
            tangents[c, members] = 1.0
        y = _forward(model, theta, tangents, chunk)
        jac = np.zeros((model.n_bins, n))
        for c, members in enumerate(colors):
            for k in members:
                sup = supports[k]
                if sup is None:
                    jac[:, k] = y[c]
                else:
                    jac[sup, k] = y[c, sup]
        v = np.random.default_rng(0).standard_normal(n)
        probe = _forward(model, theta, v[None, :], chunk)[0]
        scale = np.abs(jac) @ np.abs(v) + 1e-300
        if np.all(np.abs(jac @ v - probe) <= 1e-9 * scale + 1e-12 * np.max(scale)):
            return jac
    return _forward(model, theta, np.eye(n), chunk).T


def propagate(jac: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """One-sigma uncertainty per bin, sqrt(diag(J C J^T)), for J (n_bins, n_params) and a
    covariance C (n_params, n_params); negative rounding residues give 0."""
    var = np.einsum("bi,bi->b", jac @ np.asarray(cov), jac)
    return np.sqrt(np.clip(var, 0.0, None))


def prior_covariance(model: Model) -> np.ndarray:
    """The prefit covariance of theta: the identity on gaussian-constrained parameters, 0 for
    POIs and unconstrained parameters, (n_params, n_params)."""
    return np.diag(model.constrained.astype(np.float64))


def yield_bands(
    model: Model,
    fit: FitResult,
    sumw2: np.ndarray,
    supports: list[np.ndarray | None] | None = None,
    chunk: int = CHUNK,
) -> YieldBands:
    """Prefit and postfit yields and uncertainties (module docstring) of a fitted ``model``;
    ``fit`` is its :class:`~wmass_archive.fit.FitResult`, ``sumw2`` the MC statistical
    variances of the templates, (n_processes, n_bins) or (n_bins,); ``supports``: see
    :func:`jacobian`."""
    theta = np.array([p.value for p in fit.parameters])
    zero = np.zeros(model.n_params)
    mc_var = np.asarray(sumw2, dtype=np.float64)
    if mc_var.ndim == 2:
        mc_var = mc_var.sum(axis=0)
    j0 = jacobian(model, zero, supports, chunk)
    prior = model.constrained.astype(np.float64)  # the diagonal of prior_covariance(model)
    pre_var = np.einsum("bi,i,bi->b", j0, prior, j0)
    post_unc = propagate(jacobian(model, theta, supports, chunk), np.asarray(fit.covariance))
    return YieldBands(
        processes=list(model.info.processes),
        data=np.asarray(model.data, dtype=np.float64),
        prefit=model.expected_by_process(zero),
        postfit=model.expected_by_process(theta),
        prefit_unc=np.sqrt(pre_var + mc_var),
        postfit_unc=post_unc,
    )
