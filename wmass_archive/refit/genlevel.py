"""Generator-level results: the theory grid in use, sigma(theta) (pb per generator bin;
docs/format.md sections 9.3 and 10), projected on the kinematic generator axes per W charge,
with uncertainties propagated from a covariance of theta.

How the grid stores the W decay (docs/theory.md section 1, wmass_archive/theory/generator.py):
per (charge, |y^W|, pT^W) cell the ``helicity`` axis holds the cell integral of sigma_UL (term
``UL``, pb) and of sigma_UL * A_i (terms ``A0``..``A7``, pb): cross sections weighted by the
coefficients, not normalised coefficients. Per charge and per kinematic axis k (pT^W, |y^W|;
every other generator axis summed) the projections are

* ``sigma_<k>``: the unpolarised cross section, sum of sigma_UL, **pb per bin** of k (integrated
  over the bin, not divided by its width; times BR(W -> mu nu), as the grid is);
* ``A<i>_<k>``: sum sigma_Ai / sum sigma_UL, a ratio of sums (the sigma_UL-weighted mean of the
  cells' A_i, not a sum of ratios), dimensionless.

Uncertainties: with y(theta) every projection in one vector, J = dy/dtheta by JAX forward-mode
autodiff through sigma(theta) (:func:`~wmass_archive.model.theory.sigma_of`, the model's own
grid) and cov(y) = J C J^T. Only the theory nuisances (``model.arrays["th_param"]``) act on
sigma; J's columns of every other parameter are zero, so J C J^T needs C's theory block only.
**Prefit**: theta = 0 and the prior covariance (1 on the diagonal of every constrained theory
nuisance; their ``prior_scale`` acts through t = prior_scale * theta inside sigma).
**Postfit**: the fit's theta and covariance. No POI enters sigma: no blinding offset either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..archive.axes import Axis
from ..jax_config import jax, jnp
from ..model.theory import sigma_of
from .errors import RefitError
from .schema import GenAxisOut, GenDistribution, GeneratorLevel

if TYPE_CHECKING:
    from ..fit.result import FitResult
    from ..model.model import Model

#: physics notation of the axes of the package's generator binning (theory/generator.py) and
#: of the demonstration archive; any other axis is shown by its own label
AXIS_LABELS = {"ptW": "p_T^W", "absYW": "|y^W|", "yW": "y^W"}
_CHARGE_NAMES = ("qw", "charge", "q")
_COEFF = re.compile(r"^A[0-9]$")


@dataclass(frozen=True)
class GenBinning:
    """The roles of the generator axes (indices into ``axes``): ``charge`` and ``helicity``
    (None: absent), ``ul`` the index of the term ``UL`` on the helicity axis, ``coefficients``
    (name, index) of its ``A0``..``A7`` terms, ``kinematic`` the continuous axes."""

    axes: tuple[Axis, ...]
    charge: int | None
    helicity: int | None
    ul: int | None
    coefficients: tuple[tuple[str, int], ...]
    kinematic: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    def charges(self) -> list[tuple[str, int | None]]:
        """(key, index on the charge axis): ``minus``/``plus`` for the categories -1/+1, the
        category itself otherwise; ``[("all", None)]`` without a charge axis."""
        if self.charge is None:
            return [("all", None)]
        out: list[tuple[str, int | None]] = []
        for i, c in enumerate(self.axes[self.charge].categories or []):
            key = str(c)
            if isinstance(c, int | float) and not isinstance(c, bool):
                key = "plus" if c > 0 else "minus" if c < 0 else f"q{c}"
            out.append((key if key not in {k for k, _ in out} else f"{key}_{i}", i))
        return out


def generator_binning(axes: Sequence[Axis]) -> GenBinning | None:
    """The roles of the generator ``axes`` (``metadata.theory.generator_axes``); None when
    nothing can be projected (no continuous axis, or a helicity axis without ``UL``)."""
    axes = tuple(axes)
    cat = [i for i, a in enumerate(axes) if not a.is_continuous]
    charge = next((i for i in cat if axes[i].name.lower() in _CHARGE_NAMES), None)
    helicity = next(
        (
            i
            for i in cat
            if axes[i].name.lower() == "helicity" or "UL" in [str(c) for c in axes[i].categories]
        ),
        None,
    )
    ul, coeffs = None, ()
    if helicity is not None:
        terms = [str(c) for c in axes[helicity].categories or []]
        ul = terms.index("UL") if "UL" in terms else None
        coeffs = tuple((t, j) for j, t in enumerate(terms) if _COEFF.match(t))
    kinematic = tuple(i for i, a in enumerate(axes) if a.is_continuous)
    if not kinematic or (helicity is not None and ul is None):
        return None
    return GenBinning(axes, charge, helicity, ul, coeffs, kinematic)


@dataclass(frozen=True)
class Distribution:
    """One projection of one charge on one axis (n bins): ``values``, ``uncertainties`` (n,)
    (pb per bin for ``sigma``, dimensionless for ``A0``..``A7``; NaN where sigma_UL = 0) and
    the ``correlation`` (n, n) of its bins (0 in the rows of a bin without uncertainty)."""

    charge: str
    quantity: str
    axis: Axis
    values: np.ndarray
    uncertainties: np.ndarray
    correlation: np.ndarray

    @property
    def key(self) -> str:
        """``<quantity>_<axis name>``, e.g. ``sigma_ptW``, ``A4_absYW``."""
        return f"{self.quantity}_{self.axis.name}"

    @property
    def unit(self) -> str:
        """``pb`` (per bin) for the cross section, empty for a coefficient."""
        return "pb" if self.quantity == "sigma" else ""


@dataclass(frozen=True)
class Projection:
    """Every projection of the grid at one theta: ``distributions[charge][key]``; ``values``
    (n_out,) of all of them in one vector, ``jacobian`` (n_out, n_theory) d values / d theta of
    the theory nuisances (th_param order), ``covariance`` (n_out, n_out) = J C J^T."""

    distributions: dict[str, dict[str, Distribution]]
    values: np.ndarray
    jacobian: np.ndarray
    covariance: np.ndarray


@dataclass(frozen=True)
class _Layout:
    """The projections as arrays: sums S = ``proj`` @ sigma (n_sums, n_gen), output r is
    S[num[r]], divided by S[den[r]] where ``ratio[r]``; ``blocks``: (charge, quantity, axis
    index, first output row)."""

    proj: np.ndarray
    num: np.ndarray
    den: np.ndarray
    ratio: np.ndarray
    blocks: tuple[tuple[str, str, int, int], ...]


def _layout(b: GenBinning) -> _Layout:
    idx = np.indices(b.shape).reshape(len(b.shape), -1)  # per generator bin, its index per axis
    rows: list[np.ndarray] = []
    num: list[int] = []
    den: list[int] = []
    ratio: list[bool] = []
    blocks: list[tuple[str, str, int, int]] = []
    terms: list[tuple[str, int | None]] = [("sigma", b.ul)] + list(b.coefficients)
    for key, qi in b.charges():
        base = np.ones(idx.shape[1], dtype=bool) if qi is None else idx[b.charge] == qi
        for k in b.kinematic:
            n = b.axes[k].size
            first: dict[str, int] = {}
            for name, h in terms:
                sel = base if h is None else base & (idx[b.helicity] == h)
                first[name] = len(rows)
                rows.extend(sel & (idx[k] == j) for j in range(n))
            for name, _ in terms:
                blocks.append((key, name, k, len(num)))
                num.extend(range(first[name], first[name] + n))
                den.extend(range(first["sigma"], first["sigma"] + n))
                ratio.extend([name != "sigma"] * n)
    return _Layout(
        proj=np.array(rows, dtype=np.float64).reshape(len(rows), idx.shape[1]),
        num=np.array(num, dtype=np.int64),
        den=np.array(den, dtype=np.int64),
        ratio=np.array(ratio, dtype=bool),
        blocks=tuple(blocks),
    )


@jax.jit
def _values_and_jacobian(theta_th, th_arrays, proj, num, den, ratio):
    """(y (n_out,), dy/dtheta (n_out, n_theory), the denominators (n_out,)) at ``theta_th``."""

    def denominators(t):
        s = proj @ sigma_of(t, *th_arrays)
        return s, jnp.where(ratio, s[den], 1.0)

    def y(t):
        s, d = denominators(t)
        return s[num] / jnp.where(d != 0.0, d, 1.0)

    return y(theta_th), jax.jacfwd(y)(theta_th), denominators(theta_th)[1]


def _theory_arrays(model: Model) -> tuple[Any, ...]:
    ar = model.arrays
    return tuple(ar[k] for k in ("th_central", "th_dA", "th_dH", "th_mA", "th_mH", "th_ps"))


def theory_covariance(model: Model, covariance: Any) -> np.ndarray:
    """The theory nuisances' block of ``covariance``, (n_theory, n_theory) in th_param order:
    from a full (n_params, n_params) matrix, or the block itself."""
    c = np.asarray(covariance, dtype=np.float64)
    th = np.asarray(model.arrays["th_param"], dtype=np.int64)
    if c.shape == (model.n_params, model.n_params):
        return c[np.ix_(th, th)]
    if c.shape == (th.size, th.size):
        return c
    raise RefitError(
        f"covariance of shape {c.shape}: expected ({model.n_params}, {model.n_params}) or the "
        f"theory nuisances' block ({th.size}, {th.size})"
    )


def prior_covariance(model: Model) -> np.ndarray:
    """The prefit covariance of the theory nuisances, (n_theory, n_theory) in th_param order:
    1 on the diagonal of a constrained one, 0 for an unconstrained one (as the HEPData
    export's prefit bands)."""
    th = np.asarray(model.arrays["th_param"], dtype=np.int64)
    return np.diag(model.constrained[th].astype(np.float64))


def project(model: Model, axes: Sequence[Axis], theta: Any, covariance: Any) -> Projection:
    """The generator-level distributions (module docstring) of ``model``'s grid at ``theta``
    (n_params,), with uncertainties from ``covariance`` ((n_params, n_params), or its theory
    block, see :func:`theory_covariance`); ``axes``: the archive's generator axes
    (``metadata.theory.generator_axes``). Pure: reads nothing, changes nothing."""
    if model.theory is None:
        raise RefitError("the model has no folded signal: there is no theory grid to project")
    binning = generator_binning(axes)
    n_gen = int(np.asarray(model.arrays["th_central"]).size)
    if binning is None or int(np.prod(binning.shape)) != n_gen:
        raise RefitError(
            f"the generator axes ({' x '.join(f'{a.name}[{a.size}]' for a in axes)}) do not "
            f"give generator-level distributions of a grid of {n_gen} bins"
        )
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    if theta.size != model.n_params:
        raise RefitError(f"theta has {theta.size} values; the model has {model.n_params}")
    lay = _layout(binning)
    th = np.asarray(model.arrays["th_param"], dtype=np.int64)
    y, jac, d = _values_and_jacobian(
        jnp.asarray(theta[th]),
        _theory_arrays(model),
        jnp.asarray(lay.proj),
        jnp.asarray(lay.num),
        jnp.asarray(lay.den),
        jnp.asarray(lay.ratio),
    )
    y, jac = np.array(y), np.array(jac).reshape(y.size, th.size)
    undefined = np.asarray(d) == 0.0
    y[undefined], jac[undefined] = np.nan, np.nan
    cov = jac @ theory_covariance(model, covariance) @ jac.T
    dists: dict[str, dict[str, Distribution]] = {}
    for charge, quantity, k, r0 in lay.blocks:
        sl = slice(r0, r0 + binning.axes[k].size)
        c = cov[sl, sl]
        s = np.sqrt(np.clip(np.diag(c), 0.0, None))
        inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
        dist = Distribution(charge, quantity, binning.axes[k], y[sl], s, c * np.outer(inv, inv))
        dists.setdefault(charge, {})[dist.key] = dist
    return Projection(dists, y, jac, cov)


def _floats(x: np.ndarray) -> list:
    """A JSON-ready (nested) list, None where not finite."""
    return [_floats(v) if np.ndim(v) else (float(v) if np.isfinite(v) else None) for v in x]


def generator_level(model: Model, axes: Sequence[Axis], fit: FitResult) -> GeneratorLevel | None:
    """Prefit and postfit generator-level distributions of the fit ``fit`` of ``model`` for the
    result's schema; None without a folded signal, without the fit's full covariance
    (``covariance="pois"``) or when the generator axes give no distribution."""
    if model.theory is None or fit.covariance is None or generator_binning(axes) is None:
        return None
    theta = np.array([p.value for p in fit.parameters])
    pre = project(model, axes, np.zeros(model.n_params), prior_covariance(model))
    post = project(model, axes, theta, fit.covariance)
    charges: dict[str, dict[str, GenDistribution]] = {}
    for charge, by_key in post.distributions.items():
        for key, q in by_key.items():
            p, a = pre.distributions[charge][key], q.axis
            charges.setdefault(charge, {})[key] = GenDistribution(
                quantity=q.quantity,
                unit=q.unit,
                axis=GenAxisOut(
                    name=a.name,
                    label=AXIS_LABELS.get(a.name, a.label or a.name),
                    unit=a.unit,
                    edges=[float(e) for e in a.bin_edges()],
                ),
                prefit=_floats(p.values),
                prefit_unc=_floats(p.uncertainties),
                postfit=_floats(q.values),
                postfit_unc=_floats(q.uncertainties),
                postfit_correlation=_floats(q.correlation),
            )
    binning = generator_binning(axes)
    return GeneratorLevel(
        charge_axis=None if binning.charge is None else binning.axes[binning.charge].name,
        helicity_axis=None if binning.helicity is None else binning.axes[binning.helicity].name,
        n_theory_nuisances=int(np.asarray(model.arrays["th_param"]).size),
        charges=charges,
    )
