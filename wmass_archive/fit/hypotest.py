"""Hypothesis tests and upper limits with the profile-likelihood test statistics of
Cowan, Cranmer, Gross and Vitells (arXiv:1007.1727), as pyhf and Combine define them.

    >>> from wmass_archive.fit import hypotest, upper_limit
    >>> r = hypotest("imported.h5", 1.0)                  # q~mu, asymptotic CLs of mu = 1
    >>> r.cls_obs, r.cls_exp                               # observed, expected (-2..+2 sigma)
    >>> ul = upper_limit("imported.h5", cl=0.95)           # 95 % CL upper limit on mu
    >>> ul.observed, ul.expected

The POI's value ``mu`` is in its physical units (a signal strength for a rate POI). With
``t(mu) = max(0, 2 (nll(mu, theta_hathat) - nll(mu_hat, theta_hat)))``, both fits within the
parameters' bounds:

* ``q`` (``q_mu``): t(mu), 0 where mu_hat > mu;
* ``qtilde`` (``q~_mu``): the same with the POI bounded below at 0 (mu_hat >= 0): where the
  POI's lower bound is below 0 (or absent) it is raised to 0 for the test;
* ``q0`` (discovery): t(0), 0 where mu_hat < 0; ``mu`` is 0 whatever is asked.

Asymptotic distributions (pyhf's ``AsymptoticCalculator``): the Asimov data set is the
expected data of the fit to the observed data with the POI fixed at 0 (1 for ``q0``), its
global observables at the fitted values (the Barlow-Beeston ones included); q_A is the test
statistic on it. In the space of ``sqrt(q)``: ``t = sqrt(q) - sqrt(q_A)`` (``q``, ``q0``, and
``qtilde`` where ``q <= q_A``; ``(q - q_A) / (2 sqrt(q_A))`` otherwise for ``qtilde``),
``CLs+b = Phi(-(t + sqrt(q_A)))``, ``CLb = Phi(-t)``, ``CLs = CLs+b / CLb``. Expected values at
``t = n`` for n = 2, 1, 0, -1, -2, which are the -2 .. +2 sigma bands of CLs. For ``q0`` the
result's ``cls_obs`` is p0 = CLs+b (as pyhf returns it) and ``significance`` is
``Phi^-1(1 - p0)``.

Toys (:func:`toy_hypotest`): q is computed on pseudo-experiments generated at the fitted
nuisance parameters of the fixed-POI fits to the data (at mu for s+b, at 0 for b), every
global observable randomised; ``CLs+b`` and ``CLb`` are the fractions of toys with q at least
the observed one, the expected ones at the b-only toys' quantiles (pyhf's ``ToyCalculator``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from scipy.optimize import toms748
from scipy.special import ndtr, ndtri  # the normal cdf and its inverse, without scipy.stats

from ..errors import ArchiveError
from ..hypotests import TEST_STATS, HypotestResult, UpperLimit
from ..model.build import Model
from .likelihood import Observation
from .likelihood import observation as make_observation
from .minimize import minimize_newton

#: the test statistic's values at which the expected band is taken: -2 .. +2 sigma of CLs
EXPECTED_NSIGMA = (2.0, 1.0, 0.0, -1.0, -2.0)


class HypotestError(ArchiveError):
    """A hypothesis test or limit cannot be computed (the message says why)."""


def _phi(x: float) -> float:
    return float(ndtr(x))


def cls_from_q(q: float, q_a: float, test_stat: str) -> tuple[float, float, float, list, list]:
    """(CLs+b, CLb, CLs, expected CLs+b, expected CLs) from the observed and Asimov test
    statistics (asymptotic formulae; see the module docstring). Pure; the expected lists follow
    :data:`EXPECTED_NSIGMA`."""
    sq, sqa = math.sqrt(max(q, 0.0)), math.sqrt(max(q_a, 0.0))
    if test_stat == "qtilde" and sq > sqa:
        t = (q - q_a) / (2.0 * sqa)
    else:
        t = sq - sqa
    clsb, clb = _phi(-(t + sqa)), _phi(-t)
    exp_sb = [_phi(-(n + sqa)) for n in EXPECTED_NSIGMA]
    exp_cls = [_phi(-(n + sqa)) / _phi(-n) for n in EXPECTED_NSIGMA]
    return clsb, clb, clsb / clb, exp_sb, exp_cls


class _Fits:
    """Fits of one observation: the free fit (cached) and fixed-POI fits (cached by value)."""

    def __init__(self, calc: AsymptoticCalculator, obs: Observation, start: np.ndarray):
        self.calc, self.obs = calc, obs
        self.fixed_cache: dict[float, tuple[float, np.ndarray]] = {}
        self.theta_hat, self.nll_hat = calc._minimize(obs, start, calc.free)

    def fixed(self, theta_poi: float) -> tuple[float, np.ndarray]:
        """(nll, theta) with the POI fixed at ``theta_poi``."""
        key = float(theta_poi)
        if key not in self.fixed_cache:
            c = self.calc
            start = self.theta_hat.copy()
            start[c.poi] = key
            free = c.free.copy()
            free[c.poi] = False
            self.fixed_cache[key] = c._minimize(self.obs, start, free)[::-1]
        return self.fixed_cache[key]

    def q(self, theta_poi: float) -> float:
        """The test statistic at the POI value ``theta_poi``."""
        c = self.calc
        mu_hat = self.theta_hat[c.poi]
        if c.test_stat == "q0":
            if mu_hat < theta_poi:
                return 0.0
        elif mu_hat > theta_poi:
            return 0.0
        nll_mu, _ = self.fixed(theta_poi)
        return max(0.0, 2.0 * (nll_mu - self.nll_hat))


class AsymptoticCalculator:
    """Asymptotic CLs for one model, observation and POI: the fits to the data and to the
    Asimov data set are made once and reused for every tested value (so that an upper limit
    costs two fixed-POI fits per value tried).

    ``model``: a built :class:`Model` (bounds included: :meth:`Model.with_bounds`); ``obs``:
    the observation (default the model's data); ``poi``: the POI's name (default the first);
    ``freeze``: parameter names or patterns held at 0; ``opts``: options of the minimiser
    (``edm_tol``, ``max_iter``)."""

    def __init__(
        self,
        model: Model,
        obs: Observation | None = None,
        *,
        poi: str | None = None,
        test_stat: str = "qtilde",
        freeze: Sequence[str] | str | None = None,
        **opts: Any,
    ):
        if test_stat not in TEST_STATS:
            raise HypotestError(
                f"unknown test statistic '{test_stat}' (choose {', '.join(TEST_STATS)})"
            )
        self.model, self.test_stat, self.opts = model, test_stat, opts
        self.poi_info = _rate_like_poi(model, poi)
        self.poi = model.index(self.poi_info.name)
        self.free = model.free_mask(freeze)
        if not self.free[self.poi]:
            raise HypotestError(f"the POI '{self.poi_info.name}' is frozen")
        self.bounds = model.bounds
        zero = self.poi_info.theta_of(0.0)
        lo, hi = self.bounds[self.poi]
        if test_stat == "qtilde" and not lo >= zero:
            self.bounds[self.poi, 0] = zero  # q~: mu_hat >= 0
        if not self.bounds[self.poi, 0] < hi:
            raise HypotestError(
                f"the POI '{self.poi_info.name}''s range excludes its positive values"
            )
        self.n_fits = 0
        obs = obs if obs is not None else make_observation(model.data, model.n_params)
        start = np.clip(np.zeros(model.n_params), self.bounds[:, 0], self.bounds[:, 1])
        self.data = _Fits(self, obs, start)
        # the Asimov data set: the data fitted with the POI at 0 (q0: at 1)
        mu_a = self.poi_info.theta_of(1.0 if test_stat == "q0" else 0.0)
        _, theta_a = self.data.fixed(mu_a)
        self.asimov = _Fits(self, asimov_observation(model, theta_a, obs), theta_a)

    # -------------------------------------------------------------------------- fits
    def _minimize(self, obs: Observation, start: np.ndarray, free: np.ndarray):
        out = minimize_newton(self.model, obs, start, free, bounds=self.bounds, **self.opts)
        self.n_fits += 1
        if not out.info.converged:
            raise HypotestError(
                f"a fit of the hypothesis test did not converge ({out.info.status}): "
                f"{out.info.message}"
            )
        return out.theta, out.info.nll

    def theta_of(self, mu: float) -> float:
        return self.poi_info.theta_of(float(mu))

    @property
    def mu_hat(self) -> float:
        """The POI's best fit to the data (within the test's bounds), physical units."""
        return self.poi_info.physical(float(self.data.theta_hat[self.poi]))

    # -------------------------------------------------------------------------- tests
    def q_values(self, mu: float) -> tuple[float, float]:
        """(q on the data, q on the Asimov data) at ``mu`` (physical)."""
        th = self.theta_of(0.0 if self.test_stat == "q0" else mu)
        return self.data.q(th), self.asimov.q(th)

    def _expected_k(self, mu: float, k: int) -> float:
        return self.expected_cls(mu)[k]

    def expected_cls(self, mu: float) -> list[float]:
        """The five expected CLs at ``mu`` (only the Asimov fits are needed)."""
        th = self.theta_of(mu)
        return cls_from_q(0.0, self.asimov.q(th), self.test_stat)[4]

    def hypotest(self, mu: float) -> HypotestResult:
        """The test of the POI = ``mu`` (physical units; q0: 0)."""
        mu = 0.0 if self.test_stat == "q0" else mu
        q, q_a = self.q_values(mu)
        return self._result(mu, q, q_a, *cls_from_q(q, q_a, self.test_stat))

    def toy_generation_points(self, mu: float) -> tuple[np.ndarray, np.ndarray]:
        """(theta of the s+b toys, theta of the b-only toys): the fits to the data with the
        POI fixed at ``mu`` and at 0 (q0: at 0 and at 1)."""
        if self.test_stat == "q0":
            mu, mu_b = 0.0, 1.0
        else:
            mu_b = 0.0
        return self.data.fixed(self.theta_of(mu))[1], self.data.fixed(self.theta_of(mu_b))[1]

    def toy_result(self, mu: float, q_sb: np.ndarray, q_b: np.ndarray) -> HypotestResult:
        """The toy-based test at ``mu`` from the toys' test statistics (see
        :func:`toy_test_statistics`, generated at :meth:`toy_generation_points`)."""
        mu = 0.0 if self.test_stat == "q0" else mu
        q, q_a = self.q_values(mu)
        n = int(min(np.isfinite(q_sb).sum(), np.isfinite(q_b).sum()))
        return self._result(mu, q, q_a, *cls_from_toys(q, q_sb, q_b), n_toys=n)

    def _result(self, mu, q, q_a, clsb, clb, cls, exp_sb, exp_cls, n_toys=None):
        """The result of a test from its p-values; q0 reports p0 = CLs+b and its band."""
        is_q0 = self.test_stat == "q0"
        return HypotestResult(
            poi=self.poi_info.name,
            value=float(mu),
            test_statistic=self.test_stat,  # type: ignore[arg-type]
            cls_obs=clsb if is_q0 else cls,
            cls_exp=exp_sb if is_q0 else exp_cls,
            clsb=clsb,
            clb=clb,
            q_obs=q,
            q_asimov=q_a,
            mu_hat=self.mu_hat,
            significance=float(-ndtri(clsb)) if is_q0 and clsb > 0 else None,
            calculator="asymptotic" if n_toys is None else "toys",
            n_toys=n_toys,
        )

    def upper_limit(self, cl: float = 0.95, *, xtol: float = 1e-10, rtol: float = 1e-9):
        """The observed and expected upper limits at ``cl`` (CLs = 1 - cl), by root finding
        (TOMS 748) on a bracket grown from the POI's range as pyhf does."""
        if self.test_stat == "q0":
            raise HypotestError("an upper limit needs q or qtilde, not q0 (a discovery test)")
        if not 0.0 < cl < 1.0:
            raise HypotestError(f"the confidence level must be in (0, 1), got {cl:g}")
        level = 1.0 - cl
        curves: list[Callable[[float], float]] = [lambda mu: self.hypotest(mu).cls_obs]
        curves += [partial(self._expected_k, k=k) for k in range(5)]
        lo_b, hi_b = self.bounds[self.poi]
        low = max(0.0, self.poi_info.physical(float(lo_b)))
        high = self.poi_info.physical(float(hi_b)) if np.isfinite(hi_b) else 1.0
        high = high if high > low else low + 1.0
        ends = []
        for f in curves:
            lo, hi = low, high
            for _ in range(60):
                if f(hi) <= level:
                    break
                lo, hi = hi, 2.0 * hi if hi > 0 else 1.0
            else:
                raise HypotestError(f"no upper limit below {hi:g}: CLs stays above {level:g}")
            if f(lo) < level:
                for _ in range(60):
                    lo = lo / 2.0
                    if f(lo) >= level or lo < 1e-12:
                        break
                if f(lo) < level:
                    raise HypotestError(
                        f"CLs is below {level:g} already at {lo:g}: the data exclude every "
                        "signal strength the test allows"
                    )
            ends.append(float(toms748(_minus, lo, hi, args=(f, level), xtol=xtol, rtol=rtol)))
        return UpperLimit(
            poi=self.poi_info.name,
            cl=cl,
            observed=ends[0],
            expected=ends[1:],
            test_statistic=self.test_stat,  # type: ignore[arg-type]
            n_evaluations=self.n_fits,
        )


def toy_test_statistics(
    model: Model,
    theta_gen: np.ndarray,
    mu: float,
    n_toys: int,
    seed: int,
    *,
    poi: str | None = None,
    test_stat: str = "qtilde",
    bounds: np.ndarray | None = None,
    free: np.ndarray | None = None,
    **opts: Any,
) -> np.ndarray:
    """The test statistic at ``mu`` (physical) on ``n_toys`` pseudo-experiments generated at
    ``theta_gen`` (toy i: seed ``seed + i``, data and every global observable randomised, as
    :func:`~wmass_archive.fit.toys.toy`), each fitted free and with the POI fixed within
    ``bounds`` (default the model's; q~: the POI's lower bound at 0). NaN where a fit fails."""
    from .toys import toy

    p = _rate_like_poi(model, poi)
    i = model.index(p.name)
    b = model.bounds if bounds is None else np.array(bounds, dtype=np.float64)
    if test_stat == "qtilde" and not b[i, 0] >= p.theta_of(0.0):
        b[i, 0] = p.theta_of(0.0)
    free_all = np.ones(model.n_params, bool) if free is None else np.asarray(free, bool)
    fixed = free_all.copy()
    fixed[i] = False
    th_mu = p.theta_of(0.0 if test_stat == "q0" else float(mu))
    out = np.full(n_toys, np.nan)
    for k in range(n_toys):
        obs = toy(model, seed + k, theta_gen)
        start = np.clip(theta_gen, b[:, 0], b[:, 1])
        hat = minimize_newton(model, obs, start, free_all, bounds=b, **opts)
        s = hat.theta.copy()
        s[i] = th_mu
        mu_fit = minimize_newton(model, obs, s, fixed, bounds=b, **opts)
        if not (hat.info.converged and mu_fit.info.converged):
            continue
        mu_hat = hat.theta[i]
        if (test_stat == "q0" and mu_hat < th_mu) or (test_stat != "q0" and mu_hat > th_mu):
            out[k] = 0.0
        else:
            out[k] = max(0.0, 2.0 * (mu_fit.info.nll - hat.info.nll))
    return out


#: percentiles of the b-only toys' CLs values for the -2 .. +2 sigma expected band
TOY_PERCENTILES = tuple(100.0 * float(ndtr(n)) for n in (-2.0, -1.0, 0.0, 1.0, 2.0))


def cls_from_toys(q_obs: float, q_sb: np.ndarray, q_b: np.ndarray):
    """(CLs+b, CLb, CLs, expected CLs+b, expected CLs; both at -2..+2 sigma) from the
    observed test statistic and
    those of the s+b and b-only toys (pyhf's ``ToyCalculator``: tail fractions q >= q_obs; the
    expected band at the percentiles of CLs over the b-only toys taken as observed). Pure."""
    sb = np.sort(np.asarray(q_sb)[np.isfinite(q_sb)])
    bb = np.sort(np.asarray(q_b)[np.isfinite(q_b)])
    if sb.size == 0 or bb.size == 0:
        raise HypotestError("no toy fit converged: no toy-based CLs")

    def tail(sorted_q: np.ndarray, q: np.ndarray) -> np.ndarray:
        return (sorted_q.size - np.searchsorted(sorted_q, q, side="left")) / sorted_q.size

    clsb, clb = float(tail(sb, np.array([q_obs]))[0]), float(tail(bb, np.array([q_obs]))[0])
    sb_b = tail(sb, bb)
    with np.errstate(divide="ignore", invalid="ignore"):
        cls_b = sb_b / tail(bb, bb)
    exp_sb = np.percentile(sb_b, TOY_PERCENTILES).tolist()
    exp = np.percentile(cls_b, TOY_PERCENTILES).tolist()
    return clsb, clb, (clsb / clb if clb > 0 else float("nan")), exp_sb, exp


def _minus(x: float, f: Callable[[float], float], level: float) -> float:
    return f(x) - level


def asimov_observation(model: Model, theta: np.ndarray, like: Observation | None = None):
    """The Asimov observation at ``theta`` with the Barlow-Beeston factors profiled on ``like``
    (the observed data): counts beta nu(theta), global observables theta0 = theta (constrained
    parameters) and beta0 = beta, so that a free fit to it returns theta and beta."""
    from ..jax_config import jnp
    from . import hessian

    th = np.asarray(theta, dtype=np.float64)
    nu = np.asarray(model.expected(th))
    beta = np.ones(model.n_bins)
    if like is not None and model.static.bb != "none":
        beta = np.asarray(hessian.beta_profiled(model.static, model.arrays, jnp.asarray(th), like))
    theta0 = np.where(model.constrained, th, 0.0)
    return Observation(jnp.asarray(beta * nu), jnp.asarray(theta0), jnp.asarray(beta))


def _rate_like_poi(model: Model, poi: str | None):
    """The POI tested: named, or the first; refused when its value 0 is not 'no signal'."""
    pois = {p.name: p for p in model.info.pois}
    if not pois:
        raise HypotestError(f"{model.info.archive} has no POI to test")
    if poi is None:
        p = model.info.pois[0]
    elif poi in pois:
        p = pois[poi]
    else:
        raise HypotestError(
            f"unknown POI '{poi}' for the hypothesis test (the model's: {', '.join(pois)})"
        )
    if p.kind != "rate":
        raise HypotestError(
            f"CLs and upper limits need a rate POI (a signal strength, whose value 0 means no "
            f"signal); '{p.name}' is a {p.kind} POI (give --poi a signal strength)"
        )
    return p


def _calculator(
    model_or_path: Model | str, *, poi, test_stat, bounds, freeze, data, **opts
) -> AsymptoticCalculator:
    from .api import _resolve_model

    given = isinstance(model_or_path, Model)
    model, _ = _resolve_model(model_or_path, None, None, None if given else poi, None)
    model = model.with_bounds(bounds)
    obs = make_observation(data, model.n_params) if data is not None else None
    return AsymptoticCalculator(
        model,
        obs,
        poi=poi if poi in model.poi_names else None,
        test_stat=test_stat,
        freeze=freeze,
        **opts,
    )


def hypotest(
    model_or_path: Model | str,
    mu: float | Sequence[float],
    *,
    poi: str | None = None,
    test_stat: str = "qtilde",
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    freeze: Sequence[str] | str | None = None,
    data: np.ndarray | None = None,
    **opts: Any,
) -> HypotestResult | list[HypotestResult]:
    """Asymptotic hypothesis test(s) of the POI at ``mu`` (physical units; a list gives a
    list). ``poi``: a POI or any parameter of the model (made a POI, see ``build_model``);
    ``bounds``: {name: (low, high)} replacing the archive's; ``data``: counts replacing the
    observed ones. Matches ``pyhf.infer.hypotest(mu, data, model, test_stat=...,
    return_expected_set=True)`` on pyhf's models."""
    calc = _calculator(
        model_or_path,
        poi=poi,
        test_stat=test_stat,
        bounds=bounds,
        freeze=freeze,
        data=data,
        **opts,
    )
    if isinstance(mu, int | float):
        return calc.hypotest(float(mu))
    return [calc.hypotest(float(m)) for m in mu]


def upper_limit(
    model_or_path: Model | str,
    cl: float = 0.95,
    *,
    poi: str | None = None,
    test_stat: str = "qtilde",
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    freeze: Sequence[str] | str | None = None,
    data: np.ndarray | None = None,
    **opts: Any,
) -> UpperLimit:
    """The asymptotic CLs upper limit on the POI at confidence level ``cl``: observed and
    expected (-2..+2 sigma). Matches ``pyhf.infer.intervals.upper_limits.upper_limit``."""
    calc = _calculator(
        model_or_path,
        poi=poi,
        test_stat=test_stat,
        bounds=bounds,
        freeze=freeze,
        data=data,
        **opts,
    )
    return calc.upper_limit(cl)


__all__ = [
    "AsymptoticCalculator",
    "HypotestError",
    "HypotestResult",
    "TEST_STATS",
    "UpperLimit",
    "asimov_observation",
    "cls_from_q",
    "cls_from_toys",
    "toy_test_statistics",
    "hypotest",
    "upper_limit",
]
