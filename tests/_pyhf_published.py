"""A pyhf workspace of the size and awkwardness of published ones (HEPData), built here:

* ``n_channels`` channels (signal, control and validation regions, names with spaces), 200-400
  bins in all, up to 8 samples (7 backgrounds and a signal), per channel a subset of them;
* every modifier type: lumi; normfactors of two backgrounds; normsys (cross sections, several
  experimental ones, one-sided and asymmetric); histosys (JES-like, sharing names with normsys
  on some samples); staterror per channel on every MC sample; shapesys on the data-driven
  background; a shapefactor in a control region;
* a data-driven background ('fakes') whose yield is **negative** in a few bins (pyhf sums
  sample yields, only the bin total must be positive), and a background with an empty bin;
* the workspace is background-only (as HEPData's ``BkgOnly.json``): its measurement names the
  POI 'mu_SIG' that only the signal patch (a plain RFC 6902 JSON Patch list, as HEPData's
  per-signal-point patch files) declares, with the signal sample.

Observations are a Poisson draw of the signal + background model at mu = ``mu_true`` and
some pulled nuisances.
"""

from __future__ import annotations

import numpy as np

BACKGROUNDS = ["ttbar", "W jets", "Zjets", "singletop", "diboson", "ttV", "fakes"]
MC = [b for b in BACKGROUNDS if b != "fakes"]


def published_like(
    seed: int = 1,
    n_channels: int = 10,
    n_bins: int = 300,
    n_stat_channels: int = 3,
    n_shapesys_channels: int = 2,
    mu_true: float = 1.4,
) -> tuple[dict, list[dict]]:
    """(background-only workspace, JSON Patch list adding the signal and its POI)."""
    import pyhf

    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n_bins), n_channels - 1, replace=False))
    sizes = np.diff(np.concatenate([[0], cuts, [n_bins]]))
    while sizes.min() < 4:  # no tiny channels
        i, j = int(np.argmin(sizes)), int(np.argmax(sizes))
        sizes[i] += 2
        sizes[j] -= 2
    names = []
    for i in range(n_channels):
        kind = ("SR", "CR", "VR")[i % 3]
        names.append(f"{kind} {chr(65 + i)}" if i % 2 else f"{kind}_{chr(65 + i)}_cuts")

    def nsys(name, hi, lo):
        return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}

    channels, sig_samples = [], []
    for ci, (cname, nb) in enumerate(zip(names, sizes, strict=True)):
        x = np.linspace(0.0, 1.0, nb)
        always = ("ttbar", "fakes") + (("Zjets",) if ci == 1 else ())
        present = [b for b in BACKGROUNDS if rng.uniform() < 0.8 or b in always]
        samples = []
        for b in present:
            scale = rng.uniform(5.0, 80.0) * (3.0 if b == "ttbar" else 1.0)
            if ci == 1 and b == "Zjets":
                scale = 400.0  # the shapefactor's control region
            nom = scale * np.exp(-rng.uniform(0.5, 3.0) * x) * rng.uniform(0.8, 1.2, nb)
            mods = []
            if b == "fakes":
                nom = rng.uniform(-0.3, 1.0, nb) * scale * 0.2  # negative in some bins
                nom[np.abs(nom) < 1e-3] = 0.5
                if ci < n_shapesys_channels:
                    unc = np.abs(nom) * rng.uniform(0.2, 0.5, nb)
                    unc[0] = 0.0  # pyhf fixes that bin's gamma
                    mods.append(
                        {"name": f"fakes_stat_{ci}", "type": "shapesys", "data": unc.tolist()}
                    )
                mods.append(nsys("fakes_norm", 1.3, 0.7))
            else:
                if b == "diboson" and nb > 5:
                    nom[3] = 0.0  # an empty bin
                mods.append({"name": "lumi", "type": "lumi", "data": None})
                mods.append(
                    nsys(
                        f"xsec_{b.replace(' ', '')}",
                        *(1 + rng.uniform(0.03, 0.2) * np.array([1, -1])),
                    )
                )
                for k in range(4):
                    hi = 1 + rng.uniform(0.002, 0.04)
                    lo = 2 - hi if k % 2 else 1 - rng.uniform(0.0, 0.05)  # asymmetric
                    mods.append(nsys(f"exp_eff_{k}", hi, lo))
                if ci % 4 == 1:
                    mods.append(nsys("trig_onesided", 1.02, 1.0))  # one-sided
                for k in range(6):
                    amp = rng.uniform(0.005, 0.05)
                    slope = rng.uniform(-1, 1) * amp
                    # shifts of opposite signs in every bin (a one-sided histosys makes the
                    # likelihood multimodal: pyhf's and any fit then depend on the start)
                    hi = nom * (1 + amp + slope * (x - 0.5))
                    lo = nom * (1 - amp * rng.uniform(0.7, 1.3) - slope * (x - 0.5))
                    name = f"JES_{k}"
                    mods.append(
                        {
                            "name": name,
                            "type": "histosys",
                            "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()},
                        }
                    )
                    if k < 2 and b == "ttbar":
                        mods.append(nsys(name, 1.02, 0.985))  # same name: one alpha
                if ci < n_stat_channels:
                    err = np.sqrt(np.abs(nom)) * rng.uniform(0.05, 0.3, nb)
                    mods.append(
                        {"name": f"staterror_{ci}", "type": "staterror", "data": err.tolist()}
                    )
                if b == "ttbar":
                    mods.append({"name": "mu_ttbar", "type": "normfactor", "data": None})
                if b == "W jets":
                    mods.append({"name": "mu_W", "type": "normfactor", "data": None})
            if ci == 1 and b == "Zjets":
                mods.append({"name": "sf_CR", "type": "shapefactor", "data": None})
            samples.append({"name": b, "data": nom.tolist(), "modifiers": mods})
        sig = 30.0 * np.exp(-((x - rng.uniform(0.3, 0.9)) ** 2) / 0.05) * (ci % 3 == 0) + 0.5
        sig_mods = [
            {"name": "mu_SIG", "type": "normfactor", "data": None},
            {"name": "lumi", "type": "lumi", "data": None},
            nsys("sig_theory", 1.1, 0.88),
            {
                "name": "JES_0",
                "type": "histosys",
                "data": {"hi_data": (sig * 1.03).tolist(), "lo_data": (sig * 0.975).tolist()},
            },
        ]
        if ci < n_stat_channels:
            sig_mods.append(
                {"name": f"staterror_{ci}", "type": "staterror", "data": (0.05 * sig).tolist()}
            )
        sig_samples.append({"name": "signal", "data": sig.tolist(), "modifiers": sig_mods})
        channels.append({"name": cname, "samples": samples})

    meas_params = [
        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "inits": [1.0], "bounds": [[0.915, 1.085]]},  # noqa: E501
        {"name": "mu_W", "bounds": [[0.0, 5.0]]},
    ]  # fmt: skip
    bkg = {
        "channels": channels,
        "observations": [{"name": c["name"], "data": [0.0] * len(c["samples"][0]["data"])} for c in channels],  # noqa: E501
        "measurements": [{"name": "NormalMeasurement", "config": {"poi": "mu_SIG", "parameters": meas_params}}],  # noqa: E501
        "version": "1.0.0",
    }  # fmt: skip
    patch = [
        {"op": "add", "path": f"/channels/{ci}/samples/0", "value": s}
        for ci, s in enumerate(sig_samples)
    ]
    # observations: Poisson draw of the signal + background at mu_true, with pulls
    model = pyhf.Workspace(_apply(bkg, patch)).model()
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    pars[model.config.poi_index] = mu_true
    for name in ("JES_1", "xsec_ttbar", "exp_eff_2"):
        pars[model.config.par_slice(name)] = rng.uniform(-0.8, 0.8)
    pars[model.config.par_slice("mu_ttbar")] = 1.1
    exp = np.asarray(model.expected_actualdata(pars))
    obs = rng.poisson(np.clip(exp, 0.5, None)).astype(float)
    for c in bkg["observations"]:
        c["data"] = obs[model.config.channel_slices[c["name"]]].tolist()
    return bkg, patch


def _apply(spec: dict, patch: list[dict]) -> dict:
    import jsonpatch

    return jsonpatch.apply_patch(spec, patch)
