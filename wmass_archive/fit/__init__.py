"""Fitting an archive's likelihood in JAX (float64): a fast Newton/trust-region minimiser with
the exact structured Hessian, an iminuit validation path, covariance, nominal and global impacts,
saturated goodness of fit, likelihood scans and intervals, Asimov data and toys.

    >>> from wmass_archive.fit import fit
    >>> result = fit("demo.h5", poi="mw-charge")
    >>> result.poi("mW_plus").physical_value
"""

from __future__ import annotations

from ..jax_config import enable_compilation_cache
from .api import FitError, fit, theta_vector
from .hypotest import (
    AsymptoticCalculator,
    HypotestError,
    HypotestResult,
    UpperLimit,
    hypotest,
    upper_limit,
)
from .impacts import global_impacts, nominal_impacts
from .likelihood import Observation, observation
from .minimize import MinimizeInfo, minimize_newton
from .result import (
    FitResult,
    GoodnessOfFit,
    ImpactTable,
    ParameterResult,
    POIResult,
    ScanResult,
    Timing,
    Versions,
)
from .scan import profile_interval, scan
from .toys import ToysResult, asimov, run_toys, toy

__all__ = [
    "AsymptoticCalculator",
    "HypotestError",
    "HypotestResult",
    "UpperLimit",
    "hypotest",
    "upper_limit",
    "FitError",
    "FitResult",
    "GoodnessOfFit",
    "ImpactTable",
    "MinimizeInfo",
    "Observation",
    "ParameterResult",
    "POIResult",
    "ScanResult",
    "Timing",
    "Versions",
    "asimov",
    "enable_compilation_cache",
    "fit",
    "global_impacts",
    "minimize_newton",
    "nominal_impacts",
    "observation",
    "profile_interval",
    "scan",
    "theta_vector",
    "toy",
    "run_toys",
    "ToysResult",
]
