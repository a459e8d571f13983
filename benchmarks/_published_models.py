"""pyhf workspaces for the benchmarks and tests: pyhf's small validation examples and generated
models of the sizes of published search likelihoods (e.g. the ATLAS SUSY searches on HEPData).

    from _published_models import published_workspace, validation_workspaces
    spec = published_workspace(n_channels=10, n_bins=250, n_samples=10, n_modifiers=200, seed=1)

A generated workspace has signal regions (several bins, a signal sample with the POI ``mu``)
and one-bin control regions; backgrounds with CR normalisations (``normfactor``), a data-driven
background with ``shapesys``, ``lumi``, per-channel ``staterror``, experimental ``histosys``
and theory ``normsys`` shared across channels and samples, and a ``shapefactor``. The same
arguments give the same workspace (numpy's default generator with ``seed``); the data are the
expected yields at the nominal parameters (``mu`` = 1) with a Poisson fluctuation.
"""

from __future__ import annotations

import numpy as np

#: generated sizes like published searches: (channels, bins in total, samples, modifiers)
PUBLISHED_SIZES = {
    "small": dict(n_channels=5, n_bins=100, n_samples=5, n_modifiers=100),
    "medium": dict(n_channels=10, n_bins=250, n_samples=10, n_modifiers=200),
    "large": dict(n_channels=20, n_bins=500, n_samples=15, n_modifiers=400),
}


def _split(total: int, parts: int, rng: np.random.Generator, lo: int = 1) -> list[int]:
    """``total`` split into ``parts`` positive integers (at least ``lo`` each)."""
    w = rng.gamma(2.0, size=parts)
    n = np.maximum(lo, np.floor(w / w.sum() * total).astype(int))
    while n.sum() > total:
        n[np.argmax(n)] -= 1
    while n.sum() < total:
        n[np.argmin(n)] += 1
    return [int(x) for x in n]


def published_workspace(
    n_channels: int = 10,
    n_bins: int = 250,
    n_samples: int = 10,
    n_modifiers: int = 200,
    seed: int = 1,
    negative: bool = False,
) -> dict:
    """A pyhf workspace (dict) of about ``n_modifiers`` distinct modifier names (counting a
    per-channel staterror/shapesys once per channel) over ``n_channels`` channels with
    ``n_bins`` bins in total and ``n_samples`` samples. ``negative``: one background sample
    has a negative yield in a few bins (the bin totals stay positive)."""
    rng = np.random.default_rng(seed)
    n_cr = max(1, n_channels // 3)
    n_sr = n_channels - n_cr
    sr_bins = _split(n_bins - n_cr, n_sr, rng)
    ch_bins = sr_bins + [1] * n_cr
    ch_names = [f"SR_{i}" for i in range(n_sr)] + [f"CR_{i}" for i in range(n_cr)]
    bkg = [f"bkg_{j}" for j in range(n_samples - 2)]
    samples = ["signal", "fakes", *bkg]
    # per-channel modifiers: staterror and shapesys (fakes); global: mu, lumi, normfactors of
    # the first backgrounds, one shapefactor; the rest histosys : normsys = 1 : 2
    n_norm_bkg = min(3, len(bkg))
    n_fixed = 2 * n_channels + 2 + n_norm_bkg + 1
    n_free = max(2, n_modifiers - n_fixed)
    n_hist = n_free // 3
    n_nsys = n_free - n_hist
    hist_names = [f"exp_{i}" for i in range(n_hist)]
    nsys_names = [f"theo_{i}" for i in range(n_nsys)]

    channels, observations = [], []
    for c, (name, nb) in enumerate(zip(ch_names, ch_bins, strict=True)):
        is_sr = name.startswith("SR")
        shape = np.linspace(1.0, 0.2, nb) ** rng.uniform(0.5, 2.0)
        ch_samples, expected = [], np.zeros(nb)
        present = [s for s in samples if (s != "signal" or is_sr)]
        if len(present) > 4:  # not every background in every region
            keep = rng.random(len(present)) < 0.8
            keep[: 3 if is_sr else 2] = True
            present = [s for s, k in zip(present, keep, strict=True) if k]
        for s in present:
            scale = {"signal": 25.0, "fakes": 6.0}.get(s, rng.uniform(3.0, 60.0))
            if not is_sr:  # each control region enriched in one background
                enriched = ["fakes", *bkg][(c - n_sr) % (len(bkg) + 1)]
                scale *= 20.0 if s == enriched else 2.0
            nom = scale * shape * rng.uniform(0.7, 1.3, nb)
            mods: list[dict] = []
            if s == "signal":
                mods.append({"name": "mu", "type": "normfactor", "data": None})
            if s != "fakes":
                mods.append({"name": "lumi", "type": "lumi", "data": None})
                err = np.sqrt(nom) * rng.uniform(0.2, 0.6, nb)
                mods.append(
                    {
                        "name": f"staterror_{name}",
                        "type": "staterror",
                        "data": err.round(4).tolist(),
                    }
                )
            else:
                unc = nom * rng.uniform(0.1, 0.4, nb)
                mods.append(
                    {
                        "name": f"fakes_stat_{name}",
                        "type": "shapesys",
                        "data": unc.round(4).tolist(),
                    }
                )
            if s in bkg[:n_norm_bkg]:
                mods.append({"name": f"mu_{s}", "type": "normfactor", "data": None})
            if s == "fakes" and not is_sr:  # a data-driven normalisation from the CRs
                mods.append({"name": "sf_fakes", "type": "shapefactor", "data": None})
            for m in rng.choice(n_nsys, size=min(n_nsys, int(rng.integers(3, 12))), replace=False):
                hi = 1.0 + rng.uniform(0.01, 0.15)
                lo = 1.0 - rng.uniform(0.01, 0.15)
                mods.append(
                    {
                        "name": nsys_names[m],
                        "type": "normsys",
                        "data": {"hi": round(hi, 5), "lo": round(lo, 5)},
                    }
                )
            for m in rng.choice(n_hist, size=min(n_hist, int(rng.integers(2, 8))), replace=False):
                up = nom * (1.0 + rng.normal(0.0, 0.05, nb))
                dn = nom * (1.0 + rng.normal(0.0, 0.05, nb))
                mods.append(
                    {
                        "name": hist_names[m],
                        "type": "histosys",
                        "data": {"hi_data": up.round(5).tolist(), "lo_data": dn.round(5).tolist()},
                    }
                )
            data = nom.copy()
            if negative and s == bkg[-1] and nb >= 3:
                data[nb // 2] = -0.2 * nom[nb // 2]  # a small negative MC yield
            expected += data
            ch_samples.append({"name": s, "data": data.round(5).tolist(), "modifiers": mods})
        channels.append({"name": name, "samples": ch_samples})
        obs = rng.poisson(np.maximum(expected, 0.1)).astype(float)
        observations.append({"name": name, "data": obs.tolist()})
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [
            {
                "name": "NormalMeasurement",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {
                            "name": "lumi",
                            "auxdata": [1.0],
                            "sigmas": [0.017],
                            "bounds": [[0.915, 1.085]],
                            "inits": [1.0],
                        },
                        {"name": "mu", "bounds": [[-5.0, 10.0]], "inits": [1.0]},
                    ],
                },
            }
        ],
        "version": "1.0.0",
    }


def _meas(poi: str = "mu", parameters: list | None = None) -> list[dict]:
    return [{"name": "meas", "config": {"poi": poi, "parameters": parameters or []}}]


def validation_workspaces() -> dict[str, dict]:
    """pyhf's small validation examples (docs and validation/ of pyhf): {name: workspace}."""
    out: dict[str, dict] = {}
    # pyhf.simplemodels.uncorrelated_background (shapesys), 2 bins
    out["2bin_shapesys"] = {
        "channels": [
            {
                "name": "singlechannel",
                "samples": [
                    {
                        "name": "signal",
                        "data": [12.0, 11.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": [50.0, 52.0],
                        "modifiers": [
                            {"name": "uncorr_bkguncrt", "type": "shapesys", "data": [3.0, 7.0]}
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "singlechannel", "data": [51.0, 48.0]}],
        "measurements": _meas(),
        "version": "1.0.0",
    }
    # pyhf's 2-bin histosys example
    out["2bin_histosys"] = {
        "channels": [
            {
                "name": "singlechannel",
                "samples": [
                    {
                        "name": "signal",
                        "data": [30.0, 95.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": [100.0, 150.0],
                        "modifiers": [
                            {
                                "name": "bkg_norm",
                                "type": "histosys",
                                "data": {"hi_data": [120.0, 180.0], "lo_data": [80.0, 120.0]},
                            }
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "singlechannel", "data": [100.0, 140.0]}],
        "measurements": _meas(),
        "version": "1.0.0",
    }
    # pyhf's 2-bin normsys example
    out["2bin_normsys"] = {
        "channels": [
            {
                "name": "singlechannel",
                "samples": [
                    {
                        "name": "signal",
                        "data": [30.0, 95.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": [100.0, 150.0],
                        "modifiers": [
                            {"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "singlechannel", "data": [120.0, 180.0]}],
        "measurements": _meas(),
        "version": "1.0.0",
    }
    # pyhf's validation/multichan_coupledhistosys-like: signal + control, shared histosys
    out["multichannel"] = {
        "channels": [
            {
                "name": "signal",
                "samples": [
                    {
                        "name": "signal",
                        "data": [5.0, 10.0, 8.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "bkg1",
                        "data": [30.0, 20.0, 15.0],
                        "modifiers": [
                            {
                                "name": "coupled_histosys",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [33.0, 22.0, 16.0],
                                    "lo_data": [28.0, 19.0, 14.0],
                                },
                            },
                            {
                                "name": "staterror_signal",
                                "type": "staterror",
                                "data": [2.0, 1.5, 1.2],
                            },
                        ],
                    },
                    {
                        "name": "bkg2",
                        "data": [12.0, 10.0, 7.0],
                        "modifiers": [
                            {
                                "name": "bkg2_norm",
                                "type": "normsys",
                                "data": {"hi": 1.05, "lo": 0.95},
                            },
                            {
                                "name": "staterror_signal",
                                "type": "staterror",
                                "data": [1.0, 0.9, 0.8],
                            },
                        ],
                    },
                ],
            },
            {
                "name": "control",
                "samples": [
                    {
                        "name": "bkg1",
                        "data": [200.0, 180.0],
                        "modifiers": [
                            {
                                "name": "coupled_histosys",
                                "type": "histosys",
                                "data": {"hi_data": [215.0, 190.0], "lo_data": [190.0, 171.0]},
                            },
                            {"name": "lumi", "type": "lumi", "data": None},
                        ],
                    },
                ],
            },
        ],
        "observations": [
            {"name": "signal", "data": [45.0, 38.0, 27.0]},
            {"name": "control", "data": [205.0, 178.0]},
        ],
        "measurements": _meas(
            parameters=[
                {
                    "name": "lumi",
                    "auxdata": [1.0],
                    "sigmas": [0.02],
                    "bounds": [[0.9, 1.1]],
                    "inits": [1.0],
                }
            ]
        ),
        "version": "1.0.0",
    }
    return out


__all__ = ["PUBLISHED_SIZES", "published_workspace", "validation_workspaces"]
