"""A three-bin pyhf search (signal with a normfactor 'mu', a background with shapesys and
normsys), the small model of the statistics tests."""

from __future__ import annotations


def search_workspace(observed: list[float]) -> dict:
    """The workspace with the observed counts ``observed`` (3 bins); background 50, 60, 40,
    signal 5, 10, 3 at mu = 1."""
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "sig",
                        "data": [5.0, 10.0, 3.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "bkg",
                        "data": [50.0, 60.0, 40.0],
                        "modifiers": [
                            {"name": "bkgunc", "type": "shapesys", "data": [5.0, 6.0, 4.0]},
                            {"name": "ns", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}},
                        ],
                    },
                ],
            }
        ],
        "observations": [{"name": "SR", "data": [float(x) for x in observed]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
