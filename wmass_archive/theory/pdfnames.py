"""One name resolution for PDF sets, shared by every command that takes ``--pdf``.

A user names a PDF set loosely: ``NNPDF40``, ``NNPDF4.0``, ``nnpdf31``, an LHAPDF name, a folder
path. :func:`find_lhapdf_name` turns such a name into the LHAPDF set it means among the sets on
the search path (``--pdf-path`` folders, then ``LHAPDF_DATA_PATH``); :func:`missing_set_hint`
says, in one line, which LHAPDF set to install and how when it is not there. The archive's own
sets are matched by :func:`wmass_archive.archive.reader.find_pdf_set` (name, LHAPDF name or
alias, compared the same loose way); :func:`wmass_archive.theory.resolve.resolve_theory` tries
the archive first and LHAPDF second, and ``wmass-archive theory-grid`` uses this module too.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path

from ..archive.models import PDFSet, normalize_pdf_name
from ..errors import TheoryError
from ..text import printable
from .lhapdf import available_pdf_sets, pdf_search_paths

__all__ = [
    "LHAPDF_SETS_URL",
    "WELL_KNOWN",
    "PathsLike",
    "describe_sets",
    "find_lhapdf_name",
    "missing_set_hint",
]

PathsLike = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None

#: Short names of the PDF sets of CMS's W-mass analysis (arXiv:2412.13872) -> their LHAPDF names
WELL_KNOWN: dict[str, str] = {
    "ct18z": "CT18ZNNLO",
    "ct18": "CT18NNLO",
    "pdf4lhc21": "PDF4LHC21_40",
    "msht20": "MSHT20nnlo_as118",
    "msht20an3lo": "MSHT20an3lo_as118",
    "nnpdf31": "NNPDF31_nnlo_as_0118",
    "nnpdf40": "NNPDF40_nnlo_as_01180",
    "ct14": "CT14nnlo",
    "mmht14": "MMHT2014nnlo68cl",
}

#: where LHAPDF publishes its sets as ``NAME.tar.gz``
LHAPDF_SETS_URL = "https://lhapdfsets.web.cern.ch/current"


def describe_sets(sets: Sequence[PDFSet]) -> str:
    """'CT10nlo (CT10, CT10NLO), NNPDF23 (NNPDF23_lo_as_0119_qed, NNPDF2.3)' for messages."""
    out = []
    for s in sets:
        other = [x for x in dict.fromkeys([s.lhapdf_name, *s.aliases]) if x != s.name]
        out.append(f"{s.name} ({', '.join(other)})" if other else s.name)
    return ", ".join(out)


def _is_path(name: str) -> bool:
    return os.sep in name or name.startswith(".")


def find_lhapdf_name(name: str, paths: PathsLike = None) -> str | None:
    """The LHAPDF set a forgiving ``name`` means among the sets on the search path: a folder
    path holding ``NAME.info`` (returned as the path), the exact name, a name equal ignoring
    case and ' .-_', a CMS short name (:data:`WELL_KNOWN`), or the only set whose loose name
    starts with it. None when nothing matches; :class:`TheoryError` when several sets match."""
    if _is_path(name):
        p = Path(name).expanduser()
        return str(p) if (p / f"{p.name}.info").is_file() else None
    names = available_pdf_sets(paths)
    if name in names:
        return name
    loose = normalize_pdf_name(name)
    hits = [n for n in names if normalize_pdf_name(n) == loose]
    if not hits and loose in WELL_KNOWN:
        want = normalize_pdf_name(WELL_KNOWN[loose])
        hits = [n for n in names if normalize_pdf_name(n) == want]
    if not hits and loose:
        hits = [n for n in names if normalize_pdf_name(n).startswith(loose)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise TheoryError(
            f"PDF set name '{printable(name, max_len=80)}' is ambiguous: "
            f"{', '.join(hits[:8])}; name one"
        )
    return None


def lhapdf_name_to_install(name: str) -> str | None:
    """The LHAPDF set a user most likely means by ``name`` when it is not installed: the CMS
    short name's set (``NNPDF40`` -> ``NNPDF40_nnlo_as_01180``), a name that already looks like
    an LHAPDF set, or None."""
    loose = normalize_pdf_name(name)
    if loose in WELL_KNOWN:
        return WELL_KNOWN[loose]
    for full in WELL_KNOWN.values():
        if normalize_pdf_name(full) == loose:
            return full
    if "_" in name and name.replace("_", "").isalnum():
        return name
    return None


def missing_set_hint(name: str, paths: PathsLike = None, known: Sequence[str] = ()) -> str:
    """What to say about a PDF set ``name`` that is not on the LHAPDF path (and not among the
    ``known`` names): 'not on the LHAPDF path (folders; sets there); install the LHAPDF set
    X: command ...; did you mean Y?' (one line, to follow 'unknown PDF set 'NAME': ')."""
    folders = [str(p) for p in pdf_search_paths(paths)]
    on_path = available_pdf_sets(paths)
    if folders:
        where = f"not on the LHAPDF path ({', '.join(folders)}"
        where += f"; sets there: {', '.join(on_path[:12]) or 'none'}"
        where += f" and {len(on_path) - 12} more)" if len(on_path) > 12 else ")"
    else:
        where = "no LHAPDF folder is set (LHAPDF_DATA_PATH, or --pdf-path DIR)"
    parts = [where]
    target = lhapdf_name_to_install(name)
    if target is not None:
        dest = f" --dest {folders[0]}" if paths is not None and folders else ""
        parts.append(
            f"install the LHAPDF set {target}: `wmass-archive pdf install {target}{dest}` "
            f"(or LHAPDF's own `lhapdf install {target}`), then point LHAPDF_DATA_PATH or "
            "--pdf-path at that folder"
        )
    close = difflib.get_close_matches(name, [*known, *on_path], n=2, cutoff=0.5)
    if close:
        parts.append(f"did you mean {' or '.join(close)}?")
    return "; ".join(parts)
