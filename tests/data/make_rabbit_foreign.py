"""Write the foreign rabbit tensors of tests/test_import_rabbit.py with rabbit's own
TensorWriter, fit them with rabbit, and record rabbit's results next to them.

Run with the python of the rabbit environment (rabbit-fit 0.2.5 and TensorFlow; see
benchmarks/bench_rabbit.py), from the repository root:

    benchmarks/.venv-rabbit/bin/python tests/data/make_rabbit_foreign.py

It writes tests/data/rabbit_foreign_dense.hdf5 (two channels and a masked one, symmetric and
asymmetric log-normal systematics, an unconstrained systematic, a nuisance of interest, two
signals) and tests/data/rabbit_foreign_sparse.hdf5 (one channel, sparse, symmetric), and
tests/data/rabbit_foreign.json with rabbit's best-fit values and Hessian uncertainties of
every parameter (``rabbit_fit FILE -t 0 --unblind``: the observed data, Barlow-Beeston-lite
with the gamma constraint, signal strengths mu = x^2 >= 0). The tests never need rabbit.

rabbit fits the tensors as TensorWriter wrote them; the committed copies leave out the pickled
``meta`` group (~110 kB each, environment and histogram axes) that the importer never reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import hist
import numpy as np
from rabbit import io_tools, tensorwriter

HERE = Path(__file__).resolve().parent
RABBIT_FIT = Path(sys.executable).parent / "rabbit_fit"


def _hist(axis, values, variances):
    h = hist.Hist(axis, storage=hist.storage.Weight())
    h.values()[...] = values
    h.variances()[...] = variances
    return h


def _channel(writer, name, axis, procs, rng, masked=False):
    """Processes with MC weights (sumw2 = w * yield) and data = Poisson of the total x 1.08."""
    total = 0.0
    writer.add_channel([axis], name, masked=masked)
    for p, (base, w, signal) in procs.items():
        v = base * (1.0 + 0.1 * rng.standard_normal(base.size))
        writer.add_process(_hist(axis, v, w * v), p, name, signal=signal)
        total = total + v
    if not masked:
        data = rng.poisson(1.08 * total).astype(np.float64)
        writer.add_data(_hist(axis, data, data), name)
    return total


def dense_tensor(path: Path) -> None:
    rng = np.random.default_rng(11)
    w = tensorwriter.TensorWriter(sparse=False)
    ax_a = hist.axis.Regular(6, 0.0, 6.0, name="x", underflow=False, overflow=False)
    ax_b = hist.axis.Variable([0.0, 1.0, 3.0, 6.0, 10.0], name="y", underflow=False, overflow=False)
    ax_m = hist.axis.Regular(3, 0.0, 3.0, name="m", underflow=False, overflow=False)
    procs_a = {
        "sig": (np.array([5.0, 12.0, 20.0, 15.0, 8.0, 3.0]), 0.05, True),
        "sig2": (np.array([2.0, 3.0, 4.0, 4.0, 3.0, 2.0]), 0.05, True),
        "bkg1": (np.array([80.0, 70.0, 60.0, 45.0, 30.0, 20.0]), 0.3, False),
        "bkg2": (np.array([10.0, 12.0, 14.0, 12.0, 10.0, 8.0]), 1.0, False),
    }
    procs_b = {
        "sig": (np.array([4.0, 9.0, 6.0, 2.0]), 0.05, True),
        "bkg1": (np.array([50.0, 40.0, 30.0, 15.0]), 0.3, False),
        "bkg2": (np.array([6.0, 7.0, 8.0, 5.0]), 1.0, False),
    }
    _channel(w, "ch_a", ax_a, procs_a, rng)
    _channel(w, "ch_b", ax_b, procs_b, rng)
    _channel(w, "ch_m", ax_m, {"sig": (np.array([3.0, 4.0, 5.0]), 0.05, True)}, rng, masked=True)
    for ch in ("ch_a", "ch_b"):
        w.add_norm_systematic("lumi", ["sig", "bkg1"], ch, [1.025, 1.025], groups=["lumi"])
        # an asymmetric normalisation as up/down templates (rabbit 0.2.5's add_norm_systematic
        # fails for asymmetric values with symmetrize=None)
        axis = ax_a if ch == "ch_a" else ax_b
        nom = w.dict_norm[ch]["bkg2"]
        hu, hd = _hist(axis, 1.12 * nom, nom), _hist(axis, 0.91 * nom, nom)
        w.add_systematic([hu, hd], "bkg2norm", "bkg2", ch, symmetrize=None)
        w.add_norm_systematic("bkg1free", "bkg1", ch, 1.3, constrained=False)
        for p, (tilt, up, down) in {"bkg1": (0.08, 1.02, 0.97), "sig": (0.12, 1.0, 1.0)}.items():
            nom = w.dict_norm[ch][p]
            s = np.linspace(-1.0, 1.0, nom.size)
            axis = ax_a if ch == "ch_a" else ax_b
            hu = _hist(axis, nom * (1 + tilt * s) * up, nom)
            hd = _hist(axis, nom * (1 - 0.7 * tilt * s) * down, nom)
            name = "shape_" + p
            w.add_systematic([hu, hd], name, p, ch, symmetrize=None, groups=["shapes"])
        nom = w.dict_norm[ch]["sig"]
        s = np.linspace(-1.0, 1.0, nom.size)
        axis = ax_a if ch == "ch_a" else ax_b
        w.add_systematic(
            _hist(axis, nom * (1 + 0.3 * s), nom), "slope", "sig", ch, noi=True, constrained=False
        )
    w.write(outfolder=str(path.parent), outfilename=path.name)


def sparse_tensor(path: Path) -> None:
    rng = np.random.default_rng(5)
    w = tensorwriter.TensorWriter(sparse=True)
    ax = hist.axis.Regular(8, 0.0, 8.0, name="x", underflow=False, overflow=False)
    procs = {
        "sig": (np.array([0.0, 2.0, 6.0, 12.0, 12.0, 6.0, 2.0, 0.0]), 0.04, True),
        "bkg": (np.array([40.0, 36.0, 30.0, 26.0, 22.0, 18.0, 14.0, 10.0]), 0.2, False),
        "fake": (np.array([0.0, 0.0, 5.0, 5.0, 5.0, 0.0, 0.0, 0.0]), 0.5, False),
    }
    _channel(w, "ch0", ax, procs, rng)
    w.add_norm_systematic("lumi", ["sig", "bkg"], "ch0", [1.02, 1.02])
    w.add_norm_systematic("fakenorm", "fake", "ch0", 1.5, groups=["fakes"])
    nom = w.dict_norm["ch0"]["bkg"]
    s = np.linspace(-1.0, 1.0, nom.size)
    w.add_systematic(
        [_hist(ax, nom * (1 + 0.1 * s), nom), _hist(ax, nom * (1 - 0.08 * s), nom)],
        "bkgshape",
        "bkg",
        "ch0",
        groups=["fakes"],
    )
    w.write(outfolder=str(path.parent), outfilename=path.name)


def rabbit_result(tensor: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(RABBIT_FIT), str(tensor), "-t", "0", "--unblind", "-o", tmp]
        subprocess.run(cmd, check=True, capture_output=True)
        (out,) = Path(tmp).glob("*.hdf5")
        res = io_tools.get_fitresult(str(out))
    h = res["parms"].get()
    names = [str(x) for x in h.axes["parms"]]
    return {
        "command": "rabbit_fit " + tensor.name + " -t 0 --unblind",
        "parameters": {
            n: {"value": float(v), "error": float(np.sqrt(e))}
            for n, v, e in zip(names, h.values(), h.variances(), strict=True)
        },
        "nllvalreduced": float(res["nllvalreduced"]),
    }


def main() -> None:
    import rabbit

    out = {"rabbit_version": getattr(rabbit, "__version__", "0.2.5"), "tensors": {}}
    tensors = (
        ("rabbit_foreign_dense.hdf5", dense_tensor),
        ("rabbit_foreign_sparse.hdf5", sparse_tensor),
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in tensors:
            full = Path(tmp) / name
            make(full)
            out["tensors"][name] = rabbit_result(full)
            with h5py.File(full, "r") as src, h5py.File(HERE / name, "w") as dst:
                for key in src:
                    if key != "meta":
                        src.copy(src[key], dst, name=key)
    (HERE / "rabbit_foreign.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
