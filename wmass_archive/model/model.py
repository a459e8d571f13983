"""The fit model of an archive: :class:`Model` holds the JAX arrays and static structure that
:func:`~wmass_archive.model.build.build_model` makes, with the parameters' names, groups and
bounds, the expected yields as jit-compiled functions of theta, and cheap copies with other
bounds, Barlow-Beeston mode, data or theory (:meth:`Model.with_theory`: another PDF set or
central grid of the same structure, without reading the archive or compiling again)."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any, Literal

import numpy as np

from ..errors import ArchiveError
from ..jax_config import jax, jnp
from ..theory.resolve import ResolvedTheory
from .expected import ModelStatic, expected_bins, expected_slots, log_yields
from .info import ModelInfo
from .structure import SparseLayout
from .theory import TheoryArrays, theory_arrays

__all__ = ["BBMode", "Model", "ModelError"]

BBMode = Literal["gamma", "normal", "none", "combine"]


class ModelError(ArchiveError):
    """The archive cannot be turned into a fit model with the options given."""


class Model:
    """A likelihood model: expected yields as a jit-compiled function of theta.

    Attributes: ``info`` (:class:`ModelInfo`), ``static`` (:class:`ModelStatic`), ``arrays``
    (dict of JAX arrays), ``data`` (observed counts, numpy (n_bins,)), ``layout`` (the Hessian's
    :class:`SparseLayout`), ``theory`` (:class:`TheoryArrays` or None)."""

    def __init__(
        self,
        info: ModelInfo,
        static: ModelStatic,
        arrays: dict[str, Any],
        data: np.ndarray,
        layout: SparseLayout,
        theory: TheoryArrays | None,
        channel_offsets: np.ndarray,
    ):
        self.info = info
        self.static = static
        self.arrays = arrays
        self.data = np.asarray(data, dtype=np.float64)
        self.layout = layout
        self.theory = theory
        self.channel_offsets = channel_offsets
        #: the theory the model was built with (None: an archive without folded process)
        self.resolved: ResolvedTheory | None = None

    # ------------------------------------------------------------------ names
    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.info.parameters]

    @property
    def n_params(self) -> int:
        return self.static.n_params

    @property
    def n_bins(self) -> int:
        return self.static.n_bins

    @property
    def poi_names(self) -> list[str]:
        return [p.name for p in self.info.pois]

    @property
    def n_pois(self) -> int:
        return len(self.info.pois)

    @property
    def constrained(self) -> np.ndarray:
        """Boolean (n_params,): constrained parameters (gaussian, or poisson in format 1.1),
        those with a global observable (constraint centre) theta0."""
        return np.array([p.constraint != "none" for p in self.info.parameters])

    @property
    def poisson_tau(self) -> np.ndarray:
        """(n_params,): tau of the poisson-constrained parameters (format 1.1), 0 elsewhere."""
        if "poisson_tau" not in self.arrays:
            return np.zeros(self.n_params)
        return np.asarray(self.arrays["poisson_tau"])

    @property
    def bounds(self) -> np.ndarray:
        """(n_params, 2): the range of theta allowed in fits (format 1.2 bounds of the archive,
        -inf/+inf where unbounded); a fresh copy (every fit, scan point and toy asks for it:
        the table is built once per ``info``)."""
        cached = getattr(self, "_bounds_of", None)
        if cached is None or cached[0] is not self.info:
            out = np.tile([-np.inf, np.inf], (self.n_params, 1))
            for i, p in enumerate(self.info.parameters):
                if p.bounds is not None:
                    out[i] = p.bounds
            self._bounds_of = (self.info, out)
            cached = self._bounds_of
        return cached[1].copy()

    def with_bounds(self, overrides: Mapping[str, Any] | None) -> Model:
        """A copy (sharing the arrays) whose :attr:`bounds` include ``overrides`` (see
        :meth:`bounds_with`); every fit, scan, interval and toy of the copy respects them."""
        if not overrides:
            return self
        b = self.bounds_with(overrides)
        params = [
            p.model_copy(update={"bounds": _bounds_pair(bi)})
            for p, bi in zip(self.info.parameters, b, strict=True)
        ]
        return self._replace(info=self.info.model_copy(update={"parameters": params}))

    def _replace(self, **changes: Any) -> Model:
        """A copy with some of the constructor's fields (and ``resolved``) replaced."""
        fields = dict(
            info=self.info,
            static=self.static,
            arrays=self.arrays,
            data=self.data,
            layout=self.layout,
            theory=self.theory,
            channel_offsets=self.channel_offsets,
        )
        resolved = changes.pop("resolved", self.resolved)
        fields.update(changes)
        out = Model(**fields)
        out.resolved = resolved
        return out

    def with_theory(self, theory: ResolvedTheory) -> Model | None:
        """This model with another resolved theory (PDF set, scale factor, central grid)
        swapped in without reading the archive or recompiling: possible when the new theory
        has the same nuisance structure (as many additive and multiplicative rows, in the
        same order of kinds: e.g. two Hessian sets of as many eigenvectors, or any scale
        factor or central grid) and folds to the same active bins. None otherwise: build the
        model again (:func:`build_model` with ``theory=``)."""
        old, old_res = self.theory, self.resolved
        if old is None or old_res is None or theory.n_gen != old_res.n_gen:
            return None
        new = theory_arrays(theory)
        kinds = [(n.source, n.interpolation, n.prior_scale) for n in old.nuisances]
        if [(n.source, n.interpolation, n.prior_scale) for n in new.nuisances] != kinds:
            return None
        if new.n_add != old.n_add or new.n_mult != old.n_mult:
            return None
        folds = list(self.arrays["folds"])
        for f, fs in zip(folds, self.static.folds, strict=True):
            nom = float(f["lumi"]) * (np.asarray(f["R"][fs.nominal_point]) @ new.central)
            if not np.array_equal(nom > 0, np.asarray(f["active"])):
                return None
        names = [n.name for n in new.nuisances]
        th_params = np.asarray(self.arrays["th_param"])
        params = list(self.info.parameters)
        s = new.pdf_set
        for j, nm in zip(th_params, names, strict=True):
            p = params[j]
            if p.kind == "pdf":
                params[j] = p.model_copy(update={"name": nm, "groups": [s.group]})
            elif p.name != nm:  # a variation is always the archive's own
                return None
        if len({p.name for p in params}) != len(params):
            return None
        f64 = partial(jnp.asarray, dtype=jnp.float64)
        arrays = dict(
            self.arrays,
            th_central=f64(new.central),
            th_dA=f64(new.dA),
            th_dH=f64(new.dH),
            th_mA=f64(new.mA),
            th_mH=f64(new.mH),
        )
        info = self.info.model_copy(
            update={
                "parameters": params,
                "pdf_set": s.name if s is not None else None,
                "theory_grid": theory.grid_source,
            }
        )
        return self._replace(info=info, arrays=arrays, theory=new, resolved=theory)

    def bounds_with(self, overrides: Mapping[str, Any] | None = None) -> np.ndarray:
        """:attr:`bounds` with ``overrides`` {name: (low, high)}: for a POI in its physical
        units (with the blinding offset the results show), for any other parameter in theta;
        None for a side leaves it unbounded. Raises :class:`ModelError` for an unknown name,
        low >= high or a range that excludes every value."""
        out = self.bounds
        pois = {p.name: p for p in self.info.pois}
        for name, pair in (overrides or {}).items():
            i = self.index(name)
            try:
                lo, hi = (float("-inf") if v is None else float(v) for v in pair)
            except (TypeError, ValueError):
                raise ModelError(f"bounds of '{name}' must be a (low, high) pair") from None
            if not lo < hi or np.isnan(lo) or np.isnan(hi):
                raise ModelError(f"bounds of '{name}': low {lo:g} must be below high {hi:g}")
            if name in pois:
                p = pois[name]
                lo, hi = p.theta_of(lo), p.theta_of(hi)
            tau = float(self.poisson_tau[i])
            if tau > 0 and hi <= -np.sqrt(tau):  # gamma = 1 + theta / sqrt(tau) must be > 0
                raise ModelError(
                    f"bounds of '{name}' exclude every value of its poisson-constrained factor "
                    f"(gamma = 1 + theta / {np.sqrt(tau):.4g} > 0 needs theta > "
                    f"{-np.sqrt(tau):.4g})"
                )
            if name in pois and pois[name].kind == "rate":
                floor = -pois[name].central / pois[name].scale  # physical value 0
                if hi <= floor:
                    raise ModelError(
                        f"bounds of '{name}' exclude every positive value of a rate POI"
                    )
            out[i] = (lo, hi)
        return out

    def index(self, name: str) -> int:
        """Position of a parameter in theta."""
        params = self.info.parameters
        cached = self.__dict__.get("_name_index")
        if cached is None or cached[0] is not params or cached[2] != len(params):
            index: dict[str, int] = {}
            for i, p in enumerate(params):
                index.setdefault(p.name, i)
            cached = self._name_index = (params, index, len(params))
        try:
            return cached[1][name]
        except KeyError:
            raise ModelError(f"no parameter '{name}' in the model") from None

    def groups(self) -> dict[str, list[int]]:
        """Nuisance group -> parameter indices (PDF nuisances in ``pdf<SET>``)."""
        out: dict[str, list[int]] = {}
        for i, p in enumerate(self.info.parameters):
            for g in p.groups:
                out.setdefault(g, []).append(i)
        return out

    def select(self, patterns: Iterable[str] | str | None) -> np.ndarray:
        """Indices of the parameters matching names, group names or glob patterns."""
        if patterns is None:
            return np.zeros(0, dtype=np.int64)
        if isinstance(patterns, str):
            patterns = [patterns]
        names = self.parameter_names
        groups = self.groups()
        out: set[int] = set()
        for pat in patterns:
            if pat in groups:
                out.update(groups[pat])
            elif pat in names:
                out.add(names.index(pat))
            else:
                hit = [i for i, n in enumerate(names) if fnmatch.fnmatchcase(n, pat)]
                if not hit:
                    raise ModelError(f"'{pat}' matches no parameter or group of the model")
                out.update(hit)
        return np.array(sorted(out), dtype=np.int64)

    def free_mask(self, freeze: Iterable[str] | str | None = None) -> np.ndarray:
        """Boolean (n_params,): parameters left free when ``freeze`` are fixed."""
        m = np.ones(self.n_params, dtype=bool)
        m[self.select(freeze)] = False
        return m

    # ------------------------------------------------------------------ yields
    def expected(self, theta: Any = None) -> np.ndarray:
        """Expected yield per bin (channels concatenated) at theta (default all 0), numpy."""
        return np.asarray(_expected_bins(self.static, self.arrays, self._theta(theta)))

    def expected_by_process(self, theta: Any = None) -> np.ndarray:
        """Expected yield per process and bin, (n_processes, n_bins), numpy."""
        nu = _expected_slots(self.static, self.arrays, self._theta(theta))
        return np.asarray(nu).reshape(self.static.n_proc, self.static.n_bins)

    def log_yields(self, theta: Any = None) -> tuple[np.ndarray, np.ndarray]:
        ell, act = _log_yields(self.static, self.arrays, self._theta(theta))
        return np.asarray(ell), np.asarray(act)

    def _theta(self, theta: Any) -> jnp.ndarray:
        if theta is None:
            return jnp.zeros(self.n_params)
        t = jnp.asarray(theta, dtype=jnp.float64)
        if t.shape != (self.n_params,):
            raise ModelError(f"theta must have shape ({self.n_params},), got {t.shape}")
        return t

    def with_options(self, *, bb: BBMode | None = None, data: Any = None) -> Model:
        """A copy with another Barlow-Beeston mode or other observed counts (shares arrays)."""
        static, info = self.static, self.info
        if bb == "combine" and not static.generic:
            raise ModelError(
                "bb='combine' needs the generic model: build_model(archive, bb='combine')"
            )
        if bb is not None:
            static = dataclasses.replace(static, bb=bb)
            info = info.model_copy(update={"bb": bb})
        out = self._replace(info=info, static=static)
        if data is not None:
            d = np.asarray(data, dtype=np.float64)
            if d.shape != (self.n_bins,):
                raise ModelError(f"data must have shape ({self.n_bins},), got {d.shape}")
            out.data = d
        return out

    def __repr__(self) -> str:
        return (
            f"<Model {self.info.archive}: {self.n_bins} bins, {self.n_params} parameters "
            f"({', '.join(self.poi_names)}), PDF {self.info.pdf_set}, BB {self.info.bb}>"
        )


def _bounds_pair(b: np.ndarray) -> tuple[float, float] | None:
    """(low, high) of a row of :attr:`Model.bounds`, None when unbounded on both sides."""
    return None if np.all(np.isinf(b)) else (float(b[0]), float(b[1]))


@partial(jax.jit, static_argnums=0)
def _expected_bins(st, ar, theta):
    return expected_bins(st, ar, theta)


@partial(jax.jit, static_argnums=0)
def _expected_slots(st, ar, theta):
    return expected_slots(st, ar, theta)


@partial(jax.jit, static_argnums=0)
def _log_yields(st, ar, theta):
    return log_yields(st, ar, theta)
