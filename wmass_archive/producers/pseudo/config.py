"""Configuration of the pseudo-analysis: what :func:`.build.build_pseudo_analysis` simulates.

Everything that changes the archive is in :class:`PseudoAnalysisConfig`, and the archive's
provenance records it (as JSON), so that ``wmass-archive build-demo`` with the same
configuration and seed rebuilds identical datasets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...theory.params import TheoryParameters
from .detector import DetectorModel
from .efficiency import EfficiencyUncertainties
from .signal import SignalConfig


class PDFChoice(BaseModel):
    """A PDF set the archive carries, with the analysis' scale factor for its uncertainty.

    ``uncertainty``: ``"own"`` uses the set's members (Hessian pairs or replicas);
    ``"borrow"`` is for a central-only set: its uncertainty is the nominal set's, applied as
    relative shifts (member k = central x nominal_k / nominal_0), stated in the archive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lhapdf_name: str
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="short name in the archive")
    aliases: list[str] = Field(default_factory=list)
    scale: float = Field(1.0, gt=0)
    uncertainty: Literal["own", "borrow"] = "own"


def _default_pdfs() -> list[PDFChoice]:
    return [
        PDFChoice(lhapdf_name="CT10nlo", name="CT10nlo", aliases=["CT10", "CT10NLO"], scale=1.0),
        PDFChoice(
            lhapdf_name="NNPDF23_lo_as_0119_qed",
            name="NNPDF23",
            aliases=["NNPDF2.3", "NNPDF23lo", "NNPDF23_lo"],
            scale=3.0,
        ),
        PDFChoice(
            lhapdf_name="NNPDF31_nnlo_as_0118_mc",
            name="NNPDF31",
            aliases=["NNPDF3.1", "NNPDF31nnlo", "NNPDF31_nnlo"],
            scale=3.0,
            uncertainty="borrow",
        ),
    ]


def _default_backgrounds() -> dict[str, int]:
    return {
        "Zmumu": 4_000_000,
        "Wtaunu": 2_000_000,
        "Ztautau": 500_000,
        "Top": 500_000,
        "Diboson": 200_000,
        "Nonprompt": 2_000_000,
    }


class PseudoAnalysisConfig(BaseModel):
    """The pseudo-analysis, from the PDF sets to the pseudo-data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(20241217, ge=0, description="master seed (events, pseudo-data, blinding)")
    signal_events: int = Field(100_000_000, ge=1000, description="simulated W -> mu nu events")
    background_events: dict[str, int] = Field(default_factory=_default_backgrounds)
    luminosity_pb: float = Field(16_800.0, gt=0, description="integrated luminosity (pb^-1)")
    nominal_pdf: str = Field("CT10nlo", description="short name of the nominal PDF set")
    pdf_sets: list[PDFChoice] = Field(default_factory=_default_pdfs, min_length=1)
    replica_variance: float = Field(0.99, gt=0, le=1, description="replica variance kept")
    true_shift_max_mev: float = Field(
        30.0, ge=0, description="the hidden true mW is mW_ref + U(-x, x) MeV"
    )
    blinding_max_mev: float = Field(50.0, ge=0, description="blinding offset U(-x, x) MeV")
    quantize_float32: bool = Field(
        True,
        description="round response tensors and logk to float32 precision (6e-8 relative, far "
        "below the MC precision) so that they compress",
    )
    fake_stat_params: int = Field(3, ge=0, le=6, description="nonprompt stat params per row")
    fake_stat_size: float = Field(0.03, ge=0, description="leading nonprompt stat variation")
    lumi_uncertainty: float = Field(0.012, ge=0, description="relative (CMS 2016: 1.2%)")
    theory: TheoryParameters = Field(default_factory=TheoryParameters)
    detector: DetectorModel = Field(default_factory=DetectorModel)
    signal: SignalConfig = Field(default_factory=SignalConfig)
    efficiency: EfficiencyUncertainties = Field(default_factory=EfficiencyUncertainties)
    chunk_size: int = Field(2_000_000, ge=1000)

    def pdf(self, name: str) -> PDFChoice:
        for p in self.pdf_sets:
            if p.name == name:
                return p
        raise KeyError(f"no PDF set named {name!r} in the configuration")


#: sizes offered by ``wmass-archive build-demo --events``: the default archive and a small
#: one for tests
TEST_CONFIG = dict(
    signal_events=400_000,
    background_events={
        "Zmumu": 40_000,
        "Wtaunu": 20_000,
        "Ztautau": 10_000,
        "Top": 10_000,
        "Diboson": 5_000,
        "Nonprompt": 20_000,
    },
    chunk_size=200_000,
)
