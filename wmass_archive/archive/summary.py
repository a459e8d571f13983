"""A summary of what an archive holds, from its metadata alone (no template is read)."""

from __future__ import annotations

from typing import Any

from ..text import printable_lines
from .reader import Archive


def summarize(a: Archive) -> dict[str, Any]:
    """The archive's content as a JSON-ready dict (the ``inspect --json`` document)."""
    m = a.metadata
    groups = m.group_counts()
    pdf_sets = []
    n_pdf = 0
    if m.theory is not None:
        for s in m.theory.pdf_sets:
            pdf_sets.append(
                dict(
                    name=s.name,
                    lhapdf_name=s.lhapdf_name,
                    aliases=list(s.aliases),
                    error_type=s.error_type,
                    n_members=s.n_members,
                    confidence_level=s.confidence_level,
                    scale=s.scale,
                    n_nuisances=s.n_nuisances,
                    nominal=s.name == m.theory.nominal_pdf,
                    variance_kept=s.variance_kept,
                )
            )
        nominal = m.theory.pdf_set(m.theory.nominal_pdf)
        n_pdf = nominal.n_nuisances
        if n_pdf:
            groups[nominal.group] = groups.get(nominal.group, 0) + n_pdf
    return {
        "path": str(a.path),
        "title": m.title,
        "format_version": m.format_version,
        "synthetic": m.synthetic,
        "license": m.license,
        "size_bytes": a.size_bytes,
        "n_bins": m.n_bins,
        "channels": [
            dict(
                name=c.name,
                n_bins=c.n_bins,
                axes=[dict(name=x.name, bins=x.size, unit=x.unit) for x in c.axes],
                processes=list(c.processes),
                modifiers=list(c.modifiers),
            )
            for c in m.channels
        ],
        "mc_stat": m.mc_stat,
        "n_poisson_nuisances": sum(n.constraint == "poisson" for n in m.nuisances),
        "processes": [dict(name=p.name, kind=p.kind, folded=p.folded) for p in m.processes],
        "n_nuisances": len(m.nuisances) + n_pdf,
        "n_nuisances_stored": len(m.nuisances),
        "nuisance_groups": groups,
        "pdf_sets": pdf_sets,
        "pois": [
            dict(
                name=p.name,
                kind=p.kind,
                unit=p.unit,
                central=p.central,
                scale=p.scale,
                mass_points=list(p.mass_points),
                blinded=p.blinding_offset != 0.0,
            )
            for p in m.pois
        ],
        "n_generator_bins": m.theory.n_gen if m.theory is not None else 0,
        "luminosity_pb": m.luminosity.value if m.luminosity is not None else None,
        "provenance": dict(
            producer=m.provenance.producer,
            producer_version=m.provenance.producer_version,
            created=m.provenance.created.isoformat(),
            git_commit=m.provenance.git_commit,
        ),
        "n_datasets": len(m.datasets),
    }


def format_summary(s: dict[str, Any]) -> str:
    """The summary as readable text, every line escaped (:func:`~wmass_archive.text.printable`:
    the archive's strings may hold control characters)."""
    lines = [
        f"{s['title']}",
        f"  file            {s['path']} ({s['size_bytes'] / 1e6:.2f} MB, "
        f"format {s['format_version']}, {s['n_datasets']} datasets)",
    ]
    if s["synthetic"]:
        lines.append("  SYNTHETIC       yes: the numbers in this archive are not a measurement")
    lines.append(
        f"  producer        {s['provenance']['producer']} "
        f"{s['provenance']['producer_version']} ({s['provenance']['created']})"
    )
    lines.append(f"  bins            {s['n_bins']} in {len(s['channels'])} channel(s)")
    for c in s["channels"]:
        axes = " x ".join(f"{x['name']}[{x['bins']}]" for x in c["axes"])
        mods = f"; modifiers: {', '.join(c['modifiers'])}" if c.get("modifiers") else ""
        lines.append(f"    {c['name']:<14}{c['n_bins']:>7} bins  {axes}{mods}")
    lines.append(f"  processes       {len(s['processes'])}")
    for p in s["processes"]:
        tag = ", folded through the theory grid" if p["folded"] else ""
        lines.append(f"    {p['name']:<14}{p['kind']}{tag}")
    if s["n_generator_bins"]:
        lines.append(
            f"  generator bins  {s['n_generator_bins']} (lumi {s['luminosity_pb']:.6g} pb^-1)"
        )
    lines.append(f"  POIs            {len(s['pois'])}")
    for p in s["pois"]:
        pts = (
            ", ".join(f"{x * p['scale']:+g}" for x in p["mass_points"])
            if p["kind"] == "mass"
            else ""
        )
        lines.append(
            f"    {p['name']:<14}{p['kind']}, {p['central']:g} {p['unit']} "
            f"+ {p['scale']:g} {p['unit']} x theta"
            + (f"; templates at {pts} {p['unit']}" if pts else "")
            + ("; blinded" if p["blinded"] else "")
        )
    lines.append(
        f"  nuisances       {s['n_nuisances']} ({s['n_nuisances_stored']} stored, "
        f"{s['n_nuisances'] - s['n_nuisances_stored']} from the nominal PDF set)"
    )
    for g, n in sorted(s["nuisance_groups"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"    {g:<24}{n:>6}")
    if s.get("n_poisson_nuisances"):
        lines.append(f"    {s['n_poisson_nuisances']} with a poisson constraint (format 1.1)")
    if s.get("mc_stat"):
        lines.append(f"  MC statistics   Barlow-Beeston-lite, {s['mc_stat']} constraint")
    if s["pdf_sets"]:
        lines.append(f"  PDF sets        {len(s['pdf_sets'])}")
        for p in s["pdf_sets"]:
            kept = f", {100 * p['variance_kept']:.1f}% variance kept" if p["variance_kept"] else ""
            lines.append(
                f"    {p['name']:<14}{p['lhapdf_name']}: {p['error_type']}, "
                f"{p['n_members']} members, CL {p['confidence_level']:.4g}%, "
                f"scale x{p['scale']:g}{kept}{' (nominal)' if p['nominal'] else ''}"
            )
    return printable_lines(lines)
