"""Size and memory of an export, estimated from the archive's metadata before any work.

Every export (pyhf, rabbit, HEPData) computes an :class:`Estimate` from counts it reads in
about a second (channels, bins, processes, the log-normal entries of each (parameter, process,
channel), theory nuisances, patches) and refuses, in one line naming the estimate and the
option that raises the bound, when the output would exceed ``--max-output-gb`` (default
:data:`DEFAULT_MAX_OUTPUT_GB`) or the peak memory ``--max-memory-gb`` (default
:func:`safe_memory_bytes`: half of this machine's physical memory). The constants are
calibrated against measured exports (``benchmarks/bench_export_estimate.py``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..archive.reader import Archive
from ..theory.resolve import ResolvedTheory
from ._common import ExportError

#: default bound on the bytes an export writes, in GB (1e9 bytes)
DEFAULT_MAX_OUTPUT_GB = 2.0
#: JSON bytes per number that pyhf's workspace holds (a float's repr, 17 digits, and a comma)
JSON_BYTES_PER_NUMBER = 19.5
#: JSON bytes of one modifier or sample besides its numbers (keys, type, name)
JSON_BYTES_PER_MODIFIER = 80
#: bytes of one number held in a Python list (8-byte pointer and a 24-byte float object)
PY_BYTES_PER_NUMBER = 32.0
#: measured peak memory of the pyhf export per number held (PY_BYTES_PER_NUMBER times the
#: copies alive at once: base workspace, the patch being built, the patches so far, the
#: validation's and digest's temporaries)
PYHF_MEMORY_FACTOR = 1.0
#: memory of the Python process with numpy, h5py, pyhf and jax imported, bytes
BASE_MEMORY = 0.45e9
#: the same without pyhf and jax (the rabbit export), bytes
BASE_MEMORY_RABBIT = 0.3e9
#: bytes of a rabbit tensor besides its arrays (names, meta pickle, attributes)
RABBIT_OVERHEAD = 50e3


@dataclass(frozen=True)
class Estimate:
    """What an export would write (``output_bytes``) and hold in memory at its peak
    (``memory_bytes``), with a short ``detail`` of where the bytes go."""

    what: str
    output_bytes: float
    memory_bytes: float
    detail: str = ""


def safe_memory_bytes() -> float:
    """Half of this machine's physical memory, bytes (the default bound on peak memory)."""
    try:
        return 0.5 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8e9


def check_bounds(est: Estimate, max_output_gb: float | None, max_memory_gb: float | None) -> None:
    """Raise :class:`ExportError` (one line: the estimate and the option that raises the
    bound) when ``est`` exceeds ``max_output_gb`` (None: :data:`DEFAULT_MAX_OUTPUT_GB`) or
    ``max_memory_gb`` (None: :func:`safe_memory_bytes`); ``inf`` switches a bound off."""
    out_gb = DEFAULT_MAX_OUTPUT_GB if max_output_gb is None else float(max_output_gb)
    mem_gb = safe_memory_bytes() / 1e9 if max_memory_gb is None else float(max_memory_gb)
    detail = f" ({est.detail})" if est.detail else ""
    if est.output_bytes > out_gb * 1e9:
        raise ExportError(
            f"{est.what} refused: estimated output {est.output_bytes / 1e9:.3g} GB{detail} "
            f"is over the bound of {out_gb:g} GB; raise it with --max-output-gb "
            f"(peak memory estimated {est.memory_bytes / 1e9:.3g} GB)"
        )
    if est.memory_bytes > mem_gb * 1e9:
        raise ExportError(
            f"{est.what} refused: estimated peak memory {est.memory_bytes / 1e9:.3g} GB{detail} "
            f"is over the bound of {mem_gb:.3g} GB"
            + (" (half this machine's memory)" if max_memory_gb is None else "")
            + "; raise it with --max-memory-gb"
        )


# ------------------------------------------------------------------------------- counting
@dataclass(frozen=True)
class _Counts:
    """Per (channel, process): bins, flat and shape log-normal entries, from the logk table."""

    bins: dict[str, int]  # channel -> bins
    procs: dict[str, list[str]]  # channel -> processes
    flat: dict[tuple[str, str], int]  # (channel, process) -> nuisances flat over the bins
    shape: dict[tuple[str, str], int]  # (channel, process) -> nuisances varying over the bins
    mass_plain: set[tuple[str, str]]  # plain (channel, process) with mass-POI entries
    nnz: int  # logk entries


def _counts(a: Archive, skip: set[str]) -> _Counts:
    """Count the log-normal entries of each (parameter, process, channel) group of ``a``
    (parameters named in ``skip`` left out; a mass POI's entries mark the sample as depending on
    the mass). A group is flat when it covers every bin of the channel with one value."""
    meta = a.metadata
    sel = a.select()
    t = sel.logk()
    names = list(sel.parameter_names)
    mass = {p.name for p in meta.pois if p.kind == "mass"}
    procs = [p.name for p in sel.processes]
    offsets = np.asarray(sel.offsets)
    chans = [c.name for c in sel.channels]
    bins = {c.name: int(n) for c, n in zip(sel.channels, np.diff(offsets), strict=True)}
    chan_of = np.searchsorted(offsets, t.bin, side="right") - 1
    flat: dict[tuple[str, str], int] = {}
    shape: dict[tuple[str, str], int] = {}
    mass_plain: set[tuple[str, str]] = set()
    if t.nnz:
        key = (t.parameter * len(procs) + t.process) * len(chans) + chan_of
        order = np.argsort(key, kind="stable")
        k = key[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], k.size]
        up, down = t.logk_up[order], t.logk_down[order]
        ptp = np.maximum(
            np.maximum.reduceat(up, starts) - np.minimum.reduceat(up, starts),
            np.maximum.reduceat(down, starts) - np.minimum.reduceat(down, starts),
        )
        for s, e, spread in zip(starts, ends, ptp, strict=True):
            par, rest = divmod(int(k[s]), len(procs) * len(chans))
            pi, ci = divmod(rest, len(chans))
            g = (chans[ci], procs[pi])
            if names[par] in mass:
                mass_plain.add(g)
                continue
            if names[par] in skip:
                continue
            is_flat = (e - s) == bins[chans[ci]] and spread <= 1e-12 * (1 + abs(float(up[s])))
            (flat if is_flat else shape)[g] = (flat if is_flat else shape).get(g, 0) + 1
    return _Counts(
        bins=bins,
        procs={c.name: list(c.processes) for c in sel.channels},
        flat=flat,
        shape=shape,
        mass_plain=mass_plain,
        nnz=int(t.nnz),
    )


def _theory_nuisances(a: Archive, pdf: str | None) -> int:
    """Theory nuisances (PDF eigenvectors and theory variations) of the set in use; 0 without
    folded processes."""
    if not any(p.folded for p in a.metadata.processes):
        return 0
    from ..model.theory import build_theory

    return len(build_theory(a, pdf).nuisances)


# ----------------------------------------------------------------------------------- pyhf
def estimate_pyhf(a: Archive, pdf: str | ResolvedTheory | None, n_patches: int) -> Estimate:
    """Bytes of the pyhf workspace and patchset of ``a`` with ``n_patches`` mass points, and
    the export's peak memory (module docstring; pyhf export: every sample holds its yields, a
    staterror (bins), a normsys (2 numbers) per flat log-normal and a histosys (2 x bins) per
    shape log-normal or theory nuisance; each patch repeats the samples that depend on the
    mass, and with MC statistics every sample of their channels, whose staterror follows the
    channel's total yield)."""
    meta = a.metadata
    n_th = _theory_nuisances(a, pdf)
    c = _counts(a, set())
    stat = getattr(meta, "mc_stat", None) != "none"
    mass = [p for p in meta.pois if p.kind == "mass"]
    w_num = 0.0  # numbers in the workspace
    w_mods = 0.0  # modifiers and samples
    d_num = 0.0  # numbers in the samples a patch replaces
    d_mods = 0.0
    for ch, procs in c.procs.items():
        b = c.bins[ch]
        w_num += b  # observations
        ch_num = ch_mods = 0.0
        varies = False
        for p in procs:
            folded = meta.process(p).folded
            g = (ch, p)
            shapes = c.shape.get(g, 0) + (n_th if folded else 0)
            num = b * (2 if stat else 1) + 2 * c.flat.get(g, 0) + 2 * b * shapes
            mods = 1 + c.flat.get(g, 0) + shapes + (1 if stat else 0)
            ch_num, ch_mods = ch_num + num, ch_mods + mods
            dep = bool(mass) and (folded or g in c.mass_plain)
            varies |= dep
            if dep and not stat:
                d_num, d_mods = d_num + num, d_mods + mods
        w_num += ch_num
        w_mods += ch_mods
        if varies and stat:  # the staterror follows the channel's total: every sample changes
            d_num, d_mods = d_num + ch_num, d_mods + ch_mods
    n_p = n_patches if mass else 0
    ws = w_num * JSON_BYTES_PER_NUMBER + w_mods * JSON_BYTES_PER_MODIFIER
    ps = n_p * (d_num * JSON_BYTES_PER_NUMBER + d_mods * JSON_BYTES_PER_MODIFIER)
    held = 2 * w_num + n_p * d_num  # base + the patch being built + the patches so far
    mem = BASE_MEMORY + PYHF_MEMORY_FACTOR * (held * PY_BYTES_PER_NUMBER + ws)
    detail = f"workspace {ws / 1e9:.3g} GB"
    if mass:
        detail += f" + patchset {ps / 1e9:.3g} GB of {n_p} patches"
    return Estimate(f"export pyhf of {a.path.name}", ws + ps, mem, detail)


# --------------------------------------------------------------------------------- rabbit
def estimate_rabbit(a: Archive, pdf: str | ResolvedTheory | None, sparse: bool) -> Estimate:
    """Bytes of the rabbit tensor of ``a`` and the export's peak memory: sparse, the logk
    entries (2 int64 indices and a float64 value, twice when asymmetric; before compression);
    dense, the (bins, processes, [2,] nuisances) float64 array, held whole in memory."""
    meta = a.metadata
    n_th = _theory_nuisances(a, pdf)
    c = _counts(a, set())
    n_bins = sum(c.bins.values())
    n_proc = len(meta.processes)
    n_syst = len(meta.nuisances) + len(meta.pois)  # theory nuisances are among the nuisances
    folded_bins = sum(
        c.bins[ch] for ch, ps in c.procs.items() for p in ps if meta.process(p).folded
    )
    nnz = c.nnz + (n_th + len(meta.pois)) * folded_bins
    if sparse:
        out = RABBIT_OVERHEAD + 2 * nnz * 24 + n_bins * n_proc * 40
        mem = BASE_MEMORY_RABBIT + 10 * nnz * 8 + 4 * n_bins * n_proc * 8
        detail = f"{nnz} logk entries, sparse"
    else:
        dense = 2.0 * n_bins * n_proc * n_syst * 8
        out = RABBIT_OVERHEAD + 0.1 * dense  # gzip; chunks of zeros are not written
        mem = BASE_MEMORY_RABBIT + 1.5 * dense + 10 * nnz * 8
        detail = f"dense logk {dense / 1e9:.3g} GB in memory"
    return Estimate(f"export rabbit of {a.path.name}", out, mem, detail)


# -------------------------------------------------------------------------------- HEPData
def _genlevel_yaml(meta) -> float:
    """YAML bytes of the generator-level tables of a HEPData export (0 without a folded
    signal): per W charge and continuous generator axis of n bins, the cross section (n rows),
    its postfit correlation (n^2 rows) and the angular coefficients (n rows, two columns per
    coefficient), with their entries in submission.yaml (calibrated on the default archive's
    export: bytes per row and per column)."""
    th = meta.theory
    if th is None or not any(p.folded for p in meta.processes):
        return 0.0
    axes = list(th.generator_axes)
    cats = [a for a in axes if not a.is_continuous]
    charge = next((a for a in cats if a.name.lower() in ("qw", "charge", "q")), None)
    n_q = charge.size if charge is not None else 1
    n_c = sum(1 for a in cats for t in (a.categories or []) if re.fullmatch(r"A[0-9]", str(t)))
    out = 0.0
    for ax in (a for a in axes if a.is_continuous):
        n = ax.size
        sigma = 3500.0 + 200.0 * n
        corr = 3000.0 + 80.0 * n * n
        coeffs = 2500.0 + 2 * n_c * (700.0 + 70.0 * n)
        out += n_q * (sigma + corr + coeffs)
    return out


def estimate_hepdata(a: Archive, archive_bytes: int) -> Estimate:
    """Bytes of the HEPData submission of ``a`` (the attached archive, the YAML tables: a row
    per nuisance and per bin of the prefit/postfit distributions, the generator-level tables
    of :func:`_genlevel_yaml` and the charge split's two small tables) and the fit's peak memory
    (dominated by the Hessian and covariance, (parameters)^2 float64, a few copies)."""
    meta = a.metadata
    c = _counts(a, set())
    n_bins = sum(c.bins.values())
    n_par = len(meta.nuisances) + len(meta.pois)
    yaml = 700.0 * n_par + 4 * 600.0 * n_bins + 2e5 + _genlevel_yaml(meta) + 1e4  # + charge split
    mem = BASE_MEMORY + 12 * 8.0 * n_par**2 + 200.0 * c.nnz + 2000.0 * n_bins
    detail = f"archive {archive_bytes / 1e9:.3g} GB + tables {yaml / 1e9:.3g} GB"
    return Estimate(f"export hepdata of {a.path.name}", archive_bytes + yaml, mem, detail)
