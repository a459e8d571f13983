"""Absurd values in structurally valid archives whose checksums are right (issue 14).

An attacker edits an archive and recomputes its checksums (``tests/_attacker.py``). Before
issue 14 the validator accepted finite but absurd values and ``wmass-refit`` printed
"converged" results from them (a response of 1e300 at an off-nominal mass point gave
``mW = 80360.0 +- 0.0 MeV``; a POI scale of 5e-324 gave mW +- 0.0), and ``wmass-refit``
skipped the validator's value rules (negative sumw2, unsorted or repeated sparse entries were
fitted). Now one rule set (``wmass_archive.archive.plausibility``) runs in the reader on every
array and on the metadata, so that ``validate``, ``wmass-refit``, the exports and the API refuse
the same files with the same one-line message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _attacker import edit_array, edit_metadata, hollow_dataset, read_array, write_array
from click.testing import CliRunner

from wmass_archive import open_archive, validate_archive
from wmass_archive.archive import plausibility
from wmass_archive.cli.refit_cmd import main as refit_main
from wmass_archive.errors import ArchiveError, ContentError, CorruptArchiveError
from wmass_archive.fit.diagnostics import poi_error_problem
from wmass_archive.model import build_model

RESPONSE = "channels/mu/processes/Wmunu/response"
SUMW2 = "channels/mu/processes/Zmumu/sumw2"
LOGK = "channels/mu/logk/sparse"


def _poi(**update: float) -> Callable[[Path], None]:
    return lambda p: edit_metadata(p, lambda d: d["pois"][0].update(update))


def _point(k: int, factor: float) -> Callable[[Path], None]:
    """Multiply the response at mass point ``k`` (0 = -1 sigma, 2 = +1 sigma) by ``factor``."""

    def change(a: np.ndarray) -> None:
        a[k] *= factor

    return lambda p: edit_array(p, RESPONSE, change)


def _entry(dpath: str, index: int, value: float) -> Callable[[Path], None]:
    def change(a: np.ndarray) -> None:
        a.reshape(-1)[index] = value

    return lambda p: edit_array(p, dpath, change)


def _swap_sparse(p: Path) -> None:
    """Two sparse logk entries exchanged (every field, so that each entry stays itself)."""
    for field in ("parameter", "process", "bin", "avg", "halfdiff"):
        edit_array(p, f"{LOGK}/{field}", lambda a: a.__setitem__([0, 1], a[[1, 0]]))


def _repeat_sparse(p: Path) -> None:
    """The first sparse logk entry stored twice (its neighbour overwritten)."""
    for field in ("parameter", "process", "bin", "avg", "halfdiff"):
        edit_array(p, f"{LOGK}/{field}", lambda a: a.__setitem__(1, a[0]))


# (edit, words of the one-line refusal)
CASES = {
    "response 1e300 at an off-nominal mass point": (
        _entry(RESPONSE, 3 * 1000, 1e300),
        [RESPONSE, "response 1e+300", "plausibility bound"],
    ),
    "response x1000 at an off-nominal mass point": (
        _point(2, 1e3),
        ["'Wmunu' in 'mu'", "mass point 1", "times the nominal total yield"],
    ),
    "negative response at an off-nominal mass point": (
        _point(0, -1.0),
        ["'Wmunu' in 'mu'", "mass point -1", "negative yield"],
    ),
    "POI scale 5e-324": (_poi(scale=5e-324), ["POI 'mW'", "scale 4.94066e-324", "float64"]),
    "POI scale 1e308": (_poi(scale=1e308), ["POI 'mW'", "scale 1e+308"]),
    "POI central 1e300": (_poi(central=1e300), ["POI 'mW'", "central 1e+300"]),
    "POI blinding offset 1e300": (_poi(blinding_offset=1e300), ["blinding_offset 1e+300"]),
    "mass point 1e9": (_poi(mass_points=[-1.0, 0.0, 1e9]), ["a mass point is beyond"]),
    "luminosity 1e300": (
        lambda p: edit_metadata(p, lambda d: d["luminosity"].update(value=1e300)),
        ["luminosity (pb^-1) 1e+300", "plausible range"],
    ),
    "prior scale 1e300": (
        lambda p: edit_metadata(p, lambda d: d["nuisances"][0].update(prior_scale=1e300)),
        ["prior_scale 1e+300"],
    ),
    "PDF scale 1e-300": (
        lambda p: edit_metadata(p, lambda d: d["theory"]["pdf_sets"][0].update(scale=1e-300)),
        ["PDF set", "scale 1e-300"],
    ),
    "negative sumw2": (_entry(SUMW2, 7, -4.0), [SUMW2, "negative sumw2 -4 in bin 7"]),
    "log kappa 1e3": (_entry(f"{LOGK}/avg", 5, 1e3), [f"{LOGK}/avg", "log kappa 1000"]),
    "unsorted sparse entries": (_swap_sparse, ["sparse logk entries are not sorted"]),
    "repeated sparse entries": (_repeat_sparse, ["not sorted", "and unique"]),
    "theory grid 1e300": (_entry("theory/nominal", 11, 1e300), ["theory/nominal", "1e+300"]),
    "PDF member -1e300": (
        _entry("theory/pdf/DemoHessian/members", 400, -1e300),
        ["theory/pdf/DemoHessian/members", "-1e+300"],
    ),
    "observed count 1e300": (_entry("channels/mu/data", 0, 1e300), ["observed counts 1e+300"]),
}


@pytest.fixture(scope="module")
def hostile(demo_archive_master, tmp_path_factory) -> dict[str, Path]:
    """Every case of CASES applied to its own copy of the demonstration archive."""
    folder = tmp_path_factory.mktemp("hostile")
    out = {}
    for i, (name, (edit, _)) in enumerate(CASES.items()):
        p = folder / f"case{i:02d}.h5"
        p.write_bytes(demo_archive_master.read_bytes())
        edit(p)
        out[name] = p
    return out


def _one_line(msg: str, words: list[str]) -> None:
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("case", list(CASES))
def test_validate_and_the_reader_refuse(hostile, case):
    """``validate_archive`` and everything that reads (the model builder, here) refuse the
    edited archive with the same message; the checksums themselves are right."""
    path, words = hostile[case], CASES[case][1]
    with pytest.raises(ArchiveError) as ei:
        validate_archive(path)
    _one_line(str(ei.value), words)
    with pytest.raises(ArchiveError) as eb:
        build_model(path)
    assert str(eb.value) == str(ei.value) and type(eb.value) is type(ei.value)


@pytest.mark.parametrize(
    "case",
    [
        "response 1e300 at an off-nominal mass point",
        "negative response at an off-nominal mass point",
        "POI scale 5e-324",
        "negative sumw2",
        "unsorted sparse entries",
    ],
)
def test_refit_refuses_what_validate_refuses(hostile, case):
    """``wmass-refit`` (which does not run the validator first) exits 1 with the validator's
    one-line message, never a "converged" result."""
    res = CliRunner().invoke(refit_main, ["--archive", str(hostile[case])])
    assert res.exit_code == 1, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    with pytest.raises(ArchiveError) as ei:
        validate_archive(hostile[case])
    assert str(ei.value) in err


def test_the_unedited_archive_passes_every_rule(demo_archive_master):
    """The rules refuse absurd values, not the archives this package writes."""
    validate_archive(demo_archive_master)
    with open_archive(demo_archive_master) as a:
        assert plausibility.metadata_problem(a.metadata) is None


def test_a_single_negative_response_entry_is_allowed(demo_archive):
    """Responses of helicity terms (A_i) are negative in places: the rule is on the folded
    yields, so one negative entry whose folded yields stay physical is not refused."""
    r = read_array(demo_archive, RESPONSE)
    k = int(np.argmax(r[2].reshape(-1)))
    edit_array(demo_archive, RESPONSE, lambda a: a[2].reshape(-1).__setitem__(k, -1e-4))
    validate_archive(demo_archive)


def test_the_writer_applies_the_same_rules(tmp_path):
    from wmass_archive import ArchiveWriter, Axis

    w = ArchiveWriter(
        title="t",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "tests", "producer_version": "0"},
    )
    w.add_process("p")
    w.add_channel("c", np.array([1.0, 2.0, 3.0]), axes=[Axis.regular(3, 0.0, 1.0, name="x")])
    w.set_yield("p", "c", np.array([1.0, 2.0, 2e15]), sumw2=np.ones(3))
    with pytest.raises(ContentError, match="nominal yield 2e\\+15 at flat index 2 is above"):
        w.write(tmp_path / "a.h5")
    assert not (tmp_path / "a.h5").exists()


# ------------------------------------------------------------------ the fit's last line
@pytest.mark.parametrize(
    "error,needle",
    [
        (0.0, "is 0"),
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
        (1e-17, "below the float64 precision"),
    ],
)
def test_meaningless_poi_uncertainty(error, needle):
    problem = poi_error_problem("mW", 80360.0, 100.0, 0.1, error)
    assert problem is not None and needle in problem


def test_meaningful_poi_uncertainty():
    assert poi_error_problem("mW", 80360.0, 100.0, 0.1, 0.1) is None
    # a relative uncertainty of 1e-10 is small but above rounding (2.2e-13 x 1000)
    assert poi_error_problem("mu", 1.0, 1.0, 0.0, 1e-10) is None


# ------------------------------------------------------------------ chunk layouts
CHUNK_CHILD = """
import sys, time
t0 = time.perf_counter()
from wmass_archive import validate_archive
from wmass_archive.errors import ArchiveError
try:
    validate_archive(sys.argv[1])
    print("accepted")
except ArchiveError as exc:
    print(type(exc).__name__, exc)
# VmHWM: this process's peak RSS (ru_maxrss would carry the forking parent's over exec)
hwm = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(int(hwm.split()[1]) * 1024, time.perf_counter() - t0)
"""


def test_one_element_chunks_are_refused_before_hdf5_reads_them(demo_archive):
    """A dataset of 10^6 never-written elements in one-element chunks: a ~1 MB file that HDF5
    would expand at ~4 kB per chunk (over 4 GB, 33 s, before issue 14). The reader counts the
    chunks from the layout and refuses it at once, in little memory."""
    hollow_dataset(demo_archive, f"{LOGK}/avg", (10**6,), (1,))
    assert demo_archive.stat().st_size < 2e6
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", CHUNK_CHILD, str(demo_archive)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    first, last = r.stdout.strip().splitlines()
    assert first.startswith("HostileArchiveError"), first
    assert "1000000 chunks of 8 bytes" in first and "ReadLimits.max_chunks" in first
    rss, seconds = (float(x) for x in last.split())
    assert rss < 500e6 and time.perf_counter() - t0 < 60, (rss, seconds)


def test_small_chunks_are_refused(demo_archive):
    """Many chunks under the minimum chunk size (here 200 chunks of 48 bytes)."""
    a = read_array(demo_archive, f"{LOGK}/avg")
    write_array(demo_archive, f"{LOGK}/avg", a, chunks=(6,))
    with pytest.raises(CorruptArchiveError, match="chunks of 48 bytes"):
        validate_archive(demo_archive)


def test_the_package_writes_few_large_chunks(demo_archive_master):
    """Everything the writer writes stays far inside the chunk bounds."""
    import h5py

    with h5py.File(demo_archive_master, "r") as f:
        counts = []
        f.visititems(
            lambda _, o: (
                counts.append(o.id.get_num_chunks())
                if isinstance(o, h5py.Dataset) and o.chunks
                else None
            )
        )
    assert max(counts) < 100
