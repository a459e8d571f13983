"""The record-level content of the HEPData submission: the abstract, the attached archive
with its SHA-256 and refit instructions, the archive's licence, the tables in order, and the
fields taken from the archive alone (checked before the fit)."""

from __future__ import annotations

from pathlib import Path

from ..._version import __version__
from ...archive.models import ArchiveMetadata
from .context import ExportContext, license_info, location_text
from .distributions import distribution_tables
from .errors import HEPDataError
from .genlevel import genlevel_tables
from .limits import check_length
from .split import split_tables
from .tables import (
    correlation_table,
    impact_tables,
    pdf_sweep_table,
    pulls_table,
    result_table,
    scan_tables,
)
from .variables import hd, yaml_text


class _Submission(hd.Submission):
    """hepdata_lib's Submission with the archive's licence instead of its CC0 default."""

    def __init__(self, license: dict[str, str]):
        super().__init__()
        self._license = license

    def get_license(self) -> dict[str, str]:
        return dict(self._license)


def refit_command(archive: Path) -> str:
    """The command that refits an attached archive."""
    return f"wmass-refit --archive {archive.name}"


def abstract(ctx: ExportContext) -> str:
    """The record's abstract: what the archive is, its status, what the tables hold and how to
    refit the attached archive (one paragraph)."""
    r, m = ctx.result, ctx.meta
    pdf = f" with the PDF set {r.pdf.name}" if r.pdf is not None else ""
    text = [
        f"{m.title}.",
        ctx.status(),
        f"This record holds a fit of the W-boson mass to the likelihood archive "
        f"{ctx.archive_path.name} (wmass-archive format {m.format_version}, {r.archive.n_bins} "
        f"bins, {r.archive.n_nuisances} nuisance parameters){pdf}: mW with its statistical, "
        "systematic and total uncertainties; the impacts of the nuisance groups in the nominal "
        "and global definitions; the pull, constraint and impacts of every nuisance parameter; "
        "the correlation of mW with the nuisance groups; mW for each PDF set with the original "
        "and the scaled PDF uncertainty; the likelihood scan of mW; and the prefit and postfit "
        "distributions."
        + (
            " A second fit gives mW for each W charge, their difference and their correlation."
            if ctx.split is not None
            else ""
        )
        + (
            " The generator-level distributions (per W charge, the cross section and the "
            "angular coefficients in bins of the W transverse momentum and rapidity, prefit "
            "and postfit) show what the fit learnt about W production."
            if r.generator_level is not None
            else ""
        ),
        f"The archive itself is attached (sha256 {ctx.sha256}): refit it with "
        f"'pip install wmass-archive' and '{refit_command(ctx.archive_path)}' (another PDF set: "
        "--pdf NAME; every set: --pdf-sweep).",
    ]
    if m.description.strip():
        about = m.description.strip()
        text.append(f"About the archive: {about}" + ("" if about.endswith(".") else "."))
    text.append(f"Exported with wmass-archive {__version__}.")
    # one paragraph; the archive's title and description escaped (issue 14)
    return yaml_text(" ".join(" ".join(t.split()) for t in text if t))


def _resource_description(ctx: ExportContext) -> str:
    m = ctx.meta
    status = "SYNTHETIC pseudo-analysis, " if m.synthetic else ""
    return yaml_text(
        f"The likelihood archive ({status}wmass-archive HDF5 format {m.format_version}): "
        f"{m.title}. sha256: {ctx.sha256}. Refit it with: pip install wmass-archive; "
        f"{refit_command(ctx.archive_path)} (options: --pdf NAME, --pdf-sweep, --theory-grid "
        "FILE, --unblind; see the package's docs/refit.md)."
    )


def build_submission(ctx: ExportContext, abstract_dir: Path) -> hd.Submission:
    """The hepdata_lib Submission of ``ctx``: abstract, licence, the attached archive and every
    table. ``abstract_dir``: a scratch folder for the abstract file hepdata_lib reads."""
    sub = _Submission(ctx.license())
    text_file = abstract_dir / "abstract.txt"
    text_file.write_text(abstract(ctx), encoding="utf-8")
    sub.read_abstract(str(text_file))
    sub.add_additional_resource(
        _resource_description(ctx),
        str(ctx.archive_path),
        copy_file=True,
        resource_license={k: v for k, v in ctx.license().items() if k in ("name", "url")},
    )
    tables = [result_table(ctx), *split_tables(ctx), *impact_tables(ctx), pulls_table(ctx)]
    tables.append(correlation_table(ctx))
    sweep = pdf_sweep_table(ctx)
    if sweep is not None:
        tables.append(sweep)
    tables += scan_tables(ctx) + distribution_tables(ctx) + genlevel_tables(ctx)
    for t in tables:
        sub.add_table(t)
    return sub


def check_archive_fields(path: Path, meta: ArchiveMetadata) -> None:
    """Before the fit: a mass POI, and the fields every table takes from the archive alone (the
    location with its file name, the archive-title qualifier, the attachment's name, the
    licence)."""
    if not any(p.kind == "mass" for p in meta.pois):
        raise HEPDataError(
            f"{path.name} has no mass POI: the HEPData export is for W-mass archives"
        )
    where = "every table"
    check_length(location_text(path.name), "location", where)
    check_length(meta.title, "qualifier value", where)
    check_length(path.name, "resource location", "submission")
    lic = license_info(meta.license)
    check_length(lic["name"], "licence name", where)
    check_length(lic["url"], "licence url", where)
