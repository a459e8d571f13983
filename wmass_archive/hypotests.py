"""The results of hypothesis tests and upper limits (pydantic models, JSON-ready): shared by
the fitter (:mod:`wmass_archive.fit.hypotest`, which computes them) and the refit result, which
reports them without importing JAX."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TestStat = Literal["qtilde", "q", "q0"]
TEST_STATS: tuple[str, ...] = ("qtilde", "q", "q0")


class HypotestResult(BaseModel):
    """One hypothesis test of ``poi`` = ``value`` (physical units)."""

    model_config = ConfigDict(extra="forbid")

    poi: str
    value: float = Field(description="the tested value of the POI, physical units")
    test_statistic: TestStat
    cls_obs: float = Field(description="observed CLs (q0: the p-value p0)")
    cls_exp: list[float] = Field(
        description="expected CLs (q0: p0) at -2, -1, 0, +1, +2 sigma (pyhf's order)"
    )
    clsb: float = Field(description="observed CLs+b")
    clb: float = Field(description="observed CLb")
    q_obs: float = Field(description="the test statistic on the observed data")
    q_asimov: float = Field(description="the test statistic on the Asimov data set")
    mu_hat: float = Field(description="the POI's best fit (within its bounds), physical units")
    significance: float | None = Field(
        default=None, description="q0: Phi^-1(1 - p0), the observed discovery significance"
    )
    calculator: Literal["asymptotic", "toys"] = "asymptotic"
    n_toys: int | None = None


class UpperLimit(BaseModel):
    """An upper limit on ``poi`` at confidence level ``cl`` (CLs = 1 - cl), physical units."""

    model_config = ConfigDict(extra="forbid")

    poi: str
    cl: float
    observed: float
    expected: list[float] = Field(description="at -2, -1, 0, +1, +2 sigma")
    test_statistic: TestStat = "qtilde"
    calculator: Literal["asymptotic", "toys"] = "asymptotic"
    n_evaluations: int = 0


__all__ = ["TEST_STATS", "HypotestResult", "TestStat", "UpperLimit"]
