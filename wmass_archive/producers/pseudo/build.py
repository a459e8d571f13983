"""Build the pseudo-analysis archive: theory grids from real PDFs, event processing, nuisances,
pseudo-data, written with :class:`~wmass_archive.archive.ArchiveWriter`.

This plays the CMS analysis team: it is SYNTHETIC (a fast simulation, not CMS data or CMS
templates), and the archive says so (``synthetic=True``, title and description).

Steps (:func:`build_pseudo_analysis`):

1. theory: the grid of every member of every PDF set (:mod:`wmass_archive.theory`), the
   in-cell densities of the nominal member for the event generation, the pT^W-modelling and
   angular-coefficient variations; the theory parameters the grids were computed with are
   recorded in the archive's metadata (``theory.parameters``, format 1.3);
2. events: W -> mu nu (folded signal: response tensor at mW and mW +- 100 MeV) and the
   backgrounds through the detector model, chunked (:mod:`.processing`), locally or on dask;
3. nuisances: muon calibration and EW (event level), efficiencies (per reco bin), PDFs and
   theory (on the grid), luminosity, background normalisations, nonprompt (Fake);
4. pseudo-data: Poisson counts at a hidden true mW (recorded in the provenance; fit output
   is blinded by the POI's ``blinding_offset``).
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._version import __version__
from ...archive import POI, ArchiveWriter, Axis, Citation, Provenance, WriteReport
from ...archive.models import InputRecord
from ...theory.compute import cell_densities, compute_set_values, open_pdf_set
from ...theory.generator import N_GEN, generator_axes
from ...theory.params import parameters_record
from ...theory.variations import add_variations_to_writer, theory_variations
from .backgrounds import BACKGROUNDS
from .config import PDFChoice, PseudoAnalysisConfig
from .detector import RECO_SHAPE
from .efficiency import N_ETA, N_PT, efficiency_variations, legendre_shapes
from .nonprompt import nonprompt_variations
from .processing import ProcessingConfig, SignalSource, process, process_sample
from .templates import Templates

SIGNAL = "Wmunu"
CHANNEL = "mu"
MW_REF_MEV = 80360.0
#: processes with a prompt muon from simulation: efficiencies and luminosity act on them
PROMPT_MC = (SIGNAL, "Zmumu", "Wtaunu", "Ztautau", "Top", "Diboson")
GROUPS = (
    "muonCalibration",
    "muon_eff_stat",
    "muon_eff_syst",
    "muonEfficiency",
    "angularCoeffs",
    "pTModeling",
    "theory_ew",
    "luminosity",
    "CMS_background",
    "Fake",
    "signalNorm",
)


@dataclass(frozen=True)
class BuildReport:
    """What was built: the write report and the numbers a physicist checks first."""

    write: WriteReport
    n_nuisances: int
    n_bins: int
    selected_signal: float
    selected_total: float
    background_fractions: dict[str, float]
    true_mw_mev: float


def reco_axes() -> list[Axis]:
    """The channel's axes, in the (charge, eta, pt) order of the templates."""
    return [
        Axis.category([-1, 1], name="charge", label="muon charge"),
        Axis.regular(48, -2.4, 2.4, name="eta", label="muon eta"),
        Axis.regular(30, 26.0, 56.0, name="pt", label="muon p_T", unit="GeV"),
    ]


def _f32(a: np.ndarray, on: bool) -> np.ndarray:
    """Round to float32 precision (kept as float64) so that gzip+shuffle compresses."""
    return np.asarray(a, dtype=np.float32).astype(np.float64) if on else np.asarray(a)


def _seed(cfg: PseudoAnalysisConfig, purpose: str) -> int:
    """A seed per purpose, derived from the master seed (stable across versions)."""
    h = hashlib.sha256(f"{cfg.seed}:{purpose}".encode()).digest()
    return int.from_bytes(h[:4], "little")


# --------------------------------------------------------------------------------- theory
def pdf_member_grids(
    cfg: PseudoAnalysisConfig, paths=None, progress: bool = True
) -> dict[str, tuple[np.ndarray, dict]]:
    """Grids (n_members, N_GEN) of every configured PDF set and its writer metadata."""
    out: dict[str, tuple[np.ndarray, dict]] = {}
    nominal = cfg.pdf(cfg.nominal_pdf)
    for choice in sorted(cfg.pdf_sets, key=lambda c: c.uncertainty == "borrow"):
        values, info = compute_set_values(
            choice.lhapdf_name, cfg.theory, paths=paths, progress=progress
        )
        members = values.reshape(values.shape[0], N_GEN)
        meta = dict(
            name=choice.name,
            lhapdf_name=info.name,
            aliases=list(choice.aliases),
            scale=choice.scale,
            description=info.set_desc[:400],
        )
        if choice.uncertainty == "borrow":
            ref, _ = out[nominal.name]
            members = _borrow(members[0], ref)
            meta["error_type"] = "hessian"
            meta["confidence_level"] = _nominal_cl(cfg, paths)
            meta["description"] = (
                f"{info.name} central value; uncertainty borrowed from {nominal.lhapdf_name}: "
                f"member k = central x {nominal.name}_k / {nominal.name}_0 (a central-only set "
                "has no uncertainty of its own). " + meta["description"]
            )[:500]
        else:
            core = info.error_type.split("+")[0]
            meta["error_type"] = {"symmhessian": "symmhessian", "replicas": "replicas"}.get(
                core, "hessian"
            )
            if meta["error_type"] != "replicas":
                meta["confidence_level"] = float(info.error_conf_level)
        out[choice.name] = (members, meta)
    return out


def _borrow(central: np.ndarray, ref: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref[0] > 0, ref / np.where(ref[0] > 0, ref[0], 1.0), 1.0)
    return central[None, :] * ratio


def _nominal_cl(cfg: PseudoAnalysisConfig, paths) -> float:
    info = open_pdf_set(cfg.pdf(cfg.nominal_pdf).lhapdf_name, paths).info
    return float(info.error_conf_level)


# --------------------------------------------------------------------------------- events
def run_events(
    cfg: PseudoAnalysisConfig,
    densities,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> dict[str, Templates]:
    """Templates of the signal and every background (event processing)."""
    out: dict[str, Templates] = {}

    def pc(purpose: str) -> ProcessingConfig:
        return ProcessingConfig(
            chunk_size=cfg.chunk_size,
            seed=_seed(cfg, purpose),
            workers=workers,
            scheduler=scheduler,
            progress=progress,
        )

    det = cfg.detector_model()
    src = SignalSource(densities, cfg.signal_events, cfg.signal)
    out[SIGNAL] = process(src, cfg.luminosity_pb, det, pc("events:" + SIGNAL))
    for name, n in cfg.background_events.items():
        if name not in BACKGROUNDS:
            raise KeyError(f"unknown background {name!r}; known: {', '.join(BACKGROUNDS)}")
        fn = BACKGROUNDS[name].generator
        out[name] = process_sample(fn, cfg.luminosity_pb, n, det, pc("events:" + name))
    return out


# ----------------------------------------------------------------------------- nuisances
def fake_stat_variations(cfg: PseudoAnalysisConfig) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Statistical uncertainty of the nonprompt estimate per (eta bin, charge), smoothed in pT
    (Legendre eigen-variations): (name, flat bins, logk) each."""
    out = []
    if cfg.fake_stat_params == 0:
        return out
    shapes = legendre_shapes(cfg.fake_stat_params)
    for iq, q in enumerate(("minus", "plus")):
        for ieta in range(N_ETA):
            bins = (iq * N_ETA + ieta) * N_PT + np.arange(N_PT)
            for k in range(cfg.fake_stat_params):
                lk = np.log1p(cfg.fake_stat_size * 0.5**k * shapes[k])
                out.append((f"fakeStat_eta{ieta:02d}_{q}_p{k}", bins, lk))
    return out


def mass_interpolated(nu: np.ndarray, theta: float) -> np.ndarray:
    """Yield at mass-POI value theta from yields at theta = -1, 0, +1 (shape (3, ...)), with
    the smooth asymmetric log-normal interpolation of docs/format.md sections 7.3 and 9.2."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where((nu > 0) & (nu[1] > 0), np.log(nu / np.where(nu[1] > 0, nu[1], 1.0)), 0.0)
    avg, half = 0.5 * (r[2] - r[0]), 0.5 * (r[2] + r[0])
    x = 2.0 * theta
    alpha = x * (3 * x**4 - 10 * x**2 + 15) / 8 if abs(theta) < 0.5 else np.sign(theta)
    return nu[1] * np.exp(theta * avg + theta * alpha * half)


# ------------------------------------------------------------------------------- archive
def build_pseudo_analysis(
    path: str | Path,
    config: PseudoAnalysisConfig | None = None,
    *,
    paths=None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    command: str | None = None,
    overwrite: bool = True,
) -> BuildReport:
    """Run the pseudo-analysis and write its archive to ``path``. ``paths``: folders with
    LHAPDF sets (besides LHAPDF_DATA_PATH). Deterministic for a given configuration,
    whatever ``workers`` or ``scheduler``."""
    cfg = config or PseudoAnalysisConfig()
    q32 = cfg.quantize_float32
    nominal_choice: PDFChoice = cfg.pdf(cfg.nominal_pdf)
    pset = open_pdf_set(nominal_choice.lhapdf_name, paths)
    member0 = pset.member(0)
    densities = cell_densities(member0, cfg.theory)
    grid = densities.grid.reshape(N_GEN)
    sets = pdf_member_grids(cfg, paths, progress)
    tvars = [
        v.scaled(densities.grid, cfg.theory_variation_scale.get(v.group, 1.0))
        for v in theory_variations(member0, cfg.theory)
    ]

    tpl = run_events(cfg, densities, workers=workers, scheduler=scheduler, progress=progress)
    sig = tpl[SIGNAL]
    response = _f32(sig.response, q32)
    lumi = cfg.luminosity_pb
    folded = lumi * np.einsum("pbg,g->pb", response, grid)  # (3, n_bins)

    rng = np.random.default_rng(_seed(cfg, "pseudo-data"))
    true_shift = float(np.round(rng.uniform(-1, 1) * cfg.true_shift_max_mev, 3))
    blind = float(np.round(rng.uniform(-1, 1) * cfg.blinding_max_mev, 3))
    true_mw = MW_REF_MEV + true_shift

    yields = {SIGNAL: folded[1]}
    for name in cfg.background_events:
        yields[name] = tpl[name].nominal.reshape(-1)
    truth = dict(yields)
    truth[SIGNAL] = mass_interpolated(folded, true_shift / 100.0)
    # the simulated samples estimate the true expectation with their own statistical
    # uncertainty: the pseudo-data fluctuate around a "true" yield that differs from the
    # templates by that much (so that Barlow-Beeston and the goodness of fit see real data)
    sumw2 = sig.sumw2.reshape(-1) + sum(tpl[n].sumw2.reshape(-1) for n in cfg.background_events)
    expected = sum(truth.values())
    true_yield = np.clip(expected + rng.normal(size=expected.shape) * np.sqrt(sumw2), 0.0, None)
    data = rng.poisson(true_yield).astype(np.float64)

    w = ArchiveWriter(
        title="CMS-like W-mass pseudo-analysis (SYNTHETIC, not CMS data)",
        synthetic=True,
        description=(
            "SYNTHETIC pseudo-analysis built by wmass_archive.producers.pseudo: an event-level "
            "fast simulation of W -> mu nu and its backgrounds with real PDFs (LHAPDF) and a "
            "CMS-like detector model, in CMS's binning (48 eta x 30 pT x 2 charges) and "
            "nuisance families. The pseudo-data are Poisson counts at a hidden true mW. "
            "Its numbers are not a measurement."
        ),
        citation=Citation(
            title="wmass-archive: a reinterpretable W-mass likelihood archive (pseudo-analysis)",
            authors=["wmass-archive developers"],
            note="synthetic pseudo-analysis modelled on CMS, arXiv:2412.13872; cite the "
            "package, not a result",
        ),
        provenance=Provenance(
            producer="wmass_archive.producers.pseudo",
            producer_version=__version__,
            command=command or "wmass-archive build-demo",
            inputs=[
                InputRecord(name=c.lhapdf_name, location="LHAPDF set", description="PDF set")
                for c in cfg.pdf_sets
            ],
            seeds={"master": cfg.seed, "pseudo_data": _seed(cfg, "pseudo-data")},
            software={"python": platform.python_version(), "numpy": np.__version__},
            notes=(
                f"pseudo-data generated at true mW = {true_mw:.3f} MeV (hidden: fit output is "
                f"blinded). Configuration: {cfg.model_dump_json()}"
            ),
        ),
        luminosity=lumi,
    )
    for g in GROUPS:
        w.add_group(g)

    w.set_theory(
        generator_axes(),
        grid,
        nominal_pdf=nominal_choice.name,
        description=(
            f"LO W production with {nominal_choice.lhapdf_name} member 0, resummation-like "
            "pT^W spectrum, LO-like angular coefficients (wmass_archive.theory); sigma x "
            "BR(W -> mu nu) in pb per generator bin"
        ),
        parameters=parameters_record(cfg.theory),  # format 1.3: what computed the grids
    )
    for name, (members, meta) in sets.items():
        if name == nominal_choice.name:
            members = members.copy()
            members[0] = grid
        w.add_pdf_set(members=members, variance_threshold=cfg.replica_variance, **meta)
    add_variations_to_writer(w, tvars)  # declares each nuisance in its group

    w.add_poi(
        POI(
            name="mW",
            kind="mass",
            unit="MeV",
            central=MW_REF_MEV,
            scale=100.0,
            mass_points=[-1.0, 0.0, 1.0],
            label="W boson mass",
            acts_on=[{"process": SIGNAL}],
            blinding_offset=blind,
        )
    )

    w.add_channel(CHANNEL, data.reshape(RECO_SHAPE), axes=reco_axes(), label="muon (q, eta, pT)")
    w.add_process(SIGNAL, label="W -> mu nu", kind="signal", folded=True)
    for name in cfg.background_events:
        w.add_process(name, label=BACKGROUNDS[name].label)
    w.set_yield(SIGNAL, CHANNEL, yields[SIGNAL], sumw2=sig.sumw2.reshape(-1))
    w.set_response(SIGNAL, CHANNEL, response)
    for name in cfg.background_events:
        w.set_yield(name, CHANNEL, yields[name], sumw2=tpl[name].sumw2.reshape(-1))

    # event-level variations (calibration, EW) of every simulated process
    declared: set[str] = set()
    for proc, t in tpl.items():
        for v in t.variations:
            if v.name not in declared:
                w.add_nuisance(v.name, groups=[v.group])
                declared.add(v.name)
            if v.bins.size:
                w.add_variation(
                    v.name,
                    proc,
                    CHANNEL,
                    logk_up=_f32(v.logk_up, q32),
                    logk_down=_f32(v.logk_down, q32),
                    bins=v.bins,
                )
    # efficiencies on every prompt-muon simulated process
    prompt = [p for p in PROMPT_MC if p in yields]
    for v in efficiency_variations(cfg.efficiency):
        w.add_nuisance(v.name, groups=[v.group, "muonEfficiency"])
        for p in prompt:
            ok = yields[p][v.bins] > 0
            if ok.any():
                w.add_variation(
                    v.name,
                    p,
                    CHANNEL,
                    logk_up=_f32(v.logk_up[ok], q32),
                    logk_down=_f32(v.logk_down[ok], q32),
                    bins=v.bins[ok],
                )
    if cfg.free_signal_norm:
        w.add_nuisance("normW", groups=["signalNorm"], constraint="none")
        w.add_variation("normW", SIGNAL, CHANNEL, kappa=1.1)  # theta = 1: +10%
    w.add_nuisance("lumi", groups=["luminosity"])
    for p in prompt:
        w.add_variation("lumi", p, CHANNEL, kappa=1.0 + cfg.lumi_uncertainty)
    for name in cfg.background_events:
        b = BACKGROUNDS[name]
        if b.nuisance is None:
            continue
        if b.nuisance not in declared:
            w.add_nuisance(b.nuisance, groups=[b.group])
            declared.add(b.nuisance)
        w.add_variation(b.nuisance, name, CHANNEL, kappa=b.kappa)
    if "Nonprompt" in yields:
        npr = yields["Nonprompt"]
        for fv in nonprompt_variations(npr.reshape(RECO_SHAPE), cfg.fake):
            w.add_nuisance(fv.name, groups=[fv.group])
            w.add_variation(
                fv.name,
                "Nonprompt",
                CHANNEL,
                up=fv.up.reshape(-1) * npr,
                down=fv.down.reshape(-1) * npr,
            )
        for name, bins, lk in fake_stat_variations(cfg):
            ok = npr[bins] > 0
            w.add_nuisance(name, groups=["Fake"])
            if ok.any():
                w.add_variation(
                    name, "Nonprompt", CHANNEL, logk_up=_f32(lk[ok], q32), bins=bins[ok]
                )

    report = w.write(path, overwrite=overwrite)
    meta = w.metadata()
    total = float(sum(v.sum() for v in yields.values()))
    return BuildReport(
        write=report,
        n_nuisances=len(meta.nuisances)
        + sum(s.n_nuisances for s in meta.theory.pdf_sets if s.name == nominal_choice.name),
        n_bins=int(data.size),
        selected_signal=float(yields[SIGNAL].sum()),
        selected_total=total,
        background_fractions={k: float(v.sum() / total) for k, v in yields.items() if k != SIGNAL},
        true_mw_mev=true_mw,
    )
