"""LHAPDF set metadata and discovery: the module's errors, the ``.info`` parser (the small YAML
subset LHAPDF uses), :class:`PDFSetInfo`, and finding sets on ``LHAPDF_DATA_PATH``.

Part of :mod:`wmass_archive.theory.lhapdf` (import from there).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CL1SIGMA: float = 100.0 * math.erf(1.0 / math.sqrt(2.0))

#: The 13 partons of LHAPDF's all-flavour call, in its order: tbar..dbar, gluon, d..t.
STANDARD_PIDS: tuple[int, ...] = (-6, -5, -4, -3, -2, -1, 21, 1, 2, 3, 4, 5, 6)

#: What the evaluation does with a point outside the grid's x or Q range (inside 0 < x <= 1):
#: ``"error"`` raises :class:`PDFRangeError` (the default here: the shared sets are trimmed to
#: the range W and Z production needs, so a point outside is a mistake unless asked for);
#: ``"nearest"`` evaluates at the nearest grid edge (LHAPDF's ``nearest`` extrapolator);
#: ``"continuation"`` is LHAPDF's default extrapolator (log-linear in x below the grid and in
#: Q2 above it, an anomalous-dimension power law below the lowest Q; x above the last x knot
#: is still an error).
EXTRAPOLATIONS: tuple[str, ...] = ("error", "nearest", "continuation")

_ERROR_CORE_TYPES = ("hessian", "symmhessian", "replicas")
_CHUNK = 8192  # points per vectorised block: bounds the temporaries to a few MB

#: A folder, a colon-separated string of folders, or a sequence of folders.
_Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


class LHAPDFError(Exception):
    """Base class of this module's errors; the message is always one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class PDFSetNotFoundError(LHAPDFError, LookupError):
    """No PDF set of that name in the searched folders (the message lists them and what they
    hold)."""


class PDFFormatError(LHAPDFError, ValueError):
    """A ``.info`` or ``.dat`` file is malformed, truncated or in an unsupported format; the
    message names the file (and the line where it can)."""


class PDFRangeError(LHAPDFError, ValueError):
    """A point is unphysical (x outside (0, 1], Q2 < 0, not finite) or outside the grid with
    ``extrapolation="error"``."""


# ----------------------------------------------------------------------------------------------
# the .info / header parser: the small YAML subset LHAPDF metadata uses
# ----------------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[-+]?\d+\Z")
_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")
_KEY_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)\s*:(\s|\Z)")


def _strip_comment(text: str) -> str:
    """Drop a YAML comment (`` #...`` outside quotes) from the end of a line."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _scalar(token: str) -> Any:
    tok = token.strip()
    if not tok:
        return None
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "\"'":
        inner = tok[1:-1]
        return inner.replace('\\"', '"') if tok[0] == '"' else inner.replace("''", "'")
    low = tok.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "~"):
        return None
    if _INT_RE.match(tok):
        return int(tok)
    if _FLOAT_RE.match(tok) or low in (".inf", "-.inf", ".nan"):
        return float(tok.replace(".inf", "inf").replace(".nan", "nan"))
    return tok


def _split_flow_list(body: str) -> list[str]:
    items, buf, quote = [], [], ""
    for ch in body:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            buf.append(ch)
        elif ch == ",":
            items.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if "".join(buf).strip():
        items.append("".join(buf))
    return items


def _value(text: str, where: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            raise PDFFormatError(f"{where}: unterminated list {text[:40]!r}")
        inner = text[1:-1]
        if "[" in inner or "{" in inner:
            raise PDFFormatError(f"{where}: nested lists are not supported")
        return [_scalar(t) for t in _split_flow_list(inner)]
    return _scalar(text)


def _parse_metadata(text: str, source: str) -> dict[str, Any]:
    """Parse ``Key: value`` metadata (an LHAPDF ``.info`` file or a ``.dat`` header) up to the
    first ``---`` line: scalars, quoted strings, flow lists ``[a, b]`` (possibly over several
    lines), block lists (``- item`` lines) and indented continuation lines. No YAML objects are
    ever constructed: values are str, int, float, bool, None or lists of those."""
    meta: dict[str, Any] = {}
    key: str | None = None
    pending: list[str] | None = None  # lines of a flow list still open
    block: list[str] | None = None  # items of a block list
    lines = text.splitlines()
    for lineno, raw in enumerate(lines, start=1):
        where = f"{source}: line {lineno}"
        if raw.strip() == "---":
            break
        if pending is not None:
            pending.append(_strip_comment(raw).strip())
            joined = " ".join(pending)
            if joined.endswith("]"):
                meta[key] = _value(joined, where)  # type: ignore[index]
                pending = None
            continue
        line = _strip_comment(raw)
        if not line.strip():
            continue
        indented = raw[:1] in (" ", "\t")
        stripped = line.strip()
        if stripped.startswith("- ") or stripped == "-":
            if key is None or (block is None and meta.get(key) is not None):
                raise PDFFormatError(f"{where}: list item outside a list")
            if block is None:
                block = []
                meta[key] = block
            block.append(_scalar(stripped[1:]))
            continue
        m = _KEY_RE.match(line)
        if m is None or indented:
            if indented and key is not None and isinstance(meta.get(key), str):
                meta[key] = f"{meta[key]} {stripped}"  # folded continuation of a plain scalar
                continue
            raise PDFFormatError(f"{where}: expected 'Key: value', found {stripped[:60]!r}")
        key = m.group(1)
        block = None
        rest = line[m.end() :].strip()
        if rest.startswith("[") and not rest.endswith("]"):
            pending = [rest]
            continue
        if rest in ("|", ">", "|-", ">-"):
            meta[key] = ""
            continue
        meta[key] = _value(rest, where)
    if pending is not None:
        raise PDFFormatError(f"{source}: list for key {key!r} is not closed with ']'")
    return meta


# ----------------------------------------------------------------------------------------------
# set metadata
# ----------------------------------------------------------------------------------------------


def _conf_level(meta: dict[str, Any], source: Any) -> Any:
    """ErrorConfLevel in percent; absent -> 1 sigma. Replica sets are 1 sigma whatever they
    say (LHAPDF ignores the key for them), so a placeholder such as -1 is accepted there."""
    cl = meta.get("ErrorConfLevel")
    core = str(meta.get("ErrorType") or "").strip().lower().split("+")[0]
    if cl is None or (core == "replicas" and not (isinstance(cl, (int, float)) and 0 < cl < 100)):
        return CL1SIGMA
    return cl


class PDFSetInfo(BaseModel):
    """A PDF set's metadata, from its ``NAME.info`` file.

    ``error_conf_level`` is in percent; when the file has no ``ErrorConfLevel`` it is one
    Gaussian sigma (68.268949...), LHAPDF's default. Replica sets are always treated as 1 sigma
    by :func:`pdf_uncertainty`, as LHAPDF does. ``metadata`` keeps every key of the file as
    parsed (str, int, float, bool, None or lists of those)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    set_desc: str = ""
    set_index: int | None = None
    num_members: int = Field(ge=1)
    error_type: str = Field(min_length=1)
    error_conf_level: float = Field(default=CL1SIGMA, gt=0.0, lt=100.0)
    flavors: tuple[int, ...] = Field(min_length=1)
    x_min: float | None = None
    x_max: float | None = None
    q_min: float | None = None
    q_max: float | None = None
    format: Literal["lhagrid1"]
    data_version: int | None = None
    order_qcd: int | None = None
    force_positive: Literal[0, 1, 2] = 0
    mz: float | None = None
    alphas_mz: float | None = None
    alphas_type: str | None = None
    alphas_qs: tuple[float, ...] | None = None
    alphas_vals: tuple[float, ...] | None = None
    interpolator: str = "logcubic"
    extrapolator: str = "continuation"
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PDFSetInfo:
        if (self.alphas_qs is None) != (self.alphas_vals is None):
            raise ValueError("AlphaS_Qs and AlphaS_Vals must be given together")
        if self.alphas_qs is not None and len(self.alphas_qs) != len(self.alphas_vals or ()):
            raise ValueError(
                f"AlphaS_Qs has {len(self.alphas_qs)} values but AlphaS_Vals "
                f"{len(self.alphas_vals or ())}"
            )
        return self

    @property
    def error_core_type(self) -> str:
        """The core error type: ``hessian``, ``symmhessian`` or ``replicas`` (the part of
        ``ErrorType`` before any ``+param`` variations)."""
        return self.error_type.split("+")[0].strip()

    @property
    def has_alphas_table(self) -> bool:
        return self.alphas_qs is not None and len(self.alphas_qs) >= 2

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PDFSetInfo:
        """Parse a ``NAME.info`` file (the set's name is the file's stem)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise PDFSetNotFoundError(f"{path}: cannot read the set's info file: {exc}") from exc
        return cls.from_metadata(_parse_metadata(text, str(path)), name=path.stem, source=path)

    @classmethod
    def from_metadata(
        cls, meta: dict[str, Any], *, name: str, source: str | os.PathLike[str] = "<info>"
    ) -> PDFSetInfo:
        """Build from already-parsed metadata (keys as in the ``.info`` file)."""
        fmt = meta.get("Format")
        if fmt is None:
            raise PDFFormatError(f"{source}: no 'Format' key; expected 'Format: lhagrid1'")
        if fmt != "lhagrid1":
            raise PDFFormatError(
                f"{source}: Format {fmt!r} is not supported; this reader reads 'lhagrid1' only"
            )
        for required in ("NumMembers", "Flavors", "ErrorType"):
            if meta.get(required) in (None, ""):
                raise PDFFormatError(f"{source}: required key {required!r} is missing or empty")
        flavors = meta["Flavors"]
        if not isinstance(flavors, list):
            raise PDFFormatError(f"{source}: Flavors must be a list, found {flavors!r}")

        def tup(key: str) -> tuple[float, ...] | None:
            v = meta.get(key)
            if v is None:
                return None
            if not isinstance(v, list):
                raise PDFFormatError(f"{source}: {key} must be a list, found {v!r}")
            return tuple(v)

        fields = {
            "name": name,
            "set_desc": str(meta.get("SetDesc") or ""),
            "set_index": meta.get("SetIndex"),
            "num_members": meta["NumMembers"],
            "error_type": str(meta["ErrorType"]).strip().lower(),
            "error_conf_level": _conf_level(meta, source),
            "flavors": tuple(flavors),
            "x_min": meta.get("XMin"),
            "x_max": meta.get("XMax"),
            "q_min": meta.get("QMin"),
            "q_max": meta.get("QMax"),
            "format": fmt,
            "data_version": meta.get("DataVersion"),
            "order_qcd": meta.get("OrderQCD"),
            "force_positive": meta.get("ForcePositive", 0) or 0,
            "mz": meta.get("MZ"),
            "alphas_mz": meta.get("AlphaS_MZ"),
            "alphas_type": None if meta.get("AlphaS_Type") is None else str(meta["AlphaS_Type"]),
            "alphas_qs": tup("AlphaS_Qs"),
            "alphas_vals": tup("AlphaS_Vals"),
            "interpolator": str(meta.get("Interpolator") or "logcubic"),
            "extrapolator": str(meta.get("Extrapolator") or "continuation"),
            "metadata": dict(meta),
        }
        try:
            return cls(**fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "info"
            raise PDFFormatError(f"{source}: {loc}: {err['msg']}") from None


def read_pdf_set_info(name_or_path: str | os.PathLike[str], paths: _Paths = None) -> PDFSetInfo:
    """The :class:`PDFSetInfo` of a set given by name (searched) or folder path."""
    set_dir = find_pdf_set_dir(name_or_path, paths)
    return PDFSetInfo.from_file(set_dir / f"{set_dir.name}.info")


# ----------------------------------------------------------------------------------------------
# finding sets
# ----------------------------------------------------------------------------------------------


def pdf_search_paths(paths: _Paths = None) -> list[Path]:
    """The folders searched for sets, in order: the explicit ``paths`` (a folder, a
    colon-separated string or a sequence of folders), then ``LHAPDF_DATA_PATH`` or, when that is
    not set, ``LHAPATH`` (as LHAPDF's ``paths()``: colon-separated; empty entries skipped).
    Duplicates are dropped; folders need not exist."""
    out: list[Path] = []
    if paths is not None:
        items: Iterable[str | os.PathLike[str]]
        if isinstance(paths, (str, os.PathLike)):
            items = str(paths).split(os.pathsep) if isinstance(paths, str) else [paths]
        else:
            items = paths
        out.extend(Path(p).expanduser() for p in items if str(p))
    env = os.environ.get("LHAPDF_DATA_PATH")
    if env is None:
        env = os.environ.get("LHAPATH")
    if env:
        out.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    seen: set[str] = set()
    unique = []
    for p in out:
        if str(p) not in seen:
            seen.add(str(p))
            unique.append(p)
    return unique


def _sets_in(folder: Path) -> list[str]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    return sorted(e.name for e in entries if (e / f"{e.name}.info").is_file())


def available_pdf_sets(paths: _Paths = None) -> list[str]:
    """Names of the sets (folders ``NAME/`` holding ``NAME.info``) in the search folders,
    sorted, each once."""
    names: set[str] = set()
    for folder in pdf_search_paths(paths):
        names.update(_sets_in(folder))
    return sorted(names)


def _looks_like_path(name: str | os.PathLike[str]) -> bool:
    return isinstance(name, os.PathLike) or os.sep in str(name) or str(name).startswith(".")


def find_pdf_set_dir(name: str | os.PathLike[str], paths: _Paths = None) -> Path:
    """The folder of a PDF set.

    ``name`` is either a set name, searched for as ``NAME/NAME.info`` in
    :func:`pdf_search_paths` (explicit ``paths`` first), or a path (a :class:`~pathlib.Path`,
    or a string containing a path separator) to the set's folder or to its ``.info`` file.
    Raises :class:`PDFSetNotFoundError` naming the folders searched and the sets seen there."""
    if _looks_like_path(name):
        p = Path(name).expanduser()
        if p.is_file() and p.suffix == ".info":
            p = p.parent
        if p.is_dir() and (p / f"{p.name}.info").is_file():
            return p.resolve()
        raise PDFSetNotFoundError(
            f"PDF set folder {str(p)!r} not found or not a set (expected {p.name}/{p.name}.info)"
        )
    name = str(name)
    if not name or name in (".", "..") or "/" in name:
        raise PDFSetNotFoundError(f"invalid PDF set name {name!r}")
    folders = pdf_search_paths(paths)
    for folder in folders:
        cand = folder / name
        if (cand / f"{name}.info").is_file():
            return cand.resolve()
    if not folders:
        raise PDFSetNotFoundError(
            f"PDF set {name!r} not found: no folders to search "
            "(set LHAPDF_DATA_PATH or pass paths=)"
        )
    looked = "; ".join(
        f"{f} ({', '.join(_sets_in(f)) or 'no sets'})" if f.is_dir() else f"{f} (missing)"
        for f in folders
    )
    raise PDFSetNotFoundError(f"PDF set {name!r} not found; looked in: {looked}")
