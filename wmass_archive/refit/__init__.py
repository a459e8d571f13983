"""Refit an archive with another PDF set or theory prediction: the Python API behind
``wmass-refit``.

    >>> from wmass_archive.refit import open_archive, refit
    >>> with open_archive("likelihoods/default.h5") as a:
    ...     print([s.name for s in a.pdf_sets])
    >>> r = refit("likelihoods/default.h5", pdf="NNPDF31", impacts="both")
    >>> print(r.summary())            # the text block wmass-refit prints
    >>> r.mw.shift_mev, r.mw.unc_mev  # MeV (blinded unless unblind=True)
    >>> r.to_json("refit.json")       # docs/schema/refit-result-v1.json
    >>> with Refitter() as rf:         # build once, refit many times
    ...     rs = [rf.fit(grid=g, impacts="none") for g in my_grids]

See ``docs/refit.md``.
"""

from __future__ import annotations

from ..archive import Archive, open_archive, validate_archive
from ..theory.grid import TheoryGrid, TheoryGridError, load_theory_grid
from ..theory.resolve import ResolvedTheory, resolve_theory
from ..theory.usergrid import load_user_grid, make_theory_grid
from .api import refit
from .contents import ArchiveContents, archive_contents
from .errors import RefitError
from .paths import cache_dir, default_archive_path, enable_compilation_cache
from .refitter import Refitter
from .schema import RefitResult, json_schema, write_json_schema
from .sweep import pdf_bias, pdf_sweep

__all__ = [
    "Archive",
    "ArchiveContents",
    "RefitError",
    "RefitResult",
    "Refitter",
    "ResolvedTheory",
    "TheoryGrid",
    "TheoryGridError",
    "archive_contents",
    "cache_dir",
    "default_archive_path",
    "enable_compilation_cache",
    "json_schema",
    "load_theory_grid",
    "load_user_grid",
    "make_theory_grid",
    "open_archive",
    "pdf_bias",
    "pdf_sweep",
    "refit",
    "resolve_theory",
    "validate_archive",
    "write_json_schema",
]
