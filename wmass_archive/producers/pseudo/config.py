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
from .nonprompt import FakeUncertaintyConfig
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
        PDFChoice(lhapdf_name="CT10nlo", name="CT10nlo", aliases=["CT10", "CT10NLO"], scale=2.0),
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
    fake_stat_size: float = Field(0.06, ge=0, description="leading nonprompt stat variation")
    free_signal_norm: bool = Field(
        False,
        description="an unconstrained normalisation of the W signal (nuisance normW, group "
        "signalNorm): the data, not the LO-like cross section, fix the W yield",
    )
    lumi_uncertainty: float = Field(0.012, ge=0, description="relative (CMS 2016: 1.2%)")
    theory: TheoryParameters = Field(default_factory=TheoryParameters)
    theory_variation_scale: dict[str, float] = Field(
        default_factory=lambda: {"pTModeling": 3.0, "angularCoeffs": 5.0},
        description="inflation of the theory variations per group, tuned so that the impact "
        "table is CMS-like (the pseudo-analysis' LO-like model has smaller scale variations "
        "than CMS's resummed predictions)",
    )
    calibration_scale: float = Field(
        1.5, gt=0, description="inflation of the detector model's calibration uncertainties"
    )
    detector: DetectorModel = Field(default_factory=DetectorModel)

    def detector_model(self) -> DetectorModel:
        """The detector model with the calibration uncertainties scaled."""
        k = self.calibration_scale
        d = self.detector
        return d.model_copy(
            update={
                f: getattr(d, f) * k
                for f in (
                    "calib_A_sigma",
                    "calib_e_sigma",
                    "calib_M_sigma",
                    "zclosure_sigma",
                    "zclosure_lep_sigma",
                    "pixel_sigma",
                )
            }
        )

    signal: SignalConfig = Field(
        default_factory=lambda: SignalConfig(
            fsr_rate_unc=2e-3, fsr_hardness_unc=1e-3, ew_virtual_unc=1.5e-2
        )
    )
    efficiency: EfficiencyUncertainties = Field(
        default_factory=lambda: EfficiencyUncertainties(
            stat_leading={"tracking": 3e-3, "idip": 4.2e-3, "trigger": 6e-3, "iso": 5.2e-3},
            syst_size={"tracking": 2.7e-3, "idip": 3e-3, "trigger": 4.2e-3, "iso": 3.7e-3},
        )
    )
    fake: FakeUncertaintyConfig = Field(
        default_factory=lambda: FakeUncertaintyConfig(
            norm=0.10, slope=0.20, mt_correlation=0.10, prompt_subtraction=0.10
        )
    )
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
