"""The :class:`TheoryGrid`: theory grids of one or more PDF members with their metadata, and
their files (HDF5 and CSV).

Values have shape ``(n_members, 2, 8, 10, 9)``: PDF member, then the generator axes of
:mod:`wmass_archive.theory.generator` (qW, absYW, ptW, helicity), in pb per generator bin
(sigma x BR(W -> mu nu) integrated over the cell; ``UL`` entries are sigma_UL, ``Ai`` entries
sigma_UL * A_i). The file layouts are specified in ``docs/theory.md``:

HDF5 (``.h5``/``.hdf5``)::

    /            attrs: format = "wmass-theory-grid", format_version = "1.0"
    /metadata    scalar UTF-8 string: the JSON of :class:`TheoryGridMeta`
    /values      float64 (n_members, 2, 8, 10, 9), pb
    /members     int64 (n_members,): the PDF member numbers (as in metadata)

CSV (``.csv``): ``#`` comment lines first (``# format: wmass-theory-grid 1.0`` and
``# metadata: {JSON}``, both optional when reading), then a header and one row per generator bin
(and member): ``[member,]qW,absYW_lo,absYW_hi,ptW_lo,ptW_hi,helicity,sigma_pb``. The ``member``
column is written only for grids of more than one member; values are written with 17
significant digits, so a round trip is exact.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._version import __version__
from ..archive.axes import Axis
from ..errors import ContentError
from .generator import (
    ABS_Y_EDGES,
    CHARGES,
    GRID_SHAPE,
    HELICITIES,
    N_GEN,
    PT_EDGES,
    generator_axes,
)
from .params import TheoryParameters

__all__ = [
    "GRID_FORMAT",
    "GRID_FORMAT_VERSION",
    "GridProvenance",
    "TheoryGrid",
    "TheoryGridError",
    "TheoryGridMeta",
    "check_grid_path",
    "load_theory_grid",
    "load_theory_grid_bytes",
]

GRID_FORMAT = "wmass-theory-grid"
GRID_FORMAT_VERSION = "1.0"
CSV_COLUMNS: tuple[str, ...] = (
    "qW",
    "absYW_lo",
    "absYW_hi",
    "ptW_lo",
    "ptW_hi",
    "helicity",
    "sigma_pb",
)


class TheoryGridError(ContentError):
    """A theory grid (in memory or in a file) is malformed; the message is one line."""


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


class GridProvenance(BaseModel):
    """Who made a grid, when, from what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    producer: str = "wmass_archive.theory"
    producer_version: str = __version__
    created: str = Field(default_factory=_now)
    pdf_path: str = ""
    command: str = ""


class TheoryGridMeta(BaseModel):
    """Metadata of a :class:`TheoryGrid`. ``parameters`` is None for a grid made elsewhere
    (e.g. read from a CSV file without metadata)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["wmass-theory-grid"] = GRID_FORMAT
    format_version: str = GRID_FORMAT_VERSION
    axes: list[Axis] = Field(default_factory=generator_axes)
    unit: Literal["pb"] = "pb"
    quantity: str = "sigma x BR(W -> mu nu) per generator bin (UL: sigma_UL; Ai: sigma_UL*A_i)"
    pdf_set: str = Field(default="unknown", min_length=1)
    pdf_members: list[int] = Field(default_factory=lambda: [0])
    pdf_n_members: int | None = Field(default=None, ge=1, description="members the set has")
    pdf_error_type: str | None = None
    pdf_conf_level: float | None = Field(default=None, gt=0.0, lt=100.0)
    parameters: TheoryParameters | None = None
    provenance: GridProvenance = Field(default_factory=GridProvenance)
    description: str = ""


def _where(idx: tuple[int, ...], members: list[int]) -> str:
    m, q, y, p, h = idx
    return (
        f"member {members[m] if m < len(members) else m}, qW={CHARGES[q]:+d}, "
        f"|y| in [{ABS_Y_EDGES[y]:g}, {ABS_Y_EDGES[y + 1]:g}], "
        f"pT in [{PT_EDGES[p]:g}, {PT_EDGES[p + 1]:g}] GeV, {HELICITIES[h]}"
    )


@dataclass(frozen=True)
class TheoryGrid:
    """Theory grids of PDF members: ``values`` (n_members, 2, 8, 10, 9) in pb and ``meta``.

    Build one with :func:`wmass_archive.theory.compute_grid` /
    :func:`~wmass_archive.theory.compute_set_grid`, or read one with :meth:`load`."""

    values: np.ndarray
    meta: TheoryGridMeta

    # -- views ---------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        return int(self.values.shape[0])

    @property
    def axes(self) -> list[Axis]:
        return list(self.meta.axes)

    def member(self, number: int) -> np.ndarray:
        """The grid (2, 8, 10, 9) of PDF member ``number`` (a member number, not a row)."""
        try:
            row = self.meta.pdf_members.index(int(number))
        except ValueError:
            raise KeyError(
                f"member {number} is not in this grid (members {self._members_text()})"
            ) from None
        return self.values[row]

    @property
    def central(self) -> np.ndarray:
        """The grid of member 0 (the central member)."""
        return self.member(0)

    def flat(self) -> np.ndarray:
        """Values flattened per member in C order over the generator axes: (n_members, 1440),
        the layout of :meth:`ArchiveWriter.set_theory` and ``add_pdf_set``."""
        return self.values.reshape(self.n_members, N_GEN)

    def totals(self) -> np.ndarray:
        """sigma x BR inside the generator phase space per member and charge, (n_members, 2)."""
        return self.values[..., 0].sum(axis=(2, 3))

    def coefficients(self) -> np.ndarray:
        """Cell-average A_0..A_7, (n_members, 2, 8, 10, 8) (0 where sigma_UL = 0)."""
        ul = self.values[..., :1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ul > 0, self.values[..., 1:] / np.where(ul > 0, ul, 1.0), 0.0)

    def _members_text(self) -> str:
        m = self.meta.pdf_members
        if m == list(range(m[0], m[0] + len(m))) and len(m) > 2:
            return f"{m[0]}-{m[-1]}"
        return ", ".join(str(i) for i in m)

    def archive_pdf_kwargs(self, name: str | None = None, **extra: Any) -> dict[str, Any]:
        """Keywords for :meth:`ArchiveWriter.add_pdf_set` (name, lhapdf_name, error_type,
        confidence_level, members); ``extra`` (e.g. ``scale=1.5``) is added as it is."""
        if self.meta.pdf_error_type is None:
            raise TheoryGridError("grid has no pdf_error_type: cannot describe its PDF set")
        n_set = self.meta.pdf_n_members or self.n_members
        if self.meta.pdf_members != list(range(n_set)):
            raise TheoryGridError(
                f"an archive PDF set needs all members 0-{n_set - 1} of {self.meta.pdf_set}, "
                f"this grid has {self._members_text()}"
            )
        out: dict[str, Any] = {
            "name": name or self.meta.pdf_set,
            "lhapdf_name": self.meta.pdf_set,
            "error_type": self.meta.pdf_error_type.split("+")[0],
            "members": self.flat(),
        }
        if self.meta.pdf_conf_level is not None:
            out["confidence_level"] = float(self.meta.pdf_conf_level)
        return {**out, **extra}

    # -- checks --------------------------------------------------------------------------
    def validate(self) -> TheoryGrid:
        """Check shape, axes, member list, finiteness and sigma_UL >= 0; raise
        :class:`TheoryGridError` with one line naming the first problem. Returns self."""
        v = self.values
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
            raise TheoryGridError(
                f"theory grid values must be a float numpy array, got {type(v).__name__}"
                + (f" of {v.dtype}" if isinstance(v, np.ndarray) else "")
            )
        if v.ndim != 5 or v.shape[1:] != GRID_SHAPE or v.shape[0] < 1:
            raise TheoryGridError(
                f"theory grid values have shape {v.shape}, expected (n_members, "
                f"{', '.join(str(n) for n in GRID_SHAPE)})"
            )
        members = self.meta.pdf_members
        if len(members) != v.shape[0]:
            raise TheoryGridError(
                f"metadata lists {len(members)} PDF members but values hold {v.shape[0]}"
            )
        if len(set(members)) != len(members) or any(m < 0 for m in members):
            raise TheoryGridError(f"PDF member numbers must be distinct and >= 0: {members}")
        n_set = self.meta.pdf_n_members
        if n_set is not None and max(members) >= n_set:
            raise TheoryGridError(
                f"PDF member {max(members)} listed but the set has members 0-{n_set - 1}"
            )
        want = generator_axes()
        if [a.name for a in self.meta.axes] != [a.name for a in want]:
            raise TheoryGridError(
                f"theory grid axes are {[a.name for a in self.meta.axes]}, expected "
                f"{[a.name for a in want]}"
            )
        for got, exp in zip(self.meta.axes, want, strict=True):
            if not got.same_binning(exp):
                raise TheoryGridError(
                    f"theory grid axis '{got.name}' has a binning different from the generator "
                    f"binning ({_binning_text(got)} instead of {_binning_text(exp)})"
                )
        bad = ~np.isfinite(v)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise TheoryGridError(
                f"theory grid has {int(bad.sum())} non-finite value(s), first at "
                f"{_where(idx, members)}"
            )
        neg = v[..., 0] < 0
        if neg.any():
            idx = tuple(int(i) for i in np.argwhere(neg)[0]) + (0,)
            raise TheoryGridError(
                f"theory grid has {int(neg.sum())} negative sigma_UL value(s), first "
                f"{v[idx]:.6g} pb at {_where(idx, members)}"
            )
        return self

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to ``path``: HDF5 for ``.h5``/``.hdf5``, CSV for ``.csv``. Returns the path.
        The file is written under a temporary name and renamed into place."""
        path = Path(path)
        kind = check_grid_path(path)
        self.validate()
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            if kind == "h5":
                self._write_h5(tmp)
            else:
                tmp.write_text(self.to_csv(), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    def to_h5_bytes(self) -> bytes:
        """The HDF5 file of this grid (the layout :meth:`save` writes) as bytes, validated
        first; the theory-grid cache hashes and stores exactly these bytes."""
        self.validate()
        buf = io.BytesIO()
        self._write_h5(buf)
        return buf.getvalue()

    def _write_h5(self, path: Path | io.BytesIO) -> None:
        with h5py.File(path, "w") as f:
            f.attrs["format"] = GRID_FORMAT
            f.attrs["format_version"] = GRID_FORMAT_VERSION
            f.create_dataset("metadata", data=self.meta.model_dump_json())
            f.create_dataset("values", data=np.ascontiguousarray(self.values, dtype="<f8"))
            f.create_dataset("members", data=np.asarray(self.meta.pdf_members, dtype="<i8"))

    def to_csv(self) -> str:
        """The CSV text (see the module docstring)."""
        buf = io.StringIO()
        buf.write(f"# format: {GRID_FORMAT} {GRID_FORMAT_VERSION}\n")
        buf.write(f"# pdf_set: {self.meta.pdf_set}; unit: pb per generator bin\n")
        buf.write(f"# metadata: {self.meta.model_dump_json()}\n")
        multi = self.n_members > 1
        w = csv.writer(buf, lineterminator="\n")
        w.writerow((("member",) if multi else ()) + CSV_COLUMNS)
        for row, num in enumerate(self.meta.pdf_members):
            for (iq, iy, ip, ih), val in np.ndenumerate(self.values[row]):
                cells = [
                    CHARGES[iq],
                    f"{ABS_Y_EDGES[iy]:g}",
                    f"{ABS_Y_EDGES[iy + 1]:g}",
                    f"{PT_EDGES[ip]:g}",
                    f"{PT_EDGES[ip + 1]:g}",
                    HELICITIES[ih],
                    f"{val:.17g}",
                ]
                w.writerow(([num] if multi else []) + cells)
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TheoryGrid:
        """Read a grid file written by :meth:`save` (by extension: HDF5 or CSV) and validate
        it. Every problem raises :class:`TheoryGridError` with one line."""
        return load_theory_grid(path)


def _binning_text(ax: Axis) -> str:
    if ax.is_continuous:
        return "edges " + ", ".join(f"{e:g}" for e in ax.bin_edges())
    return "categories " + ", ".join(str(c) for c in ax.categories or [])


def check_grid_path(path: str | os.PathLike[str]) -> str:
    """The file kind (``"h5"`` or ``"csv"``) of an output path whose folder exists; else
    :class:`TheoryGridError`."""
    path = Path(path)
    kind = _kind(path)
    if not path.parent.is_dir():
        raise TheoryGridError(f"cannot write {path}: folder {path.parent} does not exist")
    return kind


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return "h5"
    if suffix == ".csv":
        return "csv"
    raise TheoryGridError(f"{path}: unknown theory grid file type {suffix!r} (use .h5 or .csv)")


def _meta_from_json(text: str, where: str) -> TheoryGridMeta:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TheoryGridError(f"{where}: metadata is not valid JSON ({exc.msg})") from None
    try:
        return TheoryGridMeta.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "metadata"
        raise TheoryGridError(f"{where}: metadata field {loc}: {err['msg']}") from None


def load_theory_grid(path: str | os.PathLike[str]) -> TheoryGrid:
    """Read and validate a theory grid file (``.h5``/``.hdf5`` or ``.csv``)."""
    path = Path(path)
    kind = _kind(path)
    if not path.is_file():
        raise TheoryGridError(f"{path}: no such theory grid file")
    grid = _load_h5(path) if kind == "h5" else _load_csv(path)
    try:
        return grid.validate()
    except TheoryGridError as exc:
        raise TheoryGridError(f"{path}: {exc}") from None


def load_theory_grid_bytes(data: bytes, where: str) -> TheoryGrid:
    """Read and validate a theory grid from the bytes of its HDF5 file (as
    :meth:`TheoryGrid.to_h5_bytes` makes them); ``where`` names it in error messages."""
    grid = _load_h5(Path(where), io.BytesIO(data))
    try:
        return grid.validate()
    except TheoryGridError as exc:
        raise TheoryGridError(f"{where}: {exc}") from None


def _load_h5(path: Path, source: io.BytesIO | None = None) -> TheoryGrid:
    try:
        f = h5py.File(path if source is None else source, "r")
    except OSError:
        raise TheoryGridError(f"{path}: not an HDF5 file (or unreadable)") from None
    with f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != GRID_FORMAT:
            raise TheoryGridError(f"{path}: not a theory grid file (format attribute {fmt!r})")
        ver = f.attrs.get("format_version")
        ver = ver.decode() if isinstance(ver, bytes) else str(ver)
        if ver.split(".")[0] != GRID_FORMAT_VERSION.split(".")[0]:
            raise TheoryGridError(f"{path}: theory grid format version {ver} is not supported")
        for name in ("metadata", "values"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise TheoryGridError(f"{path}: dataset '/{name}' is missing")
        raw = f["metadata"][()]
        meta = _meta_from_json(raw.decode() if isinstance(raw, bytes) else str(raw), str(path))
        ds = f["values"]
        if ds.dtype.kind != "f" or ds.ndim != 5:
            raise TheoryGridError(
                f"{path}: '/values' has dtype {ds.dtype} and shape {ds.shape}, expected float64 "
                f"(n_members, {', '.join(str(n) for n in GRID_SHAPE)})"
            )
        values = np.asarray(ds[()], dtype=np.float64)
        if "members" in f:
            stored = [int(m) for m in np.asarray(f["members"][()]).ravel()]
            if stored != list(meta.pdf_members):
                raise TheoryGridError(f"{path}: '/members' disagrees with the metadata")
    return TheoryGrid(values, meta)


def _load_csv(path: Path) -> TheoryGrid:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    meta_json = None
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        ln = lines[start].lstrip("#").strip()
        if ln.startswith("metadata:"):
            meta_json = ln[len("metadata:") :].strip()
        start += 1
    if start >= len(lines):
        raise TheoryGridError(f"{path}: no header line and no data")
    rows = list(csv.reader(lines[start:]))
    header = [h.strip() for h in rows[0]]
    multi = header[:1] == ["member"]
    if tuple(header[1:] if multi else header) != CSV_COLUMNS:
        raise TheoryGridError(
            f"{path}: line {start + 1}: header {','.join(header)!r} is not "
            f"'[member,]{','.join(CSV_COLUMNS)}'"
        )
    y_lookup = {
        (f"{a:g}", f"{b:g}"): i
        for i, (a, b) in enumerate(zip(ABS_Y_EDGES[:-1], ABS_Y_EDGES[1:], strict=True))
    }
    p_lookup = {
        (f"{a:g}", f"{b:g}"): i
        for i, (a, b) in enumerate(zip(PT_EDGES[:-1], PT_EDGES[1:], strict=True))
    }
    h_lookup = {h: i for i, h in enumerate(HELICITIES)}
    q_lookup = {str(c): i for i, c in enumerate(CHARGES)} | {
        f"{c:+d}": i for i, c in enumerate(CHARGES)
    }
    by_member: dict[int, np.ndarray] = {}
    for k, row in enumerate(rows[1:]):
        lineno = start + 2 + k
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(header):
            raise TheoryGridError(
                f"{path}: line {lineno}: {len(row)} columns, expected {len(header)}"
            )
        cells = [c.strip() for c in row]
        member = 0
        if multi:
            try:
                member = int(cells.pop(0))
            except ValueError:
                raise TheoryGridError(f"{path}: line {lineno}: member is not an integer") from None
        q, ylo, yhi, plo, phi, hel, val = cells
        try:
            key = (
                q_lookup[q],
                y_lookup[(f"{float(ylo):g}", f"{float(yhi):g}")],
                p_lookup[(f"{float(plo):g}", f"{float(phi):g}")],
                h_lookup[hel],
            )
        except (KeyError, ValueError):
            raise TheoryGridError(
                f"{path}: line {lineno}: ({q}, |y| {ylo}-{yhi}, pT {plo}-{phi}, {hel}) is not a "
                "generator bin"
            ) from None
        try:
            x = float(val)
        except ValueError:
            raise TheoryGridError(
                f"{path}: line {lineno}: sigma_pb {val!r} is not a number"
            ) from None
        arr = by_member.setdefault(member, np.full(GRID_SHAPE, np.nan))
        if not np.isnan(arr[key]):
            raise TheoryGridError(
                f"{path}: line {lineno}: generator bin repeated (member {member})"
            )
        if np.isnan(x):
            raise TheoryGridError(f"{path}: line {lineno}: sigma_pb is NaN")
        arr[key] = x
    if not by_member:
        raise TheoryGridError(f"{path}: no data rows")
    members = sorted(by_member)
    for m in members:
        missing = int(np.isnan(by_member[m]).sum())
        if missing:
            raise TheoryGridError(
                f"{path}: member {m} lacks {missing} of the {N_GEN} generator bins"
            )
    values = np.stack([by_member[m] for m in members])
    meta = _meta_from_json(meta_json, str(path)) if meta_json else TheoryGridMeta()
    if meta_json is None:
        meta = meta.model_copy(update={"pdf_members": members})
    elif list(meta.pdf_members) != members:
        if sorted(meta.pdf_members) != members:
            raise TheoryGridError(
                f"{path}: rows hold members {members} but the metadata lists {meta.pdf_members}"
            )
        order = [members.index(m) for m in meta.pdf_members]
        values = values[order]
    return TheoryGrid(values, meta)
