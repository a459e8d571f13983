"""Property: whatever valid variations a producer writes, the reader returns them exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wmass_archive import ArchiveWriter, Axis, open_archive, validate_archive


@st.composite
def models(draw):
    n_ch = draw(st.integers(1, 3))
    chans = []
    for c in range(n_ch):
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
        chans.append((f"ch{c}", shape))
    n_proc = draw(st.integers(1, 3))
    n_par = draw(st.integers(1, 6))
    variations = []
    for par in range(n_par):
        for c, shape in chans:
            nb = int(np.prod(shape))
            for p in range(n_proc):
                if not draw(st.booleans()):
                    continue
                bins = draw(st.lists(st.integers(0, nb - 1), min_size=1, max_size=nb, unique=True))
                up = draw(
                    st.lists(
                        st.floats(-1, 1, allow_subnormal=False),
                        min_size=len(bins),
                        max_size=len(bins),
                    )
                )
                sym = draw(st.booleans())
                down = (
                    None
                    if sym
                    else draw(
                        st.lists(
                            st.floats(-1, 1, allow_subnormal=False),
                            min_size=len(bins),
                            max_size=len(bins),
                        )
                    )
                )
                variations.append((f"n{par}", f"p{p}", c, bins, up, down))
    return chans, n_proc, n_par, variations


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(models())
def test_variations_round_trip(tmp_path, model):
    chans, n_proc, n_par, variations = model
    w = ArchiveWriter(
        title="prop",
        synthetic=True,
        citation={"title": "t"},
        provenance={"producer": "hypothesis", "producer_version": "0"},
    )
    w.add_group("g")
    rng = np.random.default_rng(0)
    for c, shape in chans:
        axes = [Axis.regular(n, 0, 1, name=f"x{i}") for i, n in enumerate(shape)]
        w.add_channel(c, rng.poisson(10, shape).astype(float), axes=axes)
    for p in range(n_proc):
        w.add_process(f"p{p}")
        for c, shape in chans:
            nom = rng.uniform(1, 5, shape)
            w.set_yield(f"p{p}", c, nom, sumw2=nom * 0.1)
    for par in range(n_par):
        w.add_nuisance(f"n{par}", groups=["g"])
    for par, p, c, bins, up, down in variations:
        w.add_variation(par, p, c, logk_up=up, logk_down=down, bins=bins)
    path = tmp_path / "prop.h5"
    w.write(path)
    validate_archive(path)
    with open_archive(path) as a:
        m = a.metadata
        for c, _shape in chans:
            t = a.logk(c)
            got = {
                (m.parameter_names[i], m.processes[j].name, int(b)): (u, d)
                for i, j, b, u, d in zip(
                    t.parameter, t.process, t.bin, t.logk_up, t.logk_down, strict=False
                )
            }
            want = {}
            for par, p, cc, bins, up, down in variations:
                if cc != c:
                    continue
                dn = [-u for u in up] if down is None else down
                for b, u, d in zip(bins, up, dn, strict=False):
                    if u != 0 or d != 0:
                        want[(par, p, b)] = (u, d)
            assert set(got) == set(want)
            for k, (u, d) in want.items():
                # stored as avg/halfdiff: exact up to one rounding of each
                assert abs(got[k][0] - u) <= 4e-16 * max(1, abs(u) + abs(d))
                assert abs(got[k][1] - d) <= 4e-16 * max(1, abs(u) + abs(d))
