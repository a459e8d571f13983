"""Theory inputs of the W-mass archive.

* :mod:`.lhapdf`: parton distributions read from LHAPDF ``lhagrid1`` sets (no LHAPDF needed);
* :mod:`.generator`: the generator-level binning of the theory grid (the contract with the
  event processing) and the decay's angular polynomials;
* :mod:`.params`, :mod:`.wproduction`, :mod:`.ptspectrum`, :mod:`.angular`: the W production
  model (LO parton luminosities from real PDFs, pT^W spectrum, angular coefficients);
* :mod:`.compute`: theory grids of one member or a whole set, and in-cell densities;
* :mod:`.grid`: the :class:`TheoryGrid` object and its HDF5/CSV files;
* :mod:`.variations`: the theory nuisances (pTModeling, angularCoeffs) as up/down grids.

See ``docs/theory.md``.
"""

from .angular import angular_coefficients, pt_kernels, qg_fraction
from .compute import (
    assemble_grid,
    cell_densities,
    compute_grid,
    compute_set_grid,
    compute_set_values,
    grid_values,
    open_pdf_set,
    parse_members,
    pt_cell_integrals,
    rapidity_cell_integrals,
)
from .generator import (
    ABS_Y_EDGES,
    CHARGES,
    GRID_SHAPE,
    HELICITIES,
    N_GEN,
    PT_EDGES,
    CellDensities,
    angular_density,
    angular_polynomials,
    cell_index,
    generator_axes,
)
from .grid import GridProvenance, TheoryGrid, TheoryGridError, TheoryGridMeta, load_theory_grid
from .lhapdf import (
    CL1SIGMA,
    EXTRAPOLATIONS,
    STANDARD_PIDS,
    AlphaSIpol,
    LHAPDFError,
    PDFFormatError,
    PDFMember,
    PDFRangeError,
    PDFSet,
    PDFSetInfo,
    PDFSetNotFoundError,
    PDFUncertainty,
    available_pdf_sets,
    cl_scale,
    find_pdf_set_dir,
    load_member,
    load_pdf_set,
    pdf_search_paths,
    pdf_uncertainty,
    read_pdf_set_info,
)
from .params import TheoryParameters
from .ptspectrum import PtModel, pt_model
from .variations import (
    GridVariation,
    add_variations_to_writer,
    angular_variations,
    pt_modeling_variations,
    theory_variations,
)
from .wproduction import WRapidity, rapidity_nodes, total_cross_sections, w_rapidity

__all__ = [
    "ABS_Y_EDGES",
    "CHARGES",
    "CL1SIGMA",
    "EXTRAPOLATIONS",
    "GRID_SHAPE",
    "HELICITIES",
    "N_GEN",
    "PT_EDGES",
    "STANDARD_PIDS",
    "AlphaSIpol",
    "CellDensities",
    "GridProvenance",
    "GridVariation",
    "LHAPDFError",
    "PDFFormatError",
    "PDFMember",
    "PDFRangeError",
    "PDFSet",
    "PDFSetInfo",
    "PDFSetNotFoundError",
    "PDFUncertainty",
    "PtModel",
    "TheoryGrid",
    "TheoryGridError",
    "TheoryGridMeta",
    "TheoryParameters",
    "WRapidity",
    "add_variations_to_writer",
    "angular_coefficients",
    "angular_density",
    "angular_polynomials",
    "angular_variations",
    "assemble_grid",
    "available_pdf_sets",
    "cell_densities",
    "cell_index",
    "cl_scale",
    "compute_grid",
    "compute_set_grid",
    "compute_set_values",
    "find_pdf_set_dir",
    "generator_axes",
    "grid_values",
    "load_member",
    "load_pdf_set",
    "load_theory_grid",
    "open_pdf_set",
    "parse_members",
    "pdf_search_paths",
    "pdf_uncertainty",
    "pt_cell_integrals",
    "pt_kernels",
    "pt_model",
    "pt_modeling_variations",
    "qg_fraction",
    "rapidity_cell_integrals",
    "rapidity_nodes",
    "read_pdf_set_info",
    "theory_variations",
    "total_cross_sections",
    "w_rapidity",
]
