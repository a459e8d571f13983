"""Build Combine datacards and their ROOT shape files for the tests (uproot writes the TH1s)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


def th1(values, edges, variances=None, kind: str = "D", title: str = ""):
    """A TH1 of ``kind`` "D", "F", "I" (storage) with ``values`` (n,), ``edges`` (n + 1,) and
    the stored ``variances`` (None: no fSumw2, ROOT's errors are then sqrt(|content|))."""
    import uproot.writing.identify as ident

    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    n = values.size
    dtype = {"D": np.float64, "F": np.float32, "I": np.int32}[kind]
    data = np.zeros(n + 2, dtype=dtype)
    data[1:-1] = values
    if edges.size == n + 1 and np.allclose(np.diff(edges), (edges[-1] - edges[0]) / n):
        axis = ident.to_TAxis("xaxis", "", n, float(edges[0]), float(edges[-1]))
    else:
        axis = ident.to_TAxis(
            "xaxis", "", n, float(edges[0]), float(edges[-1]), fXbins=edges.astype(np.float64)
        )
    sumw2 = np.zeros(0) if variances is None else np.zeros(n + 2)
    if variances is not None:
        sumw2[1:-1] = np.asarray(variances, dtype=np.float64)
    tot = float(values.sum())
    tot2 = float(sumw2.sum()) if variances is not None else tot
    return ident.to_TH1x("h", title, data, tot, tot, tot2, 0.0, 0.0, sumw2, axis)


def write_root(path: Path, hists: Mapping[str, object]) -> Path:
    """Write {path in file: TH1 (from :func:`th1`) or (values, edges)} to a ROOT file."""
    import uproot

    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        for key, h in hists.items():
            f[key] = h
    return path


def card_text(
    bins: list[str],
    observation: list[float] | None,
    columns: list[tuple[str, str, int, float]],
    systematics: list[str] = (),
    shapes: list[str] = (),
    extra: list[str] = (),
    counts: tuple[str, str, str] = ("*", "*", "*"),
) -> str:
    """A datacard: ``columns`` (bin, process, index, rate); ``systematics`` and ``extra`` lines
    as given (``extra`` after the systematics: rateParam, group, autoMCStats)."""
    lines = [
        "# test card",
        f"imax {counts[0]}",
        f"jmax {counts[1]}",
        f"kmax {counts[2]}",
        "-" * 20,
        *shapes,
        "-" * 20,
    ]
    if observation is not None:
        lines += ["bin " + " ".join(bins), "observation " + " ".join(f"{x:g}" for x in observation)]
    lines += [
        "-" * 20,
        "bin " + " ".join(c[0] for c in columns),
        "process " + " ".join(c[1] for c in columns),
        "process " + " ".join(str(c[2]) for c in columns),
        "rate " + " ".join(f"{c[3]:.12g}" for c in columns),
        "-" * 20,
        *systematics,
        *extra,
    ]
    return "\n".join(lines) + "\n"


def write_card(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- spec -> card
EDGES = {
    "ch1": np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
    "ch2": np.array([0.0, 10.0, 25.0, 45.0, 70.0]),
}
PROCS = [("sig", 0), ("bkg", 1), ("other", 2)]
#: MC weight per event of each process: sumw2 = weight * yield
WEIGHTS = {"sig": 0.02, "bkg": 0.25, "other": 0.6}


def templates(seed: int = 3) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """{(channel, name): (values, variances)} for the shape channels ch1 (5 regular bins) and
    ch2 (4 variable bins): the processes, their systematic templates (shapeA on sig and bkg,
    shapeB on other, shapeC on sig only) and data_obs (variances = counts)."""
    rng = np.random.default_rng(seed)
    base = {
        "ch1": {"sig": [4, 9, 14, 8, 3], "bkg": [60, 50, 40, 30, 20], "other": [8, 8, 7, 6, 5]},
        "ch2": {"sig": [2, 6, 5, 2], "bkg": [35, 30, 22, 14], "other": [5, 4, 4, 3]},
    }
    out = {}
    for ch, procs in base.items():
        total = 0.0
        for p, v in procs.items():
            v = np.asarray(v, dtype=np.float64) * (1.0 + 0.05 * rng.standard_normal(len(v)))
            w = WEIGHTS[p]
            out[(ch, p)] = (v, w * v)
            total = total + v
            slope = np.linspace(-1.0, 1.0, v.size)
            varied = {}
            if p in ("bkg", "sig"):
                varied["shapeA"] = (v * (1 + 0.08 * slope) * 1.03, v * (1 - 0.06 * slope) * 0.985)
            if p == "other":
                varied["shapeB"] = (v * (1 + 0.15 * slope**2) * 1.05, v * (1 - 0.10 * slope**2))
            if p == "sig":
                varied["shapeC"] = (v * (1 + 0.2 * slope), v * (1 - 0.1 * slope) * 0.99)
            for s, (up, down) in varied.items():
                out[(ch, f"{p}_{s}Up")] = (up, w * up)
                out[(ch, f"{p}_{s}Down")] = (down, w * down)
        data = np.round(total * np.array([1.05, 0.97, 1.1, 0.95, 1.02])[: total.size])
        out[(ch, "data_obs")] = (data, data)
    # ch2 is written as TH1F: keep exactly the float32 values the file will hold
    for k, (v, var) in out.items():
        if k[0] == "ch2":
            out[k] = tuple(x.astype(np.float32).astype(np.float64) for x in (v, var))
    return out


def write_templates(folder: Path, inputs: dict, name: str = "shapes.root") -> Path:
    """``CHANNEL/NAME`` TH1s in one ROOT file: ch1 as TH1D, ch2 as TH1F (data_obs without
    stored sumw2)."""
    hists = {}
    for (ch, key), (v, var) in sorted(inputs.items()):
        kind = "D" if ch == "ch1" else "F"
        hists[f"{ch}/{key}"] = th1(v, EDGES[ch], None if key == "data_obs" else var, kind)
    return write_root(folder / name, hists)


def spec_card(spec: dict) -> str:
    """Card text of a spec: ``channels`` {name: "shape" | observed count (counting)},
    ``columns`` [(channel, process, rate)], ``lnN``/``shape``/``shape?``/``shapeN`` {name:
    {(channel, process): value}}, ``gmN`` {name: (N, {(channel, process): alpha})},
    ``rateParam`` [(name, channel, process, initial, range)], ``groups`` {name: [members]},
    ``auto`` {channel: (threshold, include_signal)}."""
    index = dict(PROCS)
    cols = [(c, p, index[p], r) for c, p, r in spec["columns"]]
    keys = [(c, p) for c, p, _ in spec["columns"]]

    def row(values: dict) -> str:
        out = []
        for k in keys:
            v = values.get(k)
            out.append(
                "-" if v is None else (f"{v[0]:g}/{v[1]:g}" if isinstance(v, tuple) else f"{v:g}")
            )
        return " ".join(out)

    systs = []
    for kind in ("lnN", "shape", "shape?", "shapeN"):
        for name, values in spec.get(kind, {}).items():
            systs.append(f"{name} {kind} {row(values)}")
    for name, (n, values) in spec.get("gmN", {}).items():
        systs.append(f"{name} gmN {n} {row(values)}")
    extra = []
    for name, ch, p, init, rng in spec.get("rateParam", []):
        extra.append(
            f"{name} rateParam {ch} {p} {init:g}" + (f" [{rng[0]:g},{rng[1]:g}]" if rng else "")
        )
    for g, members in spec.get("groups", {}).items():
        extra.append(f"{g} group = " + " ".join(members))
    for ch, (thr, inc) in spec.get("auto", {}).items():
        extra.append(f"{ch} autoMCStats {thr:g} {int(inc)}")
    chans = list(spec["channels"])
    obs = [-1 if spec["channels"][c] == "shape" else spec["channels"][c] for c in chans]
    shapes = ["shapes * * shapes.root $CHANNEL/$PROCESS $CHANNEL/$PROCESS_$SYSTEMATIC"]
    shapes += [f"shapes * {c} FAKE" for c in chans if spec["channels"][c] != "shape"]
    return card_text(
        chans, obs, cols, systs, shapes, extra, counts=(str(len(chans)), "2", str(len(systs)))
    )
