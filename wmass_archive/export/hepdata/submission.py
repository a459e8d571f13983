"""``export_hepdata``: a complete HEPData submission of an archive's W-mass fit, written with
hepdata_lib and validated with hepdata-validator (offline) before it replaces the output folder.

The fit work runs once (:func:`~wmass_archive.refit.refit` with impacts in both definitions, a
likelihood scan and the PDF sweep; its ``generator_level`` feeds the generator-level tables),
plus one fit with mW+ and mW- as POIs (``poi="mw-charge"``, on the same resolved PDF set, no
impacts) for the charge split; every table reads its numbers from these results and from the
prefit/postfit yields of :mod:`.yields`. The submission is written into a hidden folder
beside the output, validated, then moved into place, so that a failure never leaves a partial
submission at the output path. The archive itself is attached (the same bytes) with its SHA-256.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...archive.checksums import file_sha256
from ...archive.reader import open_archive
from ...archive.validate import validate_archive
from ...interop._bounds import check_bounds, estimate_hepdata
from ...refit.api import refit
from ...refit.report import poi_line
from ...refit.schema import RefitResult
from ...theory.resolve import ResolvedTheory
from .._folder import remove_staging
from .context import ExportContext
from .errors import HEPDataError
from .limits import UPLOAD_LIMIT_BYTES, check_submission
from .output import check_tarball, install, prepare_output, working_dir
from .record import build_submission, check_archive_fields
from .split import can_split, split_fit
from .tables import mass_pois
from .validation import require_valid
from .yields import parameter_supports, yield_bands

DEFAULT_SCAN_POINTS = 21


@dataclass
class HEPDataReport:
    """What :func:`export_hepdata` wrote: the output folder, its tables and files (YAML bytes),
    the attached archive and its SHA-256, the tarball when asked, the refit ``result`` and the
    fit with mW+ and mW- as POIs (``split``; None when the archive has no charge split)."""

    output: Path
    archive: Path
    archive_sha256: str
    tables: list[str]
    files: list[str]
    yaml_bytes: int
    valid_files: list[str]
    result: RefitResult
    tarball: Path | None = None
    split: RefitResult | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines for the terminal."""
        r = self.result
        status = ", ".join(
            x for x, on in (("SYNTHETIC", r.synthetic), ("BLINDED", r.blinded)) if on
        )
        lines = [
            f"HEPData submission written to {self.output} ({len(self.tables)} tables, "
            f"{self.yaml_bytes / 1e6:.2f} MB of YAML; valid for hepdata-validator: "
            f"submission.yaml and {len(self.valid_files) - 1} data files)",
            f"  archive   {self.archive.name} attached (sha256 {self.archive_sha256})"
            + (f" [{status}]" if status else ""),
        ]
        for p in r.pois.values():
            lines.append("  result    " + poi_line(p, r.blinded))
        lines.append("  tables    " + "; ".join(self.tables))
        if self.tarball is not None:
            lines.append(f"  upload    {self.tarball} (validated)")
        for n in self.notes:
            lines.append(f"  note: {n}")
        lines.append(f"  time      {self.seconds:.1f} s")
        return "\n".join(lines)


class _Steps:
    """The export's steps as a tqdm line on stderr (the refit shows bars of its own)."""

    def __init__(self, progress: bool, total: int):
        from tqdm import tqdm

        self.n, self.total = 0, total
        self.bar = tqdm(
            total=total, disable=not progress, leave=False, bar_format="{desc} [{elapsed}]"
        )

    def __call__(self, what: str) -> None:
        self.n += 1
        self.bar.set_description_str(f"export hepdata {self.n}/{self.total}: {what}")

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- the export
def export_hepdata(
    archive: str | os.PathLike[str] | None,
    output: str | os.PathLike[str],
    *,
    pdf: str | ResolvedTheory | None = None,
    unblind: bool = False,
    scan_points: int = DEFAULT_SCAN_POINTS,
    cmenergy_gev: float = 13000.0,
    tarball: str | os.PathLike[str] | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    overwrite: bool = False,
    max_output_gb: float | None = None,
    max_memory_gb: float | None = None,
) -> HEPDataReport:
    """Fit ``archive`` (None: the default archive) and write its HEPData submission into the
    folder ``output`` (a new or empty folder, or a previous export of this tool, which is
    replaced).

    ``pdf``: the PDF set of the main fit (a name or a resolved theory, as
    :func:`~wmass_archive.refit.refit` takes it; default the archive's nominal set); ``unblind``:
    absolute mW values instead of the blinded shift; ``scan_points``: points of the likelihood
    scan; ``cmenergy_gev``: sqrt(s) in GeV for the keywords and qualifiers; ``tarball``: also
    write the upload archive (``.tar.gz``, validated too); ``scheduler``: where the PDF
    sweep's fits run (see :func:`~wmass_archive.refit.refit`; ``"none"``: in this process);
    ``progress``: tqdm lines on stderr; ``overwrite``: replace ``output`` even when it is not a
    previous export of this tool whose files are unchanged (its manifest
    ``.wmass-archive-export.json``; without it such a folder is refused before any work);
    ``max_output_gb``, ``max_memory_gb``: bounds (GB) on the submission's bytes and the peak
    memory, checked against an estimate before the fit (None: 2 GB and half the machine's
    memory; :mod:`wmass_archive.interop._bounds`).
    Raises :class:`HEPDataError` (or another ArchiveError) with a one-line message."""
    t_start = time.perf_counter()
    if archive is None:
        from ...refit.paths import default_archive_path

        archive = default_archive_path()
    path = Path(archive)
    out = Path(output)
    if scan_points < 3:
        raise HEPDataError(f"the likelihood scan needs at least 3 points, got {scan_points}")
    tar = Path(tarball) if tarball is not None else None
    if tar is not None:
        check_tarball(tar)
    staging = prepare_output(out, overwrite=overwrite, protect=(path,))
    steps = _Steps(progress, 7)
    try:
        steps("validating the archive")
        validate_archive(path)
        size = path.stat().st_size
        if size > UPLOAD_LIMIT_BYTES:
            raise HEPDataError(
                f"{path.name} is {size / 2**20:.1f} MiB: HEPData accepts uploads of at most "
                f"{UPLOAD_LIMIT_BYTES / 2**20:.0f} MiB, so the archive cannot be attached"
            )
        with open_archive(path) as a:
            check_bounds(estimate_hepdata(a, size), max_output_gb, max_memory_gb)
        sha = file_sha256(path)
        with open_archive(path) as a:
            meta = a.metadata
            sumw2 = a.select().sumw2()
        check_archive_fields(path, meta)
        steps("fitting: mW, impacts, likelihood scan, PDF sweep")
        result = refit(
            path,
            pdf=pdf,
            impacts="both",
            scan=scan_points,
            pdf_sweep=meta.theory is not None and any(p.folded for p in meta.processes),
            unblind=unblind,
            scheduler=scheduler,
            progress=progress,
        )
        if not result.fit.converged:
            raise HEPDataError(
                f"the fit of {path.name} did not converge ({result.fit.status}): nothing exported"
            )
        ctx = ExportContext(result, meta, path.resolve(), sha, cmenergy_gev=cmenergy_gev)
        mass_pois(ctx)
        steps("fitting mW for each W charge")
        notes = list(result.notes)
        why_not = can_split(meta)
        if why_not is None:
            split = split_fit(path, result, unblind=unblind, progress=progress)
            if split.fit.converged:
                ctx.split = split
            else:
                notes.append(f"no mW per W charge: its fit did not converge ({split.fit.status})")
        else:
            notes.append(f"no mW per W charge: {why_not}")
        steps("prefit and postfit yields and their uncertainties")
        with open_archive(path) as a:
            supports = parameter_supports(a, result.model)
        ctx.bands = yield_bands(result.model, result.fit_result, sumw2, supports)
        steps("building the tables")
        with tempfile.TemporaryDirectory(prefix="wmass-hepdata-") as scratch:
            sub = build_submission(ctx, Path(scratch))
            check_submission(sub)
            steps("writing the submission")
            with working_dir(Path(scratch)):
                sub.create_files(str(staging), validate=False)
            steps("validating the submission")
            res = require_valid(staging)
            if tar is not None:
                made = Path(scratch) / "submission.tar.gz"
                require_valid(made)
                shutil.move(str(made), tar)
        files = sorted(p.name for p in staging.iterdir())
        yaml_bytes = sum(p.stat().st_size for p in staging.glob("*.yaml"))
        install(staging, out, overwrite=overwrite, protect=(path,))
    finally:
        steps.close()
        remove_staging(staging)
    return HEPDataReport(
        output=out,
        archive=path,
        archive_sha256=sha,
        tables=[t.name for t in sub.tables],
        files=files,
        yaml_bytes=yaml_bytes,
        valid_files=res.valid_files,
        result=result,
        tarball=tar,
        split=ctx.split,
        seconds=time.perf_counter() - t_start,
        notes=notes,
    )
