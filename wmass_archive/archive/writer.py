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
import secrets
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pydantic import ValidationError

from ..errors import ArchiveError, ContentError
from ..text import has_unsafe_chars, printable
from . import layout
from .axes import Axis
from .checksums import array_sha256, bytes_sha256
from .expected import folded_pairs
from .models import (
    POI,
    ArchiveMetadata,
    Channel,
    Citation,
    DatasetRecord,
    Group,
    Luminosity,
    Nuisance,
    PDFSet,
    Process,
    Provenance,
    Theory,
    TheoryVariation,
    validation_message,
)
from .modifier_writer import ModifierWriter
from .modifiers import ModifierCollector, modifier_problem
from .plausibility import dataset_problem, metadata_problem, response_problem
from .sparse import SparseTensor

#: a (parameter, process, channel) variation touching more than this fraction of the
#: channel's bins is stored as a dense row, otherwise as sparse entries
DENSE_ROW_FRACTION = 0.5
#: a response tensor with more than this fraction of non-zero entries is stored dense
DENSE_RESPONSE_FRACTION = 0.3


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


class ArchiveWriter(ModifierWriter):
    """Collects everything an archive holds; :meth:`write` validates it and writes it.

    Yields are expected event counts per bin, in the channel's C-ordered flattened binning;
    variations are log-normal, ``logk = ln(varied / nominal)`` per bin; theory grids are cross
    sections in pb per generator bin. The extended modifiers of format 1.1 (:meth:`add_additive`,
    :meth:`add_multiplicative`, :meth:`add_linear`, poisson constraints, ``mc_stat``) make the
    archive 1.1.0; without them it is written as 1.0.0.
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

    # ------------------------------------------------------------------ theory
    def set_theory(
        self,
        generator_axes: Sequence[Axis | Any],
        nominal: Any,
        *,
        nominal_pdf: str,
        description: str = "",
    ) -> None:
        """Generator binning and nominal theory grid sigma[g] (pb per generator bin, flattened
        in C order over ``generator_axes``)."""
        ax = [a if isinstance(a, Axis) else Axis.from_hist(a) for a in generator_axes]
        grid = self._grid(nominal, ax, "nominal theory grid")
        self._theory = dict(axes=ax, nominal=grid, nominal_pdf=nominal_pdf, description=description)

    def add_pdf_set(
        self,
        pdf: PDFSet | None = None,
        members: Any = None,
        *,
        eigenvectors: Any = None,
        variance_threshold: float = 0.99,
        **kwargs: Any,
    ) -> None:
        """A PDF set with the theory grid of each member, shape (n_members, n_gen), member 0
        the central value. For replica sets the eigenvectors of the replica covariance are
        computed (keeping ``variance_threshold`` of its trace) unless given."""
        th = self._need_theory("add_pdf_set")
        m = np.asarray(members, dtype=np.float64)
        if m.ndim == 1:
            m = m[None]
        n_gen = len(th["nominal"])
        if m.ndim != 2 or m.shape[1] != n_gen:
            raise ContentError(f"PDF members must have shape (n_members, {n_gen}), got {m.shape}")
        _check_finite(m, "PDF members")
        info = dict(kwargs)
        if pdf is not None:
            info = {**pdf.model_dump(), **info}
        info["n_members"] = m.shape[0]
        ev = None
        if info.get("error_type") == "replicas" and m.shape[0] > 1:
            if eigenvectors is None:
                ev, kept = replica_eigenvectors(m[1:], variance_threshold)
            else:
                ev = np.asarray(eigenvectors, dtype=np.float64)
                kept = info.get("variance_kept")
                if kept is None:
                    raise ContentError("give variance_kept= with precomputed eigenvectors")
            if ev.shape[0] == 0:
                raise ContentError(
                    f"replica set '{info.get('name')}': the replicas have no "
                    f"spread, so there is no uncertainty to store; declare it "
                    f"with its central member only"
                )
            if ev.ndim != 2 or ev.shape[1] != n_gen:
                raise ContentError(f"PDF eigenvectors must have shape (k, {n_gen}), got {ev.shape}")
            _check_finite(ev, "PDF eigenvectors")
            info["n_eigenvectors"] = ev.shape[0]
            info["variance_kept"] = float(kept)
        s = _model(PDFSet, **info)
        if s.name in self._pdf:
            raise ContentError(f"PDF set '{s.name}' added twice")
        self._pdf[s.name] = (s, m, ev)

    def add_theory_variation(
        self,
        name: str,
        up: Any,
        down: Any,
        *,
        interpolation: str = "additive",
        description: str = "",
    ) -> None:
        """A variation of the theory grid (up and down grids with the nominal theory), driven by
        the nuisance ``name`` (declare it with :meth:`add_nuisance`)."""
        th = self._need_theory("add_theory_variation")
        if name in self._theory_vars:
            raise ContentError(f"theory variation '{name}' added twice")
        v = _model(TheoryVariation, name=name, interpolation=interpolation, description=description)
        self._theory_vars[name] = (
            v,
            self._grid(up, th["axes"], f"theory variation '{name}' up"),
            self._grid(down, th["axes"], f"theory variation '{name}' down"),
        )

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
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            image, records, raw = _build_image(meta, arrays, compression_level)
            _write_file(tmp, image)
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # fails if the name exists: never clobbers
                tmp.unlink()
            _fsync_dir(path.parent)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, FileExistsError) and not overwrite:
                raise ArchiveError(f"{path} exists (pass overwrite=True to replace it)") from exc
            if isinstance(exc, OSError) and not isinstance(exc, ArchiveError):
                raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}") from exc
            raise
        return WriteReport(
            path,
            len(records),
            raw,
            path.stat().st_size,
            time.perf_counter() - t0,
            list(self.warnings),
        )

    def _arrays(self, meta: ArchiveMetadata) -> dict[str, np.ndarray]:
        """Every dataset to write, checked against the metadata."""
        out: dict[str, np.ndarray] = {}
        pidx = {n: i for i, n in enumerate(meta.parameter_names)}
        proc_idx = {p.name: i for i, p in enumerate(meta.processes)}
        theory_nominal = self._theory["nominal"] if self._theory else None
        for ch in meta.channels:
            c = self._channels[ch.name]
            out[layout.data(ch.name)] = c["data"]
            for p in ch.processes:
                nom, w2 = self._yields[(p, ch.name)]
                out[layout.nominal(ch.name, p)] = nom
                out[layout.sumw2(ch.name, p)] = w2
                if meta.process(p).folded:
                    out.update(self._response_arrays(meta, ch, p))
            out.update(self._logk_arrays(meta, ch, pidx, proc_idx))
            out.update(self._modifier_arrays(meta, ch))
        missing = [
            k
            for k in self._responses
            if k[1] not in self._channels or k[0] not in self._channels[k[1]]["processes"]
        ]
        if missing:
            raise ContentError(
                f"response of '{missing[0][0]}' in '{missing[0][1]}' given but the "
                f"process has no yield there"
            )
        if meta.theory is not None:
            out[layout.THEORY_NOMINAL] = theory_nominal
            for name, (_, m, ev) in self._pdf.items():
                out[layout.pdf_members(name)] = m
                if ev is not None:
                    out[layout.pdf_eigenvectors(name)] = ev
            n_gen = meta.theory.n_gen
            tv = list(self._theory_vars.values())
            out[layout.THEORY_VAR_UP] = np.array([u for _, u, _ in tv]).reshape(len(tv), n_gen)
            out[layout.THEORY_VAR_DOWN] = np.array([d for _, _, d in tv]).reshape(len(tv), n_gen)
        elif self._pdf or self._theory_vars:
            raise ContentError("PDF sets or theory variations given without set_theory()")
        return out

    def _response_arrays(self, meta: ArchiveMetadata, ch: Channel, p: str) -> dict[str, np.ndarray]:
        what = f"response of '{p}' in '{ch.name}'"
        if (p, ch.name) not in self._responses:
            raise ContentError(f"folded process '{p}' has a yield in '{ch.name}' but no response")
        r = self._responses[(p, ch.name)]
        pts = meta.mass_points_of(p)
        want = (len(pts), ch.n_bins, meta.theory.n_gen)  # type: ignore[union-attr]
        if tuple(r.shape) != want:
            raise ContentError(
                f"{what} has shape {tuple(r.shape)}, expected {want} "
                f"(mass points, reco bins, generator bins)"
            )
        # its folding at every mass point is checked with the other plausibility rules
        base = layout.response(ch.name, p)
        if isinstance(r, SparseTensor):
            if r.density > DENSE_RESPONSE_FRACTION:
                return {base: r.todense()}
            sp = r
        else:
            if np.count_nonzero(r) / max(r.size, 1) > DENSE_RESPONSE_FRACTION:
                return {base: r}
            sp = SparseTensor.fromdense(r)
        return {
            f"{base}/point": sp.coords[0].astype(np.int32),
            f"{base}/bin": sp.coords[1].astype(np.int32),
            f"{base}/gen": sp.coords[2].astype(np.int32),
            f"{base}/value": sp.values,
        }

    def _logk_arrays(
        self, meta: ArchiveMetadata, ch: Channel, pidx: dict[str, int], proc_idx: dict[str, int]
    ) -> dict[str, np.ndarray]:
        nb = ch.n_bins
        dense_rows: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        sparse: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
        for (par, p, c), v in self._variations.items():
            if c != ch.name:
                continue
            problem = meta.variation_problem(par, p, c)
            if problem is not None:
                raise ContentError(f"variation '{par}' of '{p}' in '{c}': {problem}")
            if v.bins.size > DENSE_ROW_FRACTION * nb:
                a = np.zeros(nb)
                h = np.zeros(nb)
                a[v.bins], h[v.bins] = v.avg, v.halfdiff
                dense_rows.append((pidx[par], proc_idx[p], a, h))
            elif v.bins.size:
                sparse.append((pidx[par], proc_idx[p], v.bins, v.avg, v.halfdiff))
        dense_rows.sort(key=lambda r: (r[0], r[1]))
        sparse.sort(key=lambda r: (r[0], r[1]))

        def path(storage: str, name: str) -> str:
            return layout.logk(ch.name, storage, name)

        def rows(i: int) -> np.ndarray:
            return np.array([r[i] for r in dense_rows]).reshape(-1, nb)

        def entries(i: int) -> np.ndarray:
            return np.concatenate([e[i] for e in sparse]) if sparse else np.zeros(0)

        n = [len(e[2]) for e in sparse]
        out = {
            path("dense", "parameter"): np.array([r[0] for r in dense_rows], np.int32),
            path("dense", "process"): np.array([r[1] for r in dense_rows], np.int32),
            path("dense", "avg"): rows(2),
            path("dense", "halfdiff"): rows(3),
            path("sparse", "parameter"): np.repeat([e[0] for e in sparse], n).astype(np.int32),
            path("sparse", "process"): np.repeat([e[1] for e in sparse], n).astype(np.int32),
            path("sparse", "bin"): entries(2).astype(np.int32),
            path("sparse", "avg"): entries(3).astype(np.float64),
            path("sparse", "halfdiff"): entries(4).astype(np.float64),
        }
        return out

    def _modifier_arrays(self, meta: ArchiveMetadata, ch: Channel) -> dict[str, np.ndarray]:
        """The channel's extended-modifier datasets (format 1.1), checked by the rules the
        validator applies."""
        if not ch.modifiers:
            return {}
        problem = self._mods.problem(meta, ch.name)
        mods = self._mods.tables(meta, ch.name) if problem is None else None
        problem = problem or modifier_problem(meta, ch.name, mods)  # type: ignore[arg-type]
        if problem is not None:
            raise ContentError(f"channel '{ch.name}': {problem}")
        return {
            layout.modifier(ch.name, kind, f): arr
            for kind in ch.modifiers
            for f, arr in mods.arrays(kind).items()
        }

    # ------------------------------------------------------------------ helpers
    def _channel(self, name: str) -> dict:
        if name not in self._channels:
            raise ContentError(f"unknown channel '{name}' (add it with add_channel first)")
        return self._channels[name]

    def _process(self, name: str) -> Process:
        if name not in self._processes:
            raise ContentError(f"unknown process '{name}' (add it with add_process first)")
        return self._processes[name]

    def _need_theory(self, what: str) -> dict:
        if self._theory is None:
            raise ContentError(f"{what}: call set_theory() first")
        return self._theory

    def _grid(self, grid: Any, axes: list[Axis], what: str) -> np.ndarray:
        g, _ = self._values(grid, axes, what)
        _check_finite(g, what)
        return g

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


def replica_eigenvectors(
    replicas: np.ndarray, variance_threshold: float = 0.99
) -> tuple[np.ndarray, float]:
    """Symmetric one-sigma eigenvector shifts of a replica set's theory grids.

    ``replicas`` (n_rep, n_gen). The replica covariance C = cov(replicas) is decomposed as
    C = sum_k lambda_k v_k v_k^T; the shifts sqrt(lambda_k) v_k with the largest eigenvalues
    are kept until their sum holds ``variance_threshold`` of trace(C). Returns the shifts,
    shape (k, n_gen), and the fraction of the variance they hold.
    """
    x = replicas - replicas.mean(axis=0)
    # SVD of the centred replicas: the right singular vectors are the eigenvectors of C
    _, s, vt = np.linalg.svd(x / np.sqrt(max(len(replicas) - 1, 1)), full_matrices=False)
    lam = s**2
    total = lam.sum()
    if total <= 0:
        return np.zeros((0, replicas.shape[1])), 1.0
    frac = np.cumsum(lam) / total
    k = int(np.searchsorted(frac, variance_threshold) + 1)
    k = min(k, len(lam))
    shifts = s[:k, None] * vt[:k]
    # fix the sign so that the largest component of each shift is positive (deterministic)
    sign = np.sign(shifts[np.arange(k), np.argmax(np.abs(shifts), axis=1)])
    return shifts * sign[:, None], min(float(frac[k - 1]), 1.0)


def _canonical_sparse(t: SparseTensor, what: str) -> SparseTensor:
    """Check a producer's sparse tensor (in range, no repeated entries, finite) and sort it."""
    coords = np.asarray(t.coords, dtype=np.int64)
    values = np.asarray(t.values, dtype=np.float64)
    shape = tuple(int(n) for n in t.shape)
    if coords.shape != (len(shape), values.shape[0]):
        raise ContentError(
            f"{what}: sparse coords have shape {coords.shape}, expected "
            f"({len(shape)}, {values.shape[0]})"
        )
    for d, n in enumerate(shape):
        if coords.shape[1] and (coords[d].min() < 0 or coords[d].max() >= n):
            raise ContentError(f"{what}: sparse coordinate {d} out of range [0, {n})")
    _check_finite(values, what)
    flat = np.ravel_multi_index(tuple(coords), shape) if coords.shape[1] else coords[0]
    order = np.argsort(flat, kind="stable")
    if np.any(np.diff(flat[order]) == 0):
        raise ContentError(f"{what}: repeated sparse entries")
    keep = order[values[order] != 0]
    return SparseTensor(coords[:, keep], values[keep], shape)


def _build_image(
    meta: ArchiveMetadata, arrays: dict[str, np.ndarray], level: int
) -> tuple[bytes, dict[str, DatasetRecord], int]:
    """The complete HDF5 file as bytes (built with HDF5's in-memory driver, so that HDF5 never
    sees a failing disk), with the manifest records and the uncompressed array bytes."""
    records: dict[str, DatasetRecord] = {}
    raw = 0
    f = h5py.File(
        f"wmass-archive-{secrets.token_hex(8)}.h5", "w", driver="core", backing_store=False
    )
    try:
        for dpath, arr in arrays.items():
            records[dpath] = _write_dataset(f, dpath, arr, level)
            raw += arr.nbytes
        final = meta.model_copy(update={"datasets": records})
        blob = final.to_json_bytes()
        ArchiveMetadata.model_validate_json(blob)  # what we write, we can read
        f.create_dataset(
            layout.METADATA,
            data=np.frombuffer(blob, dtype=np.uint8),
            compression="gzip",
            compression_opts=level,
        )
        f.attrs[layout.ATTR_FORMAT] = final.format
        f.attrs[layout.ATTR_VERSION] = final.format_version
        f.attrs[layout.ATTR_METADATA_SHA] = bytes_sha256(blob)
        f.flush()
        image = f.id.get_file_image()
    finally:
        f.close()
    return image, records, raw


#: bytes per write() call when copying the file image to disk
_CHUNK = 1 << 20


def _write_file(tmp: Path, image: bytes) -> None:
    """Write ``image`` to a new file ``tmp`` (which must not exist) and fsync it."""
    view = memoryview(image)
    with open(tmp, "xb") as fh:
        for start in range(0, len(view), _CHUNK):
            _write_chunk(fh, view[start : start + _CHUNK])
        fh.flush()
        os.fsync(fh.fileno())


def _write_chunk(fh: Any, chunk: memoryview) -> None:
    fh.write(chunk)


def _write_dataset(f: h5py.File, path: str, arr: np.ndarray, level: int) -> DatasetRecord:
    arr = np.ascontiguousarray(arr)
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    arr = arr.astype(dt, copy=False)
    kwargs: dict[str, Any] = {}
    if arr.size > 0:
        kwargs = dict(compression="gzip", compression_opts=level, shuffle=True)
    f.create_dataset(path, data=arr, **kwargs)
    return DatasetRecord(shape=list(arr.shape), dtype=dt.str, sha256=array_sha256(arr))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_plausible(meta: ArchiveMetadata, arrays: dict[str, np.ndarray]) -> None:
    """The reader's plausibility rules (module ``plausibility``), applied before writing: what
    the writer writes, every reader reads."""
    problem = metadata_problem(meta)
    if problem is not None:
        raise ContentError(problem)
    signed = meta.sample_yields == "signed"
    for path, arr in arrays.items():
        problem = dataset_problem(path, np.asarray(arr), signed_yields=signed)
        if problem is not None:
            raise ContentError(f"{path}: {problem}")
    for ch_name, p in folded_pairs(meta):
        base = layout.response(ch_name, p)
        if base in arrays:
            r = SparseTensor.fromdense(arrays[base])
        else:
            fields = [arrays[f"{base}/{k}"] for k in ("point", "bin", "gen")]
            shape = (len(meta.mass_points_of(p)), meta.channel(ch_name).n_bins, meta.theory.n_gen)  # type: ignore[union-attr]
            r = SparseTensor(np.stack(fields).astype(np.int64), arrays[f"{base}/value"], shape)
        problem = response_problem(
            meta, p, r, arrays[layout.THEORY_NOMINAL], arrays[layout.nominal(ch_name, p)]
        )
        if problem is not None:
            raise ContentError(f"response of '{p}' in '{ch_name}': {problem}")


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        flat = np.asarray(a).reshape(-1)
        bad = int(np.argmax(~np.isfinite(flat)))
        raise ContentError(f"{what} has a non-finite value ({flat[bad]}) at flat index {bad}")


def _refuse_unsafe_text(meta: ArchiveMetadata) -> None:
    """A new archive's names and title hold no control, format (bidi, zero-width), line or
    paragraph separator or lone surrogate character (issue 14: they reach terminals, plots and
    file names). Archives written before the rule are still read; their strings are escaped
    wherever they are shown."""
    named: list[tuple[str, str]] = [("title", meta.title)]
    named += [("channel name", c.name) for c in meta.channels]
    named += [("process name", p.name) for p in meta.processes]
    named += [("group name", g.name) for g in meta.groups]
    named += [("POI name", p.name) for p in meta.pois]
    named += [("nuisance name", n.name) for n in meta.nuisances]
    if meta.theory is not None:
        named += [("PDF set name", s.name) for s in meta.theory.pdf_sets]
        named += [("theory variation name", v.name) for v in meta.theory.variations]
    for what, value in named:
        bad = has_unsafe_chars(value)
        if bad is not None:
            raise ContentError(
                f"{what} '{printable(value, max_len=80)}' holds the character "
                f"U+{ord(bad):04X} ({unicodedata.category(bad)}): names and the title must not "
                "hold control, format or line-separator characters"
            )


def _is_hist(obj: Any) -> bool:
    return hasattr(obj, "axes") and hasattr(obj, "values") and hasattr(obj, "view")


def _model(cls: type, **kwargs: Any) -> Any:
    """Build a pydantic model, turning its validation error into one clear line."""
    try:
        return cls(**kwargs)
    except ValidationError as exc:
        raise ContentError(f"{cls.__name__}: {validation_message(exc)}") from None


__all__ = ["ArchiveWriter", "WriteReport", "replica_eigenvectors"]
