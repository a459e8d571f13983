"""The producers' writer: collect templates, variations and theory grids, validate them, write
one archive atomically.

Example::

    w = ArchiveWriter(title="my analysis", synthetic=False, citation=..., provenance=...)
    w.add_group("muon_eff_stat")
    w.add_channel("mu", h_data)                    # hist.Hist with named axes
    w.add_process("Zmumu", label="Z -> mu mu")
    w.set_yield("Zmumu", "mu", h_zmumu)            # Weight storage gives sumw2
    w.add_nuisance("effStat_eta0", groups=["muon_eff_stat"])
    w.add_variation("effStat_eta0", "Zmumu", "mu", logk_up=[0.01, 0.02], bins=[0, 1])
    report = w.write("likelihoods/mine.h5")
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArchiveError, ContentError
from .assembly import DENSE_RESPONSE_FRACTION, DENSE_ROW_FRACTION, DatasetAssembly  # noqa: F401
from .axes import Axis
from .models import (
    POI,
    ArchiveMetadata,
    Channel,
    Citation,
    Group,
    Luminosity,
    Nuisance,
    PDFSet,
    Process,
    Provenance,
    Theory,
    TheoryVariation,
)
from .modifier_writer import ModifierWriter
from .modifiers import ModifierCollector
from .serialize import write_atomically
from .sparse import SparseTensor
from .theory_writer import TheoryWriter, replica_eigenvectors
from .write_checks import (
    _canonical_sparse,
    _check_finite,
    _check_plausible,
    _is_hist,
    _model,
    _refuse_unsafe_text,
)


@dataclass
class WriteReport:
    """What :meth:`ArchiveWriter.write` did."""

    path: Path
    n_datasets: int
    raw_bytes: int
    file_bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def compression_ratio(self) -> float:
        """Uncompressed array bytes / bytes of the file on disk."""
        return self.raw_bytes / self.file_bytes if self.file_bytes else float("nan")

    def summary(self) -> str:
        return (
            f"wrote {self.path} : {self.n_datasets} datasets, "
            f"{self.raw_bytes / 1e6:.2f} MB of arrays in {self.file_bytes / 1e6:.2f} MB "
            f"(compression x{self.compression_ratio:.2f}) in {self.seconds:.2f} s"
        )


@dataclass
class _Variation:
    """logk of one (parameter, process, channel): ``avg``/``halfdiff`` on the bins ``bins``."""

    bins: np.ndarray
    avg: np.ndarray
    halfdiff: np.ndarray


class ArchiveWriter(TheoryWriter, ModifierWriter, DatasetAssembly):
    """Collects everything an archive holds; :meth:`write` validates it and writes it.

    Yields are expected event counts per bin, in the channel's C-ordered flattened binning;
    variations are log-normal, ``logk = ln(varied / nominal)`` per bin; theory grids are cross
    sections in pb per generator bin. The extended modifiers of format 1.1 (:meth:`add_additive`,
    :meth:`add_multiplicative`, :meth:`add_linear`, poisson constraints, ``mc_stat``) make the
    archive 1.1.0; without them it is written as 1.0.0.

    The theory methods are :class:`~.theory_writer.TheoryWriter`'s, the extended modifiers'
    :class:`~.modifier_writer.ModifierWriter`'s; :class:`~.assembly.DatasetAssembly` lays the
    content out as datasets, :mod:`~.write_checks` refuses what cannot be written and
    :func:`~.serialize.write_atomically` writes the file.
    """

    def __init__(
        self,
        *,
        title: str,
        synthetic: bool,
        citation: Citation | dict,
        provenance: Provenance | dict,
        license: str = "CC-BY-4.0",
        description: str = "",
        luminosity: float | None = None,
        mc_stat: str | None = None,
        sample_yields: str | None = None,
    ):
        # models are built once, so that e.g. the creation time is fixed by the writer
        if not isinstance(citation, Citation):
            citation = _model(Citation, **citation)
        if not isinstance(provenance, Provenance):
            provenance = _model(Provenance, **provenance)
        self._head = dict(
            title=title,
            synthetic=synthetic,
            citation=citation,
            provenance=provenance,
            license=license,
            description=description,
            luminosity=Luminosity(value=luminosity) if luminosity else None,
        )
        self._channels: dict[str, dict[str, Any]] = {}
        self._processes: dict[str, Process] = {}
        self._groups: dict[str, Group] = {}
        self._nuisances: dict[str, Nuisance] = {}
        self._pois: dict[str, POI] = {}
        self._yields: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._responses: dict[tuple[str, str], np.ndarray | SparseTensor] = {}
        self._variations: dict[tuple[str, str, str], _Variation] = {}
        self._theory: dict[str, Any] | None = None
        self._pdf: dict[str, tuple[PDFSet, np.ndarray, np.ndarray | None]] = {}
        self._theory_vars: dict[str, tuple[TheoryVariation, np.ndarray, np.ndarray]] = {}
        self._mods = ModifierCollector()
        self._mc_stat: str | None = None
        if sample_yields not in (None, "clipped", "signed"):
            raise ContentError(
                f"sample_yields must be 'clipped' or 'signed', got {sample_yields!r}"
            )
        self._sample_yields = sample_yields
        self.warnings: list[str] = []
        self.set_mc_stat(mc_stat)

    # ------------------------------------------------------------------ structure
    def add_group(self, name: str, description: str = "") -> None:
        """Declare a nuisance group (impacts are quoted per group)."""
        self._groups[name] = _model(Group, name=name, description=description)

    def add_channel(
        self,
        name: str,
        data: Any,
        axes: Sequence[Axis | Any] | None = None,
        *,
        label: str = "",
        description: str = "",
    ) -> None:
        """A channel of reco bins with its observed counts.

        ``data``: a ``hist.Hist`` (its axes become the channel's) or an array of the channel's
        shape (then ``axes`` is required: :class:`Axis` objects or hist axes).
        """
        if name in self._channels:
            raise ContentError(f"channel '{name}' added twice")
        if axes is None:
            if not _is_hist(data):
                raise ContentError(f"channel '{name}': give axes= or a hist.Hist as data")
            axes = list(data.axes)
        ax = [a if isinstance(a, Axis) else Axis.from_hist(a) for a in axes]
        shape = tuple(a.size for a in ax)
        values, _ = self._values(data, ax, f"data of channel '{name}'")
        _check_finite(values, f"data of channel '{name}'")
        if np.any(values < 0):
            raise ContentError(
                f"data of channel '{name}' has negative counts (bin {int(np.argmin(values))})"
            )
        self._channels[name] = dict(
            axes=ax, shape=shape, data=values, label=label, description=description, processes=[]
        )

    def add_process(
        self,
        name: str,
        *,
        label: str = "",
        kind: str = "background",
        folded: bool = False,
        description: str = "",
    ) -> None:
        """Declare a process; ``folded=True`` when its yield comes from a response tensor."""
        if name in self._processes:
            raise ContentError(f"process '{name}' added twice")
        self._processes[name] = _model(
            Process, name=name, label=label, kind=kind, folded=folded, description=description
        )

    def add_nuisance(
        self,
        name: str,
        *,
        groups: Iterable[str] = (),
        constraint: str = "gaussian",
        prior_scale: float = 1.0,
        label: str = "",
        tau: float | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        """Declare a nuisance parameter in one or more groups. ``constraint``: "gaussian",
        "none" or (format 1.1) "poisson" with its ``tau`` (pyhf's shapesys: gamma = 1 +
        theta / sqrt(tau)); ``bounds`` (format 1.2): the range of theta allowed in fits."""
        if name in self._nuisances or name in self._pois:
            raise ContentError(f"parameter '{name}' declared twice")
        self._nuisances[name] = _model(
            Nuisance,
            name=name,
            groups=list(groups),
            constraint=constraint,
            prior_scale=prior_scale,
            label=label,
            tau=tau,
            bounds=bounds,
        )

    def add_poi(self, poi: POI | None = None, **kwargs: Any) -> None:
        """Declare a parameter of interest (a :class:`POI` or its fields as keywords)."""
        poi = poi if poi is not None else _model(POI, **kwargs)
        if poi.name in self._nuisances or poi.name in self._pois:
            raise ContentError(f"parameter '{poi.name}' declared twice")
        self._pois[poi.name] = poi

    # ------------------------------------------------------------------ yields
    def set_yield(self, process: str, channel: str, nominal: Any, sumw2: Any = None) -> None:
        """Expected yield of a process in a channel: a ``hist.Hist`` with Weight storage (its
        variances are the MC statistical variances) or arrays ``nominal`` and ``sumw2``."""
        ch = self._channel(channel)
        self._process(process)
        what = f"yield of '{process}' in channel '{channel}'"
        values, variances = self._values(nominal, ch["axes"], what)
        if sumw2 is not None:
            variances, _ = self._values(sumw2, ch["axes"], f"sumw2 of {what}")
        if variances is None:
            raise ContentError(f"{what}: no sumw2 (give sumw2= or a Weight-storage hist)")
        _check_finite(values, what)
        _check_finite(variances, f"sumw2 of {what}")
        if np.any(values < 0) and self._sample_yields != "signed":
            b = int(np.argmin(values))
            raise ContentError(
                f"{what} is negative in bin {b} ({values[b]:.6g}); nominal yields must be >= 0 "
                "(or write the archive with sample_yields='signed', format 1.2)"
            )
        if np.any(variances < 0):
            raise ContentError(f"sumw2 of {what} is negative in bin {int(np.argmin(variances))}")
        if (process, channel) in self._yields:
            raise ContentError(f"{what} set twice")
        self._yields[(process, channel)] = (values, variances)
        ch["processes"].append(process)

    def set_response(self, process: str, channel: str, response: Any) -> None:
        """Response tensor of a folded process: reco yield in each bin per unit cross section
        (pb) and unit luminosity (pb^-1) in each generator bin, at each mass point of the POI
        driving it. Shape (n_points, n_bins, n_gen), or (n_bins, n_gen) for a single point; a
        :class:`SparseTensor` of the 3-d shape is kept sparse."""
        if not self._process(process).folded:
            raise ContentError(f"process '{process}' is not folded; declare folded=True")
        self._channel(channel)
        what = f"response of '{process}' in '{channel}'"
        if isinstance(response, SparseTensor):
            self._responses[(process, channel)] = _canonical_sparse(response, what)
            return
        r = np.asarray(response, dtype=np.float64)
        if r.ndim == 2:
            r = r[None]
        if r.ndim != 3:
            raise ContentError(
                f"response of '{process}' in '{channel}' must be 3-d "
                f"(points, bins, gen), got shape {r.shape}"
            )
        _check_finite(r, f"response of '{process}' in '{channel}'")
        self._responses[(process, channel)] = r

    # ------------------------------------------------------------------ variations
    def add_variation(
        self,
        parameter: str,
        process: str,
        channel: str,
        *,
        up: Any = None,
        down: Any = None,
        kappa: float | tuple[float, float] | None = None,
        logk_up: Any = None,
        logk_down: Any = None,
        bins: Any = None,
    ) -> None:
        """A log-normal variation of a process's yield in a channel, driven by ``parameter``.

        Give exactly one of:
          * ``up`` (and ``down``): varied yields, full channel shape (array or hist); logk is
            ln(varied / nominal), zero where the nominal is zero;
          * ``kappa``: a normalisation effect, ``kappa`` or ``(kappa_down, kappa_up)`` as in a
            Combine ``lnN`` entry (e.g. 1.025 or (0.97, 1.04));
          * ``logk_up`` (and ``logk_down``): logk per bin, on all bins or on the bin indices
            ``bins`` (flattened channel index) for a sparse variation.
        Without a down variation the effect is symmetric (logk_down = -logk_up).
        """
        key = (parameter, process, channel)
        what = f"variation '{parameter}' of '{process}' in '{channel}'"
        if key in self._variations:
            raise ContentError(f"{what} added twice")
        ch = self._channel(channel)
        self._process(process)
        nb = int(np.prod(ch["shape"]))
        given = [x is not None for x in (up, kappa, logk_up)]
        if sum(given) != 1:
            raise ContentError(f"{what}: give exactly one of up=, kappa=, logk_up=")
        if up is not None:
            if (process, channel) not in self._yields:
                raise ContentError(f"{what}: set the nominal yield before variations")
            nom = self._yields[(process, channel)][0]
            lu = self._logk_from_template(up, nom, ch, what + " (up)")
            ld = (
                self._logk_from_template(down, nom, ch, what + " (down)")
                if down is not None
                else None
            )
            bins_idx = np.arange(nb)
        elif kappa is not None:
            kd, ku = (1.0 / kappa, kappa) if np.isscalar(kappa) else kappa  # type: ignore[misc]
            if not (np.isfinite(kd) and np.isfinite(ku) and kd > 0 and ku > 0):
                raise ContentError(f"{what}: kappa must be finite and > 0, got {kappa}")
            bins_idx = np.arange(nb)
            lu = np.full(nb, np.log(ku))
            ld = np.full(nb, np.log(kd))
        else:
            lu = np.asarray(logk_up, dtype=np.float64).reshape(-1)
            ld = None if logk_down is None else np.asarray(logk_down, dtype=np.float64).reshape(-1)
            if bins is None:
                bins_idx = np.arange(nb)
            else:
                bins_idx = np.asarray(bins, dtype=np.int64).reshape(-1)
                if bins_idx.size and (bins_idx.min() < 0 or bins_idx.max() >= nb):
                    raise ContentError(f"{what}: bin index out of range [0, {nb})")
                if np.unique(bins_idx).size != bins_idx.size:
                    raise ContentError(f"{what}: repeated bin indices")
            if lu.shape != bins_idx.shape or (ld is not None and ld.shape != bins_idx.shape):
                raise ContentError(f"{what}: logk has shape {lu.shape}, expected {bins_idx.shape}")
        _check_finite(lu, what)
        if ld is None:
            ld = -lu
        _check_finite(ld, what)
        order = np.argsort(bins_idx, kind="stable")
        avg, half = 0.5 * (lu - ld)[order], 0.5 * (lu + ld)[order]
        keep = (avg != 0) | (half != 0)
        self._variations[key] = _Variation(bins_idx[order][keep], avg[keep], half[keep])

    def _logk_from_template(self, tmpl: Any, nom: np.ndarray, ch: dict, what: str) -> np.ndarray:
        vals, _ = self._values(tmpl, ch["axes"], what)
        _check_finite(vals, what)
        if np.any(vals < 0):
            raise ContentError(f"{what} is negative in bin {int(np.argmin(vals))}")
        bad = (nom > 0) & (vals == 0)
        if np.any(bad):
            b = int(np.argmax(bad))
            raise ContentError(
                f"{what} is zero in bin {b} where the nominal is {nom[b]:.6g}: "
                f"logk would be -inf; give logk_up=/logk_down= explicitly"
            )
        out = np.zeros_like(nom)
        pos = nom > 0
        out[pos] = np.log(vals[pos] / nom[pos])
        if np.any((nom == 0) & (vals > 0)):
            self.warnings.append(f"{what}: yield where the nominal is zero was ignored")
        return out

    # ------------------------------------------------------------------ metadata
    def metadata(self) -> ArchiveMetadata:
        """The archive's metadata as it will be written (without the dataset manifest)."""
        theory = None
        if self._theory is not None:
            theory = _model(
                Theory,
                generator_axes=self._theory["axes"],
                nominal_pdf=self._theory["nominal_pdf"],
                pdf_sets=[s for s, _, _ in self._pdf.values()],
                variations=[v for v, _, _ in self._theory_vars.values()],
                description=self._theory["description"],
                parameters=self._theory["parameters"],
            )
        empty = [n for n, c in self._channels.items() if not c["processes"]]
        if empty:
            raise ContentError(f"channel '{empty[0]}' has no process yields (use set_yield)")
        channels = [
            _model(
                Channel,
                name=n,
                axes=c["axes"],
                processes=c["processes"],
                label=c["label"],
                description=c["description"],
                modifiers=self._mods.kinds(n),
            )
            for n, c in self._channels.items()
        ]
        # format_version left out: the oldest version that holds the content (models.py)
        meta = _model(
            ArchiveMetadata,
            mc_stat=self._mc_stat,
            sample_yields=self._sample_yields,
            **self._head,
            channels=channels,
            processes=list(self._processes.values()),
            groups=list(self._groups.values()),
            pois=list(self._pois.values()),
            nuisances=list(self._nuisances.values()),
            theory=theory,
        )
        _refuse_unsafe_text(meta)
        return meta

    # ------------------------------------------------------------------ write
    def write(
        self, path: str | os.PathLike, *, overwrite: bool = True, compression_level: int = 4
    ) -> WriteReport:
        """Validate everything and write the archive to ``path`` atomically.

        The HDF5 file is built in memory, written under a temporary name in the same folder
        (``.NAME.tmp-PID-HEX``), fsync'ed and only then renamed into place: a crash or a full
        disk leaves any previous archive at ``path`` untouched. With ``overwrite=False`` an
        existing file (even one created meanwhile) is never replaced.
        """
        t0 = time.perf_counter()
        path = Path(path)
        if path.exists() and not overwrite:
            raise ArchiveError(f"{path} exists (pass overwrite=True to replace it)")
        if not path.parent.is_dir():
            raise ArchiveError(f"cannot write {path}: folder {path.parent} does not exist")
        meta = self.metadata()
        arrays = self._arrays(meta)
        _check_plausible(meta, arrays)
        records, raw = write_atomically(
            path, meta, arrays, overwrite=overwrite, compression_level=compression_level
        )
        return WriteReport(
            path,
            len(records),
            raw,
            path.stat().st_size,
            time.perf_counter() - t0,
            list(self.warnings),
        )

    # ------------------------------------------------------------------ helpers
    def _channel(self, name: str) -> dict:
        if name not in self._channels:
            raise ContentError(f"unknown channel '{name}' (add it with add_channel first)")
        return self._channels[name]

    def _process(self, name: str) -> Process:
        if name not in self._processes:
            raise ContentError(f"unknown process '{name}' (add it with add_process first)")
        return self._processes[name]

    @staticmethod
    def _values(obj: Any, axes: list[Axis], what: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Flattened (C-order) values, and variances when ``obj`` is a Weight hist."""
        shape = tuple(a.size for a in axes)
        if _is_hist(obj):
            got = [Axis.from_hist(a) for a in obj.axes]
            if len(got) != len(axes) or not all(
                g.same_binning(a) for g, a in zip(got, axes, strict=False)
            ):
                raise ContentError(
                    f"{what}: histogram axes {[a.name for a in got]} do not match "
                    f"the expected {[a.name for a in axes]} (names and edges)"
                )
            var = obj.variances(flow=False)
            return (
                np.asarray(obj.values(flow=False), dtype=np.float64).reshape(-1),
                None if var is None else np.asarray(var, dtype=np.float64).reshape(-1),
            )
        a = np.asarray(obj, dtype=np.float64)
        n = int(np.prod(shape))
        if a.shape != shape and a.shape != (n,):
            raise ContentError(
                f"{what} has shape {a.shape}, expected {shape} "
                f"({' x '.join(x.name for x in axes)}) or ({n},)"
            )
        return a.reshape(-1), None


__all__ = ["ArchiveWriter", "WriteReport", "replica_eigenvectors"]
