"""Combining the members of a PDF set into an uncertainty (LHAPDF's conventions).

Part of :mod:`wmass_archive.theory.lhapdf` (import from there).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from ._lhapdf_info import _ERROR_CORE_TYPES, CL1SIGMA

# ----------------------------------------------------------------------------------------------
# uncertainties
# ----------------------------------------------------------------------------------------------


class PDFUncertainty(NamedTuple):
    """Result of :func:`pdf_uncertainty`: arrays of the values' trailing shape (floats for
    1-D input)."""

    central: Any
    err_plus: Any
    err_minus: Any
    err_sym: Any


def cl_scale(from_cl: float, to_cl: float = CL1SIGMA) -> float:
    """Factor that turns an uncertainty at confidence level ``from_cl`` (percent) into one at
    ``to_cl``: the ratio of the two-sided Gaussian quantiles, i.e. LHAPDF's
    sqrt(chi2_1 quantile ratio). 90 -> 68.27 gives 1/1.644854."""
    for cl in (from_cl, to_cl):
        if not 0.0 < cl < 100.0:
            raise ValueError(f"confidence level must be in (0, 100) percent, not {cl!r}")
    if from_cl == to_cl:
        return 1.0
    z = NormalDist()

    def quantile(cl: float) -> float:
        return z.inv_cdf(0.5 * (1.0 + cl / 100.0))

    return quantile(to_cl) / quantile(from_cl)


def _parse_error_type(error_type: str, n_err: int) -> tuple[str, int, list[list[tuple[str, int]]]]:
    """LHAPDF's extended ErrorType: ``core+part+part``, each part an envelope of ``*``-joined
    variations, a pair each unless prefixed ``#`` (one-sided) or ``$`` (symmetrised single)."""
    pieces = [p.strip() for p in error_type.strip().lower().split("+")]
    core = pieces[0]
    parts: list[list[tuple[str, int]]] = []
    n_par = 0
    for q in pieces[1:]:
        env = []
        for e in q.split("*"):
            e = e.strip()
            size = 1 if e.startswith(("#", "$")) else 2
            env.append((e, size))
            n_par += size
        parts.append(env)
    return core, n_err - n_par, parts


def pdf_uncertainty(
    values,
    error_type: str,
    *,
    set_cl: float = CL1SIGMA,
    cl: float = CL1SIGMA,
) -> PDFUncertainty:
    """Central value and uncertainties of a quantity computed with every member of a set.

    ``values`` has shape (n_members, ...): member 0 first. Conventions (LHAPDF 6.5
    ``PDFSet::uncertainty``, which cites Eqs. (2.1)-(2.6) of arXiv:1106.5788):

    * ``hessian`` (members 2k-1, 2k form pair k): err_plus = sqrt(sum_k max(f_2k-1 - f_0,
      f_2k - f_0, 0)^2), err_minus = sqrt(sum_k max(f_0 - f_2k-1, f_0 - f_2k, 0)^2),
      err_sym = 0.5 sqrt(sum_k (f_2k-1 - f_2k)^2); central = f_0;
    * ``symmhessian``: err = sqrt(sum_i (f_i - f_0)^2) for all three; central = f_0;
    * ``replicas``: central = mean of members 1..N, err = their standard deviation with the
      N/(N-1) correction, for all three; the set's level is always 1 sigma (LHAPDF ignores
      ErrorConfLevel for replicas). A single member (a central-only set) gives zero errors.

    Errors are rescaled from ``set_cl`` to ``cl`` (percent; default one Gaussian sigma) by
    :func:`cl_scale`. Extended types ``core+param...`` (e.g. ``symmhessian+as``): the last
    members are parameter variations whose envelope around the central value is scaled the same
    way and added in quadrature to err_plus and err_minus (LHAPDF 6.5); err_sym then adds the
    mean of the two parameter envelopes in quadrature. Note: LHAPDF 6.5 reports as ``errsymm``
    the mean (err_plus + err_minus)/2; the Eq. (2.6) value returned here is its ``errsymm_pdf``
    (and LHAPDF <= 6.2's ``errsymm``). LHAPDF computes the replica variance as
    N/(N-1)(<f^2> - <f>^2); numpy's two-pass ddof=1 variance is the same number, rounded better.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 0 or v.shape[0] < 1:
        raise ValueError("values must have shape (n_members, ...) with at least one member")
    if not np.all(np.isfinite(v)):
        raise ValueError("values contain NaN or infinity")
    n = v.shape[0]
    core, n_core, parts = _parse_error_type(error_type, n - 1)
    if core not in _ERROR_CORE_TYPES:
        raise ValueError(
            f"ErrorType {error_type!r}: core type {core!r} is not one of {_ERROR_CORE_TYPES}"
        )
    if n_core < 0:
        raise ValueError(
            f"ErrorType {error_type!r} needs more parameter-variation members than the "
            f"{n - 1} non-central values given"
        )
    set_level = CL1SIGMA if core == "replicas" else set_cl
    scale = cl_scale(set_level, cl)
    zero = np.zeros(v.shape[1:])
    if n_core == 0:  # central only: no PDF uncertainty of its own
        central = v[0].copy()
        ep = em = es = zero
    elif core == "replicas":
        reps = v[1 : 1 + n_core]
        central = reps.mean(axis=0)
        sd = reps.std(axis=0, ddof=1) if n_core > 1 else zero
        ep = em = es = sd
    elif core == "symmhessian":
        central = v[0].copy()
        ep = em = es = np.sqrt(np.sum((v[1 : 1 + n_core] - v[0]) ** 2, axis=0))
    else:  # hessian
        if n_core % 2:
            raise ValueError(f"hessian set needs an even number of error members, got {n_core}")
        central = v[0].copy()
        up, dn = v[1 : 1 + n_core : 2] - v[0], v[2 : 1 + n_core : 2] - v[0]
        ep = np.sqrt(np.sum(np.maximum(np.maximum(up, dn), 0.0) ** 2, axis=0))
        em = np.sqrt(np.sum(np.maximum(np.maximum(-up, -dn), 0.0) ** 2, axis=0))
        es = 0.5 * np.sqrt(np.sum((up - dn) ** 2, axis=0))
    ep, em, es = ep * scale, em * scale, es * scale
    if parts:
        sq_plus = np.zeros_like(central)
        sq_minus = np.zeros_like(central)
        idx = n_core
        for env in parts:
            vmin = central.copy()
            vmax = central.copy()
            for name, size in env:
                for _ in range(size):
                    idx += 1
                    val = v[idx]
                    vmin = np.minimum(vmin, val)
                    vmax = np.maximum(vmax, val)
                    if name.startswith("$"):
                        mirror = 2 * central - val
                        vmin = np.minimum(vmin, mirror)
                        vmax = np.maximum(vmax, mirror)
            sq_plus = sq_plus + (vmax - central) ** 2
            sq_minus = sq_minus + (central - vmin) ** 2
        par_plus = scale * np.sqrt(sq_plus)
        par_minus = scale * np.sqrt(sq_minus)
        ep = np.sqrt(ep**2 + par_plus**2)
        em = np.sqrt(em**2 + par_minus**2)
        es = np.sqrt(es**2 + (0.5 * (par_plus + par_minus)) ** 2)

    def out(a):
        a = np.asarray(a, dtype=float)
        return float(a) if a.ndim == 0 else a

    return PDFUncertainty(out(central), out(ep), out(em), out(es))
