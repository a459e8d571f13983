"""Where things live inside the HDF5 file. One place for every path, so that the writer, the
reader, the validator and ``docs/format.md`` agree.

Root attributes: ``format`` (= "wmass-archive"), ``format_version`` (semver string) and
``metadata_sha256``. The metadata JSON is the UTF-8 byte dataset ``/metadata``. Arrays::

    /channels/<ch>/data                               (n_bins,)          <f8  observed counts
    /channels/<ch>/processes/<p>/nominal              (n_bins,)          <f8  expected yield
    /channels/<ch>/processes/<p>/sumw2                (n_bins,)          <f8  MC stat. variance
    /channels/<ch>/processes/<p>/response             (n_pts, n_bins, n_gen) <f8  dense R
    /channels/<ch>/processes/<p>/response/{point,bin,gen}  (nnz,) <i4   sparse R (COO)
    /channels/<ch>/processes/<p>/response/value       (nnz,)             <f8
    /channels/<ch>/logk/dense/{parameter,process}     (n_rows,)          <i4
    /channels/<ch>/logk/dense/{avg,halfdiff}          (n_rows, n_bins)   <f8
    /channels/<ch>/logk/sparse/{parameter,process,bin} (nnz,)            <i4
    /channels/<ch>/logk/sparse/{avg,halfdiff}         (nnz,)             <f8
    /channels/<ch>/modifiers/additive/{parameter,process,code}       (n_rows,)  <i4  (1.1)
    /channels/<ch>/modifiers/additive/{up,down}                      (n_rows, n_bins) <f8
    /channels/<ch>/modifiers/multiplicative/{parameter,process,code} (n_rows,)  <i4  (1.1)
    /channels/<ch>/modifiers/multiplicative/{hi,lo}                  (n_rows, n_bins) <f8
    /channels/<ch>/modifiers/linear/{parameter,process,bin}          (nnz,)     <i4  (1.1)
    /channels/<ch>/modifiers/linear/coeff                            (nnz,)     <f8
    /theory/nominal                                   (n_gen,)           <f8
    /theory/pdf/<set>/members                         (n_members, n_gen) <f8
    /theory/pdf/<set>/eigenvectors                    (n_eig, n_gen)     <f8  replicas only
    /theory/variations/{up,down}                      (n_var, n_gen)     <f8
"""

from __future__ import annotations

METADATA = "metadata"
ATTR_FORMAT = "format"
ATTR_VERSION = "format_version"
ATTR_METADATA_SHA = "metadata_sha256"

LOGK_FIELDS_DENSE = ("parameter", "process", "avg", "halfdiff")
LOGK_FIELDS_SPARSE = ("parameter", "process", "bin", "avg", "halfdiff")
RESPONSE_FIELDS_SPARSE = ("point", "bin", "gen", "value")
#: format 1.1 extended modifiers: kind -> (index fields, value fields); the value fields of
#: "additive" and "multiplicative" are (n_rows, n_bins), all other fields one-dimensional
MODIFIER_FIELDS = {
    "additive": (("parameter", "process", "code"), ("up", "down")),
    "multiplicative": (("parameter", "process", "code"), ("hi", "lo")),
    "linear": (("parameter", "process", "bin"), ("coeff",)),
}
#: interpolation codes allowed for each kind with rows (docs/format.md section 15.2)
MODIFIER_CODES = {"additive": (0, 2, 4), "multiplicative": (0, 1, 2, 4)}


def channel(ch: str) -> str:
    return f"channels/{ch}"


def data(ch: str) -> str:
    return f"channels/{ch}/data"


def process(ch: str, proc: str) -> str:
    return f"channels/{ch}/processes/{proc}"


def nominal(ch: str, proc: str) -> str:
    return f"{process(ch, proc)}/nominal"


def sumw2(ch: str, proc: str) -> str:
    return f"{process(ch, proc)}/sumw2"


def response(ch: str, proc: str) -> str:
    """Dense: a dataset at this path. Sparse: a group at this path holding the COO fields."""
    return f"{process(ch, proc)}/response"


def logk(ch: str, storage: str, field: str) -> str:
    assert storage in ("dense", "sparse")
    return f"channels/{ch}/logk/{storage}/{field}"


def modifier(ch: str, kind: str, field: str) -> str:
    """A dataset of the extended modifiers of ``kind`` in channel ``ch`` (format 1.1)."""
    assert kind in MODIFIER_FIELDS
    return f"channels/{ch}/modifiers/{kind}/{field}"


THEORY_NOMINAL = "theory/nominal"
THEORY_VAR_UP = "theory/variations/up"
THEORY_VAR_DOWN = "theory/variations/down"


def pdf_members(pdf: str) -> str:
    return f"theory/pdf/{pdf}/members"


def pdf_eigenvectors(pdf: str) -> str:
    return f"theory/pdf/{pdf}/eigenvectors"
